package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"slices"
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
			refusedOffline(t, "name: precision\n", []string{"runtime.precision=" + tc.precision}, tc.want, ".lock")
		})
	}
}

// refusedOffline runs `pipeline run` on a config with body and the --set
// values, with an empty offline data dir (so loading data would be the
// error), and checks the refusal: a non-zero exit, one error line holding
// every want, and no entry in the run dir but those named in allowed.
func refusedOffline(t *testing.T, body string, sets, want []string, allowed ...string) {
	t.Helper()
	dir := t.TempDir()
	out, data, cfg := filepath.Join(dir, "out"), filepath.Join(dir, "no-data"), filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "-c", cfg, "--set", "output.dir=" + out, "--set", "data.dir=" + data, "--set", "data.offline=true"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	code, _, errs := runCLI(context.Background(), args...)
	line := strings.TrimSpace(errs)
	if code == 0 {
		t.Fatal("exit 0")
	}
	if strings.Contains(line, "\n") {
		t.Errorf("error is not one line:\n%s", errs)
	}
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Errorf("error %q lacks %q", line, w)
		}
	}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		if !slices.Contains(allowed, e.Name()) {
			t.Errorf("run dir has %s after the refusal", e.Name())
		}
	}
}
