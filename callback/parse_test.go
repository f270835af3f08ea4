package callback

import (
	"math"
	"strings"
	"testing"
)

func TestParseBadInput(t *testing.T) {
	const p = "train.callbacks"
	for _, c := range []struct {
		yaml  string
		noVal bool // the run has no validation data
		want  string
	}{
		{"[early_stopping]", false, p + ": [early_stopping] is not a mapping"},
		{"{early_stop: {}}", false, p + ".early_stop: unknown key (did you mean early_stopping?)"},
		{"{early_stopping: {monitor: val_acc}}", false, p + `.early_stopping.monitor: unknown metric "val_acc" (did you mean val_accuracy?)`},
		{"{best_checkpoint: {monitor: acc}}", false, p + `.best_checkpoint.monitor: unknown metric "acc" (did you mean accuracy?)`},
		{"{reduce_lr_on_plateau: {monitor: val_los}}", false, p + `.reduce_lr_on_plateau.monitor: unknown metric "val_los" (did you mean val_loss?)`},
		{"{early_stopping: {monitor: loss, restore_best_weights: true}}", true, p + ".early_stopping.restore_best_weights: true needs validation data"},
		{"{early_stopping: {}}", true, p + ".early_stopping.monitor: val_loss needs validation data, and this run has none (set data.validation, or monitor loss)"},
		{"{best_checkpoint: {monitor: val_accuracy}}", true, p + ".best_checkpoint.monitor: val_accuracy needs validation data"},
		{"{reduce_lr_on_plateau: {patience: -1}}", false, p + ".reduce_lr_on_plateau.patience: -1 must be >= 0"},
		{"{early_stopping: {patience: -2}}", false, p + ".early_stopping.patience: -2 must be >= 0"},
		{"{early_stopping: {patience: 2.5}}", false, p + ".early_stopping.patience: 2.5 must be an integer"},
		{"{reduce_lr_on_plateau: {factor: 1}}", false, p + ".reduce_lr_on_plateau.factor: 1 must be in (0, 1)"},
		{"{reduce_lr_on_plateau: {factor: 1.5}}", false, p + ".reduce_lr_on_plateau.factor: 1.5 must be in (0, 1)"},
		{"{reduce_lr_on_plateau: {factor: 0}}", false, p + ".reduce_lr_on_plateau.factor: 0 must be in (0, 1)"},
		{"{reduce_lr_on_plateau: {factor: .nan}}", false, p + ".reduce_lr_on_plateau.factor: NaN must be a finite number"},
		{"{reduce_lr_on_plateau: {min_lr: -0.1}}", false, p + ".reduce_lr_on_plateau.min_lr: -0.1 must be >= 0"},
		{"{reduce_lr_on_plateau: {cooldown: -1}}", false, p + ".reduce_lr_on_plateau.cooldown: -1 must be >= 0"},
		{"{reduce_lr_on_plateau: {min_delta: -0.001}}", false, p + ".reduce_lr_on_plateau.min_delta: -0.001 must be >= 0"},
		{"{reduce_lr_on_plateau: {verbose: 1}}", false, p + ".reduce_lr_on_plateau.verbose: unknown key"},
		{"{reduce_lr_on_plateau: {patience: 2, patiense: 3}}", false, p + ".reduce_lr_on_plateau.patiense: unknown key (did you mean patience?)"},
		{"{early_stopping: {mode: maximum}}", false, p + `.early_stopping.mode: "maximum" is not auto, min or max`},
		{"{early_stopping: {monitor: learning_rate}}", false, p + ".early_stopping.mode: auto cannot tell whether learning_rate should go up or down; set mode: min or mode: max"},
		{"{early_stopping: {baseline: high}}", false, p + ".early_stopping.baseline: high must be a number"},
		{"{early_stopping: {start_from_epoch: -1}}", false, p + ".early_stopping.start_from_epoch: -1 must be >= 0"},
		{"{early_stopping: {restore_best_weights: 1}}", false, p + ".early_stopping.restore_best_weights: 1 must be true or false"},
		{"{early_stopping: 5}", false, p + ".early_stopping: 5 is not a mapping"},
		{"{best_checkpoint: {monitor: val_accuracy, min_delta: 0.1}}", false, p + ".best_checkpoint.min_delta: unknown key"},
		{"{terminate_on_nan: yes please}", false, p + ".terminate_on_nan: yes please must be true or false"},
	} {
		l, err := parseYAML(t, c.yaml, !c.noVal)
		if err == nil {
			t.Errorf("%s: accepted as %#v", c.yaml, l)
			continue
		}
		if !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s:\n got %q\nwant %q", c.yaml, err, c.want)
		}
	}
}

func TestParseDefaultsAndOrder(t *testing.T) {
	l, err := parseYAML(t, "{best_checkpoint: , early_stopping: {}, reduce_lr_on_plateau: {monitor: loss}, terminate_on_nan: true}", true)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range l {
		names = append(names, c.Name())
	}
	if strings.Join(names, " ") != "terminate_on_nan reduce_lr_on_plateau early_stopping best_checkpoint" {
		t.Errorf("order %v", names)
	}
	// Keras's defaults (reduce_lr_on_plateau.py, early_stopping.py).
	r := l[1].(*ReduceLROnPlateau)
	if r.Factor != 0.1 || r.Patience != 10 || r.Cooldown != 0 || r.MinLR != 0 || r.Delta != -1e-4 || r.Max || r.Metric != "loss" {
		t.Errorf("ReduceLROnPlateau defaults %+v", r)
	}
	e := l[2].(*EarlyStopping)
	if e.Patience != 0 || e.Delta != 0 || e.Baseline != nil || e.RestoreBestWeights || e.StartFromEpoch != 0 || e.Metric != "val_loss" {
		t.Errorf("EarlyStopping defaults %+v", e)
	}
	if b := l[3].(*BestCheckpoint); b.Metric != "val_loss" || b.Max {
		t.Errorf("best_checkpoint defaults %+v", b)
	}
	if !l.AdjustsLearningRate() || (List{l[0], l[2]}).AdjustsLearningRate() {
		t.Error("AdjustsLearningRate")
	}
	if l, err := Parse(nil, false); err != nil || len(l) != 0 {
		t.Errorf("Parse(nil) = %v, %v", l, err)
	}
}

func TestStateErrors(t *testing.T) {
	l, err := parseYAML(t, "{early_stopping: {}, best_checkpoint: {}}", true)
	if err != nil {
		t.Fatal(err)
	}
	// NaN and Inf bests survive the state exactly.
	if _, err := l.OnEpochEnd(0, Logs{"val_loss": math.Inf(1)}); err != nil {
		t.Fatal(err)
	}
	st, err := l.State()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := parseYAML(t, "{early_stopping: {}}", true)
	if err := other.SetState(st); err == nil || !strings.Contains(err.Error(), "resume with the run's own train.callbacks") {
		t.Errorf("SetState into a different config: %v", err)
	}
	if err := l.SetState([]byte("garbage")); err == nil {
		t.Error("SetState(garbage) accepted")
	}
	fresh, _ := parseYAML(t, "{early_stopping: {}, best_checkpoint: {}}", true)
	if err := fresh.SetState(st); err != nil {
		t.Fatal(err)
	}
	if b := fresh[1].(*BestCheckpoint).Best(); b == nil || !math.IsInf(*b, 1) {
		t.Errorf("best after SetState = %v", b)
	}
	if _, err := l.OnEpochEnd(1, Logs{"loss": 1}); err == nil || !strings.Contains(err.Error(), "val_loss is not in the epoch logs") {
		t.Errorf("missing monitor: %v", err)
	}
}
