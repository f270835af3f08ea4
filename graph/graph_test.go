package graph

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
)

// tinyData is a fixed, learnable dataset: each class lights a different
// 4×4 patch of a different channel on a noisy background.
func tinyData(n, classes int, seed uint64) (images, labels []uint8) {
	rng := rand.New(rand.NewPCG(seed, 1))
	images = make([]uint8, n*32*32*3)
	labels = make([]uint8, n)
	for i := range n {
		c := i % classes
		labels[i] = uint8(c)
		img := images[i*3072 : (i+1)*3072]
		for p := range img {
			img[p] = uint8(rng.IntN(80))
		}
		y0, x0 := (c/4)*8, (c%4)*8
		for y := y0; y < y0+4; y++ {
			for x := x0; x < x0+4; x++ {
				img[(y*32+x)*3+c%3] = 230
			}
		}
	}
	return images, labels
}

func smallNet() []config.Layer {
	return []config.Layer{
		{Type: "conv2d", Filters: 8, KernelSize: []int{3}, Padding: "same"},
		{Type: "activation", Activation: "relu"},
		{Type: "max_pooling2d", PoolSize: []int{2}},
		{Type: "dropout", Rate: 0.25},
		{Type: "flatten"},
		{Type: "dense", Units: 10},
		{Type: "activation", Activation: "softmax"},
	}
}

func compileSmall(t *testing.T, opt string) *Model {
	t.Helper()
	seq, err := NewSequential(smallNet(), []int{32, 32, 3})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(seq, Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: config.DefaultOptimizer(opt)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestTrainThroughGraft is the foundation proof: a conv net built from graft
// op wrappers, gradients from Graph.AddGradients, ResourceApplyRMSProp
// updates, then SaveV2 and RestoreV2 into a fresh session.
func TestTrainThroughGraft(t *testing.T) {
	const n = 64
	images, labels := tinyData(n, 10, 3)
	m := compileSmallAutograd(t, "rmsprop")
	first, err := m.TestStep(images, labels, n)
	if err != nil {
		t.Fatal(err)
	}
	var last StepResult
	for step := range 50 {
		if last, err = m.TrainStep(images, labels, n, 1, int64(step)); err != nil {
			t.Fatal(err)
		}
	}
	final, err := m.TestStep(images, labels, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss %.4f -> %.4f (last train %.4f), accuracy %d/%d", first.Loss, final.Loss, last.Loss, final.Correct, n)
	if !(final.Loss < 0.25*first.Loss) {
		t.Fatalf("loss fell only from %.4f to %.4f in 50 RMSprop steps", first.Loss, final.Loss)
	}
	if it, _ := m.Iterations(); it != 50 {
		t.Fatalf("iterations = %d, want 50", it)
	}

	prefix := filepath.Join(t.TempDir(), "ckpt-1")
	if err := m.Save(prefix); err != nil {
		t.Fatal(err)
	}
	want, err := m.PredictBatch(images, n)
	if err != nil {
		t.Fatal(err)
	}
	fresh := compileSmallAutograd(t, "rmsprop")
	before, _ := fresh.PredictBatch(images, n)
	if maxAbsDiff(before, want) == 0 {
		t.Fatal("fresh model already predicts like the trained one; test is vacuous")
	}
	if err := fresh.Restore(prefix); err != nil {
		t.Fatal(err)
	}
	got, err := fresh.PredictBatch(images, n)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(got, want); d != 0 {
		t.Fatalf("restored model predicts differently: max abs diff %g", d)
	}
	if it, _ := fresh.Iterations(); it != 50 {
		t.Fatalf("restored iterations = %d, want 50", it)
	}
}

func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// TestShapesThatDoNotFit: a kernel or pool larger than its input is an
// error naming the layer, as Keras's negative-dimension error is.
func TestShapesThatDoNotFit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		layer config.Layer
		input []int
	}{
		{"pool bigger than input", config.Layer{Type: "max_pooling2d", PoolSize: []int{2}}, []int{1, 1, 3}},
		{"valid conv bigger than input", config.Layer{Type: "conv2d", Filters: 4, KernelSize: []int{5}}, []int{3, 3, 3}},
		{"dense on an image", config.Layer{Type: "dense", Units: 4}, []int{3, 3, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewSequential([]config.Layer{tc.layer}, tc.input); err == nil {
				t.Fatalf("%+v on %v resolved without error", tc.layer, tc.input)
			}
		})
	}
}
