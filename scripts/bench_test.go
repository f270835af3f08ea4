package scripts

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchRejectsBadFlags: scripts/bench refuses bad counts and unknown
// cases before running anything, with one error line naming the flag, and
// leaves --out unwritten.
func TestBenchRejectsBadFlags(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not on PATH")
	}
	for _, tc := range []struct{ args, want string }{
		{"--xla-runs 0", "--xla-runs 0: must be at least 1"},
		{"--epochs 1", "--epochs 1: must be at least 2 (the first epoch is warm-up)"},
		{"--runs 0", "--runs 0: must be at least 1"},
		{"--steps -5", "--steps -5: must be at least 1"},
		{"--cases shallow,bogus", "unknown case bogus"},
		{"--xla-runs x", "argument --xla-runs: invalid int value: 'x'"},
		{"--xla maybe", "argument --xla: invalid choice: 'maybe'"},
		{"--precision mixed_float16", "--precision: mixed_float16 is not float32 or mixed_bfloat16 (mixed_float16 needs a GPU)"},
		{"--precision float32,bf16", "--precision: bf16 is not float32 or mixed_bfloat16"},
	} {
		t.Run(tc.args, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
			cmd := exec.Command("./bench", append([]string{"--out", out}, strings.Fields(tc.args)...)...)
			b, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("bench %s: err %v, want exit status 2\n%s", tc.args, err, b)
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, "bench: error: ") || !strings.Contains(last, tc.want) {
				t.Errorf("bench %s: last line %q, want \"bench: error: ...%s\"", tc.args, last, tc.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("bench %s wrote %s (stat: %v)", tc.args, out, err)
			}
		})
	}
}
