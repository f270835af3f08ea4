package scripts

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildPipeline builds bin/pipeline from the repository into a temp dir
// with the current cgo environment (. .deps/env.sh, as make test does).
func buildPipeline(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pipeline")
	cmd := exec.Command("go", "build", "-o", bin, "./pipeline/cmd/pipeline")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runGPUCheck runs scripts/gpu_check and returns its exit code and output.
func runGPUCheck(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command("./gpu_check", args...)
	cmd.Env = append(cmd.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("gpu_check: %v", err)
	return 0, "", ""
}

// TestGPUCheckRefusesWithoutGPU: on a machine (or build) with no usable GPU,
// gpu_check prints the devices, then stops with one line giving the reason
// and exit 1, before any training run.
func TestGPUCheckRefusesWithoutGPU(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not on PATH")
	}
	bin := buildPipeline(t)
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"this build", nil, "gpu_check: no usable GPU: "},
		{"CUDA_VISIBLE_DEVICES=-1", []string{"CUDA_VISIBLE_DEVICES=-1"}, "gpu_check: no usable GPU: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runGPUCheck(t, tc.env, "--pipeline", bin)
			line := strings.TrimSpace(stderr)
			if code != 1 || strings.Contains(line, "\n") || !strings.HasPrefix(line, tc.want) {
				t.Fatalf("exit %d, stderr %q: want exit 1 and one line %q...", code, stderr, tc.want)
			}
			// The reason is the one `pipeline version` gives.
			reason := strings.TrimPrefix(line, "gpu_check: no usable GPU: ")
			if !strings.Contains(stdout, "GPUs: none: "+reason) || !strings.Contains(stdout, "TensorFlow 2.18.0") {
				t.Errorf("stdout lacks the version report with %q:\n%s", reason, stdout)
			}
		})
	}
	code, _, stderr := runGPUCheck(t, nil, "--pipeline", filepath.Join(t.TempDir(), "nope"))
	if code != 1 || !strings.Contains(stderr, "TF_VARIANT=cuda make setup") {
		t.Errorf("missing binary: exit %d, %q", code, stderr)
	}
	for _, args := range [][]string{{"--epochs", "1"}, {"--cases", "resnet"}, {"--precisions", "float64"}, {"--parity-steps", "1"}} {
		code, _, stderr := runGPUCheck(t, nil, append([]string{"--pipeline", bin}, args...)...)
		if code != 2 || !strings.Contains(stderr, "gpu_check: error: "+args[0]) {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
}
