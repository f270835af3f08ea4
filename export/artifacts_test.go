package export

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/internal/cifartest"
	"github.com/cifar-pipeline/cifar-pipeline/internal/enginetest"
	"github.com/cifar-pipeline/cifar-pipeline/internal/modeltest"
	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
	"github.com/cifar-pipeline/cifar-pipeline/pixels"
	"github.com/cifar-pipeline/cifar-pipeline/train"
)

var (
	writeRaw   = enginetest.WriteRaw
	readF32    = enginetest.ReadF32
	maxAbsDiff = enginetest.MaxAbsDiff
)

// nets are the architectures the artifact tests export: a chain (a Keras
// Sequential) and a residual net with BatchNormalization (a Functional
// model with non-trainable state).
var nets = []struct {
	name   string
	layers func() []config.Layer
	class  string
}{
	{"sequential", enginetest.SmallNet, "Sequential"},
	{"functional", enginetest.SmallResNet, "Functional"},
	{"whitened", enginetest.WhitenedNet, "Sequential"},
}

// trained compiles layers and fits them for a few epochs on images, so
// that every variable (moving statistics included) holds trained values.
func trained(t *testing.T, layers []config.Layer, opt string, images, labels []uint8, epochs int) *graph.Model {
	t.Helper()
	m := modeltest.Compile(t, layers, opt)
	if err := m.InitFromData(images, len(labels)); err != nil {
		t.Fatal(err)
	}
	data := &train.Arrays{Set: &pixels.Set{Images: images, Labels: labels, H: 32, W: 32, C: 3}, BatchSize: 32, Shuffle: true, Seed: 3}
	if _, err := train.Fit(context.Background(), m, data, train.Options{BatchSize: 32, Epochs: epochs, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPythonReadsArtifacts: tf.train.load_checkpoint reads every variable
// Go wrote with the same values, keras.models.model_from_json rebuilds the
// architecture with the same parameter count, and Keras with those weights
// predicts what Go predicts.
func TestPythonReadsArtifacts(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Python reference")
	}
	testenv.Python(t)
	for _, tc := range nets {
		t.Run(tc.name, func(t *testing.T) { testPythonReadsArtifacts(t, tc.layers(), tc.class) })
	}
}

func testPythonReadsArtifacts(t *testing.T, layers []config.Layer, class string) {
	const n = 100
	images, labels := realTestImages(t, n)
	m := trained(t, layers, "rmsprop", images, labels, 2)
	dir := t.TempDir()
	prefix := filepath.Join(dir, "cifar10.weights")
	if err := m.Save(prefix); err != nil {
		t.Fatal(err)
	}
	arch, err := KerasJSON(m.Net)
	if err != nil {
		t.Fatal(err)
	}
	archPath := filepath.Join(dir, "cifar10_architecture.json")
	writeRaw(t, archPath, arch)
	imgPath := filepath.Join(dir, "images.u8")
	writeRaw(t, imgPath, images)
	out := filepath.Join(dir, "py.json")
	testenv.RunPython(t, "import runpy,sys; sys.argv=sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
		filepath.Join(testenv.RepoRoot(t), "scripts", "check_artifacts.py"), prefix, archPath, imgPath, strconv.Itoa(n), out)

	var py struct {
		Variables map[string]struct {
			Shape []int   `json:"shape"`
			Dtype string  `json:"dtype"`
			Sum   float64 `json:"sum"`
			First float64 `json:"first"`
		} `json:"variables"`
		Params       int    `json:"params"`
		Trainable    int    `json:"trainable"`
		NonTrainable int    `json:"non_trainable"`
		Class        string `json:"class"`
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &py); err != nil {
		t.Fatal(err)
	}
	total, tr, non := m.Net.ParamCount()
	if py.Params != total || py.Trainable != tr || py.NonTrainable != non || py.Class != class {
		t.Errorf("model_from_json: %s with %d params (%d trainable, %d not), Go model: %s with %d (%d, %d)",
			py.Class, py.Params, py.Trainable, py.NonTrainable, class, total, tr, non)
	}
	state, err := m.GetState()
	if err != nil {
		t.Fatal(err)
	}
	if len(py.Variables) != len(m.State) {
		t.Errorf("checkpoint holds %d variables for Python, Go wrote %d", len(py.Variables), len(m.State))
	}
	if rs, ok := py.Variables["train/run_state"]; !ok || rs.Dtype != "string" {
		t.Errorf("train/run_state in checkpoint = %+v, want a string", rs)
	}
	for name, a := range state {
		pv, ok := py.Variables[name]
		if !ok {
			t.Errorf("Python does not see variable %s", name)
			continue
		}
		if !slices.Equal(pv.Shape, a.Shape) {
			t.Errorf("%s: Python shape %v, Go %v", name, pv.Shape, a.Shape)
		}
		sum := 0.0
		for _, v := range a.Data {
			sum += float64(v)
		}
		if math.Abs(sum-pv.Sum) > 1e-6*math.Max(1, math.Abs(sum)) || (len(a.Data) > 0 && float64(a.Data[0]) != pv.First) {
			t.Errorf("%s: Python sum %.9g first %.9g, Go sum %.9g first %.9g", name, pv.Sum, pv.First, sum, a.Data[0])
		}
	}
	if it, ok := py.Variables["rmsprop/iteration"]; !ok || it.First != 8 {
		t.Errorf("rmsprop/iteration in checkpoint = %+v, want 8 steps", it)
	}
	want, err := train.Predict(context.Background(), m, images, n, 32)
	if err != nil {
		t.Fatal(err)
	}
	got := readF32(t, out+".f32", len(want))
	if d := maxAbsDiff(got, want); d > 1e-5 {
		t.Errorf("Keras with Go's weights predicts differently: max abs diff %g > 1e-5", d)
	} else {
		t.Logf("Keras vs Go predictions on %d images: max abs diff %.3g", n, d)
	}
}

// TestSavedModel: the exported SavedModel predicts what the Go model
// predicts, loaded by graft's LoadSavedModel and by Python's
// tf.saved_model.load (serving_default signature, uint8 input).
func TestSavedModel(t *testing.T) {
	for _, tc := range nets {
		t.Run(tc.name, func(t *testing.T) { testSavedModel(t, tc.layers()) })
	}
}

func testSavedModel(t *testing.T, layers []config.Layer) {
	const n = 100
	images, labels := realTestImages(t, n)
	m := trained(t, layers, "adam", images, labels, 1)
	want, err := train.Predict(context.Background(), m, images, n, 32)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "saved_model")
	if err := SavedModel(m, dir); err != nil {
		t.Fatal(err)
	}
	got := served(t, dir, SignatureDefault, images, n)
	if d := maxAbsDiff(got, want); d > 1e-6 {
		t.Errorf("Go SavedModel predicts differently: max abs diff %g", d)
	}
	// serving_tta: the mean of the outputs on the images and their mirror images.
	mirrored, err := train.Predict(context.Background(), m, mirror(images, n), n, 32)
	if err != nil {
		t.Fatal(err)
	}
	gotTTA := served(t, dir, SignatureTTA, images, n)
	for i := range want {
		if d := math.Abs(float64(gotTTA[i]) - (float64(want[i])+float64(mirrored[i]))/2); d > 1e-6 {
			t.Fatalf("serving_tta output %d: %g, want the mean of %g and %g", i, gotTTA[i], want[i], mirrored[i])
		}
	}
	if maxAbsDiff(mirrored, want) < 1e-3 {
		t.Fatal("mirror images predict the same as the originals: the TTA check is vacuous")
	}
	if testing.Short() {
		return
	}
	imgPath := filepath.Join(t.TempDir(), "images.u8")
	writeRaw(t, imgPath, images)
	out := filepath.Join(t.TempDir(), "sm.f32")
	testenv.RunPython(t, `
import sys, numpy as np, tensorflow as tf
d, imgs, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
m = tf.saved_model.load(d)
f = m.signatures["serving_default"]
x = np.fromfile(imgs, dtype=np.uint8).reshape(n, 32, 32, 3)
f(images=tf.constant(x))["probabilities"].numpy().astype("<f4").tofile(out)
`, dir, imgPath, strconv.Itoa(n), out)
	py := readF32(t, out, len(want))
	if d := maxAbsDiff(py, want); d > 1e-5 {
		t.Errorf("Python tf.saved_model.load predicts differently: max abs diff %g > 1e-5", d)
	} else {
		t.Logf("Python SavedModel vs Go: max abs diff %.3g", d)
	}
}

// mirror returns n 32×32×3 images flipped left to right.
func mirror(images []uint8, n int) []uint8 {
	out := make([]uint8, len(images))
	for i := range n {
		for y := range 32 {
			for x := range 32 {
				src, dst := ((i*32+y)*32+x)*3, ((i*32+y)*32+31-x)*3
				copy(out[dst:dst+3], images[src:src+3])
			}
		}
	}
	return out
}

// realTestImages returns the first n real CIFAR-10 test images and labels
// (fetched once into the cache); under -short, natural-like noise instead.
func realTestImages(t *testing.T, n int) (images, labels []uint8) {
	if testing.Short() {
		return enginetest.ParityBatches(n)
	}
	s := cifartest.Real(t).Test.Slice(0, n)
	return s.Images, s.Labels
}

// TestTTATranslate: with translations, the model's TTA output and the
// SavedModel's serving_tta are airbench's mirror + translate mean, formed
// here from plain predictions on images mirrored and shifted in Go.
func TestTTATranslate(t *testing.T) {
	const n, shift = 40, 2
	images, _ := realTestImages(t, n)
	net, err := graph.NewNet(config.Model{Layers: enginetest.WhitenedNet()}, []int{32, 32, 3})
	if err != nil {
		t.Fatal(err)
	}
	o, err := graph.NewOptimizer(enginetest.Optimizer("sgd", "momentum", 0.9))
	if err != nil {
		t.Fatal(err)
	}
	m, err := graph.Compile(net, graph.Options{Seed: 2, Normalize: true, Classes: 10, Optimizer: o, TTATranslate: shift,
		Mean: []float64{0.4914, 0.4822, 0.4465}, Std: []float64{0.2470, 0.2435, 0.2616}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.InitFromData(images, n); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	predict := func(x []uint8) []float32 {
		p, err := train.Predict(ctx, m, x, n, 16)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	mirrorMean := func(x []uint8) []float32 {
		a, b := predict(x), predict(mirror(x, n))
		out := make([]float32, len(a))
		for i := range a {
			out[i] = (a[i] + b[i]) / 2
		}
		return out
	}
	plain, upLeft, downRight := mirrorMean(images), mirrorMean(shifted(images, n, -shift)), mirrorMean(shifted(images, n, shift))
	want := make([]float32, len(plain))
	for i := range want {
		want[i] = 0.5*plain[i] + 0.25*upLeft[i] + 0.25*downRight[i]
	}
	if maxAbsDiff(upLeft, plain) < 1e-3 || maxAbsDiff(downRight, plain) < 1e-3 {
		t.Fatal("shifted images predict as the originals: the check is vacuous")
	}
	got, err := train.PredictTTA(ctx, m, images, n, 16)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(got, want); d > 1e-6 {
		t.Errorf("model TTA differs from mirror + translate by %g", d)
	}
	dir := filepath.Join(t.TempDir(), "saved_model")
	if err := SavedModel(m, dir); err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(served(t, dir, SignatureTTA, images, n), want); d > 1e-6 {
		t.Errorf("serving_tta differs from mirror + translate by %g", d)
	}
}

// shifted returns n 32×32×3 images whose pixel (y, x) is the original's
// (y+d, x+d), reflected at the border without repeating the edge pixel:
// a 32×32 crop of the reflect-padded image.
func shifted(images []uint8, n, d int) []uint8 {
	reflect := func(i int) int {
		if i < 0 {
			return -i
		}
		if i > 31 {
			return 62 - i
		}
		return i
	}
	out := make([]uint8, len(images))
	for i := range n {
		for y := range 32 {
			for x := range 32 {
				src, dst := ((i*32+reflect(y+d))*32+reflect(x+d))*3, ((i*32+y)*32+x)*3
				copy(out[dst:dst+3], images[src:src+3])
			}
		}
	}
	return out
}

// served is the prediction of the SavedModel in dir, through signature,
// for n uint8 images.
func served(t *testing.T, dir, signature string, images []uint8, n int) []float32 {
	t.Helper()
	sm, err := LoadServingSignature(dir, signature)
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	out, err := sm.Predict(images, n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
