package train

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/internal/enginetest"
	"github.com/cifar-pipeline/cifar-pipeline/internal/modeltest"
	"github.com/cifar-pipeline/cifar-pipeline/pixels"
)

var compileLayers = modeltest.Compile

func compileSmall(t testing.TB, opt string) *graph.Model {
	return compileLayers(t, enginetest.SmallNet(), opt)
}

var tinyData = enginetest.TinyData

// cancelAt cancels the context when training reaches a given step.
type cancelAt struct {
	epoch, step int
	cancel      func()
	cur         int
}

func (c *cancelAt) BeginEpoch(epoch, _, _ int) { c.cur = epoch }
func (c *cancelAt) Step(step int, _ EpochLogs) {
	if c.cur == c.epoch && step == c.step {
		c.cancel()
	}
}
func (c *cancelAt) EndEpoch(EpochLogs) {}

// TestResumeEquivalence: a run interrupted mid-epoch, checkpointed,
// restored into a fresh model and continued ends with the same weights as
// an uninterrupted run with the same seed (shuffle order, dropout masks and
// optimiser slots all resume exactly).
func TestResumeEquivalence(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers []config.Layer
		scaled bool
	}{{"small", enginetest.SmallNet(), false}, {"residual with batchnorm", enginetest.SmallResNet(), false},
		// Steps that loss scaling skips do not count as optimizer
		// iterations (Keras's neither) but do as steps of the epoch: the
		// resume point is Model.Steps.
		{"loss-scaled with skipped steps", enginetest.SmallNet(), true}} {
		t.Run(tc.name, func(t *testing.T) {
			compile := func(t testing.TB, layers []config.Layer, opt string) *graph.Model {
				return compileLayers(t, layers, opt)
			}
			if tc.scaled {
				compile = compileLossScaled
			}
			testResume(t, tc.layers, compile)
		})
	}
}

// compileLossScaled compiles with a loss scale that overflows float32 at
// first (2¹²⁶, raw 0–255 inputs), so that the first steps are skipped.
func compileLossScaled(t testing.TB, layers []config.Layer, opt string) *graph.Model {
	return modeltest.CompileWith(t, layers, opt, func(o *graph.Options) {
		o.Normalize, o.LossScale = false, &graph.LossScale{Initial: 0x1p126, GrowthSteps: 2}
	})
}

func testResume(t *testing.T, layers []config.Layer, compileLayers func(testing.TB, []config.Layer, string) *graph.Model) {
	images, labels := tinyData(200, 10, 8)
	data := func() *Arrays {
		return &Arrays{Set: &pixels.Set{Images: images, Labels: labels, H: 32, W: 32, C: 3}, BatchSize: 32, Shuffle: true, Seed: 5}
	}
	opts := Options{BatchSize: 32, Epochs: 3, Seed: 5}

	full := compileLayers(t, layers, "rmsprop")
	if _, err := Fit(context.Background(), full, data(), opts); err != nil {
		t.Fatal(err)
	}
	want, _ := full.GetState()

	first := compileLayers(t, layers, "rmsprop")
	ctx, cancel := context.WithCancel(context.Background())
	o := opts
	o.Progress = &cancelAt{epoch: 2, step: 3, cancel: cancel}
	if _, err := Fit(ctx, first, data(), o); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted fit returned %v, want context.Canceled", err)
	}
	it, _ := first.Steps()
	if it != 7+3 { // 200/32 → 7 steps per epoch
		t.Fatalf("interrupted after %d steps, want 10", it)
	}
	if iters, _ := first.Iterations(); iters == it {
		if _, _, scaled, _ := first.LossScale(); scaled {
			t.Fatalf("no step was skipped: the loss-scaled case is vacuous")
		}
	}
	mgr := CheckpointManager{Dir: t.TempDir(), Keep: 2}
	prefix, err := mgr.Save(first, int(it))
	if err != nil {
		t.Fatal(err)
	}
	second := compileLayers(t, layers, "rmsprop")
	if err := second.Restore(prefix); err != nil {
		t.Fatal(err)
	}
	if _, err := Fit(context.Background(), second, data(), opts); err != nil {
		t.Fatal(err)
	}
	got, _ := second.GetState()
	for name, w := range want {
		if d := enginetest.MaxAbsDiff(got[name].Data, w.Data); d > 1e-6 {
			t.Errorf("%s: resumed run differs from uninterrupted by %g", name, d)
		}
	}
	if e, _ := second.Epoch(); e != 3 {
		t.Errorf("epoch counter %d, want 3", e)
	}
}

func TestCheckpointManagerKeepsLastK(t *testing.T) {
	m := compileSmall(t, "sgd")
	mgr := CheckpointManager{Dir: t.TempDir(), Keep: 2}
	for n := 1; n <= 4; n++ {
		if _, err := mgr.Save(m, n); err != nil {
			t.Fatal(err)
		}
	}
	ns, err := mgr.List()
	if err != nil || len(ns) != 2 || ns[0] != 3 || ns[1] != 4 {
		t.Fatalf("kept %v (%v), want [3 4]", ns, err)
	}
	state, err := os.ReadFile(filepath.Join(mgr.Dir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	wantState := "model_checkpoint_path: \"ckpt-4\"\nall_model_checkpoint_paths: \"ckpt-3\"\nall_model_checkpoint_paths: \"ckpt-4\"\n"
	if string(state) != wantState {
		t.Fatalf("checkpoint state file:\n%s\nwant:\n%s", state, wantState)
	}
}

func TestRestoreRejectsOtherArchitecture(t *testing.T) {
	small := compileSmall(t, "rmsprop")
	prefix := filepath.Join(t.TempDir(), "ckpt-1")
	if err := small.Save(prefix); err != nil {
		t.Fatal(err)
	}
	layers := enginetest.SmallNet()
	layers[0].Args["filters"] = 16
	other := compileLayers(t, layers, "rmsprop")
	err := other.Restore(prefix)
	if err == nil || !strings.Contains(err.Error(), "conv2d/kernel") || !strings.Contains(err.Error(), "[3 3 3 8]") ||
		!strings.Contains(err.Error(), "[3 3 3 16]") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("restore across architectures: %v", err)
	}
	adam := compileSmall(t, "adam")
	if err := adam.Restore(prefix); err == nil || !strings.Contains(err.Error(), "adam/") {
		t.Fatalf("restore of an RMSprop checkpoint into Adam: %v", err)
	}
}

// TestKillDuringSave: a process killed (SIGKILL) while saving checkpoints
// in a loop leaves the latest complete checkpoint loadable.
func TestKillDuringSave(t *testing.T) {
	if dir := os.Getenv("GRAPH_SAVE_LOOP_DIR"); dir != "" {
		m := compileSmall(t, "rmsprop")
		mgr := CheckpointManager{Dir: dir, Keep: 3}
		for n := 1; ; n++ {
			if _, err := mgr.Save(m, n); err != nil {
				t.Fatal(err)
			}
		}
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	for round := range 3 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringSave$")
		cmd.Env = append(os.Environ(), "GRAPH_SAVE_LOOP_DIR="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait for a few saves, then kill at an arbitrary moment.
		deadline := time.Now().Add(30 * time.Second)
		for {
			ns, _ := CheckpointManager{Dir: dir}.List()
			if len(ns) > 0 && ns[len(ns)-1] >= 3+round {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("child saved no checkpoints in 30 s")
			}
			time.Sleep(time.Duration(3+round*7) * time.Millisecond)
		}
		cmd.Process.Kill()
		cmd.Wait()
		latest, err := CheckpointManager{Dir: dir}.Latest()
		if err != nil || latest == "" {
			t.Fatalf("no checkpoint after kill: %v", err)
		}
		m := compileSmall(t, "rmsprop")
		if err := m.Restore(latest); err != nil {
			t.Fatalf("latest checkpoint %s after kill does not load: %v", latest, err)
		}
	}
}
