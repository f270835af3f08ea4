// Package scripts holds the project's setup, reference and benchmark
// scripts; its tests check the setup and bench scripts' behaviour.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func runSetup(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"setup.sh"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestSetupRejectsBadLibtensorflowDir: a LIBTENSORFLOW_DIR that is missing
// or not in the tarball layout stops setup with one line naming the fix.
func TestSetupRejectsBadLibtensorflowDir(t *testing.T) {
	empty := t.TempDir()
	noLib := t.TempDir()
	os.MkdirAll(filepath.Join(noLib, "include", "tensorflow", "c"), 0o755)
	os.WriteFile(filepath.Join(noLib, "include", "tensorflow", "c", "c_api.h"), nil, 0o644)
	cases := []struct{ name, dir, want string }{
		{"missing", filepath.Join(empty, "nope"), "does not exist"},
		{"no headers", empty, "include/tensorflow/c/c_api.h"},
		{"no library", noLib, "lib/libtensorflow.so"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runSetup(t, []string{"LIBTENSORFLOW_DIR=" + tc.dir, "DEPS_DIR=" + t.TempDir()}, "--no-python", "--no-build")
			if err == nil {
				t.Fatalf("setup accepted %s:\n%s", tc.dir, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			last := lines[len(lines)-1]
			if !strings.Contains(last, "LIBTENSORFLOW_DIR") || !strings.Contains(last, tc.want) {
				t.Fatalf("last line %q lacks LIBTENSORFLOW_DIR and %q", last, tc.want)
			}
		})
	}
}

// TestSetupAcceptsTarballLayout: an existing libtensorflow in the official
// tarball layout (here the wheel's files arranged that way) is used as is.
func TestSetupAcceptsTarballLayout(t *testing.T) {
	wheel, err := filepath.EvalSymlinks(filepath.Join("..", ".deps", "libtensorflow", "lib", "libtensorflow.so"))
	if err != nil {
		t.Skip("no libtensorflow set up yet (run make setup)")
	}
	wdir := filepath.Dir(wheel)
	tarball := t.TempDir()
	os.MkdirAll(filepath.Join(tarball, "lib"), 0o755)
	os.Symlink(filepath.Join(wdir, "include"), filepath.Join(tarball, "include"))
	os.Symlink(wheel, filepath.Join(tarball, "lib", "libtensorflow.so.2"))
	os.Symlink("libtensorflow.so.2", filepath.Join(tarball, "lib", "libtensorflow.so"))
	os.Symlink(filepath.Join(wdir, "libtensorflow_framework.so.2"), filepath.Join(tarball, "lib", "libtensorflow_framework.so.2"))
	deps := t.TempDir()
	out, err := runSetup(t, []string{"LIBTENSORFLOW_DIR=" + tarball, "DEPS_DIR=" + deps}, "--no-python", "--no-build")
	if err != nil {
		t.Fatalf("setup rejected a tarball-layout libtensorflow: %v\n%s", err, out)
	}
	env, err := os.ReadFile(filepath.Join(deps, "env.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), "-Wl,-rpath,"+tarball+"/lib") {
		t.Fatalf("env.sh does not link against %s:\n%s", tarball, env)
	}
}

// TestSetupRejectsBadVariant: an unknown TF_VARIANT, or the CUDA variant
// combined with LIBTENSORFLOW_DIR, stops setup before it installs anything.
func TestSetupRejectsBadVariant(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"TF_VARIANT=rocm"}, "TF_VARIANT=rocm is not one of cpu, cuda"},
		{[]string{"TF_VARIANT=cuda", "LIBTENSORFLOW_DIR=/opt/x"}, "unset LIBTENSORFLOW_DIR or TF_VARIANT"},
	} {
		deps := t.TempDir()
		out, err := runSetup(t, append(tc.env, "DEPS_DIR="+deps, "CUDA_VENV="+filepath.Join(deps, "venv")), "--no-python", "--no-build")
		if err == nil || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: err %v, output %q; want one line with %q", tc.env, err, out, tc.want)
		}
		if entries, _ := os.ReadDir(deps); len(entries) != 0 {
			t.Errorf("%v: setup wrote %v", tc.env, entries)
		}
	}
}
