package scripts

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestScaleBenchRejectsBadFlags: scripts/scale_bench refuses bad flags
// before starting anything, with one line naming the flag.
func TestScaleBenchRejectsBadFlags(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not on PATH")
	}
	for _, tc := range []struct {
		args, want string
		code       int
	}{
		{"--steps 0", "scale_bench: --steps 0: must be at least 1", 1},
		{"--cases shallow,bogus", "scale_bench: --cases: unknown case bogus", 1},
		{"--workers 0,x", "scale_bench: --workers: 'x' is not a worker count", 1},
		{"--workers 99", "scale_bench: --workers: '99' is not a worker count", 1},
		{"--steps x", "argument --steps: invalid int value: 'x'", 2},
	} {
		b, err := exec.Command("./scale_bench", strings.Fields(tc.args)...).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != tc.code {
			t.Errorf("scale_bench %s: err %v, want exit status %d\n%s", tc.args, err, tc.code, b)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if last := lines[len(lines)-1]; !strings.Contains(last, tc.want) {
			t.Errorf("scale_bench %s: last line %q, want %q", tc.args, last, tc.want)
		}
	}
}
