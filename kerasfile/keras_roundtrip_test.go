package kerasfile

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
)

// pyModels builds the models both directions use: the notebook's shallow net
// on 32x32x3 and a small BatchNormalization net.
const pyModels = `
import os, sys, json
import numpy as np
import keras
from keras import layers

def shallow():
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Conv2D(32, 3, padding="same"), layers.Activation("relu"),
        layers.MaxPooling2D(), layers.Dropout(0.25), layers.Flatten(),
        layers.Dense(512), layers.Activation("relu"), layers.Dropout(0.5),
        layers.Dense(10), layers.Activation("softmax")])

def bn():
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Conv2D(8, 3), layers.BatchNormalization(), layers.Activation("relu"),
        layers.MaxPooling2D(), layers.Conv2D(8, 3), layers.BatchNormalization(),
        layers.Activation("relu"), layers.Flatten(), layers.Dense(10, activation="softmax")])

def functional():
    i = keras.Input((32, 32, 3))
    x = layers.Conv2D(4, 3, strides=2)(i)
    x = layers.Activation("relu")(x)
    x = layers.Flatten()(x)
    return keras.Model(i, layers.Dense(10, activation="softmax")(x))

MODELS = {"shallow": shallow, "bn": bn, "functional": functional}

def layer_vars(l):
    # Layer.save_own_variables (keras/src/layers/layer.py)
    return l._trainable_variables + l._non_trainable_variables

def data(n=8):
    rng = np.random.default_rng(0)
    x = rng.random((n, 32, 32, 3), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    return x, y
`

// pyDescribe prints, per model, its to_json() (compiled with the named
// optimizer), its layers' classes, names and variable shapes, and the
// optimizer's variables once built.
const pyDescribe = pyModels + `
out = {}
for name, opt in [("shallow", "rmsprop"), ("bn", "adam")]:
    m = MODELS[name]()
    m.compile(optimizer=opt, loss="categorical_crossentropy", metrics=["accuracy"])
    m.optimizer.build(m.trainable_variables)
    out[name] = {
        "config": m.to_json(),
        "model": m.name,
        "layers": [{"class": type(l).__name__, "name": l.name,
                    "shapes": [list(v.shape) for v in layer_vars(l)]} for l in m.layers],
        "opt_name": m.optimizer.name,
        "opt": [{"shape": list(v.shape), "dtype": str(v.dtype)} for v in m.optimizer.variables],
    }
print(json.dumps(out))
`

// pyLoadGo loads Go's files with Keras and compares every variable bitwise
// with the raw float32 values Go also wrote (layers, then optimizer floats).
const pyLoadGo = pyModels + `
cfg_path, wpath, kpath, raw_path, iteration = sys.argv[1:6]
iteration = int(iteration)
want = np.fromfile(raw_path, dtype="<f4")

def flat(vs):
    return np.concatenate([np.asarray(v).ravel() for v in vs]) if vs else np.zeros(0, np.float32)

def same(a, b, what):
    a = np.asarray(a, np.float32); b = np.asarray(b, np.float32)
    if a.shape != b.shape or not np.array_equal(a.view(np.uint32), b.view(np.uint32)):
        raise SystemExit(f"{what}: values differ ({a.shape} vs {b.shape})")

def check_layers(m, what):
    got = flat([v.numpy() for l in m.layers for v in layer_vars(l)])
    same(got, want[:got.size], what + " layer weights")
    return got.size

def check_opt(opt, n, what):
    vs = opt.variables
    if int(vs[0].numpy()) != iteration:
        raise SystemExit(f"{what}: iterations {int(vs[0].numpy())}, want {iteration}")
    same(flat([v.numpy() for v in vs[1:]]), want[n:], what + " optimizer variables")

cfg = open(cfg_path).read()
m = keras.models.model_from_json(cfg)
m.compile(optimizer=keras.optimizers.get(json.loads(cfg)["compile_config"]["optimizer"]), loss="categorical_crossentropy")
m.optimizer.build(m.trainable_variables)
m.load_weights(wpath)
n = check_layers(m, "load_weights")
check_opt(m.optimizer, n, "load_weights")

# The file h5py sees is the one Keras writes for the same model: same groups,
# datasets (shape, dtype) and attributes (value and type).
import h5py, zipfile
def layout(p):
    attrs = lambda o: sorted((k, repr(v), type(v).__name__) for k, v in o.attrs.items())
    with h5py.File(p, "r") as f:
        items = [("/", attrs(f))]
        f.visititems(lambda n, o: items.append((n, type(o).__name__, getattr(o, "shape", None), str(getattr(o, "dtype", "")), attrs(o))))
    return items
ref = os.path.join(os.path.dirname(wpath), "keras.weights.h5")
m.save_weights(ref)
if layout(wpath) != layout(ref):
    raise SystemExit(f"layout differs from Keras's:\n go {layout(wpath)}\nkeras {layout(ref)}")

m2 = keras.models.load_model(kpath)
ref = os.path.join(os.path.dirname(wpath), "keras.keras")
m2.save(ref)
members = lambda p: [(i.filename, i.compress_type) for i in zipfile.ZipFile(p).infolist()]
if members(kpath) != members(ref):
    raise SystemExit(f".keras members {members(kpath)}, Keras writes {members(ref)}")
check_layers(m2, "load_model")
check_opt(m2.optimizer, n, "load_model")
x, y = data()
h = m2.fit(x, y, batch_size=8, epochs=1, verbose=0)
if int(m2.optimizer.iterations.numpy()) != iteration + 1 or not np.isfinite(h.history["loss"][0]):
    raise SystemExit(f"fit after load_model: iterations {int(m2.optimizer.iterations.numpy())}, loss {h.history['loss']}")
print("ok", n, want.size - n)
`

type pyLayer struct {
	Class  string  `json:"class"`
	Name   string  `json:"name"`
	Shapes [][]int `json:"shapes"`
}

type pyModel struct {
	Config  string    `json:"config"`
	Model   string    `json:"model"`
	Layers  []pyLayer `json:"layers"`
	OptName string    `json:"opt_name"`
	Opt     []struct {
		Shape []int  `json:"shape"`
		Dtype string `json:"dtype"`
	} `json:"opt"`
}

func (m pyModel) keys() []string {
	classes := make([]string, len(m.Layers))
	for i, l := range m.Layers {
		classes[i] = l.Class
	}
	return LayerKeys(classes)
}

// randomWeights fills m's shapes with seeded random values; optimizer slots
// are non-negative (RMSprop/Adam velocities are), the learning rate 1e-3.
func randomWeights(t *testing.T, m pyModel, iteration int64, seed uint64) (Weights, []float32) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 17))
	var raw []float32
	w := Weights{Model: m.Model, OptimizerName: m.OptName}
	for i, l := range m.Layers {
		lv := LayerVars{Key: m.keys()[i], Name: l.Name}
		for _, s := range l.Shapes {
			tt := Tensor{Shape: s}
			tt.Data = make([]float32, tt.Len())
			for j := range tt.Data {
				tt.Data[j] = float32(rng.NormFloat64() * 0.05)
			}
			raw = append(raw, tt.Data...)
			lv.Vars = append(lv.Vars, tt)
		}
		w.Layers = append(w.Layers, lv)
	}
	for i, o := range m.Opt {
		tt := Tensor{Shape: o.Shape}
		switch {
		case i == 0:
			if o.Dtype != "int64" || len(o.Shape) != 0 {
				t.Fatalf("optimizer variable 0 is %s %v, expected the int64 scalar iterations", o.Dtype, o.Shape)
			}
			tt.Int64 = []int64{iteration}
		case o.Dtype != "float32":
			t.Fatalf("optimizer variable %d has dtype %s", i, o.Dtype)
		case i == 1:
			tt.Data = []float32{1e-3}
		default:
			tt.Data = make([]float32, tt.Len())
			for j := range tt.Data {
				tt.Data[j] = float32(rng.Float64() * 0.01)
			}
		}
		raw = append(raw, tt.Data...)
		w.Optimizer = append(w.Optimizer, tt)
	}
	return w, raw
}

func writeRaw(t *testing.T, path string, vals []float32) {
	t.Helper()
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func describeModels(t *testing.T) map[string]pyModel {
	t.Helper()
	var models map[string]pyModel
	if err := json.Unmarshal(testenv.RunPython(t, pyDescribe), &models); err != nil {
		t.Fatal(err)
	}
	return models
}

// TestGoWritesKerasLoads: Keras's load_weights and load_model give exactly
// the values Go wrote, optimizer state included, and fit continues.
func TestGoWritesKerasLoads(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Python reference")
	}
	models := describeModels(t)
	for _, name := range []string{"shallow", "bn"} {
		t.Run(name, func(t *testing.T) {
			m := models[name]
			dir := t.TempDir()
			w, raw := randomWeights(t, m, 7, uint64(len(name)))
			cfg := filepath.Join(dir, "model.json")
			if err := os.WriteFile(cfg, []byte(m.Config), 0o644); err != nil {
				t.Fatal(err)
			}
			wpath := filepath.Join(dir, "go.weights.h5")
			kpath := filepath.Join(dir, "go.keras")
			rawPath := filepath.Join(dir, "want.f32")
			if err := WriteWeightsH5(wpath, w); err != nil {
				t.Fatal(err)
			}
			if err := WriteKeras(kpath, []byte(m.Config), w); err != nil {
				t.Fatal(err)
			}
			writeRaw(t, rawPath, raw)
			out := testenv.RunPython(t, pyLoadGo, cfg, wpath, kpath, rawPath, "7")
			if !strings.HasPrefix(string(out), "ok ") {
				t.Fatalf("python: %s", out)
			}
			t.Logf("Keras loaded %s", strings.TrimSpace(string(out)))

			// Go reads its own files back unchanged too.
			_, back, err := ReadKeras(kpath)
			if err != nil {
				t.Fatal(err)
			}
			sameWeights(t, back, w)
		})
	}
}

// pyKerasWrites trains each model a few steps, saves .keras and .weights.h5,
// and dumps what Go must read: config.json as save writes it, each layer's
// name, class and variables, the optimizer's variables (raw float32 values
// in that order; iterations in the manifest).
const pyKerasWrites = pyModels + `
from keras.src.saving import saving_lib
out_dir = sys.argv[1]
manifest = {}
for name, opt in [("shallow", "rmsprop"), ("bn", "adam"), ("functional", keras.optimizers.SGD(momentum=0.9))]:
    m = MODELS[name]()
    m.compile(optimizer=opt, loss="categorical_crossentropy", metrics=["accuracy"])
    x, y = data(16)
    m.fit(x, y, batch_size=8, epochs=1, verbose=0)
    m.save(os.path.join(out_dir, name + ".keras"))
    m.save_weights(os.path.join(out_dir, name + ".weights.h5"))
    raw = []
    for l in m.layers:
        raw += [np.asarray(v.numpy(), "<f4").ravel() for v in layer_vars(l)]
    ov = m.optimizer.variables
    raw += [np.asarray(v.numpy(), "<f4").ravel() for v in ov[1:]]
    np.concatenate(raw).tofile(os.path.join(out_dir, name + ".f32"))
    manifest[name] = {
        "config": saving_lib._serialize_model_as_json(m)[0],
        "model": m.name,
        "layers": [{"class": type(l).__name__, "name": l.name,
                    "shapes": [list(v.shape) for v in layer_vars(l)]} for l in m.layers],
        "opt_name": m.optimizer.name,
        "opt": [{"shape": list(v.shape), "dtype": str(v.dtype)} for v in ov],
        "iterations": int(ov[0].numpy()),
    }
print(json.dumps(manifest))
`

// TestKerasWritesGoReads: Go reads Keras's own .keras and .weights.h5 and gets
// every variable bitwise, the optimizer state and the config JSON.
func TestKerasWritesGoReads(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Python reference")
	}
	dir := t.TempDir()
	var manifest map[string]struct {
		pyModel
		Iterations int64 `json:"iterations"`
	}
	if err := json.Unmarshal(testenv.RunPython(t, pyKerasWrites, dir), &manifest); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"shallow", "bn", "functional"} {
		t.Run(name, func(t *testing.T) {
			m := manifest[name]
			rawBytes, err := os.ReadFile(filepath.Join(dir, name+".f32"))
			if err != nil {
				t.Fatal(err)
			}
			raw := make([]float32, len(rawBytes)/4)
			for i := range raw {
				raw[i] = math.Float32frombits(binary.LittleEndian.Uint32(rawBytes[4*i:]))
			}
			want, _ := randomWeights(t, m.pyModel, m.Iterations, 0) // shapes, keys, names
			fillFrom(t, &want, raw)

			config, got, err := ReadKeras(filepath.Join(dir, name+".keras"))
			if err != nil {
				t.Fatal(err)
			}
			if string(config) != m.Config {
				t.Errorf("config.json differs:\n got %.300s\nwant %.300s", config, m.Config)
			}
			if !slices.Equal(got.keys(), m.keys()) {
				t.Errorf("ReadKeras layer order %v, model.layers %v", got.keys(), m.keys())
			}
			_, cl, err := ModelLayers(config)
			if err != nil {
				t.Fatal(err)
			}
			var keys, names, classes []string
			for _, l := range cl {
				if l.Key != "" {
					keys, names, classes = append(keys, l.Key), append(names, l.Name), append(classes, l.Class)
				}
			}
			var wantNames, wantClasses []string
			for _, l := range m.Layers {
				wantNames, wantClasses = append(wantNames, l.Name), append(wantClasses, l.Class)
			}
			if !slices.Equal(keys, m.keys()) || !slices.Equal(names, wantNames) || !slices.Equal(classes, wantClasses) {
				t.Errorf("ModelLayers keys %v names %v classes %v, model.layers %v %v %v", keys, names, classes, m.keys(), wantNames, wantClasses)
			}
			sameWeights(t, got, want)

			gotH5, err := ReadWeightsH5(filepath.Join(dir, name+".weights.h5"))
			if err != nil {
				t.Fatal(err)
			}
			shapes := map[string][][]int{}
			for i, l := range m.Layers {
				shapes[m.keys()[i]] = l.Shapes
			}
			if err := gotH5.Check(shapes); err != nil {
				t.Fatal(err)
			}
			sameWeights(t, gotH5, want)
		})
	}
}

// fillFrom replaces w's float values with raw, in layer then optimizer order.
func fillFrom(t *testing.T, w *Weights, raw []float32) {
	t.Helper()
	take := func(n int) []float32 {
		if n > len(raw) {
			t.Fatalf("raw values run out")
		}
		v := raw[:n:n]
		raw = raw[n:]
		return v
	}
	for i := range w.Layers {
		for j := range w.Layers[i].Vars {
			w.Layers[i].Vars[j].Data = take(w.Layers[i].Vars[j].Len())
		}
	}
	for i := range w.Optimizer {
		if w.Optimizer[i].Int64 == nil {
			w.Optimizer[i].Data = take(w.Optimizer[i].Len())
		}
	}
	if len(raw) != 0 {
		t.Fatalf("%d raw values left over", len(raw))
	}
}

// sameWeights compares got with want bitwise, layers by key.
func sameWeights(t *testing.T, got, want Weights) {
	t.Helper()
	if got.Model != want.Model || got.OptimizerName != want.OptimizerName {
		t.Errorf("names: got model %q optimizer %q, want %q %q", got.Model, got.OptimizerName, want.Model, want.OptimizerName)
	}
	if len(got.Layers) != len(want.Layers) {
		t.Fatalf("%d layers, want %d (%v vs %v)", len(got.Layers), len(want.Layers), got.keys(), want.keys())
	}
	for _, wl := range want.Layers {
		gl, ok := got.Layer(wl.Key)
		if !ok {
			t.Fatalf("layer %s missing (have %v)", wl.Key, got.keys())
		}
		if gl.Name != wl.Name {
			t.Errorf("layer %s: name %q, want %q", wl.Key, gl.Name, wl.Name)
		}
		sameTensors(t, "layer "+wl.Key, gl.Vars, wl.Vars)
	}
	sameTensors(t, "optimizer", got.Optimizer, want.Optimizer)
}

func sameTensors(t *testing.T, what string, got, want []Tensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d variables, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !slices.Equal(g.Shape, w.Shape) || !slices.Equal(g.Int64, w.Int64) || len(g.Data) != len(w.Data) {
			t.Fatalf("%s variable %d: shape %v int64 %v (%d floats), want %v %v (%d floats)", what, i, g.Shape, g.Int64, len(g.Data), w.Shape, w.Int64, len(w.Data))
		}
		for j := range w.Data {
			if math.Float32bits(g.Data[j]) != math.Float32bits(w.Data[j]) {
				t.Fatalf("%s variable %d element %d: %v, want %v", what, i, j, g.Data[j], w.Data[j])
			}
		}
	}
}
