package pipeline

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSweep runs a 2×1 grid on the quick config, reads sweep.csv back,
// and runs the sweep again: finished combinations are kept, not retrained.
func TestSweep(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sweep")
	args := []string{"sweep", "-c", quickConfig(t), "--set", "train.epochs=1", "--out", out,
		"--grid", "train.batch_size=64,128", "--grid", "train.optimizer.learning_rate=0.002"}
	code, _, errs := runCLI(context.Background(), args...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	f, err := os.Open(filepath.Join(out, "sweep.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || strings.Join(rows[0], ",") != "run,train.batch_size,train.optimizer.learning_rate,status,best_val_accuracy,test_accuracy,minutes" {
		t.Fatalf("sweep.csv:\n%v", rows)
	}
	for i, r := range rows[1:] {
		if r[1] != []string{"64", "128"}[i] || r[3] != "completed" || r[4] == "" || r[5] == "" {
			t.Errorf("row %d: %v", i+1, r)
		}
		if _, err := os.Stat(filepath.Join(out, r[0], "run.json")); err != nil {
			t.Errorf("row %d has no run: %v", i+1, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, "sweep.md"))
	if !strings.Contains(string(md), "| best val_accuracy | test accuracy | minutes |") {
		t.Errorf("sweep.md:\n%s", md)
	}
	code, _, errs = runCLI(context.Background(), args...)
	if code != 0 || strings.Count(errs, "finished before; kept") != 2 {
		t.Fatalf("second sweep: exit %d, want both runs kept:\n%s", code, errs)
	}
}

// TestSweepBadInput: a grid key or value the config refuses stops the
// sweep before anything runs, naming the combination.
func TestSweepBadInput(t *testing.T) {
	for _, tc := range []struct {
		grids []string
		want  string
	}{
		{nil, "no --grid"},
		{[]string{"train.batch_size"}, "want key=v1,v2"},
		{[]string{"train.batchsize=64"}, "did you mean train.batch_size"},
		{[]string{"train.batch_size=64,-1"}, "train.batch_size"},
		{[]string{"train.epochs=1", "train.epochs=2"}, "given twice"},
		{[]string{"train.optimizer.rho=0.5,2"}, "train.optimizer.rho"},
	} {
		out := filepath.Join(t.TempDir(), "sweep")
		args := []string{"sweep", "-c", quickConfig(t), "--out", out}
		for _, g := range tc.grids {
			args = append(args, "--grid", g)
		}
		code, _, errs := runCLI(context.Background(), args...)
		line := strings.TrimSpace(errs)
		if code == 0 || !strings.Contains(line, tc.want) || strings.Contains(line, "\n") {
			t.Errorf("%v: exit %d, error %q, want one line with %q", tc.grids, code, line, tc.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%v: a refused sweep made %s", tc.grids, out)
		}
	}
}
