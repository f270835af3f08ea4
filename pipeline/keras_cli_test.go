package pipeline

import (
	"archive/zip"
	"bufio"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/hdf5"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/export"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
	"github.com/cifar-pipeline/cifar-pipeline/kerasfile"
)

// tinyKerasConfig is a run small enough for CLI tests: a conv net on a
// synthetic set, one epoch, with per-channel standardisation (which the
// .keras file does not carry).
const tinyKerasConfig = `name: tiny
seed: 3
data:
  synthetic: {train: 128, test: 64}
  mean: [0.5, 0.4, 0.3]
  std: [0.2, 0.25, 0.3]
model:
  layers:
    - {type: conv2d, filters: %d, kernel_size: 3, strides: 2}
    - {type: batch_normalization}
    - {type: activation, activation: relu}
    - {type: flatten}
    - {type: dense, units: 10, activation: softmax}
train:
  batch_size: 32
  epochs: 1
  verbose: line
output:
  plots: false
`

func writeTinyConfig(t *testing.T, dir string, filters int, extra string) string {
	t.Helper()
	p := filepath.Join(dir, "tiny.yaml")
	body := strings.Replace(tinyKerasConfig, "%d", itoa(filters), 1) + extra
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// writePNGs writes n small images for predict.
func writePNGs(t *testing.T, dir string, n int) []string {
	t.Helper()
	var files []string
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 32, 32))
		for y := range 32 {
			for x := range 32 {
				img.Set(x, y, color.RGBA{uint8(x*8 + i*40), uint8(y * 8), uint8((x + y + i*17) * 3), 255})
			}
		}
		p := filepath.Join(dir, "img"+itoa(i)+".png")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
		files = append(files, p)
	}
	return files
}

// predictJSON runs predict --json --top 10 and returns each file's
// probabilities by class.
func predictJSON(t *testing.T, model string, files []string) map[string]map[string]float64 {
	t.Helper()
	code, out, errs := runCLI(context.Background(), append([]string{"predict", "-m", model, "--json", "--top", "10"}, files...)...)
	if code != 0 {
		t.Fatalf("predict -m %s: exit %d: %s", model, code, errs)
	}
	res := map[string]map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l predictLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("predict output %q: %v", sc.Text(), err)
		}
		res[l.File] = map[string]float64{}
		for _, s := range l.Top {
			res[l.File][s.Class] = s.Probability
		}
	}
	return res
}

// TestKerasFilesCLI: a run writes model.keras and cifar10.weights.h5;
// predict -m model.keras gives the SavedModel's probabilities, summary -m
// model.keras the config's table, and run --init-from (either file) starts
// from exactly those weights; a config whose model differs is refused
// naming the layer and both shapes, with nothing written.
func TestKerasFilesCLI(t *testing.T) {
	dir := t.TempDir()
	cfg := writeTinyConfig(t, dir, 4, "")
	out1 := filepath.Join(dir, "run1")
	if code, _, errs := runCLI(context.Background(), "run", "-c", cfg, "--set", "output.dir="+out1); code != 0 {
		t.Fatalf("run: exit %d: %s", code, errs)
	}
	kpath, wpath := filepath.Join(out1, "model.keras"), filepath.Join(out1, "cifar10.weights.h5")
	card, err := os.ReadFile(filepath.Join(out1, "MODEL_CARD.md"))
	if err != nil || !strings.Contains(string(card), "keras.models.load_model(\"model.keras\")") || !strings.Contains(string(card), "cifar10.weights.h5") {
		t.Errorf("MODEL_CARD.md does not list the Keras files (%v)", err)
	}
	if want := "scaled as this run trained: x / 255, then (x − [0.5 0.4 0.3]) / [0.2 0.25 0.3] per channel."; !strings.Contains(string(card), want) {
		t.Errorf("MODEL_CARD.md does not say how the Keras files' inputs are scaled (%q)", want)
	}

	t.Run("summary", func(t *testing.T) {
		_, want, _ := runCLI(context.Background(), "summary", "-c", cfg)
		code, got, errs := runCLI(context.Background(), "summary", "-m", kpath)
		if code != 0 || got != want || !strings.Contains(got, "batch_normalization (BatchNormalization)") {
			t.Errorf("summary -m model.keras: exit %d %s\n%s\nwant\n%s", code, errs, got, want)
		}
	})

	t.Run("predict", func(t *testing.T) {
		files := writePNGs(t, dir, 3)
		want := predictJSON(t, out1, files)
		got := predictJSON(t, kpath, files)
		if len(got) != 3 || len(want) != 3 {
			t.Fatalf("predict: %d and %d results", len(got), len(want))
		}
		for f, probs := range want {
			for c, p := range probs {
				if q, ok := got[f][c]; !ok || abs(q-p) > 1e-5 {
					t.Errorf("%s %s: model.keras %v, SavedModel %v", filepath.Base(f), c, q, p)
				}
			}
		}
	})

	want, err := kerasfile.ReadWeightsH5(wpath)
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{kpath, wpath} {
		t.Run("init-from "+filepath.Base(from), func(t *testing.T) {
			out2 := filepath.Join(t.TempDir(), "run2")
			// A learning rate so small that one epoch leaves the trained
			// weights as they are: what the run ends with is what it started from.
			code, _, errs := runCLI(context.Background(), "run", "-c", cfg, "--init-from", from, "--set", "output.dir="+out2,
				"--set", "train.optimizer.learning_rate=1e-30")
			if code != 0 {
				t.Fatalf("run --init-from: exit %d: %s", code, errs)
			}
			got, err := kerasfile.ReadWeightsH5(filepath.Join(out2, "cifar10.weights.h5"))
			if err != nil {
				t.Fatal(err)
			}
			for _, wl := range want.Layers {
				gl, _ := got.Layer(wl.Key)
				for i, v := range wl.Vars {
					if strings.HasPrefix(wl.Key, "batch_normalization") && i >= 2 {
						continue // moving statistics move with every training step
					}
					if d := maxAbs(gl.Vars[i].Data, v.Data); d > 1e-6 {
						t.Errorf("%s variable %d: run --init-from ends %g away from the file's weights", wl.Key, i, d)
					}
				}
			}
		})
	}

	t.Run("mismatch", func(t *testing.T) {
		other := writeTinyConfig(t, t.TempDir(), 6, "")
		out3 := filepath.Join(dir, "run3")
		code, _, errs := runCLI(context.Background(), "run", "-c", other, "--init-from", kpath, "--set", "output.dir="+out3)
		line := strings.TrimSpace(errs)
		if code == 0 || strings.Contains(line, "\n") {
			t.Fatalf("exit %d: %q", code, errs)
		}
		for _, w := range []string{kpath, "conv2d", "[3 3 3 4]", "[3 3 3 6]"} {
			if !strings.Contains(line, w) {
				t.Errorf("error %q lacks %q", line, w)
			}
		}
		if _, err := os.Stat(out3); err == nil {
			t.Errorf("a refused --init-from created %s", out3)
		}
	})
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func maxAbs(a, b []float32) float64 {
	if len(a) != len(b) {
		return 1e9
	}
	d := 0.0
	for i := range a {
		d = max(d, abs(float64(a[i]-b[i])))
	}
	return d
}

// TestKerasFileGarbageCLI: bad .keras and .weights.h5 files given to
// predict -m, summary -m and run --init-from: one line naming the file and
// what is wrong, exit ≠ 0, nothing written.
func TestKerasFileGarbageCLI(t *testing.T) {
	dir := t.TempDir()
	cfg := writeTinyConfig(t, dir, 4, "")
	good := goodKerasFiles(t, dir)
	img := writePNGs(t, dir, 1)[0]
	w, err := kerasfile.ReadWeightsH5(good.weights)
	if err != nil {
		t.Fatal(err)
	}
	// weightsWith writes good's weights changed by f.
	weightsWith := func(name string, f func(w *kerasfile.Weights)) string {
		c := w
		c.Layers = append([]kerasfile.LayerVars(nil), w.Layers...)
		f(&c)
		p := filepath.Join(dir, name)
		if err := kerasfile.WriteWeightsH5(p, c); err != nil {
			t.Fatal(err)
		}
		return p
	}
	layerIndex := func(w *kerasfile.Weights, key string) int {
		for i, l := range w.Layers {
			if l.Key == key {
				return i
			}
		}
		t.Fatalf("no layer %s", key)
		return -1
	}
	cases := []struct {
		name string
		file string
		want []string
	}{
		{"truncated .keras", truncated(t, good.keras, filepath.Join(dir, "truncated.keras")), []string{"not a .keras file", "truncated"}},
		{"not a zip", writeBytes(t, filepath.Join(dir, "text.keras"), []byte("just some text\n")), []string{"not a .keras file"}},
		{"zip without config.json", zipWithout(t, good.keras, filepath.Join(dir, "noconfig.keras"), "config.json"), []string{"no config.json"}},
		{"layer kind the engine lacks", zipWithConfig(t, good.keras, filepath.Join(dir, "lstm.keras"), func(c string) string {
			return strings.Replace(c, `"class_name":"BatchNormalization"`, `"class_name":"LayerNormalization"`, 1)
		}), []string{`layer "batch_normalization" is a LayerNormalization`}},
		{"weights missing a dataset", weightsWith("missing.weights.h5", func(w *kerasfile.Weights) {
			i := layerIndex(w, "conv2d")
			w.Layers[i] = kerasfile.LayerVars{Key: "conv2d", Name: "conv2d", Vars: w.Layers[i].Vars[:1]}
		}), []string{"conv2d", "1 variables", "2"}},
		{"weights with a mis-shaped dataset", weightsWith("misshaped.weights.h5", func(w *kerasfile.Weights) {
			i := layerIndex(w, "dense")
			v := w.Layers[i].Vars
			w.Layers[i] = kerasfile.LayerVars{Key: "dense", Name: "dense", Vars: []kerasfile.Tensor{{Shape: []int{10, 10}, Data: make([]float32, 100)}, v[1]}}
		}), []string{"layer dense", "kernel", "[10 10]", "[900 10]"}},
		{"HDF5 not in Keras's layout", rawH5(t, filepath.Join(dir, "other.weights.h5"), "data"), []string{"no layers/ group"}},
		{"Keras 2 whole-model .h5", rawH5(t, filepath.Join(dir, "keras2.h5"), "model_weights"), []string{"Keras 2 whole-model .h5", ".save(\"model.keras\")"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+strings.ReplaceAll(tc.name, " ", "_"))
			cmds := [][]string{{"run", "-c", cfg, "--init-from", tc.file, "--set", "output.dir=" + out}}
			if !strings.Contains(tc.name, "weights") {
				cmds = append(cmds, []string{"predict", "-m", tc.file, img}, []string{"summary", "-m", tc.file})
			}
			for _, cmd := range cmds {
				code, stdout, errs := runCLI(context.Background(), cmd...)
				line := strings.TrimSpace(errs)
				t.Logf("%s: %s", cmd[0], line)
				if code == 0 {
					t.Fatalf("%s: exit 0", cmd[0])
				}
				if strings.Contains(line, "\n") || stdout != "" {
					t.Errorf("%s: not one line on stderr and nothing on stdout:\n%s\n%s", cmd[0], errs, stdout)
				}
				for _, w := range append([]string{tc.file}, tc.want...) {
					if !strings.Contains(line, w) {
						t.Errorf("%s: error %q lacks %q", cmd[0], line, w)
					}
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a refused file created %s", out)
			}
		})
	}
}

// TestKerasPreprocessBesideGarbage: predict -m FILE.keras reads the input
// scaling from config.resolved.yaml beside it; a garbled one is one line
// naming it, exit ≠ 0, rather than a silent /255.
func TestKerasPreprocessBesideGarbage(t *testing.T) {
	dir := t.TempDir()
	good := goodKerasFiles(t, dir)
	img := writePNGs(t, dir, 1)[0]
	for _, tc := range []struct{ name, body, want string }{
		{"not YAML", "data: [unclosed\n", "not valid YAML"},
		{"std of zero", "data:\n  mean: [0.5, 0.5, 0.5]\n  std: [0, 1, 1]\n", "std"},
		{"unknown key", "data:\n  standardise: true\n", "standardise"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			k := filepath.Join(sub, "model.keras")
			raw, err := os.ReadFile(good.keras)
			if err != nil {
				t.Fatal(err)
			}
			writeBytes(t, k, raw)
			beside := writeBytes(t, filepath.Join(sub, "config.resolved.yaml"), []byte(tc.body))
			code, stdout, errs := runCLI(context.Background(), "predict", "-m", k, img)
			line := strings.TrimSpace(errs)
			t.Logf("predict: %s", line)
			if code == 0 || stdout != "" || strings.Contains(line, "\n") {
				t.Fatalf("exit %d, stdout %q, stderr %q: want one line and exit ≠ 0", code, stdout, errs)
			}
			for _, w := range []string{beside, tc.want, "model.keras"} {
				if !strings.Contains(line, w) {
					t.Errorf("error %q lacks %q", line, w)
				}
			}
		})
	}
}

type kerasFiles struct{ keras, weights string }

// goodKerasFiles writes tinyKerasConfig's model (4 filters) as model.keras
// and model.weights.h5, untrained.
func goodKerasFiles(t *testing.T, dir string) kerasFiles {
	t.Helper()
	sp, err := loadSpec(writeTinyConfig(t, t.TempDir(), 4, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := graph.NewOptimizer(config.Optimizer{Name: "rmsprop"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := graph.Compile(sp.net, graph.Options{Classes: 10, Optimizer: o, Normalize: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	f := kerasFiles{filepath.Join(dir, "good.keras"), filepath.Join(dir, "good.weights.h5")}
	if err := export.KerasFile(m, f.keras); err != nil {
		t.Fatal(err)
	}
	if err := export.WeightsH5(m, f.weights); err != nil {
		t.Fatal(err)
	}
	return f
}

func writeBytes(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func truncated(t *testing.T, src, dst string) string {
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	return writeBytes(t, dst, b[:len(b)/2])
}

// zipCopy copies src's members to dst, each through edit (nil drops it).
func zipCopy(t *testing.T, src, dst string, edit func(name string, body []byte) []byte) string {
	t.Helper()
	zr, err := zip.OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, m := range zr.File {
		r, err := m.Open()
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if body = edit(m.Name, body); body == nil {
			continue
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: m.Name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return dst
}

func zipWithout(t *testing.T, src, dst, member string) string {
	return zipCopy(t, src, dst, func(name string, body []byte) []byte {
		if name == member {
			return nil
		}
		return body
	})
}

func zipWithConfig(t *testing.T, src, dst string, edit func(string) string) string {
	return zipCopy(t, src, dst, func(name string, body []byte) []byte {
		if name == "config.json" {
			return []byte(edit(string(body)))
		}
		return body
	})
}

// rawH5 writes an HDF5 file holding one group, group.
func rawH5(t *testing.T, path, group string) string {
	t.Helper()
	f, err := hdf5.CreateFile(path, hdf5.F_ACC_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	g, err := f.CreateGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// pyKerasTiny trains tinyKerasConfig's model (4 filters) in Keras for a
// step, saves it as .keras and .weights.h5, and prints its predictions
// on the PNG files as predict decodes them (RGB, /255), by file.
const pyKerasTiny = `
import sys, json, numpy as np, keras
from PIL import Image
from keras import layers as L
kpath, wpath, files = sys.argv[1], sys.argv[2], sys.argv[3:]
keras.utils.set_random_seed(2)
m = keras.Sequential([keras.Input((32, 32, 3)), L.Conv2D(4, 3, strides=2), L.BatchNormalization(),
    L.Activation("relu"), L.Flatten(), L.Dense(10, activation="softmax")])
m.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
rng = np.random.default_rng(0)
m.fit(rng.random((32, 32, 32, 3), dtype=np.float32), np.eye(10)[rng.integers(0, 10, 32)], epochs=2, verbose=0)
m.save(kpath)
m.save_weights(wpath)
x = np.stack([np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255 for f in files])
p = m.predict(x, verbose=0)
print(json.dumps({"params": int(m.count_params()), "probs": {f: [float(v) for v in p[i]] for i, f in enumerate(files)}}))
`

// TestKerasTrainedFileCLI: a model Keras trained and saved is served by
// predict -m FILE.keras with Keras's probabilities (within 1e-5), summarised
// by summary -m with Keras's parameter count, and run --init-from starts
// from its weights.
func TestKerasTrainedFileCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Python reference")
	}
	dir := t.TempDir()
	files := writePNGs(t, dir, 4)
	kpath, wpath := filepath.Join(dir, "keras.keras"), filepath.Join(dir, "keras.weights.h5")
	var py struct {
		Params int                  `json:"params"`
		Probs  map[string][]float64 `json:"probs"`
	}
	if err := json.Unmarshal(testenv.RunPython(t, pyKerasTiny, append([]string{kpath, wpath}, files...)...), &py); err != nil {
		t.Fatal(err)
	}
	got := predictJSON(t, kpath, files)
	names := []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
	for _, f := range files {
		for i, p := range py.Probs[f] {
			if q, ok := got[f][names[i]]; !ok || abs(q-p) > 1e-5 {
				t.Errorf("%s %s: Go %v, Keras %v", filepath.Base(f), names[i], q, p)
			}
		}
	}
	code, sum, errs := runCLI(context.Background(), "summary", "-m", kpath)
	if want := "Total params: " + commas(py.Params); code != 0 || !strings.Contains(sum, want) {
		t.Errorf("summary -m: exit %d %s; lacks %q:\n%s", code, errs, want, sum)
	}
	cfg := writeTinyConfig(t, dir, 4, "")
	out := filepath.Join(dir, "run")
	if code, _, errs := runCLI(context.Background(), "run", "-c", cfg, "--init-from", kpath, "--set", "output.dir="+out,
		"--set", "train.optimizer.learning_rate=1e-30"); code != 0 {
		t.Fatalf("run --init-from: exit %d: %s", code, errs)
	}
	want, err := kerasfile.ReadWeightsH5(wpath)
	if err != nil {
		t.Fatal(err)
	}
	after, err := kerasfile.ReadWeightsH5(filepath.Join(out, "cifar10.weights.h5"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"conv2d", "dense"} {
		wl, _ := want.Layer(key)
		al, _ := after.Layer(key)
		for i := range wl.Vars {
			if d := maxAbs(al.Vars[i].Data, wl.Vars[i].Data); d > 1e-6 {
				t.Errorf("%s variable %d: run --init-from ends %g away from Keras's weights", key, i, d)
			}
		}
	}
}

func commas(n int) string {
	s := itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
