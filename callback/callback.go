// Package callback reproduces Keras's training callbacks (ReduceLROnPlateau,
// EarlyStopping, best-only ModelCheckpoint, TerminateOnNaN) as pure state
// machines fed with epoch logs, whose decisions the training loop applies.
//
// References (Keras 3.15.1 in the venv): keras/src/callbacks/
// monitor_callback.py, reduce_lr_on_plateau.py, early_stopping.py,
// model_checkpoint.py, terminate_on_nan.py, and the fit loop in
// keras/src/backend/tensorflow/trainer.py.
//
// A callback is constructed in the state Keras's on_train_begin leaves it
// in; a resumed run restores it with SetState instead.
package callback

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Logs are one epoch's metrics as Keras's fit hands them to on_epoch_end:
// loss, accuracy, val_loss, val_accuracy and learning_rate (the float32 rate
// the epoch trained with).
type Logs = map[string]float64

// Action is what a callback asks the training loop to do. The zero Action
// asks nothing.
type Action struct {
	// SetLearningRate is the new learning rate (a float32 value widened) the
	// optimiser's variable takes before the next epoch.
	SetLearningRate *float64
	// Stop ends training after this epoch (after this batch for
	// OnBatchEnd), as model.stop_training = True does.
	Stop bool
	// SaveBest asks to write the best-only checkpoint with the current weights.
	SaveBest bool
	// KeepBestWeights asks to keep a copy of the current weights (in memory
	// and in the resume checkpoint) as the ones RestoreBestWeights loads.
	KeepBestWeights bool
	// RestoreBestWeights (from OnTrainEnd) asks to load the weights last kept
	// by KeepBestWeights before the final artifacts are written.
	RestoreBestWeights bool
	// Reason says why, for the progress line and run.json.
	Reason string
}

// merge folds b into a: flags OR, the later learning rate wins, reasons join.
func (a Action) merge(b Action) Action {
	if b.SetLearningRate != nil {
		a.SetLearningRate = b.SetLearningRate
	}
	a.Stop = a.Stop || b.Stop
	a.SaveBest = a.SaveBest || b.SaveBest
	a.KeepBestWeights = a.KeepBestWeights || b.KeepBestWeights
	a.RestoreBestWeights = a.RestoreBestWeights || b.RestoreBestWeights
	switch {
	case a.Reason == "":
		a.Reason = b.Reason
	case b.Reason != "":
		a.Reason += "; " + b.Reason
	}
	return a
}

// Callback is one Keras callback's state machine.
type Callback interface {
	// Name is the callback's key under train.callbacks.
	Name() string
	// OnBatchEnd sees each training batch's loss (batch counts from 0
	// within the epoch).
	OnBatchEnd(batch int, loss float64) Action
	// OnEpochEnd sees the epoch's logs (epoch counts from 0, as in Keras).
	OnEpochEnd(epoch int, logs Logs) (Action, error)
	// OnTrainEnd runs once after the last epoch.
	OnTrainEnd() Action
	// State and SetState save and restore every counter exactly.
	State() ([]byte, error)
	SetState([]byte) error
}

// List runs callbacks in order and merges their actions, as Keras's
// CallbackList does.
type List []Callback

// OnBatchEnd runs every callback's OnBatchEnd.
func (l List) OnBatchEnd(batch int, loss float64) Action {
	var a Action
	for _, c := range l {
		a = a.merge(c.OnBatchEnd(batch, loss))
	}
	return a
}

// OnEpochEnd runs every callback's OnEpochEnd on a copy of logs each.
func (l List) OnEpochEnd(epoch int, logs Logs) (Action, error) {
	var a Action
	for _, c := range l {
		b, err := c.OnEpochEnd(epoch, logs)
		if err != nil {
			return Action{}, fmt.Errorf("callback %s, epoch %d: %w", c.Name(), epoch+1, err)
		}
		a = a.merge(b)
	}
	return a, nil
}

// OnTrainEnd runs every callback's OnTrainEnd.
func (l List) OnTrainEnd() Action {
	var a Action
	for _, c := range l {
		a = a.merge(c.OnTrainEnd())
	}
	return a
}

// AdjustsLearningRate reports whether a callback sets the learning rate;
// Keras refuses that when the optimiser's learning rate is a schedule, and so
// should the caller.
func (l List) AdjustsLearningRate() bool {
	for _, c := range l {
		if _, ok := c.(*ReduceLROnPlateau); ok {
			return true
		}
	}
	return false
}

// State is every callback's state, keyed by name (JSON).
func (l List) State() ([]byte, error) {
	m := map[string]json.RawMessage{}
	for _, c := range l {
		b, err := c.State()
		if err != nil {
			return nil, fmt.Errorf("callback %s: %w", c.Name(), err)
		}
		m[c.Name()] = b
	}
	return json.Marshal(m)
}

// SetState restores State's output into a List parsed from the same config.
func (l List) SetState(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("callback state: %w", err)
	}
	if len(m) != len(l) {
		return fmt.Errorf("callback state holds %d callbacks, the config has %d (resume with the run's own train.callbacks)", len(m), len(l))
	}
	for _, c := range l {
		s, ok := m[c.Name()]
		if !ok {
			return fmt.Errorf("callback state has no %s (resume with the run's own train.callbacks)", c.Name())
		}
		if err := c.SetState(s); err != nil {
			return fmt.Errorf("callback %s state: %w", c.Name(), err)
		}
	}
	return nil
}

// monitor is MonitorCallback: which metric, which direction, min_delta.
type monitor struct {
	Metric string
	// Max: larger is better (Keras's monitor_op = ops.greater).
	Max bool
	// Delta is Keras's signed self.min_delta: |min_delta|, negated for min.
	Delta float64
}

func newMonitor(metric string, max bool, minDelta float64) monitor {
	d := math.Abs(minDelta)
	if !max {
		d = -d
	}
	return monitor{Metric: metric, Max: max, Delta: d}
}

// improves is MonitorCallback._is_improvement: Keras subtracts min_delta in
// float64 (Python floats) and then compares with ops.less/ops.greater, which
// convert both Python floats to float32 tensors, so values equal in float32
// never improve on each other.
func (m monitor) improves(current float64, reference *float64) bool {
	if reference == nil {
		return true
	}
	a, b := float32(current-m.Delta), float32(*reference)
	if m.Max {
		return a > b
	}
	return a < b
}

func (m monitor) value(logs Logs) (float64, error) {
	v, ok := logs[m.Metric]
	if !ok {
		return 0, fmt.Errorf("monitored metric %s is not in the epoch logs", m.Metric)
	}
	return v, nil
}

// num is a float64 that survives JSON exactly, NaN and ±Inf included.
type num float64

func (f num) MarshalJSON() ([]byte, error) {
	return json.Marshal(strconv.FormatFloat(float64(f), 'g', -1, 64))
}

func (f *num) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return err
	}
	*f = num(v)
	return nil
}

func toNum(p *float64) *num {
	if p == nil {
		return nil
	}
	n := num(*p)
	return &n
}

func fromNum(p *num) *float64 {
	if p == nil {
		return nil
	}
	f := float64(*p)
	return &f
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }

// ReduceLROnPlateau is Keras's ReduceLROnPlateau.
type ReduceLROnPlateau struct {
	monitor
	Factor, MinLR      float64
	Patience, Cooldown int

	best            *float64
	wait, cooldownN int
}

type rlrpState struct {
	Best            *num `json:"best"`
	Wait            int  `json:"wait"`
	CooldownCounter int  `json:"cooldown_counter"`
}

// Name is the config key.
func (c *ReduceLROnPlateau) Name() string { return "reduce_lr_on_plateau" }

// OnBatchEnd does nothing.
func (c *ReduceLROnPlateau) OnBatchEnd(int, float64) Action { return Action{} }

// OnTrainEnd does nothing.
func (c *ReduceLROnPlateau) OnTrainEnd() Action { return Action{} }

// OnEpochEnd follows ReduceLROnPlateau.on_epoch_end; logs must hold
// learning_rate, the rate the optimiser's float32 variable holds.
func (c *ReduceLROnPlateau) OnEpochEnd(epoch int, logs Logs) (Action, error) {
	current, err := c.value(logs)
	if err != nil {
		return Action{}, err
	}
	lr, ok := logs["learning_rate"]
	if !ok {
		return Action{}, fmt.Errorf("learning_rate is not in the epoch logs")
	}
	if c.cooldownN > 0 {
		c.cooldownN--
		c.wait = 0
	}
	if c.improves(current, c.best) {
		c.best = &current
		c.wait = 0
		return Action{}, nil
	}
	if c.cooldownN > 0 {
		return Action{}, nil
	}
	c.wait++
	if c.wait < c.Patience {
		return Action{}, nil
	}
	// _reduce_optimizer_lr: old_lr is read from the float32 variable,
	// compared with np.float32(min_lr), multiplied and floored in float64,
	// and assigned back to the float32 variable. At the floor nothing is
	// reduced and wait/cooldown are left as they are.
	old := float64(float32(lr))
	if !(float32(old) > float32(c.MinLR)) {
		return Action{}, nil
	}
	next := float64(float32(max(old*c.Factor, c.MinLR)))
	c.cooldownN = c.Cooldown
	c.wait = 0
	return Action{SetLearningRate: &next, Reason: fmt.Sprintf("epoch %d: ReduceLROnPlateau reducing learning rate to %s (%s did not improve for %d epochs)",
		epoch+1, fmtNum(next), c.Metric, c.Patience)}, nil
}

// State saves best, wait and the cooldown counter.
func (c *ReduceLROnPlateau) State() ([]byte, error) {
	return json.Marshal(rlrpState{toNum(c.best), c.wait, c.cooldownN})
}

// SetState restores State's output.
func (c *ReduceLROnPlateau) SetState(b []byte) error {
	var s rlrpState
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	c.best, c.wait, c.cooldownN = fromNum(s.Best), s.Wait, s.CooldownCounter
	return nil
}

// EarlyStopping is Keras's EarlyStopping.
type EarlyStopping struct {
	monitor
	Patience           int
	Baseline           *float64
	RestoreBestWeights bool
	StartFromEpoch     int

	wait, stoppedEpoch, bestEpoch int
	best                          *float64
	haveBestWeights               bool
}

type esState struct {
	Wait            int  `json:"wait"`
	StoppedEpoch    int  `json:"stopped_epoch"`
	Best            *num `json:"best"`
	BestEpoch       int  `json:"best_epoch"`
	HaveBestWeights bool `json:"have_best_weights"`
}

// Name is the config key.
func (c *EarlyStopping) Name() string { return "early_stopping" }

// OnBatchEnd does nothing.
func (c *EarlyStopping) OnBatchEnd(int, float64) Action { return Action{} }

// BestEpoch is the epoch (from 0) whose weights RestoreBestWeights restores.
func (c *EarlyStopping) BestEpoch() int { return c.bestEpoch }

// StoppedEpoch is the epoch (from 0) training stopped at, 0 if it did not.
func (c *EarlyStopping) StoppedEpoch() int { return c.stoppedEpoch }

// OnEpochEnd follows EarlyStopping.on_epoch_end. Note Keras counts wait
// before the improvement test and checks patience only on epochs that do
// not improve, and never stops at epoch 0.
func (c *EarlyStopping) OnEpochEnd(epoch int, logs Logs) (Action, error) {
	current, err := c.value(logs)
	if err != nil {
		return Action{}, err
	}
	if epoch < c.StartFromEpoch {
		return Action{}, nil
	}
	var a Action
	if c.RestoreBestWeights && !c.haveBestWeights {
		c.haveBestWeights = true
		c.bestEpoch = epoch
		a.KeepBestWeights = true
	}
	c.wait++
	if c.improves(current, c.best) {
		c.best = &current
		c.bestEpoch = epoch
		if c.RestoreBestWeights {
			a.KeepBestWeights = true
		}
		if c.Baseline == nil || c.improves(current, c.Baseline) {
			c.wait = 0
		}
		return a, nil
	}
	// epoch > 0 is Keras's guard; it cannot fail here because the first
	// counted epoch always improves on best = None.
	if c.wait >= c.Patience && epoch > 0 {
		c.stoppedEpoch = epoch
		a.Stop = true
		a.Reason = fmt.Sprintf("epoch %d: early stopping (%s did not improve on %s for %d epochs)", epoch+1, c.Metric, fmtNum(*c.best), c.wait)
	}
	return a, nil
}

// OnTrainEnd asks to restore the kept weights when restore_best_weights is
// set and weights were kept (whether or not training stopped early).
func (c *EarlyStopping) OnTrainEnd() Action {
	if c.RestoreBestWeights && c.haveBestWeights {
		return Action{RestoreBestWeights: true, Reason: fmt.Sprintf("restoring model weights from the end of the best epoch: %d", c.bestEpoch+1)}
	}
	return Action{}
}

// State saves every counter.
func (c *EarlyStopping) State() ([]byte, error) {
	return json.Marshal(esState{c.wait, c.stoppedEpoch, toNum(c.best), c.bestEpoch, c.haveBestWeights})
}

// SetState restores State's output.
func (c *EarlyStopping) SetState(b []byte) error {
	var s esState
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	c.wait, c.stoppedEpoch, c.best, c.bestEpoch, c.haveBestWeights = s.Wait, s.StoppedEpoch, fromNum(s.Best), s.BestEpoch, s.HaveBestWeights
	return nil
}

// BestCheckpoint is Keras's ModelCheckpoint with save_best_only=True and
// save_freq="epoch": it asks to save when the monitored metric improves on
// the best so far (no min_delta, as in Keras).
type BestCheckpoint struct {
	monitor
	best *float64 // starts at initial_value_threshold
}

type bestState struct {
	Best *num `json:"best"`
}

// Name is the config key.
func (c *BestCheckpoint) Name() string { return "best_checkpoint" }

// OnBatchEnd does nothing.
func (c *BestCheckpoint) OnBatchEnd(int, float64) Action { return Action{} }

// OnTrainEnd does nothing.
func (c *BestCheckpoint) OnTrainEnd() Action { return Action{} }

// Best is the best monitored value saved so far (nil before the first).
func (c *BestCheckpoint) Best() *float64 { return c.best }

// OnEpochEnd follows ModelCheckpoint._should_save_model with save_best_only.
func (c *BestCheckpoint) OnEpochEnd(epoch int, logs Logs) (Action, error) {
	current, err := c.value(logs)
	if err != nil {
		return Action{}, err
	}
	if !c.improves(current, c.best) {
		return Action{}, nil
	}
	from := "None"
	if c.best != nil {
		from = fmtNum(*c.best)
	}
	c.best = &current
	return Action{SaveBest: true, Reason: fmt.Sprintf("epoch %d: %s improved from %s to %s, saving the best checkpoint", epoch+1, c.Metric, from, fmtNum(current))}, nil
}

// State saves the best value.
func (c *BestCheckpoint) State() ([]byte, error) { return json.Marshal(bestState{toNum(c.best)}) }

// SetState restores State's output.
func (c *BestCheckpoint) SetState(b []byte) error {
	var s bestState
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	c.best = fromNum(s.Best)
	return nil
}

// TerminateOnNaN is Keras's TerminateOnNaN (raise_error=False): it stops
// training at the first batch whose loss is NaN or ±Inf.
type TerminateOnNaN struct{}

// Name is the config key.
func (TerminateOnNaN) Name() string { return "terminate_on_nan" }

// OnBatchEnd asks to stop on a NaN or infinite loss.
func (TerminateOnNaN) OnBatchEnd(batch int, loss float64) Action {
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return Action{Stop: true, Reason: fmt.Sprintf("batch %d: invalid loss %v, terminating training", batch, loss)}
	}
	return Action{}
}

// OnEpochEnd does nothing.
func (TerminateOnNaN) OnEpochEnd(int, Logs) (Action, error) { return Action{}, nil }

// OnTrainEnd does nothing.
func (TerminateOnNaN) OnTrainEnd() Action { return Action{} }

// State is empty: TerminateOnNaN has no counters.
func (TerminateOnNaN) State() ([]byte, error) { return []byte("{}"), nil }

// SetState accepts State's output.
func (TerminateOnNaN) SetState(b []byte) error {
	if strings.TrimSpace(string(b)) != "{}" {
		return fmt.Errorf("unexpected state %s", b)
	}
	return nil
}
