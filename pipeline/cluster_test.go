package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/internal/enginetest"
	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
	"github.com/cifar-pipeline/cifar-pipeline/train"
)

// writeCluster writes a cluster.yaml with these worker addresses.
func writeCluster(t *testing.T, addrs []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte("worker: ["+strings.Join(addrs, ", ")+"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startServer runs `pipeline server` for worker task in its own process,
// waits until it serves, and kills it when the test ends.
func startServer(t *testing.T, clusterPath string, task int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(pipelineBinary(t), "server", "--cluster", clusterPath, "--task", fmt.Sprint(task))
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, fmt.Sprintf("serving /job:worker/task:%d at ", task)) {
		t.Fatalf("server task %d: %q %v\n%s", task, line, err, errb.String())
	}
	return cmd
}

// checkpointWeights reads the layer weights of a run's checkpoint.
func checkpointWeights(t *testing.T, cfg config.Config, prefix string) map[string]graph.Array {
	t.Helper()
	sp, err := resolveSpec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := graph.Compile(sp.net, graph.Options{Seed: cfg.Seed, Normalize: true, Classes: 10, Optimizer: sp.opt})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Restore(prefix); err != nil {
		t.Fatal(err)
	}
	w, err := m.GetWeights()
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func fileNames(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	for name := range tree(t, dir) {
		if !strings.Contains(name, "synthetic-data") {
			if i := strings.Index(name, "tfevents."); i >= 0 {
				name = name[:i] // the rest is a time and a host name
			}
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// TestClusterRun: `pipeline run --cluster` on two real `pipeline server`
// processes (loopback) trains the quick config (dropout included) to the
// weights of a single-process run after 20 steps, and writes the same
// artifacts.
func TestClusterRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts TensorFlow servers")
	}
	addrs := testenv.FreeAddrs(t, 2)
	clusterPath := writeCluster(t, addrs)
	for i := range addrs {
		startServer(t, clusterPath, i)
	}
	sets := []string{"train.epochs=1", "train.steps_per_epoch=20", "train.verbose=none"}
	run := func(dir string, extra ...string) {
		args := []string{"run", "-c", quickConfig(t), "--set", "output.dir=" + dir}
		for _, s := range sets {
			args = append(args, "--set", s)
		}
		code, _, errs := runCLI(context.Background(), append(args, extra...)...)
		if code != 0 {
			t.Fatalf("run %v: exit %d\n%s", extra, code, errs)
		}
	}
	single, dist := t.TempDir(), t.TempDir()
	run(single)
	run(dist, "--cluster", clusterPath)
	if a, b := fileNames(t, single), fileNames(t, dist); !slices.Equal(a, b) {
		t.Errorf("artifacts differ:\nsingle %v\ncluster %v", a, b)
	}
	cfg, err := config.Load(quickConfig(t), sets)
	if err != nil {
		t.Fatal(err)
	}
	same := func(step int) {
		t.Helper()
		ckpt := filepath.Join("checkpoints", fmt.Sprintf("ckpt-%d", step))
		want := checkpointWeights(t, cfg, filepath.Join(single, ckpt))
		got := checkpointWeights(t, cfg, filepath.Join(dist, ckpt))
		for name, a := range want {
			// The towers sum the same per-example gradient terms in another
			// grouping; graph's TestTowersSameMath measures what such float32
			// reordering does to 20 RMSprop steps (a few 1e-4, as reversing
			// the batch order does) and checks the dropout masks exactly. A
			// wrong mask, split or scale moves the weights by ≥ 1e-2.
			if d := enginetest.RelDiff(a.Data, got[name].Data); d > 2e-3 {
				t.Errorf("%s: relative difference %.3g after %d steps", name, d, step)
			} else {
				t.Logf("%s: relative difference %.3g after %d steps", name, d, step)
			}
		}
	}
	same(20)
	// --resume continues on another topology: the single run's second
	// epoch on the cluster, the cluster run's in one process.
	run(single, "--resume", "--set", "train.epochs=2", "--cluster", clusterPath)
	run(dist, "--resume", "--set", "train.epochs=2")
	same(40)
}

// TestClusterWorkerKilled: a worker killed mid-run stops the chief with
// one line naming the task and its address and the last checkpoint, which
// is intact; with the worker restarted, --resume finishes the run. A
// worker not running at the start is refused before anything is written.
func TestClusterWorkerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts TensorFlow servers")
	}
	bin := pipelineBinary(t)
	addrs := testenv.FreeAddrs(t, 2)
	clusterPath := writeCluster(t, addrs)
	worker0 := startServer(t, clusterPath, 0)

	dir := filepath.Join(t.TempDir(), "out")
	args := []string{"run", "-c", quickConfig(t), "--cluster", clusterPath, "--set", "output.dir=" + dir, "--set", "train.verbose=none"}
	code, _, errs := runCLI(context.Background(), args...)
	if code == 0 {
		t.Fatal("ran without worker 1")
	}
	oneLine(t, errs, clusterPath+": worker task 1 at "+addrs[1]+" is unreachable", "pipeline server --cluster "+clusterPath+" --job worker --task 1")
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused run created %s", dir)
	}

	worker1 := startServer(t, clusterPath, 1)
	// A dead worker is reported once a step outlasts --cluster-timeout.
	chief := exec.Command(bin, append(slices.Clone(args), "--set", "train.epochs=200", "--cluster-timeout", "3s")...)
	var chiefErr bytes.Buffer
	chief.Stderr = &chiefErr
	if err := chief.Start(); err != nil {
		t.Fatal(err)
	}
	defer chief.Process.Kill()
	done := make(chan error, 1)
	go func() { done <- chief.Wait() }()
	ckpts := train.CheckpointManager{Dir: filepath.Join(dir, "checkpoints")}
	for {
		ns, _ := ckpts.List()
		if len(ns) >= 2 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("chief ended before its second checkpoint: %v\n%s", err, chiefErr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	worker1.Process.Kill()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("chief after the kill: %v\n%s", err, chiefErr.String())
		}
	case <-time.After(60 * time.Second): // a bound on a hang, not a timing
		t.Fatalf("chief did not stop after worker 1 died:\n%s", chiefErr.String())
	}
	oneLine(t, chiefErr.String(), "training stopped: "+clusterPath+": worker task 1 at "+addrs[1]+" is unreachable", "then continue with --resume (last checkpoint "+dir)
	last, err := ckpts.Latest()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(chiefErr.String(), "(last checkpoint "+last+")") {
		t.Errorf("the error does not name the latest checkpoint %s:\n%s", last, chiefErr.String())
	}
	cfg, err := config.Load(quickConfig(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkpointWeights(t, cfg, last) // restores every variable, or fails

	startServer(t, clusterPath, 1)
	ns, _ := ckpts.List()
	epochs := ns[len(ns)-1]/25 + 1
	code, _, errs = runCLI(context.Background(), append(args, "--resume", "--set", fmt.Sprintf("train.epochs=%d", epochs))...)
	if code != 0 {
		t.Fatalf("--resume after restarting worker 1: exit %d\n%s", code, errs)
	}
	if rs := readRunJSON(t, dir); rs.Status != StatusCompleted || len(rs.Epochs) != epochs {
		t.Errorf("run.json after resume: status %q, %d epochs, want %d", rs.Status, len(rs.Epochs), epochs)
	}

	// SIGTERM ends a server at once (it cannot be stopped cleanly), exit 0.
	exited := make(chan error, 1)
	go func() { exited <- worker0.Wait() }()
	if err := worker0.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("server after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second): // a bound on a hang, not a timing
		t.Error("SIGTERM did not end the server")
	}
}

// TestClusterBadInput: a bad --cluster file or flag fails in one line
// naming it, before the output dir exists.
func TestClusterBadInput(t *testing.T) {
	tmp := t.TempDir()
	bad := filepath.Join(tmp, "bad.yaml")
	if err := os.WriteFile(bad, []byte("worker: [127.0.0.1:1, nonsense]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := writeCluster(t, testenv.FreeAddrs(t, 2))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--cluster", bad}, bad + `: worker[1]: "nonsense" is not host:port`},
		{[]string{"run", "--cluster", filepath.Join(tmp, "none.yaml")}, "none.yaml: no such file"},
		{[]string{"run", "--cluster", good, "--cluster-timeout", "0s"}, "--cluster-timeout 0s"},
		{[]string{"run", "--cluster", good, "--set", "train.batch_size=1"}, "train.batch_size: 1 is smaller than the 2 workers"},
		{[]string{"server", "--cluster", bad}, bad + `: worker[1]`},
		{[]string{"server", "--cluster", good, "--task", "2"}, "--task 2: job worker in " + good + " has tasks 0..1"},
		{[]string{"server", "--cluster", good, "--job", "ps"}, "--job ps: " + good + " has no such job (it has worker)"},
	} {
		dir := filepath.Join(tmp, "out")
		args := append(slices.Clone(tc.args), "-c", quickConfig(t), "--set", "output.dir="+dir)
		if tc.args[0] == "server" {
			args = tc.args
		}
		code, _, errs := runCLI(context.Background(), args...)
		if code == 0 {
			t.Errorf("%v: exit 0", tc.args)
			continue
		}
		oneLine(t, errs, tc.want)
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%v created %s", tc.args, dir)
		}
	}
}
