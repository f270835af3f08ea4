package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 16: a precision this runtime cannot run, or one that does not
// exist, is one line naming runtime.precision, a non-zero exit, before any
// data is loaded (the data dir here is empty and offline, which would be
// the error otherwise) and before anything is written to the run dir.
func TestPrecisionRefused(t *testing.T) {
	for _, tc := range []struct {
		name, precision string
		want            []string
	}{
		{"mixed_float16 on a CPU", "mixed_float16", []string{"runtime.precision", "mixed_float16 needs a GPU"}},
		{"unknown precision", "bf16", []string{"runtime.precision", `"bf16" is not one of float32, mixed_bfloat16, mixed_float16`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out, data, cfg := filepath.Join(dir, "out"), filepath.Join(dir, "no-data"), filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(cfg, []byte("name: precision\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, errs := runCLI(context.Background(), "run", "-c", cfg, "--set", "runtime.precision="+tc.precision, "--set", "output.dir="+out,
				"--set", "data.dir="+data, "--set", "data.offline=true")
			line := strings.TrimSpace(errs)
			if code == 0 {
				t.Fatal("exit 0")
			}
			if strings.Contains(line, "\n") {
				t.Errorf("error is not one line:\n%s", errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("error %q lacks %q", line, w)
				}
			}
			entries, _ := os.ReadDir(out)
			for _, e := range entries {
				if e.Name() != ".lock" {
					t.Errorf("run dir has %s after the refusal", e.Name())
				}
			}
		})
	}
}
