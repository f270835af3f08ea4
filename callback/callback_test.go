package callback

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
	"gopkg.in/yaml.v3"
)

// kerasScript drives the real Keras callbacks (keras/src/callbacks/*.py)
// through a CallbackList on a compiled one-weight model, epoch by epoch as
// keras/src/backend/tensorflow/trainer.py's fit does (on_epoch_end, then
// break on stop_training, then on_train_end). Before each epoch the kernel is
// set to the epoch number, so the kernel after on_train_end names the epoch
// whose weights EarlyStopping restored; model.save_weights is replaced to
// record the epochs ModelCheckpoint(save_best_only=True) saves at.
const kerasScript = `
import json, os, sys, tempfile
import numpy as np
import keras
from keras import callbacks as C
req = json.loads(sys.stdin.read())
x = np.zeros((4, 1), np.float32)
model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse", metrics=["accuracy"])
# One real epoch builds the compiled metrics, so mode="auto" can look up
# accuracy's direction as MonitorCallback._set_monitor_op does.
model.fit(x, x, epochs=1, verbose=0, validation_data=(x, x))
tmp = tempfile.mkdtemp()
out = {"scenarios": [], "nan": []}
f32bits = lambda v: int(np.array(v, np.float32).view(np.uint32))
for sc in req["scenarios"]:
    cfg = sc["callbacks"]
    cbs = []
    if cfg.get("terminate_on_nan"):
        cbs.append(C.TerminateOnNaN())
    if "reduce_lr_on_plateau" in cfg:
        cbs.append(C.ReduceLROnPlateau(**(cfg["reduce_lr_on_plateau"] or {})))
    if "early_stopping" in cfg:
        cbs.append(C.EarlyStopping(**(cfg["early_stopping"] or {})))
    if "best_checkpoint" in cfg:
        cbs.append(C.ModelCheckpoint(os.path.join(tmp, "best.weights.h5"), save_best_only=True,
                                     save_weights_only=True, **(cfg["best_checkpoint"] or {})))
    saved, cur = [], [0]
    model.save_weights = lambda filepath, overwrite=True: saved.append(cur[0])
    model.optimizer.learning_rate = float(sc["lr0"])
    model.stop_training = False
    cl = C.CallbackList(cbs, model=model)
    cl.on_train_begin()
    lrs, stop = [], -1
    for e, row in enumerate(sc["logs"]):
        cur[0] = e
        model.layers[0].kernel.assign([[float(e)]])
        logs = dict(zip(["loss", "accuracy", "val_loss", "val_accuracy"], [float(v) for v in row]))
        cl.on_epoch_end(e, logs)
        lrs.append(f32bits(model.optimizer.learning_rate.numpy()))
        if model.stop_training:
            stop = e
            break
    cl.on_train_end()
    out["scenarios"].append({"lr_bits": lrs, "stop": stop, "saved": saved,
                             "weights_epoch": int(model.layers[0].kernel.numpy()[0, 0])})
t = C.TerminateOnNaN()
t.set_model(model)
for v in req["batch_losses"]:
    model.stop_training = False
    t.on_batch_end(0, {"loss": float(v)})
    out["nan"].append(bool(model.stop_training))
print(json.dumps(out))
`

type scenario struct {
	name      string
	callbacks string // train.callbacks as YAML
	lr0       float64
	rows      [][4]float64 // loss, accuracy, val_loss, val_accuracy per epoch
}

// noisy is a deterministic wobble of amplitude a around base(e).
func noisy(n int, base func(e int) float64, a float64) []float64 {
	v := make([]float64, n)
	for e := range v {
		s := math.Sin(float64(e)*12.9898) * 43758.5453
		v[e] = base(e) + a*(2*(s-math.Floor(s))-1)
	}
	return v
}

func rows(loss, acc, vloss, vacc []float64) [][4]float64 {
	r := make([][4]float64, len(loss))
	for i := range r {
		r[i] = [4]float64{loss[i], acc[i], vloss[i], vacc[i]}
	}
	return r
}

func constant(n int, v float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func scenarios() []scenario {
	decay := func(e int) float64 { return 0.5 + 1.5*math.Exp(-float64(e)/4) }
	rise := func(e int) float64 { return 0.9 - 0.5*math.Exp(-float64(e)/5) }
	// plateau decays, then sits at 0.8 with sub-min_delta noise.
	plateau := func(e int) float64 { return max(0.8, 0.4+1.5*math.Exp(-float64(e)/4)) }
	nan, inf := math.NaN(), math.Inf(1)
	return []scenario{
		{"plateau+cooldown", `{reduce_lr_on_plateau: {monitor: val_loss, factor: 0.5, patience: 2, cooldown: 1, min_lr: 0.001},
			early_stopping: {monitor: val_loss, patience: 5, min_delta: 0.001, restore_best_weights: true},
			best_checkpoint: {monitor: val_accuracy}, terminate_on_nan: true}`, 0.01,
			rows(noisy(30, decay, 0.02), noisy(30, rise, 0.01), noisy(30, plateau, 0.0005), noisy(30, rise, 0.003))},
		{"min_delta edges", `{early_stopping: {monitor: val_loss, min_delta: 0.01, patience: 3},
			reduce_lr_on_plateau: {min_delta: 0.01, patience: 1, factor: 0.3}, best_checkpoint: {}}`, 0.01,
			rows(constant(14, 1), constant(14, 0.5),
				// improvements by exactly, just under and just over min_delta,
				// and values equal in float32 but not in float64.
				[]float64{1, 0.99, 0.9801, 0.9701, 0.9601, 0.95, 0.9, 0.30000000000000004, 0.3, 0.29999999, 0.3, 0.2900001, 0.28, 0.28},
				constant(14, 0.5))},
		{"auto accuracy, baseline, threshold", `{reduce_lr_on_plateau: {monitor: val_accuracy, patience: 1, factor: 0.2, min_delta: 0.005},
			early_stopping: {monitor: accuracy, patience: 2, baseline: 0.6},
			best_checkpoint: {monitor: val_loss, initial_value_threshold: 0.7}}`, 0.05,
			rows(noisy(16, decay, 0.05), []float64{0.3, 0.4, 0.5, 0.55, 0.58, 0.59, 0.595, 0.61, 0.62, 0.62, 0.61, 0.6, 0.63, 0.63, 0.63, 0.63},
				[]float64{0.9, 0.8, 0.75, 0.69, 0.7, 0.68, 0.68, 0.6, 0.61, 0.59, 0.6, 0.5, 0.5, 0.51, 0.52, 0.53},
				[]float64{0.3, 0.4, 0.45, 0.452, 0.454, 0.5, 0.5, 0.503, 0.51, 0.51, 0.515, 0.52, 0.52, 0.52, 0.53, 0.53})},
		// Improvements that stay under the baseline do not reset wait, so
		// the first flat epoch after patience epochs stops training.
		{"baseline not reached", `{early_stopping: {monitor: accuracy, patience: 3, baseline: 0.6}}`, 0.01,
			rows(constant(8, 1), []float64{0.3, 0.4, 0.45, 0.5, 0.5, 0.55, 0.7, 0.7}, constant(8, 1), constant(8, 0))},
		{"min_lr floor, start_from_epoch", `{reduce_lr_on_plateau: {monitor: loss, factor: 0.1, patience: 1, min_lr: 0.0015},
			early_stopping: {monitor: loss, mode: min, patience: 0, start_from_epoch: 6}}`, 0.01,
			rows([]float64{1, 1, 1, 1, 1, 1, 1, 0.9, 0.8, 0.8}, constant(10, 0), constant(10, 0), constant(10, 0))},
		{"patience 0 default es", `{early_stopping: {monitor: loss}}`, 0.01,
			rows([]float64{1, 0.9, 0.8, 0.8, 0.7}, constant(5, 0), constant(5, 0), constant(5, 0))},
		{"NaN first", `{reduce_lr_on_plateau: {patience: 2, factor: 0.5}, early_stopping: {patience: 3, restore_best_weights: true},
			best_checkpoint: {monitor: val_loss}}`, 0.1,
			rows(constant(8, 1), constant(8, 0.1), []float64{nan, 1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4}, constant(8, 0.1))},
		{"NaN and Inf mid", `{reduce_lr_on_plateau: {patience: 2, factor: 0.5, cooldown: 2}, early_stopping: {patience: 4, restore_best_weights: true, min_delta: 0.05},
			best_checkpoint: {monitor: val_accuracy, mode: max}}`, 0.1,
			rows(constant(14, 1), constant(14, 0.1), []float64{1, 0.9, nan, 0.8, inf, 0.79, 0.78, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75, 0.76},
				[]float64{0.1, 0.2, nan, 0.3, 0.3, 0.3, 0.31, 0.32, 0.33, 0.3, 0.3, 0.3, 0.3, 0.3})},
		{"mode max on a loss, long cooldown", `{reduce_lr_on_plateau: {monitor: val_loss, mode: max, patience: 3, factor: 0.7, cooldown: 3, min_delta: 0},
			early_stopping: {monitor: val_accuracy, mode: min, patience: 6}}`, 0.003,
			rows(constant(40, 1), constant(40, 0.5), noisy(40, decay, 0.2), noisy(40, rise, 0.05))},
	}
}

// trajectory is what the training loop observes from a run of callbacks.
type trajectory struct {
	LRBits       []uint32 `json:"lr_bits"` // optimiser learning rate after each epoch
	Stop         int      `json:"stop"`    // epoch stopped at, -1 if none
	Saved        []int    `json:"saved"`   // epochs the best checkpoint was written at
	WeightsEpoch int      `json:"weights_epoch"`
}

func parseYAML(t *testing.T, src string, hasValidation bool) (List, error) {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatal(err)
	}
	return Parse(v, hasValidation)
}

// simulate plays the training loop: logs carry the current float32 learning
// rate, actions are applied as Keras's fit applies them. With resumeAfter ≥ 0
// the callbacks' State is taken after that epoch and restored into a freshly
// parsed List, as --resume would.
func simulate(t *testing.T, sc scenario, resumeAfter int) trajectory {
	t.Helper()
	l, err := parseYAML(t, sc.callbacks, true)
	if err != nil {
		t.Fatalf("%s: %v", sc.name, err)
	}
	tr := trajectory{Stop: -1, Saved: []int{}}
	lr := float64(float32(sc.lr0))
	kept, last := -1, -1
	for e, r := range sc.rows {
		last = e
		logs := Logs{"loss": r[0], "accuracy": r[1], "val_loss": r[2], "val_accuracy": r[3], "learning_rate": lr}
		a, err := l.OnEpochEnd(e, logs)
		if err != nil {
			t.Fatalf("%s epoch %d: %v", sc.name, e, err)
		}
		if a.SetLearningRate != nil {
			lr = *a.SetLearningRate
			if float64(float32(lr)) != lr {
				t.Fatalf("%s: SetLearningRate %v is not a float32 value", sc.name, lr)
			}
		}
		if a.KeepBestWeights {
			kept = e
		}
		if a.SaveBest {
			tr.Saved = append(tr.Saved, e)
		}
		tr.LRBits = append(tr.LRBits, math.Float32bits(float32(lr)))
		if a.Stop {
			tr.Stop = e
			break
		}
		if e == resumeAfter {
			st, err := l.State()
			if err != nil {
				t.Fatal(err)
			}
			if l, err = parseYAML(t, sc.callbacks, true); err != nil {
				t.Fatal(err)
			}
			if err := l.SetState(st); err != nil {
				t.Fatalf("%s: SetState(%s): %v", sc.name, st, err)
			}
		}
	}
	tr.WeightsEpoch = last
	if a := l.OnTrainEnd(); a.RestoreBestWeights {
		tr.WeightsEpoch = kept
	}
	return tr
}

func num64(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func TestCallbacksMatchKeras(t *testing.T) {
	type pyScenario struct {
		Callbacks any         `json:"callbacks"`
		LR0       float64     `json:"lr0"`
		Logs      [][4]string `json:"logs"` // strings: JSON has no NaN
	}
	batchLosses := []float64{0.5, math.NaN(), math.Inf(1), math.Inf(-1), 1e38, 0}
	req := struct {
		Scenarios   []pyScenario `json:"scenarios"`
		BatchLosses []string     `json:"batch_losses"`
	}{}
	for _, b := range batchLosses {
		req.BatchLosses = append(req.BatchLosses, num64(b))
	}
	scs := scenarios()
	for _, sc := range scs {
		var cfg any
		if err := yaml.Unmarshal([]byte(sc.callbacks), &cfg); err != nil {
			t.Fatal(err)
		}
		ps := pyScenario{Callbacks: cfg, LR0: sc.lr0}
		for _, r := range sc.rows {
			ps.Logs = append(ps.Logs, [4]string{num64(r[0]), num64(r[1]), num64(r[2]), num64(r[3])})
		}
		req.Scenarios = append(req.Scenarios, ps)
	}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Scenarios []trajectory `json:"scenarios"`
		NaN       []bool       `json:"nan"`
	}
	out := runPython(t, kerasScript, body)
	// Keras's TerminateOnNaN prints to stdout; the JSON is the last line.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	out = []byte(lines[len(lines)-1])
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python output: %v\n%s", err, out)
	}
	for i, sc := range scs {
		want := got.Scenarios[i]
		have := simulate(t, sc, -1)
		if !reflect.DeepEqual(have, want) {
			t.Errorf("%s:\n Go    %s\n Keras %s", sc.name, show(have), show(want))
			continue
		}
		t.Logf("%s: %s", sc.name, show(want))
		// Resuming after any epoch continues identically.
		for k := 0; k < len(want.LRBits)-1; k++ {
			if r := simulate(t, sc, k); !reflect.DeepEqual(r, want) {
				t.Errorf("%s resumed after epoch %d:\n %s\nwant %s", sc.name, k, show(r), show(want))
			}
		}
	}
	for i, b := range batchLosses {
		if stop := (TerminateOnNaN{}).OnBatchEnd(3, b).Stop; stop != got.NaN[i] {
			t.Errorf("TerminateOnNaN on loss %v: stop %v, Keras %v", b, stop, got.NaN[i])
		}
	}
}

func show(tr trajectory) string {
	lrs := make([]string, len(tr.LRBits))
	for i, b := range tr.LRBits {
		lrs[i] = strconv.FormatFloat(float64(math.Float32frombits(b)), 'g', -1, 32)
	}
	return fmt.Sprintf("stop=%d weights_epoch=%d saved=%v lr=[%s]", tr.Stop, tr.WeightsEpoch, tr.Saved, strings.Join(lrs, " "))
}

func runPython(t *testing.T, script string, stdin []byte) []byte {
	t.Helper()
	return testenv.RunPythonStdin(t, script, stdin)
}
