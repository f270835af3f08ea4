package export

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/internal/enginetest"
	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
	"github.com/cifar-pipeline/cifar-pipeline/train"
)

// pyTrainKeras trains the notebook's shallow and deep nets, a
// BatchNormalization net and a Functional residual net in Keras for a few
// steps on real images (scaled by 1/255, as the notebook does), saves each
// as NAME.keras, NAME.weights.h5 and NAME.json (to_json), and writes its
// predictions on the images to NAME.f32.
const pyTrainKeras = `
import sys, numpy as np, keras
from keras import layers as L
out, imgs, labels, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
x = np.fromfile(imgs, dtype=np.uint8).reshape(n, 32, 32, 3).astype("float32") / 255
y = keras.utils.to_categorical(np.fromfile(labels, dtype=np.uint8), 10)
keras.utils.set_random_seed(1)

def shallow():
    return keras.Sequential([keras.Input((32, 32, 3)),
        L.Conv2D(32, 3, padding="same"), L.Activation("relu"), L.MaxPooling2D(), L.Dropout(0.25),
        L.Flatten(), L.Dense(512), L.Activation("relu"), L.Dropout(0.5), L.Dense(10), L.Activation("softmax")])

def deep():
    return keras.Sequential([keras.Input((32, 32, 3)),
        L.Conv2D(32, 3, padding="same"), L.Activation("relu"), L.Conv2D(32, 3), L.Activation("relu"),
        L.MaxPooling2D(), L.Dropout(0.25),
        L.Conv2D(64, 3, padding="same"), L.Activation("relu"), L.Conv2D(64, 3), L.Activation("relu"),
        L.MaxPooling2D(), L.Dropout(0.25),
        L.Flatten(), L.Dense(512), L.Activation("relu"), L.Dropout(0.5), L.Dense(10), L.Activation("softmax")])

def bn():
    return keras.Sequential([keras.Input((32, 32, 3)),
        L.Conv2D(16, 3, use_bias=False), L.BatchNormalization(), L.Activation("relu"), L.MaxPooling2D(),
        L.Conv2D(16, 3, kernel_regularizer=keras.regularizers.L2(1e-4)), L.BatchNormalization(momentum=0.9),
        L.Activation("relu"), L.GlobalAveragePooling2D(), L.Dense(10, activation="softmax")])

def residual():
    i = keras.Input((32, 32, 3))
    a = L.Conv2D(8, 3, padding="same", kernel_initializer="he_normal")(i)
    a = L.BatchNormalization()(a)
    a = L.Activation("relu")(a)
    b = L.Conv2D(8, 3, padding="same")(a)
    b = L.BatchNormalization()(b)
    c = L.Add()([a, b])
    c = L.Activation("relu")(c)
    c = L.AveragePooling2D(2)(c)
    c = L.Flatten()(c)
    return keras.Model(i, L.Dense(10, activation="softmax")(c))

def merges():
    i = keras.Input((32, 32, 3))
    a = L.Conv2D(8, 3, padding="same", activation="relu")(i)
    b = L.ZeroPadding2D(((1, 1), (2, 0)))(a)
    b = L.Conv2D(6, 3, activation="relu")(b)
    c = L.Concatenate()([a, b])
    p = L.MaxPooling2D()(c)
    d = L.Conv2D(10, 3, padding="same", activation="relu")(p)
    g = L.Concatenate(axis=1)([L.GlobalMaxPooling2D()(d), L.GlobalAveragePooling2D()(p)])
    return keras.Model(i, L.Dense(10, activation="softmax")(g))

for name, build, opt in [("shallow", shallow, "rmsprop"), ("deep", deep, "rmsprop"), ("bn", bn, "adam"), ("residual", residual, "sgd"),
                         ("merges", merges, keras.optimizers.AdamW(use_ema=True))]:
    m = build()
    m.compile(optimizer=opt, loss="categorical_crossentropy", metrics=["accuracy"])
    m.fit(x, y, batch_size=32, epochs=1, verbose=0)
    m.save(f"{out}/{name}.keras")
    m.save_weights(f"{out}/{name}.weights.h5")
    open(f"{out}/{name}.json", "w").write(m.to_json())
    m.predict(x, batch_size=50, verbose=0).astype("<f4").tofile(f"{out}/{name}.f32")
`

// TestGoServesKerasTrainedModels: models Keras itself trained (the
// notebook's shallow and deep nets, a BatchNormalization net, a Functional
// residual net, a net of merges and padding) predict in Go what they predict in Keras within 1e-5 on
// real CIFAR-10 test images, read from the .keras file (OpenKeras) and
// from to_json + .weights.h5 (KerasNet + ReadKerasWeights).
func TestGoServesKerasTrainedModels(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Python reference")
	}
	testenv.Python(t)
	const n = 100
	images, labels := realTestImages(t, n)
	dir := t.TempDir()
	imgPath, labPath := filepath.Join(dir, "images.u8"), filepath.Join(dir, "labels.u8")
	writeRaw(t, imgPath, images)
	writeRaw(t, labPath, labels)
	testenv.RunPython(t, pyTrainKeras, dir, imgPath, labPath, strconv.Itoa(n))
	for _, name := range []string{"shallow", "deep", "bn", "residual", "merges"} {
		t.Run(name, func(t *testing.T) {
			want := readF32(t, filepath.Join(dir, name+".f32"), n*10)
			m, err := OpenKeras(filepath.Join(dir, name+".keras"), graph.Options{Normalize: true})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			got, err := train.Predict(context.Background(), m, images, n, 50)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxAbsDiff(got, want); d > 1e-5 {
				t.Errorf("Go serving %s.keras predicts unlike Keras: max abs diff %g > 1e-5", name, d)
			} else {
				t.Logf("%s.keras: Go vs Keras on %d images: max abs diff %.3g", name, n, d)
			}

			js, err := os.ReadFile(filepath.Join(dir, name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			net, err := KerasNet(js, name+".json")
			if err != nil {
				t.Fatal(err)
			}
			arrays, err := ReadKerasWeights(filepath.Join(dir, name+".weights.h5"), net)
			if err != nil {
				t.Fatal(err)
			}
			o, _ := graph.NewOptimizer(enginetest.Optimizer("rmsprop"))
			m2, err := graph.Compile(net, graph.Options{Normalize: true, Classes: 10, Optimizer: o})
			if err != nil {
				t.Fatal(err)
			}
			defer m2.Close()
			if err := m2.SetWeights(arrays); err != nil {
				t.Fatal(err)
			}
			got2, err := train.Predict(context.Background(), m2, images, n, 50)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxAbsDiff(got2, want); d > 1e-5 {
				t.Errorf("Go with %s.json + .weights.h5 predicts unlike Keras: max abs diff %g > 1e-5", name, d)
			}
		})
	}
}

// TestKerasConfigRefused: a Keras config the engine cannot run exactly is
// refused with one line naming the layer, the key and the value; Go's own
// architecture JSON imports back to the same config.
func TestKerasConfigRefused(t *testing.T) {
	net, err := graph.NewNet(config.Model{Layers: enginetest.SmallResNet()}, []int{32, 32, 3})
	if err != nil {
		t.Fatal(err)
	}
	js, err := KerasJSON(net)
	if err != nil {
		t.Fatal(err)
	}
	back, err := KerasNet(js, "go.json")
	if err != nil {
		t.Fatalf("Go's own JSON: %v", err)
	}
	if got, want := back.Summary(), net.Summary(); got != want {
		t.Errorf("imported summary differs:\n%s\nwant\n%s", got, want)
	}
	// mutate returns js with the layer named layer changed by f.
	mutate := func(layer string, f func(entry, cfg map[string]any)) []byte {
		var obj map[string]any
		if err := json.Unmarshal(js, &obj); err != nil {
			t.Fatal(err)
		}
		for _, l := range obj["config"].(map[string]any)["layers"].([]any) {
			e := l.(map[string]any)
			c := e["config"].(map[string]any)
			if c["name"] == layer {
				f(e, c)
			}
		}
		b, _ := json.Marshal(obj)
		return b
	}
	set := func(k string, v any) func(e, c map[string]any) {
		return func(e, c map[string]any) { c[k] = v }
	}
	for _, tc := range []struct {
		name string
		js   []byte
		want []string
	}{
		{"dilation", mutate("stem", set("dilation_rate", []any{2, 2})), []string{`layer "stem" (Conv2D)`, "dilation_rate is [2,2]", "only [1,1]"}},
		{"groups", mutate("proj", set("groups", 2)), []string{`layer "proj" (Conv2D)`, "groups is 2"}},
		{"channels_first", mutate("stem", set("data_format", "channels_first")), []string{`layer "stem"`, `data_format is "channels_first"`}},
		{"constraint", mutate("stem", set("kernel_constraint", map[string]any{"module": "keras.constraints", "class_name": "MaxNorm", "config": map[string]any{"max_value": 2}})),
			[]string{`layer "stem"`, "kernel_constraint", "MaxNorm"}},
		{"activation", mutate("stem_relu", set("activation", "hard_sigmoid")), []string{`layer "stem_relu" (Activation)`, "activation", "hard_sigmoid"}},
		{"unknown argument", mutate("stem", set("lora_rank", 4)), []string{`layer "stem"`, "lora_rank is 4", "does not take"}},
		{"initializer", mutate("stem", set("kernel_initializer", map[string]any{"module": "keras.initializers", "class_name": "Orthogonal", "config": map[string]any{}})),
			[]string{`layer "stem"`, "kernel_initializer", "Orthogonal"}},
		{"regularizer", mutate("proj", set("kernel_regularizer", map[string]any{"module": "keras.regularizers", "class_name": "OrthogonalRegularizer", "config": map[string]any{}})),
			[]string{`layer "proj"`, "kernel_regularizer", "OrthogonalRegularizer"}},
		{"trainable not a bool", mutate("stem", set("trainable", "yes")), []string{`layer "stem"`, `trainable is "yes": want true or false`}},
		{"float16", mutate("stem", set("dtype", "float16")), []string{`layer "stem"`, "float16"}},
		{"unknown class", mutate("stem_relu", func(e, c map[string]any) { e["class_name"] = "LayerNormalization" }),
			[]string{`layer "stem_relu" is a LayerNormalization`, "does not have"}},
		{"keras 2 inbound nodes", mutate("proj", func(e, c map[string]any) {
			e["inbound_nodes"] = []any{[]any{[]any{"stem_relu", 0, 0, map[string]any{}}}}
		}),
			[]string{`layer "proj"`, "Keras 2"}},
		{"shared layer", mutate("proj", func(e, c map[string]any) {
			nodes := e["inbound_nodes"].([]any)
			e["inbound_nodes"] = append(nodes, nodes[0])
		}), []string{`layer "proj"`, "called 2 times"}},
		{"not a model", []byte(`{"class_name": "Dense", "config": {}}`), []string{"class \"Dense\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := KerasNet(tc.js, "m.keras")
			if err == nil {
				t.Fatal("imported")
			}
			msg := err.Error()
			t.Log(msg)
			if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "m.keras: ") {
				t.Errorf("not one line naming the file: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
		})
	}
}
