package graph

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/internal/enginetest"
)

func smallNet() []config.Layer { return enginetest.SmallNet() }

func compileSmall(t *testing.T, opt string) *Model {
	t.Helper()
	return compileNet(t, smallNet(), Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: optimizer(t, opt)})
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

// TestShapesThatDoNotFit: a kernel or pool larger than its input is an
// error naming the layer, as Keras's negative-dimension error is.
func TestShapesThatDoNotFit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		layer config.Layer
		input []int
	}{
		{"pool bigger than input", lay("max_pooling2d", "pool_size", 2), []int{1, 1, 3}},
		{"valid conv bigger than input", lay("conv2d", "filters", 4, "kernel_size", 5), []int{3, 3, 3}},
		{"dense on an image", lay("dense", "units", 4), []int{3, 3, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewNet(config.Model{Layers: []config.Layer{tc.layer}}, tc.input); err == nil {
				t.Fatalf("%+v on %v resolved without error", tc.layer, tc.input)
			}
		})
	}
}

// TestLayerBuildErrors: arguments and input shapes a layer kind refuses,
// each a one-line error (NewNet adds the layer's name and config key).
func TestLayerBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		layer Layer
		in    []Shape
		want  string
	}{
		{"batch norm on a rank-2 input", &BatchNormalization{Axis: -1, Momentum: 0.99, Epsilon: 1e-3}, []Shape{{4, 4}}, "normalises a (channels) or (height, width, channels) input"},
		{"batch norm momentum", &BatchNormalization{Axis: -1, Momentum: 1.5, Epsilon: 1e-3}, []Shape{{4}}, "momentum"},
		{"batch norm epsilon", &BatchNormalization{Axis: -1, Momentum: 0.9, Epsilon: 0}, []Shape{{4}}, "epsilon"},
		{"global pooling of a vector", &GlobalAveragePooling2D{}, []Shape{{4}}, "(height, width, channels)"},
		{"add of different shapes", &Add{}, []Shape{{8, 8, 32}, {8, 8, 64}}, "inputs have shapes (8, 8, 32) and (8, 8, 64)"},
		{"average pool too large", &AveragePooling2D{PoolSize: []int{8}, Padding: "valid"}, []Shape{{4, 4, 3}}, "does not fit"},
		{"negative l2", &Dense{Units: 3, WeightArgs: WeightArgs{UseBias: true, KernelInitializer: "zeros", BiasInitializer: "zeros", KernelRegularizer: &Regularizer{L2: -1}}}, []Shape{{4}}, "l1 and l2 must be >= 0"},
		{"empty regularizer", &Dense{Units: 3, WeightArgs: WeightArgs{UseBias: true, KernelInitializer: "zeros", BiasInitializer: "zeros", KernelRegularizer: &Regularizer{}}}, []Shape{{4}}, "give l1 or l2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.layer.Build(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line with %q", err, tc.want)
			}
		})
	}
}
