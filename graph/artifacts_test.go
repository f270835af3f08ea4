package graph

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/internal/cifartest"
	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
)

// TestPythonReadsArtifacts: tf.train.load_checkpoint reads every variable
// Go wrote with the same values, keras.models.model_from_json rebuilds the
// architecture with the same parameter count, and Keras with those weights
// predicts what Go predicts.
func TestPythonReadsArtifacts(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Python reference")
	}
	testenv.Python(t)
	const n = 100
	images, labels := realTestImages(t, n)
	m := compileSmall(t, "rmsprop")
	data := &Arrays{Images: images, Labels: labels, ImageSize: 3072, BatchSize: 32, Shuffle: true, Seed: 3}
	if _, err := m.Fit(context.Background(), data, FitOptions{BatchSize: 32, Epochs: 2, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	prefix := filepath.Join(dir, "cifar10.weights")
	if err := m.Save(prefix); err != nil {
		t.Fatal(err)
	}
	arch, err := m.Seq.KerasJSON()
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
			Sum   float64 `json:"sum"`
			First float64 `json:"first"`
		} `json:"variables"`
		Params int `json:"params"`
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &py); err != nil {
		t.Fatal(err)
	}
	if py.Params != m.Seq.ParamCount() {
		t.Errorf("model_from_json: %d params, Go model has %d", py.Params, m.Seq.ParamCount())
	}
	state, err := m.GetState()
	if err != nil {
		t.Fatal(err)
	}
	if len(py.Variables) != len(m.State) {
		t.Errorf("checkpoint holds %d variables for Python, Go wrote %d", len(py.Variables), len(m.State))
	}
	for name, a := range state {
		pv, ok := py.Variables[name]
		if !ok {
			t.Errorf("Python does not see variable %s", name)
			continue
		}
		if !sameShape(pv.Shape, a.Shape) {
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
	want, err := m.Predict(context.Background(), images, n, 32)
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
	const n = 100
	images, labels := realTestImages(t, n)
	m := compileSmall(t, "adam")
	data := &Arrays{Images: images, Labels: labels, ImageSize: 3072, BatchSize: 50, Shuffle: true, Seed: 3}
	if _, err := m.Fit(context.Background(), data, FitOptions{BatchSize: 50, Epochs: 1, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	want, err := m.Predict(context.Background(), images, n, 32)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "saved_model")
	if err := m.ExportSavedModel(dir); err != nil {
		t.Fatal(err)
	}
	sm, err := LoadServing(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	got, err := sm.Predict(images, n)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(got, want); d > 1e-6 {
		t.Errorf("Go SavedModel predicts differently: max abs diff %g", d)
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

// realTestImages returns the first n real CIFAR-10 test images and labels
// (fetched once into the cache); under -short, natural-like noise instead.
func realTestImages(t *testing.T, n int) (images, labels []uint8) {
	if testing.Short() {
		return parityBatches(t, n)
	}
	s := cifartest.Real(t).Test.Slice(0, n)
	return s.Images, s.Labels
}
