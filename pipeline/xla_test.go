package pipeline

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/device"
)

// Issue 16: runtime.xla is auto, true or false. Anything else is one line
// naming runtime.xla and the accepted values, a non-zero exit, before any
// data is loaded (the data dir is empty and offline, which would be the
// error otherwise) and before anything is written to the run dir.
func TestXLARefused(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		sets       []string
		want       []string
	}{
		{"--set sometimes", "name: xla\n", []string{"runtime.xla=sometimes"}, []string{"runtime.xla", `"sometimes" is not one of auto, true, false`}},
		{"--set a number", "name: xla\n", []string{"runtime.xla=3"}, []string{"runtime.xla", `"3" is not one of auto, true, false`}},
		{"a number in the file", "runtime:\n  xla: 3\n", nil, []string{"c.yaml:2: runtime.xla", `"3" is not one of auto, true, false`}},
		{"yes in the file", "runtime:\n  xla: yes\n", nil, []string{"runtime.xla", `"yes" is not one of auto, true, false`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refusedOffline(t, tc.file, tc.sets, tc.want)
		})
	}
}

// TestXLAResolved: auto is resolved against the placement before the model
// is built — on with a GPU, off on the CPU — and the resolved value is what
// the session gets (run.json's xla is the model's option), what
// config.resolved.yaml records and what the runtime line says. The GPU cases need no GPU: resolution is pure.
func TestXLAResolved(t *testing.T) {
	for _, tc := range []struct {
		asked config.XLAMode
		gpu   bool
		want  config.XLAMode
		line  string
	}{
		{config.XLAAuto, false, config.XLAOff, "auto → off (CPU)"},
		{config.XLAAuto, true, config.XLAOn, "auto → on (GPU)"},
		{config.XLAOn, false, config.XLAOn, "on"},
		{config.XLAOff, true, config.XLAOff, "off"},
	} {
		r := &jobRun{cfg: config.Default()}
		r.cfg.Runtime.XLA = tc.asked
		if tc.gpu {
			r.placement.GPU = &device.GPU{Name: "test"}
		}
		r.resolveXLA()
		if r.cfg.Runtime.XLA != tc.want || r.xla != tc.line {
			t.Errorf("%s on a GPU %v: resolved %q, line %q; want %q, %q", tc.asked, tc.gpu, r.cfg.Runtime.XLA, r.xla, tc.want, tc.line)
		}
	}

	// A real run here (no GPU): auto → off end to end.
	dir := t.TempDir()
	code, out, errs := runCLI(context.Background(), "run", "-c", quickConfig(t), "--set", "output.dir="+dir,
		"--set", "runtime.xla=auto", "--set", "runtime.device=cpu", "--set", "train.epochs=1",
		"--set", "data.synthetic.train=256", "--set", "data.synthetic.test=64",
		"--set", "output.saved_model=false", "--set", "output.plots=false")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "XLA auto → off (CPU)") {
		t.Errorf("runtime line lacks the resolution:\n%s", errs)
	}
	resolved, err := os.ReadFile(filepath.Join(dir, "config.resolved.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(resolved), "\n    xla: false\n") {
		t.Errorf("config.resolved.yaml lacks xla: false:\n%s", resolved)
	}
	b, err := os.ReadFile(filepath.Join(dir, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rs runSummary
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatal(err)
	}
	if rs.XLA || !strings.Contains(string(b), `"xla": false`) {
		t.Errorf("run.json: xla %v, want false", rs.XLA)
	}
	again, err := config.Load(filepath.Join(dir, "config.resolved.yaml"), nil)
	if err != nil || again.Runtime.XLA != config.XLAOff {
		t.Errorf("config.resolved.yaml loads as runtime.xla %q, %v; want false", again.Runtime.XLA, err)
	}
}
