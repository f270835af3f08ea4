package report

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
)

func TestPyFloatTable(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0.0"},
		{math.Copysign(0, -1), "-0.0"},
		{1, "1.0"},
		{-2.5, "-2.5"},
		{0.1, "0.1"},
		{123456.0, "123456.0"},
		{1e15, "1000000000000000.0"},
		{1e16, "1e+16"},
		{1.5e16, "1.5e+16"},
		{0.0001, "0.0001"},
		{0.00012345, "0.00012345"},
		{1e-05, "1e-05"},
		{-1.25e-07, "-1.25e-07"},
		{1e100, "1e+100"},
		{5e-324, "5e-324"},
		{float64(float32(0.1)), "0.10000000149011612"},
		{float64(float32(2.302585)), "2.3025848865509033"},
		{math.NaN(), "nan"},
		{math.Inf(1), "inf"},
		{math.Inf(-1), "-inf"},
	} {
		if got := PyFloat(tc.v); got != tc.want {
			t.Errorf("PyFloat(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestPyFloatAgainstPython(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var vals []float64
	for i := 0; i < 400; i++ {
		e := r.IntN(50) - 25
		v := r.NormFloat64() * math.Pow(10, float64(e))
		if i%2 == 0 {
			v = float64(float32(v))
		}
		vals = append(vals, v)
	}
	in, _ := json.Marshal(vals)
	out := testenv.RunPython(t, `import sys, json
print("\n".join(repr(float(v)) for v in json.loads(sys.argv[1])))`, string(in))
	want := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(want) != len(vals) {
		t.Fatalf("python printed %d values, want %d", len(want), len(vals))
	}
	for i, v := range vals {
		if got := PyFloat(v); got != want[i] {
			t.Errorf("PyFloat(%v) = %q, Python repr %q", v, got, want[i])
		}
	}
}

// kerasCSV runs keras.callbacks.CSVLogger on each named list of epoch logs
// and prints {name: file contents}.
const kerasCSV = `
import sys, json, os
os.environ["KERAS_BACKEND"] = "tensorflow"
from keras.callbacks import CSVLogger
out = {}
for name, epochs in json.loads(sys.argv[2]).items():
    path = os.path.join(sys.argv[1], name + ".csv")
    cb = CSVLogger(path)
    cb.on_train_begin()
    for i, logs in enumerate(epochs):
        # Keras hands callbacks Python floats (JSON turns 1.0 into int 1).
        cb.on_epoch_end(i, {k: float(v) for k, v in logs.items()})
    cb.on_train_end()
    out[name] = open(path, newline="").read()
print(json.dumps(out))
`

func TestHistoryCSVMatchesKerasCSVLogger(t *testing.T) {
	if testing.Short() {
		t.Skip("imports Keras in Python; skipped in -short")
	}
	f32 := func(v float64) float64 { return float64(float32(v)) }
	withVal := History{
		{Epoch: 0, Loss: f32(1.8734), Accuracy: f32(0.3312), ValLoss: f32(1.5521), ValAccuracy: f32(0.4431), HasVal: true, Seconds: 31, LearningRate: 0.001},
		{Epoch: 1, Loss: f32(1.4012), Accuracy: f32(0.49876), ValLoss: f32(1.3), ValAccuracy: 0.5, HasVal: true},
		{Epoch: 2, Loss: f32(1.2e-5), Accuracy: 1, ValLoss: f32(2.5e16), ValAccuracy: f32(0.61), HasVal: true},
	}
	noVal := History{
		{Epoch: 0, Loss: f32(2.1), Accuracy: f32(0.2)},
		{Epoch: 1, Loss: f32(1.9), Accuracy: f32(0.25)},
	}
	// Validation on the first epoch only: later rows get NA.
	mixed := History{withVal[0], noVal[1]}
	cases := map[string]History{"with_val": withVal, "no_val": noVal, "mixed": mixed}
	logs := map[string][]map[string]float64{}
	for name, h := range cases {
		for _, e := range h {
			l := map[string]float64{"loss": e.Loss, "accuracy": e.Accuracy}
			if e.HasVal {
				l["val_loss"], l["val_accuracy"] = e.ValLoss, e.ValAccuracy
			}
			logs[name] = append(logs[name], l)
		}
	}
	js, _ := json.Marshal(logs)
	dir := t.TempDir()
	var want map[string]string
	if err := json.Unmarshal(testenv.RunPython(t, kerasCSV, dir, string(js)), &want); err != nil {
		t.Fatal(err)
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "history_"+name+".csv")
			if err := WriteHistoryCSV(path, h); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if want[name] == "" || string(got) != want[name] {
				t.Fatalf("history.csv differs from Keras CSVLogger:\ngot  %q\nwant %q", got, want[name])
			}
		})
	}
}

func TestWriteAtomicLeavesNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "history.csv")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := History{{Epoch: 0, Loss: 1, Accuracy: 0.5}}
	if err := WriteHistoryCSV(path, h); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("dir holds %d entries, want only history.csv", len(ents))
	}
	b, _ := os.ReadFile(path)
	if string(b) != "epoch,accuracy,loss,val_accuracy,val_loss\r\n0,0.5,1.0,NA,NA\r\n" {
		t.Fatalf("content %q", b)
	}
	bad := filepath.Join(dir, "missing", "history.csv")
	err := WriteHistoryCSV(bad, h)
	if err == nil || !strings.Contains(err.Error(), bad) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line naming %s", err, bad)
	}
}
