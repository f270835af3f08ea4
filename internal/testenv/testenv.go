// Package testenv locates what tests need from the setup: the repository
// root and the Python reference interpreter (TensorFlow 2.18 + Keras 3).
package testenv

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Python returns the setup venv's python (PIPELINE_PYTHON, else
// .venv/bin/python). Without one the test is skipped, unless
// PIPELINE_REQUIRE_PYTHON=1 (set by `make test`), where it fails: parity
// tests must not silently vanish in CI.
func Python(t testing.TB) string {
	t.Helper()
	py := os.Getenv("PIPELINE_PYTHON")
	if py == "" {
		py = filepath.Join(RepoRoot(t), ".venv", "bin", "python")
	}
	if _, err := os.Stat(py); err != nil {
		if os.Getenv("PIPELINE_REQUIRE_PYTHON") == "1" {
			t.Fatalf("Python reference %s missing: run make setup", py)
		}
		t.Skipf("Python reference %s missing (run make setup); skipping", py)
	}
	return py
}

// RunPython runs script (Python source) with args under the reference
// interpreter and returns its stdout; stderr is shown on failure.
func RunPython(t testing.TB, script string, args ...string) []byte {
	t.Helper()
	return RunPythonStdin(t, script, nil, args...)
}

// RunPythonStdin is RunPython with stdin fed to the script.
func RunPythonStdin(t testing.TB, script string, stdin []byte, args ...string) []byte {
	t.Helper()
	py := Python(t)
	cmd := exec.Command(py, append([]string{"-c", script}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=2", "CUDA_VISIBLE_DEVICES=")
	var stderr []byte
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr)
	}
	return out
}

// FreeAddrs returns n loopback addresses (127.0.0.1:port) whose ports were
// free a moment ago, for test servers.
func FreeAddrs(tb testing.TB, n int) []string {
	tb.Helper()
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		l.Close()
	}
	return addrs
}
