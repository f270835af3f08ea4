package graph

import (
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
)

// TestLossScaleLaw holds the dynamic loss scaling to Keras's
// LossScaleOptimizer (keras/src/optimizers/loss_scale_optimizer.py): a
// step whose gradients overflow changes no weight, slot, average or
// iteration and halves the scale; a finite step applies the unscaled
// gradients, and after GrowthSteps of them in a row the scale doubles.
// Float32 overflows as float16 does, only later: an initial scale of 2¹²⁶
// overflows float32 in the backward pass, so the run starts with skipped
// steps, then trains, and its scale settles where the gradients just fit,
// as it does under mixed_float16 near 65504.
func TestLossScaleLaw(t *testing.T) {
	images, labels := tinyData(32, 10, 5)
	for _, tc := range []struct {
		name   string
		layers []config.Layer
		opt    Optimizer
	}{
		// Decoupled weight decay and the weights' moving averages are
		// updated by ops of their own, which a skipped step must not run.
		{"adamw+decay+ema", smallConvNet(), optimizer(t, "adamw", "weight_decay", 0.1, "use_ema", true)},
		// The notebook's dense kernel is a reference variable updated row
		// by row (SparseApplyRMSProp).
		{"rmsprop/row-wise", []config.Layer{
			lay("conv2d", "filters", 4, "kernel_size", 3, "padding", "same", "activation", "relu"),
			lay("flatten"), lay("dense", "units", 256, "activation", "relu"), lay("dense", "units", 10, "activation", "softmax"),
		}, optimizer(t, "rmsprop")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const growth = 3
			// Raw 0–255 pixels (no /255): larger gradients, which
			// overflow further below float32's largest power of two.
			m := compileNet(t, tc.layers, Options{Seed: 1, Normalize: false, Classes: 10, Optimizer: tc.opt,
				LossScale: &LossScale{Initial: 0x1p126, GrowthSteps: growth}})
			if tc.name == "rmsprop/row-wise" && !slices.ContainsFunc(m.Weights, (*Variable).IsRef) {
				t.Fatal("no weight is a reference variable: the row-wise case is not exercised")
			}
			state := func() map[string]Array {
				s, err := m.GetState()
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			scale, counter, ok, err := m.LossScale()
			if err != nil || !ok || scale != 0x1p126 || counter != 0 {
				t.Fatalf("initial loss scale %v, counter %d, ok %v, %v; want 2^126, 0, true", scale, counter, ok, err)
			}
			skipped, applied, grew := 0, 0, 0
			for step := range 30 {
				before := state()
				it0, err := m.Iterations()
				if err != nil {
					t.Fatal(err)
				}
				r, err := m.TrainStep(images, labels, 32, 1, int64(step))
				if err != nil {
					t.Fatal(err)
				}
				if math.IsNaN(r.Loss) || math.IsInf(r.Loss, 0) {
					t.Fatalf("step %d: loss %v: the loss itself is never scaled", step, r.Loss)
				}
				after := state()
				it, err := m.Iterations()
				if err != nil {
					t.Fatal(err)
				}
				s, c, _, err := m.LossScale()
				if err != nil {
					t.Fatal(err)
				}
				changed := 0
				for name, a := range after {
					if name == lossScaleName+"/dynamic_scale" {
						continue
					}
					if maxAbsDiff(a.Data, before[name].Data) != 0 {
						changed++
					}
				}
				switch {
				case it == it0: // skipped
					skipped++
					if changed != 0 || s != scale/2 || c != 0 {
						t.Fatalf("step %d skipped: %d variables changed, scale %v → %v, counter %d; want none, halved, 0", step, changed, scale, s, c)
					}
				case it == it0+1:
					applied++
					if changed == 0 {
						t.Fatalf("step %d applied but changed no variable", step)
					}
					wantScale, wantCounter := scale, counter+1
					if counter == growth-1 {
						wantScale, wantCounter = 2*scale, 0
						grew++
					}
					if s != wantScale || c != wantCounter {
						t.Fatalf("step %d applied: scale %v → %v, counter %d → %d; want %v, %d", step, scale, s, counter, c, wantScale, wantCounter)
					}
				default:
					t.Fatalf("step %d: iterations %d → %d", step, it0, it)
				}
				scale, counter = s, c
				if skipped >= 5 && applied >= 2*growth && grew > 0 {
					break // the scale climbs as the gradients shrink; float32 has no 65504 to stop it
				}
			}
			t.Logf("%d steps skipped, %d applied, the scale grew %d times; final scale 2^%.0f", skipped, applied, grew, math.Log2(float64(scale)))
			if n, err := m.Steps(); err != nil || n != int64(skipped+applied) {
				t.Errorf("Steps() = %d, %v; want %d run (%d skipped)", n, err, skipped+applied, skipped)
			}
			if skipped < 5 || applied < 2*growth || grew == 0 {
				t.Errorf("%d skipped, %d applied, %d growths: the run did not go through overflow, recovery and growth", skipped, applied, grew)
			}
		})
	}
}

// Scaling by a power of two commutes with float32 rounding, so until
// something overflows, training with loss scaling is training without it,
// bit for bit: weights, slots and iterations after a few steps, with a
// weight penalty (scaled with the loss, as Keras scales model.losses).
func TestLossScaleExactInFloat32(t *testing.T) {
	images, labels := tinyData(64, 10, 7)
	layers := smallConvNet()
	layers[0] = lay("conv2d", "filters", 8, "kernel_size", 3, "activation", "relu", "kernel_regularizer", map[string]any{"l2": 1e-3})
	states := map[bool]map[string]Array{}
	for _, scaled := range []bool{false, true} {
		o := Options{Seed: 3, Normalize: true, Classes: 10, Optimizer: optimizer(t, "adam")}
		if scaled {
			o.LossScale = &LossScale{GrowthSteps: 2}
		}
		m := compileNet(t, layers, o)
		for k := range 4 {
			if _, err := m.TrainStep(images[k%2*32*3072:(k%2+1)*32*3072], labels[k%2*32:(k%2+1)*32], 32, 1, int64(k)); err != nil {
				t.Fatal(err)
			}
		}
		if it, err := m.Iterations(); err != nil || it != 4 {
			t.Fatalf("scaled %v: iterations %d, %v; want 4", scaled, it, err)
		}
		if s, c, ok, err := m.LossScale(); err != nil || ok != scaled || (scaled && (s != 1<<17 || c != 0)) {
			t.Fatalf("scaled %v: loss scale %v, counter %d, ok %v, %v; want 2^17 (two growths from 2^15), 0", scaled, s, c, ok, err)
		}
		st, err := m.GetState()
		if err != nil {
			t.Fatal(err)
		}
		states[scaled] = st
	}
	for name, want := range states[false] {
		got, ok := states[true][name]
		if !ok {
			t.Errorf("%s missing from the scaled model", name)
		} else if d := maxAbsDiff(got.Data, want.Data); d != 0 {
			t.Errorf("%s: max abs diff %g with loss scaling, want bit-identical", name, d)
		}
	}
}

// The loss scale's state is checkpointed under Keras's names; a checkpoint
// without it (float32, mixed_bfloat16) restores into a loss-scaled model,
// whose scale then starts afresh, and the reverse ignores it.
func TestLossScaleCheckpoint(t *testing.T) {
	images, labels := tinyData(32, 10, 3)
	compile := func(l *LossScale, seed int64) *Model {
		return compileNet(t, smallConvNet(), Options{Seed: seed, Normalize: true, Classes: 10, Optimizer: optimizer(t, "rmsprop"), LossScale: l})
	}
	dir := t.TempDir()
	scaled := compile(&LossScale{Initial: 64, GrowthSteps: 2}, 1)
	for k := range 3 {
		if _, err := scaled.TrainStep(images, labels, 32, 1, int64(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := scaled.Save(dir + "/scaled"); err != nil {
		t.Fatal(err)
	}
	// Scaled into scaled: the scale (64·2 after two finite steps) and the
	// counter (1) come back.
	back := compile(&LossScale{Initial: 64, GrowthSteps: 2}, 2)
	if err := back.Restore(dir + "/scaled"); err != nil {
		t.Fatal(err)
	}
	if s, c, _, err := back.LossScale(); err != nil || s != 128 || c != 1 {
		t.Errorf("restored loss scale %v, counter %d, %v; want 128, 1", s, c, err)
	}
	plain := compile(nil, 3)
	if err := plain.Restore(dir + "/scaled"); err != nil {
		t.Fatalf("a loss-scaled checkpoint into an unscaled model: %v", err)
	}
	want, _ := scaled.GetWeights()
	got, _ := plain.GetWeights()
	for name, w := range want {
		if d := maxAbsDiff(got[name].Data, w.Data); d != 0 {
			t.Errorf("%s: max abs diff %g after restore", name, d)
		}
	}
	if err := plain.Save(dir + "/plain"); err != nil {
		t.Fatal(err)
	}
	fresh := compile(&LossScale{Initial: 256}, 4)
	if err := fresh.Restore(dir + "/plain"); err != nil {
		t.Fatalf("an unscaled checkpoint into a loss-scaled model: %v", err)
	}
	if s, c, _, err := fresh.LossScale(); err != nil || s != 256 || c != 0 {
		t.Errorf("loss scale after restoring an unscaled checkpoint: %v, counter %d, %v; want the initial 256, 0", s, c, err)
	}
	if it, err := fresh.Iterations(); err != nil || it != 3 {
		t.Errorf("iterations %d, %v; want 3", it, err)
	}
}

func TestLossScaleRefusesGarbage(t *testing.T) {
	for _, l := range []LossScale{{Initial: -1}, {Initial: math.Inf(1)}, {Initial: math.NaN()}, {Initial: 1e39}, {GrowthSteps: -2}} {
		_, err := Compile(newNet(t, smallConvNet()), Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: optimizer(t, "sgd"), LossScale: &l})
		if err == nil || !strings.Contains(err.Error(), "loss scale") || strings.Contains(err.Error(), "\n") {
			t.Errorf("loss scale %+v: %v; want a one-line error naming the loss scale", l, err)
		}
	}
}

// On a GPU mixed_float16 runs with XLA by default (runtime.xla auto), and
// the skipped step's dead branches must survive XLA's clustering. On this
// CPU XLA clusters only with TF_XLA_FLAGS=--tf_xla_cpu_global_jit, read
// once per process, so the test runs itself in a child process with it:
// the law (scale, counter, iterations after each step) must be the one the
// graph follows without XLA, and the weights within float32 reordering.
func TestLossScaleUnderXLA(t *testing.T) {
	if os.Getenv("GRAPH_TEST_XLA_CHILD") != "1" {
		if testing.Short() {
			t.Skip("starts a child test process")
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestLossScaleUnderXLA$", "-test.v")
		cmd.Env = append(os.Environ(), "GRAPH_TEST_XLA_CHILD=1", "TF_XLA_FLAGS=--tf_xla_cpu_global_jit")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestLossScaleUnderXLA") {
			t.Fatalf("child with XLA: %v\n%s", err, lastLines(string(out), 20))
		}
		t.Logf("child with XLA:\n%s", lastLines(string(out), 4))
		return
	}
	images, labels := tinyData(32, 10, 5)
	compile := func(xla bool) *Model {
		return compileNet(t, smallConvNet(), Options{Seed: 1, Classes: 10, Optimizer: optimizer(t, "adamw", "weight_decay", 0.1), XLA: xla,
			LossScale: &LossScale{Initial: 0x1p126, GrowthSteps: 3}})
	}
	xla, plain := compile(true), compile(false)
	skipped := 0
	for step := range 12 {
		var got [2][3]float64
		for i, m := range []*Model{xla, plain} {
			if _, err := m.TrainStep(images, labels, 32, 1, int64(step)); err != nil {
				t.Fatal(err)
			}
			s, c, _, err := m.LossScale()
			if err != nil {
				t.Fatal(err)
			}
			it, err := m.Iterations()
			if err != nil {
				t.Fatal(err)
			}
			got[i] = [3]float64{float64(s), float64(c), float64(it)}
		}
		if got[0] != got[1] {
			t.Fatalf("step %d: scale, counter, iterations %v with XLA, %v without", step, got[0], got[1])
		}
		if got[0][2] < float64(step+1-skipped) {
			skipped++
		}
	}
	if skipped == 0 {
		t.Fatal("no step was skipped: the dead branches were not exercised")
	}
	a, err := xla.GetWeights()
	if err != nil {
		t.Fatal(err)
	}
	b, err := plain.GetWeights()
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for name, w := range b {
		d := relDiff(a[name].Data, w.Data)
		if d > 1e-5 {
			t.Errorf("%s: relative max diff %g with XLA", name, d)
		}
		worst = math.Max(worst, d)
	}
	// Nonzero when XLA compiled the step (it sums in another order).
	t.Logf("%d of 12 steps skipped, the same with and without XLA; weights within %.2g", skipped, worst)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
