package scripts

import (
	"errors"
	"os"
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
	for _, args := range [][]string{{"--epochs", "1"}, {"--cases", "resnet"}, {"--precisions", "float64"}, {"--precisions", "float32,mixed_bfloat16"}, {"--parity-steps", "1"}} {
		code, _, stderr := runGPUCheck(t, nil, append([]string{"--pipeline", bin}, args...)...)
		if code != 2 || !strings.Contains(stderr, "gpu_check: error: "+args[0]) {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
}

// TestGPUCheckPlan runs gpu_check --dry-run against a stand-in pipeline
// that reports one GPU, and checks the runs it plans: each case in
// float32 and mixed_float16 on the GPU with XLA off and on, and the CPU
// references once, in float32 (mixed_float16 is refused on a CPU), with
// the GPU hidden.
func TestGPUCheckPlan(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not on PATH")
	}
	fake := filepath.Join(t.TempDir(), "pipeline")
	script := "#!/bin/sh\n[ \"$1\" = version ] && printf 'TensorFlow 2.18.0 (CUDA build)\\nGPU gpu:0 NVIDIA A100-SXM4-40GB, compute capability 8.0, 40960 MiB\\n'\nexit 0\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runGPUCheck(t, nil, "--pipeline", fake, "--dry-run", "--cases", "shallow")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var gpu, cpu []string
	for _, l := range strings.Split(stdout, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "would run: CUDA_VISIBLE_DEVICES=-1 "):
			cpu = append(cpu, l)
		case strings.HasPrefix(l, "would run: "):
			gpu = append(gpu, l)
		}
	}
	// 2 CPU references (1 step, 10 steps), shared by both precisions; per
	// precision and XLA setting 1 timed run and 2 parity runs on the GPU.
	if len(cpu) != 2 || len(gpu) != 12 {
		t.Fatalf("planned %d CPU and %d GPU runs, want 2 and 12:\n%s", len(cpu), len(gpu), stdout)
	}
	for _, l := range cpu {
		if !strings.Contains(l, "runtime.device=cpu") || !strings.Contains(l, "runtime.precision=float32") || strings.Contains(l, "mixed_float16") {
			t.Errorf("CPU reference %q: want runtime.device=cpu in float32", l)
		}
	}
	n16 := 0
	for _, l := range gpu {
		if !strings.Contains(l, "runtime.device=gpu") {
			t.Errorf("GPU run %q lacks runtime.device=gpu", l)
		}
		if strings.Contains(l, "runtime.precision=mixed_float16") {
			n16++
		}
	}
	if n16 != 6 {
		t.Errorf("%d GPU runs in mixed_float16, want 6", n16)
	}
}
