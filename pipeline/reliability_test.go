package pipeline

// Issue 14, "a run directory you can trust": one test per numbered case.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	eventpb "github.com/wamuir/graft/tensorflow/core/util/event_go_proto"
	"google.golang.org/protobuf/proto"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/dataset"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
	"github.com/cifar-pipeline/cifar-pipeline/rundir"
	"github.com/cifar-pipeline/cifar-pipeline/train"
)

var built struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// pipelineBinary builds bin/pipeline once per test binary, for tests that
// need real processes (locks, signals, what TensorFlow prints at load).
func pipelineBinary(t *testing.T) string {
	t.Helper()
	root := testenv.RepoRoot(t)
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "pipeline-bin-"); built.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(built.dir, "pipeline"), "./pipeline/cmd/pipeline")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return filepath.Join(built.dir, "pipeline")
}

// quickRun runs the quick config into dir with extra --set/flags and
// returns exit code, stdout and stderr.
func quickRun(t *testing.T, ctx context.Context, dir string, extra ...string) (int, string, string) {
	t.Helper()
	return runCLI(ctx, append([]string{"run", "-c", quickConfig(t), "--set", "output.dir=" + dir}, extra...)...)
}

// tree maps every file under dir to a digest of its bytes (directories
// to their mode), to prove a command changed nothing.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			st, _ := d.Info()
			out[rel+"/"] = st.Mode().String()
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed %s", what, k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s added %s", what, k)
		}
	}
}

func readRunJSON(t *testing.T, dir string) runSummary {
	t.Helper()
	var rs runSummary
	b, err := os.ReadFile(filepath.Join(dir, rundir.RunJSONName))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

func oneLine(t *testing.T, stderr string, wants ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "pipeline: ") {
		t.Fatalf("last stderr line %q is not the 'pipeline: ' error:\n%s", last, stderr)
	}
	for _, w := range wants {
		if !strings.Contains(last, w) {
			t.Errorf("error %q lacks %q", last, w)
		}
	}
}

// Case 1: a fresh run into a directory holding another run's checkpoints
// used to train anyway, and retention (highest step numbers) then deleted
// its own checkpoints; a later --resume continued the old run.
func TestFreshRunRefusesAnotherRun(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := quickRun(t, context.Background(), dir, "--set", "train.epochs=3"); code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, errs)
	}
	before := tree(t, dir)
	code, _, errs := quickRun(t, context.Background(), dir, "--set", "train.epochs=1", "--set", "train.optimizer.learning_rate=0.01")
	if code != 1 {
		t.Fatalf("fresh run over a run: exit %d, want 1\n%s", code, errs)
	}
	oneLine(t, errs, dir+"/ holds a run at step 75", "--resume", "--overwrite", "another output.dir")
	sameTree(t, "the refused run", before, tree(t, dir))

	code, _, errs = quickRun(t, context.Background(), dir, "--set", "train.epochs=1", "--set", "train.optimizer.learning_rate=0.01", "--overwrite")
	if code != 0 {
		t.Fatalf("--overwrite: exit %d\n%s", code, errs)
	}
	ns, err := train.CheckpointManager{Dir: filepath.Join(dir, "checkpoints")}.List()
	if err != nil || !slices.Equal(ns, []int{25}) {
		t.Fatalf("checkpoints after --overwrite: %v %v, want only the new run's [25]", ns, err)
	}
	state, _ := os.ReadFile(filepath.Join(dir, "checkpoints", "checkpoint"))
	if !strings.Contains(string(state), `model_checkpoint_path: "ckpt-25"`) {
		t.Errorf("checkpoint state names another file:\n%s", state)
	}
	if rs := readRunJSON(t, dir); len(rs.Epochs) != 1 || rs.Status != StatusCompleted {
		t.Errorf("run.json after --overwrite: %d epochs, status %q", len(rs.Epochs), rs.Status)
	}
	// Nothing of the old run is left beside the directory either.
	if aside, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".replaced-*")); len(aside) > 0 {
		t.Errorf("--overwrite left the old run at %v", aside)
	}
	if code, _, errs := quickRun(t, context.Background(), dir, "--resume", "--overwrite"); code != 1 || !strings.Contains(errs, "choose one") {
		t.Errorf("--resume --overwrite: exit %d, %s", code, errs)
	}
	// --overwrite replaces runs only: a directory of other files is
	// written into, never deleted.
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, "thesis.tex"), []byte("years of work"), 0o644)
	if code, _, errs := quickRun(t, context.Background(), home, "--set", "train.epochs=1", "--overwrite"); code != 0 {
		t.Fatalf("--overwrite into a non-run dir: exit %d\n%s", code, errs)
	}
	if b, err := os.ReadFile(filepath.Join(home, "thesis.tex")); err != nil || string(b) != "years of work" {
		t.Errorf("--overwrite deleted a file that was not a run's: %v", err)
	}
}

// Case 2: a run stopped after its last epoch's checkpoint (Ctrl-C or
// kill -9 before the artifacts, or a full disk during the export) could
// never be finished: --resume failed with "empty history".
func TestResumeAfterLastEpoch(t *testing.T) {
	t.Run("killed before the artifacts", func(t *testing.T) {
		dir := t.TempDir()
		if code, _, errs := quickRun(t, context.Background(), dir); code != 0 {
			t.Fatalf("exit %d\n%s", code, errs)
		}
		want := readRunJSON(t, dir)
		// What a kill -9 right after the last checkpoint leaves.
		for _, f := range []string{rundir.RunJSONName, rundir.ModelCardName, rundir.CurvesName, rundir.MetricsName, rundir.SavedModelName, rundir.HistoryName, rundir.LogsName} {
			os.RemoveAll(filepath.Join(dir, f))
		}
		code, out, errs := quickRun(t, context.Background(), dir, "--resume")
		if code != 0 {
			t.Fatalf("--resume: exit %d\n%s", code, errs)
		}
		if strings.Contains(out, "Epoch 1/2") || strings.Contains(out, "Epoch 2/2") {
			t.Errorf("--resume trained again:\n%s", out)
		}
		got := readRunJSON(t, dir)
		if got.Status != StatusCompleted || len(got.Epochs) != 2 || got.TestAccuracy != want.TestAccuracy || got.Epochs[1].Loss != want.Epochs[1].Loss {
			t.Errorf("run.json after resume: %+v\nwant as the first: %+v", got, want)
		}
		for _, f := range []string{rundir.ModelCardName, rundir.CurvesName, rundir.HistoryName, "saved_model/saved_model.pb"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("not rebuilt: %v", err)
			}
		}
	})
	t.Run("interrupted in the last step", func(t *testing.T) {
		dir := t.TempDir()
		cfg, err := config.Load(quickConfig(t), []string{"output.dir=" + dir})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var out, log bytes.Buffer
		job := &Job{Cfg: cfg, Out: &out, Log: &log, afterStep: func(_ *graph.Model, epoch, step int) {
			if epoch == 2 && step == 25 {
				cancel() // Ctrl-C after the last step, before its validation
			}
		}}
		if _, err := job.Run(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: %v\n%s", err, log.String())
		}
		if rs := readRunJSON(t, dir); rs.Status != StatusInterrupted || len(rs.Epochs) != 1 {
			t.Errorf("run.json of the interrupted run: status %q, %d epochs", rs.Status, len(rs.Epochs))
		}
		code, stdout, errs := quickRun(t, context.Background(), dir, "--resume")
		if code != 0 {
			t.Fatalf("--resume: exit %d\n%s", code, errs)
		}
		if strings.Contains(stdout, "Epoch 2/2") {
			t.Errorf("resume trained again:\n%s", stdout)
		}
		rs := readRunJSON(t, dir)
		if rs.Status != StatusCompleted || len(rs.Epochs) != 2 || !rs.Epochs[1].HasVal || rs.Epochs[1].Images != 1600 {
			t.Errorf("run.json: status %q, epochs %+v", rs.Status, rs.Epochs)
		}
	})
}

// Case 3 (and 12): a second process into a locked directory exits at
// once naming the holder, a --resume too; SIGTERM stops a run within
// seconds with a checkpoint saved, and the lock dies with the process.
func TestSecondProcessRefused(t *testing.T) {
	bin := pipelineBinary(t)
	dir := t.TempDir()
	args := []string{"run", "-c", quickConfig(t), "--set", "output.dir=" + dir, "--set", "train.epochs=200", "--set", "train.verbose=none"}
	first := exec.Command(bin, args...)
	var firstErr bytes.Buffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Process.Kill()
	done := make(chan error, 1)
	go func() { done <- first.Wait() }()
	// Wait until the first run holds the lock and has a checkpoint.
	lock := filepath.Join(dir, rundir.LockName)
	waitFor := func(what string, exited <-chan error, ok func() bool) {
		t.Helper()
		for !ok() {
			select {
			case err := <-exited:
				t.Fatalf("%s: the process ended first (%v):\n%s", what, err, firstErr.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	waitFor("first run training", done, func() bool {
		b, _ := os.ReadFile(lock)
		ns, _ := train.CheckpointManager{Dir: filepath.Join(dir, "checkpoints")}.List()
		return bytes.HasPrefix(b, []byte(fmt.Sprintf("pid %d\n", first.Process.Pid))) && len(ns) > 0
	})
	before := tree(t, filepath.Join(dir, "synthetic-data"))
	for _, extra := range [][]string{nil, {"--resume"}, {"--overwrite"}} {
		second := exec.Command(bin, append(slices.Clone(args), extra...)...)
		var errb bytes.Buffer
		second.Stderr = &errb
		err := second.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("second run %v: %v, want exit 1\n%s", extra, err, errb.String())
		}
		oneLine(t, errb.String(), dir+"/ is in use by pid "+fmt.Sprint(first.Process.Pid)+" (started ")
	}
	sameTree(t, "the refused runs", before, tree(t, filepath.Join(dir, "synthetic-data")))

	// SIGTERM: the first run saves a checkpoint at the step and exits 130.
	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(firstErr.String(), "checkpoint saved") {
			t.Fatalf("after SIGTERM: %v\n%s", err, firstErr.String())
		}
	case <-time.After(30 * time.Second): // a bound on a hang, not a timing
		t.Fatalf("SIGTERM did not stop the run:\n%s", firstErr.String())
	}
	if rs := readRunJSON(t, dir); rs.Status != StatusInterrupted {
		t.Errorf("run.json status %q after SIGTERM", rs.Status)
	}

	// kill -9 leaves no stale lock: the next process takes the directory.
	third := exec.Command(bin, append(slices.Clone(args), "--resume")...)
	third.Stderr = &firstErr
	if err := third.Start(); err != nil {
		t.Fatal(err)
	}
	thirdDone := make(chan error, 1)
	go func() { thirdDone <- third.Wait() }()
	waitFor("third run locking", thirdDone, func() bool {
		b, _ := os.ReadFile(lock)
		return bytes.HasPrefix(b, []byte(fmt.Sprintf("pid %d\n", third.Process.Pid)))
	})
	third.Process.Kill()
	<-thirdDone
	code, _, errs := quickRun(t, context.Background(), dir, "--resume", "--set", "train.epochs=1")
	if code != 0 {
		t.Fatalf("--resume after kill -9: exit %d\n%s", code, errs)
	}
}

// eventValues reads a TensorBoard event file's scalars without wall
// times: the only thing that may differ between a resumed run and an
// uninterrupted one.
func eventValues(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"train", "validation"} {
		files, _ := filepath.Glob(filepath.Join(dir, "logs", sub, "events.out.tfevents.*"))
		if len(files) != 1 {
			t.Fatalf("logs/%s holds %d event files, want 1", sub, len(files))
		}
		b, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		for len(b) >= 12 {
			n := binary.LittleEndian.Uint64(b)
			ev := &eventpb.Event{}
			if err := proto.Unmarshal(b[12:12+n], ev); err != nil {
				t.Fatal(err)
			}
			ev.WallTime = 0
			// images/s is a timing, like the wall time.
			if s := ev.GetSummary(); s == nil || s.Value[0].Tag != "epoch_images_per_second" {
				out = append(out, sub+" "+ev.String())
			}
			b = b[12+n+4:]
		}
	}
	return out
}

func sameEpochs(t *testing.T, got, want []train.EpochLogs, lossTol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d epochs, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		close := func(a, b float64) bool { return a == b || math.Abs(a-b) <= lossTol*math.Abs(b) }
		if g.Epoch != w.Epoch || !close(g.Loss, w.Loss) || g.Accuracy != w.Accuracy || g.ValLoss != w.ValLoss ||
			g.ValAccuracy != w.ValAccuracy || g.HasVal != w.HasVal || g.Steps != w.Steps || g.Images != w.Images {
			t.Errorf("epoch %d: %+v\nuninterrupted: %+v", i+1, g, w)
		}
	}
}

// Case 4: --resume truncated history.csv, run.json, curves.png and the
// event files to the epochs after the resume point.
func TestResumeKeepsWholeHistory(t *testing.T) {
	whole := t.TempDir()
	if code, _, errs := quickRun(t, context.Background(), whole, "--set", "train.epochs=3"); code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	want := readRunJSON(t, whole)
	wantCSV, _ := os.ReadFile(filepath.Join(whole, rundir.HistoryName))
	wantCurves, _ := os.ReadFile(filepath.Join(whole, rundir.CurvesName))
	wantEvents := eventValues(t, whole)

	t.Run("resumed at epoch ends", func(t *testing.T) {
		dir := t.TempDir()
		for e := 1; e <= 3; e++ {
			extra := []string{"--set", fmt.Sprintf("train.epochs=%d", e)}
			if e > 1 {
				extra = append(extra, "--resume")
			}
			if code, _, errs := quickRun(t, context.Background(), dir, extra...); code != 0 {
				t.Fatalf("epochs=%d: exit %d\n%s", e, code, errs)
			}
		}
		sameEpochs(t, readRunJSON(t, dir).Epochs, want.Epochs, 0)
		if got, _ := os.ReadFile(filepath.Join(dir, rundir.HistoryName)); !bytes.Equal(got, wantCSV) {
			t.Errorf("history.csv:\n%s\nuninterrupted:\n%s", got, wantCSV)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, rundir.CurvesName)); !bytes.Equal(got, wantCurves) {
			t.Error("curves.png differs from the uninterrupted run's")
		}
		if got := eventValues(t, dir); !slices.Equal(got, wantEvents) {
			t.Errorf("event files:\n%v\nuninterrupted:\n%v", got, wantEvents)
		}
	})
	t.Run("interrupted twice mid-epoch", func(t *testing.T) {
		dir := t.TempDir()
		cfg, err := config.Load(quickConfig(t), []string{"output.dir=" + dir, "train.epochs=3"})
		if err != nil {
			t.Fatal(err)
		}
		for _, stop := range [][2]int{{2, 7}, {2, 15}} {
			ctx, cancel := context.WithCancel(context.Background())
			var out, log bytes.Buffer
			job := &Job{Cfg: cfg, Resume: stop[1] == 15, Out: &out, Log: &log, afterStep: func(_ *graph.Model, epoch, step int) {
				if epoch == stop[0] && step == stop[1] {
					cancel()
				}
			}}
			if _, err := job.Run(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("run stopped at %v: %v\n%s", stop, err, log.String())
			}
			cancel()
		}
		if code, _, errs := quickRun(t, context.Background(), dir, "--set", "train.epochs=3", "--resume"); code != 0 {
			t.Fatalf("resume: exit %d\n%s", code, errs)
		}
		// The interrupted epoch's mean loss is summed in three parts, so
		// its last bits may differ (train.Fit restarts its running sum);
		// counts and validation are exact.
		sameEpochs(t, readRunJSON(t, dir).Epochs, want.Epochs, 1e-12)
		if got := eventValues(t, dir); len(got) != len(wantEvents) {
			t.Errorf("event files hold %d records, uninterrupted %d", len(got), len(wantEvents))
		}
	})
}

// Case 5: a failed --resume rewrote config.resolved.yaml; the check
// ignored data.validation, data.limit_train and augment.materialize, and
// passed when config.resolved.yaml was missing.
func TestRefusedResumeChangesNothing(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := quickRun(t, context.Background(), dir, "--set", "train.epochs=1"); code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	cases := []struct {
		name  string
		sets  []string
		wants []string
	}{
		{"another architecture", []string{"model.layers[5].units=64"}, nil},
		{"another seed", []string{"seed=99"}, []string{"seed was 7", "is 99"}},
		{"validation mode", []string{"data.validation=test"}, []string{"data.validation was \"split\""}},
		{"limit_train", []string{"data.limit_train=1000"}, []string{"data.limit_train was 0"}},
		{"materialize", []string{"augment.enabled=true", "augment.materialize=1"}, []string{"augment."}},
		{"learning rate", []string{"train.optimizer.learning_rate=0.01"}, []string{"train.optimizer.learning_rate was 0.001"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, removeYAML := range []bool{false, true} {
				if removeYAML {
					// The fingerprint is in the checkpoint, not the YAML.
					os.Remove(filepath.Join(dir, rundir.ResolvedConfigName))
				}
				before := tree(t, dir)
				var sets []string
				for _, s := range tc.sets {
					sets = append(sets, "--set", s)
				}
				if tc.name == "another architecture" {
					sets = []string{"--set", "model.layers=[{type: conv2d, filters: 4, kernel_size: 3}, {type: flatten}, {type: dense, units: 10}, {type: activation, activation: softmax}]"}
				}
				code, _, errs := quickRun(t, context.Background(), dir, append(sets, "--resume", "--set", "train.epochs=2")...)
				if code != 1 {
					t.Fatalf("exit %d, want 1\n%s", code, errs)
				}
				oneLine(t, errs, append([]string{"--resume"}, tc.wants...)...)
				sameTree(t, "the refused resume", before, tree(t, dir))
			}
			// Put the YAML back for the next case (a resume that passes
			// rewrites it).
			if code, _, errs := quickRun(t, context.Background(), dir, "--resume", "--set", "train.epochs=1"); code != 0 {
				t.Fatalf("plain resume: exit %d\n%s", code, errs)
			}
		})
	}
}

// Case 6: a diverging run trained to the end and then failed with
// "json: unsupported value: NaN", writing no run.json.
func TestDivergedRunStops(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := quickRun(t, context.Background(), dir, "--set", "train.optimizer.name=sgd", "--set", "train.optimizer.learning_rate=1e30")
	if code != 1 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	oneLine(t, errs, "training diverged: loss is", "at epoch 1 step ", "lower train.optimizer.learning_rate")
	if strings.Contains(out, "Epoch 2/2") || strings.Contains(out, "Test Score") {
		t.Errorf("training went on after the loss diverged:\n%s", out)
	}
	rs := readRunJSON(t, dir)
	if rs.Status != StatusDiverged || len(rs.Epochs) != 0 {
		t.Errorf("run.json: status %q, %d epochs", rs.Status, len(rs.Epochs))
	}
	if ns, _ := (train.CheckpointManager{Dir: filepath.Join(dir, "checkpoints")}).List(); len(ns) != 0 {
		t.Errorf("diverged weights were checkpointed: %v", ns)
	}
}

// Case 6, the last good checkpoint: a run whose loss turns non-finite in
// its second epoch (a NaN planted in the last bias after step 3) stops at the
// next step; its newest checkpoint is epoch 1's and restores to finite
// weights.
func TestDivergedRunKeepsLastGoodCheckpoint(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load(quickConfig(t), []string{"output.dir=" + dir})
	if err != nil {
		t.Fatal(err)
	}
	var out, log bytes.Buffer
	job := &Job{Cfg: cfg, Out: &out, Log: &log, afterStep: func(m *graph.Model, epoch, step int) {
		if epoch == 2 && step == 3 {
			w, err := m.GetWeights()
			if err != nil {
				t.Error(err)
				return
			}
			k := w["dense_1/bias"] // after the last ReLU (which maps NaN to 0)
			k.Data[0] = float32(math.NaN())
			if err := m.SetWeights(map[string]graph.Array{"dense_1/bias": k}); err != nil {
				t.Error(err)
			}
		}
	}}
	_, err = job.Run(context.Background())
	var div *DivergedError
	if !errors.As(err, &div) || div.Epoch != 2 || div.Step != 4 || !strings.HasSuffix(div.Checkpoint, "ckpt-25") {
		t.Fatalf("err = %v, want divergence at epoch 2 step 4 with ckpt-25 kept", err)
	}
	if !strings.Contains(err.Error(), "training diverged: loss is NaN at epoch 2 step 4; the last good checkpoint is "+div.Checkpoint) {
		t.Errorf("message: %v", err)
	}
	rs := readRunJSON(t, dir)
	if rs.Status != StatusDiverged || len(rs.Epochs) != 1 || math.IsNaN(rs.Epochs[0].Loss) {
		t.Errorf("run.json: status %q, epochs %+v", rs.Status, rs.Epochs)
	}
	ns, _ := train.CheckpointManager{Dir: filepath.Join(dir, "checkpoints")}.List()
	if !slices.Equal(ns, []int{25}) {
		t.Fatalf("checkpoints %v, want only epoch 1's [25]", ns)
	}
	for name, a := range checkpointWeights(t, cfg, div.Checkpoint) {
		for _, v := range a.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("checkpoint %s holds a non-finite %s", div.Checkpoint, name)
			}
		}
	}
}

// Case 7: sizes that ended in a Go fatal out-of-memory or the OOM killer
// are refused before anything of that size is allocated.
func TestSizeBoundsRefused(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"batch over the training set", []string{"--set", "train.batch_size=5000"}, []string{"train.batch_size: 5000 exceeds the 1600 training images"}},
		{"batch of a billion", []string{"--set", "train.batch_size=1000000000"}, []string{"train.batch_size 1000000000 needs about", "GiB", "available"}},
		{"dense of two billion units", []string{"--set", "model.layers=[{type: flatten}, {type: dense, units: 2000000000}, {type: dense, units: 10}, {type: activation, activation: softmax}]"}, []string{"needs about", "GiB", "params"}},
		{"materialize 100000", []string{"--set", "augment.enabled=true", "--set", "augment.materialize=100000"}, []string{"augment.materialize: 100000 copies", "GiB"}},
		{"queue of a billion batches", []string{"--set", "augment.enabled=true", "--set", "augment.queue_batches=1000000000"}, []string{"augment.queue_batches: 1000000000"}},
		{"synthetic set of a billion", []string{"--set", "data.synthetic.train=1000000000"}, []string{"data.synthetic", "GiB"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := quickRun(t, context.Background(), dir, append(tc.args, "--overwrite")...)
			if code != 1 {
				t.Fatalf("exit %d\n%s", code, errs)
			}
			oneLine(t, errs, tc.wants...)
			if ns, _ := (train.CheckpointManager{Dir: filepath.Join(dir, "checkpoints")}).List(); len(ns) != 0 {
				t.Errorf("refused run trained: %v", ns)
			}
		})
	}
	code, _, errs := runCLI(context.Background(), "data", "synth", "--out", filepath.Join(dir, "synth"), "--train", "1000000000")
	if code != 1 {
		t.Fatalf("data synth --train 1e9: exit %d", code)
	}
	oneLine(t, errs, "data synth --train/--test", "GiB")
}

// Case 8: predict's flags, classes.txt and hostile files.
func TestPredictBounds(t *testing.T) {
	run := t.TempDir()
	if code, _, errs := quickRun(t, context.Background(), run, "--set", "train.epochs=1", "--set", "output.plots=false", "--set", "output.tensorboard=false"); code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	if st, err := os.Stat(filepath.Join(run, rundir.SavedModelName)); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("saved_model/ mode %v (%v), want 0755 (case 11)", st.Mode().Perm(), err)
	}
	imgs := t.TempDir()
	set, err := dataset.ReadDir(filepath.Join(run, rundir.SyntheticDataName))
	if err != nil {
		t.Fatal(err)
	}
	writePNG(t, filepath.Join(imgs, "a.png"), set.Test.Image(0), 32, 32)
	for _, tc := range []struct {
		name  string
		args  []string
		wants []string
	}{
		{"batch 0", []string{"--batch", "0"}, []string{"--batch 0 must be at least 1"}},
		{"batch -1", []string{"--batch", "-1"}, []string{"--batch -1"}},
		{"top -5", []string{"--top", "-5"}, []string{"--top -5 must be at least 1"}},
		{"top 11", []string{"--top", "11"}, []string{"--top 11 exceeds the model's 10 classes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(context.Background(), append(append([]string{"predict", "-m", run}, tc.args...), imgs)...)
			if code != 1 || out != "" {
				t.Fatalf("exit %d, stdout %q", code, out)
			}
			oneLine(t, errs, tc.wants...)
		})
	}

	t.Run("hostile files each fail alone", func(t *testing.T) {
		dir := t.TempDir()
		writePNG(t, filepath.Join(dir, "good.png"), set.Test.Image(1), 32, 32)
		os.WriteFile(filepath.Join(dir, "strip.png"), stripPNG(t), 0o644)
		syscall.Mkfifo(filepath.Join(dir, "fifo.png"), 0o644)
		f, _ := os.Create(filepath.Join(dir, "sparse.png"))
		f.Truncate(5 << 30)
		f.Close()
		// The FIFO also named on its own: it used to hang forever.
		code, out, _ := runCLI(context.Background(), "predict", "-m", run, dir, filepath.Join(dir, "fifo.png"))
		if code != 1 {
			t.Fatalf("exit %d", code)
		}
		for _, want := range []string{"good.png: " + set.ClassNames[set.Test.Labels[1]], "fifo.png: error: ", "not a regular file", "sparse.png: error: ", "over the 256 MiB limit", "strip.png: error: ", "too large (1000000x1"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	classes := filepath.Join(run, rundir.ClassesName)
	orig, _ := os.ReadFile(classes)
	t.Run("classes.txt", func(t *testing.T) {
		defer os.WriteFile(classes, orig, 0o644)
		names := strings.Split(strings.TrimSpace(string(orig)), "\n")
		spaced := slices.Clone(names)
		spaced[set.Test.Labels[0]] = "pickup truck"
		os.WriteFile(classes, []byte(strings.Join(spaced, "\n")+"\n"), 0o644)
		code, out, errs := runCLI(context.Background(), "predict", "-m", run, "--top", "1", filepath.Join(imgs, "a.png"))
		if code != 0 || !strings.Contains(out, "a.png: pickup truck ") {
			t.Errorf("a name with a space: exit %d, %q %s", code, out, errs)
		}
		os.WriteFile(classes, []byte(strings.Join(names[:9], "\n")+"\n"), 0o644)
		code, _, errs = runCLI(context.Background(), "predict", "-m", run, filepath.Join(imgs, "a.png"))
		if code != 1 {
			t.Fatalf("9 names for 10 outputs: exit %d", code)
		}
		oneLine(t, errs, classes, "9 class names but the SavedModel has 10 outputs")
		os.Remove(classes)
		code, _, errs = runCLI(context.Background(), "predict", "-m", run, filepath.Join(imgs, "a.png"))
		if code != 1 {
			t.Fatalf("missing classes.txt: exit %d", code)
		}
		oneLine(t, errs, classes, "one class name per line")
	})
}

func writePNG(t *testing.T, path string, hwc []uint8, h, w int) {
	t.Helper()
	var buf bytes.Buffer
	if err := encodePNG(&buf, hwc, h, w); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Case 9: labels beyond the class list were found after all training.
func TestLabelsCheckedAtLoad(t *testing.T) {
	data := t.TempDir()
	if code, _, errs := runCLI(context.Background(), "data", "synth", "--out", data, "--train", "100", "--test", "50"); code != 0 {
		t.Fatalf("exit %d %s", code, errs)
	}
	names := append(dataset.OfficialClassNames(), "unicorn")
	os.WriteFile(filepath.Join(data, dataset.MetaFile), []byte(strings.Join(names, "\n")+"\n"), 0o644)
	b, _ := os.ReadFile(filepath.Join(data, dataset.TestFile))
	b[3*dataset.RecordSize] = 10 // record 3 of the test batch
	os.WriteFile(filepath.Join(data, dataset.TestFile), b, 0o644)

	dir := t.TempDir()
	code, out, errs := quickRun(t, context.Background(), dir, "--set", "data.synthetic.train=0", "--set", "data.dir="+data, "--set", "data.offline=true")
	if code != 1 || strings.Contains(out, "Epoch 1/") {
		t.Fatalf("exit %d; trained:\n%s", code, out)
	}
	oneLine(t, errs, dataset.MetaFile, "lists 11 class names but data.classes is 10")

	os.WriteFile(filepath.Join(data, dataset.MetaFile), []byte(strings.Join(names[:10], "\n")+"\n"), 0o644)
	code, out, errs = quickRun(t, context.Background(), dir, "--set", "data.synthetic.train=0", "--set", "data.dir="+data, "--set", "data.offline=true")
	if code != 1 || strings.Contains(out, "Epoch 1/") {
		t.Fatalf("exit %d; trained:\n%s", code, out)
	}
	oneLine(t, errs, filepath.Join(data, dataset.TestFile), "record 3 has label 10")
}

// Case 10: data synth wrote over real CIFAR-10 and marked it synthetic.
func TestDataSynthRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	batch := filepath.Join(dir, "data_batch_1.bin")
	os.WriteFile(batch, []byte("real CIFAR-10, say"), 0o644)
	before := tree(t, dir)
	code, _, errs := runCLI(context.Background(), "data", "synth", "--out", dir)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	oneLine(t, errs, dir, "not written by pipeline data synth")
	sameTree(t, "the refused synth", before, tree(t, dir))
}

// Case 11: temp files of killed runs are removed when the next run takes
// the lock.
func TestStaleTempsRemoved(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := quickRun(t, context.Background(), dir, "--set", "train.epochs=1"); code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	stale := []string{".saved_model.tmp-123/variables/variables.index", ".tmp-cifar10.weights-1795.data-00000-of-00001",
		".history.csv.tmp-42", "saved_model.old-99/saved_model.pb", "checkpoints/.tmp-ckpt-30-1795.index", ".write-probe-7"}
	for _, f := range stale {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, make([]byte, 1024), 0o644)
	}
	keep := filepath.Join(dir, "notes.tmp") // not ours
	os.WriteFile(keep, nil, 0o644)
	code, _, errs := quickRun(t, context.Background(), dir, "--resume", "--set", "train.epochs=1")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	for _, f := range stale {
		top := strings.Split(f, "/")[0]
		if f[:len("checkpoints/")] == "checkpoints/" {
			top = f
		}
		if _, err := os.Stat(filepath.Join(dir, top)); err == nil {
			t.Errorf("stale %s left", top)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("removed a file that is not this tool's: %v", err)
	}
}

// Case 13: TensorFlow's own lines are off by default on every command,
// --help included, and back with --verbose or runtime.tensorflow_logs.
func TestTensorFlowLogsHidden(t *testing.T) {
	bin := pipelineBinary(t)
	dir := t.TempDir()
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "TF_CPP_MIN_LOG_LEVEL=") })
	tfLines := []string{"oneDNN custom operations", "absl::InitializeLog", "mlir_graph_optimization_pass", "cpu_feature_guard"}
	run := func(args ...string) string {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errb.String())
		}
		return errb.String()
	}
	quick := []string{"run", "-c", quickConfig(t), "--set", "output.dir=" + dir, "--set", "train.epochs=1", "--overwrite"}
	for _, args := range [][]string{{"--help"}, {"version"}, {"summary", "-c", quickConfig(t)}, quick} {
		errs := run(args...)
		for _, l := range tfLines {
			if strings.Contains(errs, l) {
				t.Errorf("%v prints TensorFlow's %q:\n%s", args, l, errs)
			}
		}
	}
	for _, args := range [][]string{append([]string{"--verbose"}, quick...), append(slices.Clone(quick), "--set", "runtime.tensorflow_logs=true")} {
		errs := run(args...)
		for _, l := range []string{"oneDNN custom operations", "mlir_graph_optimization_pass"} {
			if !strings.Contains(errs, l) {
				t.Errorf("%v hides %q:\n%s", args, l, errs)
			}
		}
		if !strings.Contains(errs, "artifacts: ") {
			t.Errorf("%v lost the pipeline's own lines:\n%s", args, errs)
		}
	}
}

func encodePNG(w *bytes.Buffer, hwc []uint8, h, wd int) error {
	img := image.NewRGBA(image.Rect(0, 0, wd, h))
	for p := range h * wd {
		img.Pix[4*p], img.Pix[4*p+1], img.Pix[4*p+2], img.Pix[4*p+3] = hwc[3*p], hwc[3*p+1], hwc[3*p+2], 255
	}
	return png.Encode(w, img)
}

// stripPNG is the header of a 1,000,000×1 PNG: what DecodeConfig reads.
func stripPNG(t *testing.T) []byte {
	ihdr := make([]byte, 17)
	copy(ihdr, "IHDR")
	binary.BigEndian.PutUint32(ihdr[4:], 1_000_000)
	binary.BigEndian.PutUint32(ihdr[8:], 1)
	ihdr[12] = 8
	var buf bytes.Buffer
	buf.WriteString("\x89PNG\r\n\x1a\n")
	binary.Write(&buf, binary.BigEndian, uint32(13))
	buf.Write(ihdr)
	binary.Write(&buf, binary.BigEndian, crc32.ChecksumIEEE(ihdr))
	return buf.Bytes()
}
