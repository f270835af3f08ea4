package graph

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/internal/enginetest"
	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
)

// TestPatchWhitening holds the patch_whitening kernel to airbench's
// init_whitening_conv (legacy/airbench94.py: eigh of the patch covariance,
// eigenvalues descending, eigenvectors / √(λ + 5e-4), then the negated
// copies), computed by NumPy from the same standardised images; and checks
// what makes it a whitening: the filtered patches have covariance
// diag(λ / (λ + ε)).
func TestPatchWhitening(t *testing.T) {
	const n = 300
	images, _ := enginetest.CorrelatedImages(n, 5)
	mean, std := []float64{0.4914, 0.4822, 0.4465}, []float64{0.2470, 0.2435, 0.2616}
	m := compileNet(t, enginetest.WhitenedNet(), Options{Seed: 1, Normalize: true, Mean: mean, Std: std, Classes: 10, Optimizer: optimizer(t, "sgd")})
	if !m.NeedsData() {
		t.Fatal("a patch_whitening kernel does not ask for data")
	}
	if err := m.InitFromData(images, n); err != nil {
		t.Fatal(err)
	}
	state, err := m.GetState()
	if err != nil {
		t.Fatal(err)
	}
	kernel := state["whiten/kernel"]
	dir := t.TempDir()
	enginetest.WriteRaw(t, filepath.Join(dir, "images.u8"), images)
	enginetest.WriteRaw(t, filepath.Join(dir, "kernel.f32"), enginetest.F32Bytes(kernel.Data))
	out := testenv.RunPython(t, `
import json, sys
import numpy as np
d, n = sys.argv[1], int(sys.argv[2])
x = np.fromfile(d + "/images.u8", np.uint8).reshape(n, 32, 32, 3).astype(np.float64) / 255
x = (x - np.array([0.4914, 0.4822, 0.4465])) / np.array([0.2470, 0.2435, 0.2616])
# 2x2 patches flattened (row, col, channel), the layout of a Keras kernel.
p = np.stack([x[:, i:i + 31, j:j + 31, :] for i in range(2) for j in range(2)], axis=3).reshape(-1, 12)
cov = p.T @ p / len(p)
lam, vec = np.linalg.eigh(cov)
lam, vec = lam[::-1], vec[:, ::-1]
ref = vec / np.sqrt(lam + 5e-4)
ref = np.concatenate([ref, -ref], axis=1)
go = np.fromfile(d + "/kernel.f32", np.float32).reshape(12, 24).astype(np.float64)
sign = np.sign((go * ref).sum(axis=0))
proj = p @ go[:, :12]
print(json.dumps({
    "kernel": float(np.abs(go * sign - ref).max() / np.abs(ref).max()),
    "signs_paired": bool(np.all(sign[:12] == sign[12:])),
    "whitened": float(np.abs(proj.T @ proj / len(p) - np.diag(lam / (lam + 5e-4))).max()),
    "eig_gap": float(np.min(np.diff(lam[::-1])) / lam.max()),
}))
`, dir, strconv.Itoa(n))
	var r struct {
		Kernel      float64 `json:"kernel"`
		SignsPaired bool    `json:"signs_paired"`
		Whitened    float64 `json:"whitened"`
		EigGap      float64 `json:"eig_gap"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("kernel vs NumPy %.2g (relative), whitened covariance off by %.2g, smallest eigenvalue gap %.2g", r.Kernel, r.Whitened, r.EigGap)
	if r.EigGap < 1e-6 {
		t.Fatalf("test images' patch eigenvalues are nearly degenerate (gap %.2g): the comparison would be ill-posed", r.EigGap)
	}
	// float32 images and kernel against float64 NumPy.
	if r.Kernel > 1e-4 || !r.SignsPaired {
		t.Errorf("kernel differs from airbench's by %.2g (signs paired: %v)", r.Kernel, r.SignsPaired)
	}
	if r.Whitened > 1e-4 {
		t.Errorf("filtered patches' covariance is %.2g from diag(λ/(λ+ε))", r.Whitened)
	}
}

// TestFrozenLayer: trainable: false keeps a layer's weights through
// training steps (Keras's trainable = False), counts them as
// non-trainable, and is refused where Keras would also change the layer's
// behaviour.
func TestFrozenLayer(t *testing.T) {
	const n = 64
	images, labels := tinyData(n, 10, 3)
	layers := enginetest.SmallNet()
	frozen := false
	layers[0].Trainable = &frozen
	m := compileNet(t, layers, Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: optimizer(t, "sgd", "momentum", 0.9, "weight_decay", 0.01)})
	before, err := m.GetState()
	if err != nil {
		t.Fatal(err)
	}
	for step := range 3 {
		if _, err := m.TrainStep(images, labels, n, 1, int64(step)); err != nil {
			t.Fatal(err)
		}
	}
	after, err := m.GetState()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"conv2d/kernel", "conv2d/bias"} {
		if d := maxAbsDiff(before[name].Data, after[name].Data); d != 0 {
			t.Errorf("frozen %s moved by %g", name, d)
		}
	}
	if d := maxAbsDiff(before["dense/kernel"].Data, after["dense/kernel"].Data); d == 0 {
		t.Error("dense/kernel did not train: the test is vacuous")
	}
	for _, w := range m.Weights {
		if strings.HasPrefix(w.Name, "conv2d/") {
			t.Errorf("frozen %s is among the trainable weights", w.Name)
		}
	}
	total, trainable, non := m.Net.ParamCount()
	if conv := 3*3*3*8 + 8; non != conv || trainable != total-conv {
		t.Errorf("ParamCount = %d total, %d trainable, %d non-trainable; want the conv's %d non-trainable", total, trainable, non, conv)
	}

	bn := enginetest.SmallResNet()
	bn[1].Trainable = &frozen
	_, err = NewNet(config.Model{Layers: bn}, []int{32, 32, 3})
	if err == nil || !strings.Contains(err.Error(), "trainable: false is not supported for BatchNormalization") {
		t.Errorf("frozen BatchNormalization: err = %v", err)
	}
}

func TestPatchWhiteningShapeErrors(t *testing.T) {
	for _, tc := range []struct {
		layer config.Layer
		want  string
	}{
		{lay("conv2d", "filters", 16, "kernel_size", 2, "kernel_initializer", "patch_whitening"),
			"kernel_initializer: patch_whitening needs filters = 2 × kernel height × kernel width × input channels = 24, not 16"},
		{lay("conv2d", "filters", 54, "kernel_size", 3, "kernel_initializer", "glorot_uniform", "bias_initializer", "patch_whitening"),
			"bias_initializer: patch_whitening initializes a conv2d kernel, not a weight of shape [54]"},
		{lay("dense", "units", 10, "kernel_initializer", "patch_whitening"),
			"kernel_initializer: patch_whitening initializes a conv2d kernel, not a weight of shape [3072 10]"},
	} {
		layers := []config.Layer{tc.layer}
		if tc.layer.Type == "dense" {
			layers = []config.Layer{lay("flatten"), tc.layer}
		}
		_, err := NewNet(config.Model{Layers: layers}, []int{32, 32, 3})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.layer.Args, err, tc.want)
		}
	}
}
