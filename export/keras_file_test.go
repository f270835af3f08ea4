package export

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/internal/enginetest"
	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
	"github.com/cifar-pipeline/cifar-pipeline/pixels"
	"github.com/cifar-pipeline/cifar-pipeline/train"
)

// notebookShallow is the notebook's shallow net (a Keras Sequential).
var notebookShallow = config.ShallowLayers

// pyLoadGoKeras loads Go's model.keras with nothing but keras, and Go's
// architecture JSON + .weights.h5, and reports what they predict on the
// images (scaled by 1/255, as the notebook feeds them), evaluate's
// accuracy, the restored optimizer's iterations, and fit's after one step.
const pyLoadGoKeras = `
import sys, json, numpy as np, keras
kpath, arch, wpath, imgs, labels, n, out = sys.argv[1:8]
n = int(n)
x = np.fromfile(imgs, dtype=np.uint8).reshape(n, 32, 32, 3).astype("float32") / 255
y = keras.utils.to_categorical(np.fromfile(labels, dtype=np.uint8), 10)
m = keras.models.load_model(kpath)
res = {"class": type(m).__name__, "optimizer": type(m.optimizer).__name__,
       "iterations": int(m.optimizer.iterations.numpy())}
m.predict(x, batch_size=50, verbose=0).astype("<f4").tofile(out + ".load_model.f32")
loss, acc = m.evaluate(x, y, batch_size=50, verbose=0)
res["evaluate_accuracy"] = float(acc)
res["slots_nonzero"] = int(sum(int(np.any(np.asarray(v) != 0)) for v in m.optimizer.variables[2:]))
res["slots"] = len(m.optimizer.variables) - 2
h = m.fit(x[:32], y[:32], batch_size=32, epochs=1, verbose=0)
res["fit_loss"] = float(h.history["loss"][0])
res["iterations_after_fit"] = int(m.optimizer.iterations.numpy())
m2 = keras.models.model_from_json(open(arch).read())
m2.load_weights(wpath)
m2.predict(x, batch_size=50, verbose=0).astype("<f4").tofile(out + ".load_weights.f32")
json.dump(res, open(out, "w"))
`

// TestKerasLoadsGoKerasFiles: a Go-trained Sequential (the notebook's
// shallow net, RMSprop), a Functional BatchNormalization residual net
// (AdamW with EMA) and a net of merges (SGD with momentum), written as
// model.keras and .weights.h5, load in Keras: load_model predicts what the
// SavedModel predicts on 100 real CIFAR-10 test images within 1e-5,
// evaluates to Go's accuracy, holds Go's optimizer state (iterations and
// non-zero slots) and fits one more step from it; model_from_json of the
// architecture JSON with load_weights of the .weights.h5 predicts the same.
func TestKerasLoadsGoKerasFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Python reference")
	}
	testenv.Python(t)
	for _, tc := range kerasFileNets {
		t.Run(tc.name, func(t *testing.T) {
			const n = 100
			images, labels := realTestImages(t, n)
			m := trainedWith(t, tc.layers(), tc.opt, images, labels)
			w, err := KerasWeights(m)
			if err != nil {
				t.Fatal(err)
			}
			slots := len(w.Optimizer) - 2 // iteration, learning_rate
			dir := t.TempDir()
			smDir := filepath.Join(dir, "saved_model")
			if err := SavedModel(m, smDir); err != nil {
				t.Fatal(err)
			}
			want := served(t, smDir, SignatureDefault, images, n)
			_, goAcc, err := train.Evaluate(context.Background(), m, &train.Arrays{Set: &pixels.Set{Images: images, Labels: labels, H: 32, W: 32, C: 3}, BatchSize: 50})
			if err != nil {
				t.Fatal(err)
			}
			steps, err := m.Iterations()
			if err != nil {
				t.Fatal(err)
			}
			kpath, wpath, arch := filepath.Join(dir, "model.keras"), filepath.Join(dir, "cifar10.weights.h5"), filepath.Join(dir, "cifar10_architecture.json")
			if err := KerasFile(m, kpath); err != nil {
				t.Fatal(err)
			}
			if err := WeightsH5(m, wpath); err != nil {
				t.Fatal(err)
			}
			js, err := KerasJSON(m.Net)
			if err != nil {
				t.Fatal(err)
			}
			writeRaw(t, arch, js)
			imgPath, labPath, out := filepath.Join(dir, "images.u8"), filepath.Join(dir, "labels.u8"), filepath.Join(dir, "py.json")
			writeRaw(t, imgPath, images)
			writeRaw(t, labPath, labels)
			testenv.RunPython(t, pyLoadGoKeras, kpath, arch, wpath, imgPath, labPath, strconv.Itoa(n), out)
			var py struct {
				Class              string  `json:"class"`
				Optimizer          string  `json:"optimizer"`
				Iterations         int64   `json:"iterations"`
				EvaluateAccuracy   float64 `json:"evaluate_accuracy"`
				Slots              int     `json:"slots"`
				SlotsNonzero       int     `json:"slots_nonzero"`
				FitLoss            float64 `json:"fit_loss"`
				IterationsAfterFit int64   `json:"iterations_after_fit"`
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &py); err != nil {
				t.Fatal(err)
			}
			t.Logf("Keras: %s with %s at iteration %d, evaluate accuracy %v (Go %v), fit loss %.4f", py.Class, py.Optimizer, py.Iterations, py.EvaluateAccuracy, goAcc, py.FitLoss)
			if optClass := graph.OptimizerClass(m.Optimizer()); py.Class != tc.class || py.Optimizer != optClass {
				t.Errorf("load_model gives a %s with %s, want %s with %s", py.Class, py.Optimizer, tc.class, optClass)
			}
			if py.Iterations != steps || steps == 0 {
				t.Errorf("load_model: optimizer.iterations %d, Go took %d steps", py.Iterations, steps)
			}
			if py.Slots != slots || slots < len(m.Weights) || py.SlotsNonzero != py.Slots {
				t.Errorf("load_model: %d optimizer slots, %d non-zero; want %d, all trained", py.Slots, py.SlotsNonzero, slots)
			}
			if py.EvaluateAccuracy != float64(float32(goAcc)) && abs(py.EvaluateAccuracy-goAcc) > 1e-6 {
				t.Errorf("evaluate: Keras accuracy %v, Go %v", py.EvaluateAccuracy, goAcc)
			}
			if py.IterationsAfterFit != steps+1 || py.FitLoss <= 0 {
				t.Errorf("fit one step after load_model: iterations %d (want %d), loss %v", py.IterationsAfterFit, steps+1, py.FitLoss)
			}
			for _, f := range []string{"load_model", "load_weights"} {
				got := readF32(t, out+"."+f+".f32", len(want))
				if d := maxAbsDiff(got, want); d > 1e-5 {
					t.Errorf("Keras %s predicts unlike the SavedModel: max abs diff %g > 1e-5", f, d)
				} else {
					t.Logf("Keras %s vs SavedModel on %d images: max abs diff %.3g", f, n, d)
				}
			}
		})
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// kerasFileNets are the nets TestKerasLoadsGoKerasFiles has Keras load:
// together they must use every registered layer kind.
var kerasFileNets = []struct {
	name   string
	layers func() []config.Layer
	class  string
	opt    config.Optimizer
}{
	{"shallow", notebookShallow, "Sequential", enginetest.Optimizer("rmsprop")},
	{"resnet", enginetest.SmallResNet, "Functional", enginetest.Optimizer("adamw", "use_ema", true)},
	{"merges", enginetest.MergesNet, "Functional", enginetest.Optimizer("sgd", "momentum", 0.9)},
	{"whitened", enginetest.WhitenedNet, "Sequential", enginetest.Optimizer("sgd", "momentum", 0.85, "nesterov", true, "weight_decay", 0.005)},
}

// trainedWith compiles layers with the optimizer opt and fits them for an
// epoch on images.
func trainedWith(t *testing.T, layers []config.Layer, opt config.Optimizer, images, labels []uint8) *graph.Model {
	t.Helper()
	net, err := graph.NewNet(config.Model{Layers: layers}, []int{32, 32, 3})
	if err != nil {
		t.Fatal(err)
	}
	o, err := graph.NewOptimizer(opt)
	if err != nil {
		t.Fatal(err)
	}
	m, err := graph.Compile(net, graph.Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: o})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.InitFromData(images, len(labels)); err != nil {
		t.Fatal(err)
	}
	data := &train.Arrays{Set: &pixels.Set{Images: images, Labels: labels, H: 32, W: 32, C: 3}, BatchSize: 32, Shuffle: true, Seed: 3}
	if _, err := train.Fit(context.Background(), m, data, train.Options{BatchSize: 32, Epochs: 1, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestKerasFilesCoverEveryLayerKind: every layer kind of the registry is
// in a net that Keras loads from Go's model.keras and .weights.h5, and
// imports back from Go's architecture JSON to the same model. Adding a
// kind means adding it to one of kerasFileNets (and to the Keras-trained
// nets of TestGoServesKerasTrainedModels).
func TestKerasFilesCoverEveryLayerKind(t *testing.T) {
	used := map[string]bool{}
	for _, tc := range kerasFileNets {
		net, err := graph.NewNet(config.Model{Layers: tc.layers()}, []int{32, 32, 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range net.Nodes {
			used[n.Kind.Type] = true
		}
		js, err := KerasJSON(net)
		if err != nil {
			t.Fatal(err)
		}
		back, err := KerasNet(js, tc.name+".json")
		if err != nil {
			t.Fatalf("%s: Go's own architecture JSON does not import: %v", tc.name, err)
		}
		if got, want := back.Summary(), net.Summary(); got != want {
			t.Errorf("%s: imported summary differs:\n%s\nwant\n%s", tc.name, got, want)
		}
	}
	for _, typ := range graph.LayerTypes() {
		if !used[typ] {
			t.Errorf("layer kind %s is in no net of kerasFileNets: add it there so that Keras loads it from model.keras", typ)
		}
	}
}

// TestKerasWeightsEveryOptimizer: every registered optimizer's state maps
// onto Keras's optimizer.variables (a run writes model.keras at its end,
// so an optimizer kerasfile cannot lay out would fail runs there).
func TestKerasWeightsEveryOptimizer(t *testing.T) {
	for _, name := range graph.OptimizerNames() {
		net, err := graph.NewNet(config.Model{Layers: enginetest.SmallResNet()}, []int{32, 32, 3})
		if err != nil {
			t.Fatal(err)
		}
		o, err := graph.NewOptimizer(enginetest.Optimizer(name, "use_ema", true))
		if err != nil {
			t.Fatal(err)
		}
		m, err := graph.Compile(net, graph.Options{Classes: 10, Optimizer: o})
		if err != nil {
			t.Fatal(err)
		}
		w, err := KerasWeights(m)
		m.Close()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if n := len(w.Optimizer); n < 2+len(m.Weights) {
			t.Errorf("%s with use_ema: %d optimizer variables, want at least iteration, learning_rate and an average per weight (%d)", name, n, len(m.Weights))
		}
	}
}
