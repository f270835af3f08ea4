package graph

import (
	"path/filepath"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/internal/enginetest"
)

// TestDenseUpdates: Options.DenseUpdates (what a GPU run sets) trains the
// notebook net with RMSprop to the same weights as the row-wise update of
// its 8192×512 kernel, and its graph holds no op without a GPU kernel in TF
// 2.18 for that update (SparseApplyRMSProp) and no reference variable: every
// weight is a resource variable updated by ResourceApplyRMSProp. Their
// checkpoints are interchangeable.
//
// Tolerance: both kernels compute RMSprop's law (keras/src/optimizers/
// rmsprop.py) in float32, written differently in TensorFlow's
// training_ops.cc — dense: ms += (g²−ms)(1−ρ); mom = g·lr/√(ms+ε); row-wise:
// ms = ρ·ms + (1−ρ)·g²; mom = lr·g·rsqrt(ms+ε). After one step only the
// row-wise weight differs, by one float32 rounding of the weight (measured:
// 6e-7 of the largest update, which is lr·√10 ≈ 3e-3 at the first step);
// from the second step on the gradients differ by what those roundings did,
// and after three steps the weights' updates agree within 2e-6 of the
// largest one (measured). 1e-5 leaves a margin of 5; a wrong law (ρ or ε
// misplaced, a row missed, a stale read) moves updates by percent.
func TestDenseUpdates(t *testing.T) {
	const n, steps = 32, 3
	images, labels := parityBatches(t, n)
	train := func(dense bool) (*Model, map[string]Array, map[string]Array) {
		m := compileNet(t, config.ShallowLayers(), Options{Seed: 1, Normalize: true, Classes: 10,
			Optimizer: optimizer(t, "rmsprop"), DenseUpdates: dense})
		w0, err := m.GetWeights()
		if err != nil {
			t.Fatal(err)
		}
		for step := range steps {
			if _, err := m.TrainStep(images, labels, n, 1, int64(step)); err != nil {
				t.Fatal(err)
			}
		}
		w, err := m.GetWeights()
		if err != nil {
			t.Fatal(err)
		}
		return m, w0, w
	}
	rowWise, w0, want := train(false)
	dense, _, got := train(true)

	if len(got) != len(want) || len(want) != 6 {
		t.Fatalf("%d weights with dense updates, %d row-wise; the notebook net has 6", len(got), len(want))
	}
	for name, w := range want {
		d := enginetest.UpdateDiff(w0[name].Data, got[name].Data, w.Data)
		t.Logf("%s: update diff %.3g (max |Δw| %.3g)", name, d, enginetest.MaxAbsDiff(w.Data, w0[name].Data))
		if !(d <= 1e-5) {
			t.Errorf("%s: dense update differs from the row-wise one by %.3g of the largest update (want <= 1e-5)", name, d)
		}
	}

	// A checkpoint is the same either way (same keys, slots included), so
	// a run trained on a GPU resumes on the CPU and back: the row-wise
	// model restored from the dense one holds its state exactly.
	prefix := filepath.Join(t.TempDir(), "ckpt")
	if err := dense.Save(prefix); err != nil {
		t.Fatal(err)
	}
	wantState, err := dense.GetState()
	if err != nil {
		t.Fatal(err)
	}
	before, err := rowWise.GetState()
	if err != nil {
		t.Fatal(err)
	}
	if err := rowWise.Restore(prefix); err != nil {
		t.Fatal(err)
	}
	gotState, err := rowWise.GetState()
	if err != nil {
		t.Fatal(err)
	}
	differed := false
	for name, w := range wantState {
		differed = differed || enginetest.MaxAbsDiff(before[name].Data, w.Data) > 0
		if d := enginetest.MaxAbsDiff(gotState[name].Data, w.Data); len(gotState[name].Data) != len(w.Data) || d != 0 {
			t.Errorf("%s restored from the dense-update checkpoint differs by %g", name, d)
		}
	}
	if len(gotState) != len(wantState) || !differed {
		t.Fatalf("%d state variables restored of %d; state differed before the restore: %v", len(gotState), len(wantState), differed)
	}

	count := func(m *Model) map[string]int {
		ops := map[string]int{}
		for _, n := range graphDef(t, m).Node {
			ops[n.Op]++
		}
		return ops
	}
	if ops := count(rowWise); ops["SparseApplyRMSProp"] != 1 || ops["VariableV2"] != 3 {
		t.Fatalf("row-wise graph: %d SparseApplyRMSProp, %d VariableV2; want 1 and 3 (the test compares nothing otherwise)", ops["SparseApplyRMSProp"], ops["VariableV2"])
	}
	ops := count(dense)
	for _, op := range []string{"SparseApplyRMSProp", "ResourceSparseApplyRMSProp", "VariableV2"} {
		if ops[op] != 0 {
			t.Errorf("dense-update graph has %d %s", ops[op], op)
		}
	}
	if ops["ResourceApplyRMSProp"] != len(want) {
		t.Errorf("dense-update graph has %d ResourceApplyRMSProp, want one per weight (%d)", ops["ResourceApplyRMSProp"], len(want))
	}
}
