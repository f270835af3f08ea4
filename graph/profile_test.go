package graph

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
)

// TestProfileStep runs scripts/profile_step.py, the per-kernel step
// profiler of BENCHMARKS.md, on the GraphDef of a real training graph, and
// on garbage, which must fail with one line naming the file.
func TestProfileStep(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Python reference; skipped in -short")
	}
	py := testenv.Python(t)
	script := filepath.Join(testenv.RepoRoot(t), "scripts", "profile_step.py")
	m := compileNet(t, config.ShallowLayers(), Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: optimizer(t, "rmsprop")})
	dir := t.TempDir()
	pb := filepath.Join(dir, "shallow.pb")
	if err := m.WriteGraphDef(pb); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pb")
	if err := os.WriteFile(garbage, []byte("not a graph \xff\xfe"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(py, append([]string{script}, args...)...)
		cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=3")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run(pb, "--steps", "2", "--batch", "16")
	if err != nil {
		t.Fatalf("profile_step on the shallow graph: %v\n%s", err, out)
	}
	// The kernels a shallow step must contain, whatever their share.
	for _, k := range []string{"ms/step untraced", "Conv2D", "MatMul", "\nSparseApplyRMSProp", "ReluGrad"} {
		if !strings.Contains(out, k) {
			t.Errorf("profile lacks %q:\n%s", k, out)
		}
	}

	for _, tc := range []struct{ name, path, want string }{
		{"missing file", filepath.Join(dir, "none.pb"), "none.pb"},
		{"garbage", garbage, "garbage.pb"},
	} {
		out, err := run(tc.path, "--steps", "1")
		if err == nil {
			t.Errorf("%s: exit 0, want an error:\n%s", tc.name, out)
			continue
		}
		last := strings.TrimSpace(out)
		if i := strings.LastIndexByte(last, '\n'); i >= 0 {
			last = last[i+1:]
		}
		if !strings.HasPrefix(last, "profile_step: ") || !strings.Contains(last, tc.want) || !strings.Contains(last, "BENCH_GRAPHDEF") {
			t.Errorf("%s: last line %q, want a profile_step error naming %s and the fix", tc.name, last, tc.want)
		}
	}
}
