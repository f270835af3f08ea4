package scripts

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCUDABuild is opt-in (PIPELINE_TEST_CUDA=1) because it downloads
// tensorflow[and-cuda]==2.18.0, about 2.3 GB, into .venv-cuda (cached by a
// stamp afterwards). It sets up the CUDA variant, checks that the laid-out
// prefix lets TensorFlow's RUNPATH $ORIGIN/../nvidia/<pkg>/lib find the CUDA
// libraries, builds bin/pipeline against it into a temp dir and, with
// LD_LIBRARY_PATH unset, checks that it loads libcudart from the prefix,
// reports the GPUs or why there are none, and trains one epoch.
// DEPS_DIR and CUDA_VENV are honoured as by setup.sh.
func TestCUDABuild(t *testing.T) {
	if os.Getenv("PIPELINE_TEST_CUDA") != "1" {
		t.Skip("opt-in: PIPELINE_TEST_CUDA=1 downloads tensorflow[and-cuda] (~2.3 GB)")
	}
	root, _ := filepath.Abs("..")
	deps := os.Getenv("DEPS_DIR")
	if deps == "" {
		deps = filepath.Join(root, ".deps")
	}
	out, err := runSetup(t, []string{"TF_VARIANT=cuda"}, "--no-python", "--no-build")
	if err != nil {
		t.Fatalf("TF_VARIANT=cuda setup.sh: %v\n%s", err, out)
	}
	prefix := filepath.Join(deps, "libtensorflow-cuda")
	lib := filepath.Join(prefix, "lib", "libtensorflow_cc.so.2")

	// Every $ORIGIN/../nvidia/<pkg>/lib in the RUNPATH, with $ORIGIN the
	// directory the loader opens the library from, must exist.
	f, err := elf.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	if f.Section(".nv_fatbin") == nil {
		t.Fatalf("%s has no .nv_fatbin section: not the CUDA build", lib)
	}
	runpath, err := f.DynString(elf.DT_RUNPATH)
	f.Close()
	if err != nil || len(runpath) != 1 {
		t.Fatalf("RUNPATH of %s: %v %v", lib, runpath, err)
	}
	found := 0
	for _, dir := range strings.Split(runpath[0], ":") {
		if !strings.HasPrefix(dir, "$ORIGIN/../nvidia/") {
			continue
		}
		d := strings.Replace(dir, "$ORIGIN", filepath.Join(prefix, "lib"), 1)
		libs, _ := filepath.Glob(filepath.Join(d, "lib*.so*"))
		if len(libs) == 0 {
			t.Errorf("RUNPATH entry %s resolves to %s, which holds no library", dir, d)
		}
		found++
	}
	if found < 7 { // cufft cudnn cusolver cublas cusparse cuda_cupti cuda_runtime
		t.Fatalf("RUNPATH has %d $ORIGIN/../nvidia entries: %s", found, runpath[0])
	}

	// Build against env-cuda.sh, then run without LD_LIBRARY_PATH.
	bin := filepath.Join(t.TempDir(), "pipeline")
	build := exec.Command("bash", "-c", `. "$1" && go build -o "$2" ./pipeline/cmd/pipeline`, "build", filepath.Join(deps, "env-cuda.sh"), bin)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build against env-cuda.sh: %v\n%s", err, out)
	}
	env := []string{"TF_CPP_MIN_LOG_LEVEL=3"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LD_LIBRARY_PATH=") && !strings.HasPrefix(kv, "CUDA_VISIBLE_DEVICES=") && !strings.HasPrefix(kv, "TF_CPP_MIN_LOG_LEVEL=") {
			env = append(env, kv)
		}
	}
	run := func(extraEnv []string, args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = root
		cmd.Env = append(append([]string{}, env...), extraEnv...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}

	stdout, stderr, err := run([]string{"LD_DEBUG=libs"}, "version")
	if err != nil {
		t.Fatalf("version: %v\n%s%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout, "CUDA build") {
		t.Errorf("version does not report the CUDA build:\n%s", stdout)
	}
	// The loader keeps the unresolved $ORIGIN path, so match it literally.
	wantCudart := prefix + "/lib/../nvidia/cuda_runtime/lib/libcudart.so.12"
	if !strings.Contains(stderr, "calling init: "+wantCudart) {
		t.Errorf("libcudart.so.12 not loaded from %s (LD_DEBUG=libs):\n%s", wantCudart, grepLines(stderr, "cudart"))
	}
	if m, _ := filepath.Glob("/dev/nvidia*"); len(m) == 0 {
		if !strings.Contains(stdout, "GPUs: none: no NVIDIA driver: libcuda.so.1 cannot be loaded") {
			t.Errorf("no driver here, but version says:\n%s", stdout)
		}
	} else if !strings.Contains(stdout, "GPU gpu:0 ") {
		t.Logf("NVIDIA device nodes present; version says:\n%s", stdout)
	}
	stdout, _, _ = run([]string{"CUDA_VISIBLE_DEVICES=-1"}, "version")
	if !strings.Contains(stdout, `GPUs: none: CUDA_VISIBLE_DEVICES="-1" hides every GPU`) {
		t.Errorf("CUDA_VISIBLE_DEVICES=-1: version says:\n%s", stdout)
	}

	// scripts/gpu_check stops with the same reason before training.
	if m, _ := filepath.Glob("/dev/nvidia*"); len(m) == 0 {
		// LD_LIBRARY_PATH emptied: an inherited .deps/env.sh one would win
		// over the binary's RUNPATH and load the CPU libtensorflow.
		code, _, errs := runGPUCheck(t, []string{"LD_LIBRARY_PATH="}, "--pipeline", bin)
		if code != 1 || !strings.HasPrefix(errs, "gpu_check: no usable GPU: no NVIDIA driver: libcuda.so.1") {
			t.Errorf("gpu_check with the CUDA build and no driver: exit %d, %q", code, errs)
		}
	}

	// One epoch on a tiny synthetic set (on the CPU here: auto finds no GPU).
	dir := t.TempDir()
	stdout, stderr, err = run(nil, "run", "-c", "configs/quick.yaml", "--set", "train.epochs=1",
		"--set", "data.synthetic.train=256", "--set", "data.synthetic.test=64", "--set", "output.dir="+dir,
		"--set", "output.plots=false", "--set", "output.saved_model=false", "--set", "output.tensorboard=false")
	if err != nil {
		t.Fatalf("one-epoch run with the CUDA build: %v\n%s", err, stderr)
	}
	// runtime.device auto on a machine without a GPU: the CPU.
	if !strings.Contains(stderr, "runtime: TensorFlow 2.18.0 on /job:localhost/replica:0/task:0/device:CPU:0") {
		t.Errorf("run log lacks the runtime line with the CPU device:\n%s", stderr)
	}
	hist, err := os.ReadFile(filepath.Join(dir, "history.csv"))
	if err != nil || len(strings.Split(strings.TrimSpace(string(hist)), "\n")) != 2 {
		t.Fatalf("history.csv after one epoch: %v\n%s", err, hist)
	}
	t.Logf("CUDA build trained one epoch:\n%s", hist)
}

func grepLines(s, sub string) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), sub) {
			b.WriteString(sc.Text() + "\n")
		}
	}
	return b.String()
}
