package graph

import (
	"fmt"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// LossScale is the dynamic loss scaling of Keras's LossScaleOptimizer
// (keras/src/optimizers/loss_scale_optimizer.py), which mixed_float16
// trains with: float16 gradients underflow without it. The gradient is
// taken of loss·scale and divided by scale before the optimizer sees it.
// A step whose gradients are not all finite is skipped (no weight,
// optimizer or iteration update) and halves the scale; after GrowthSteps
// finite steps in a row the scale doubles.
type LossScale struct {
	// Initial is the starting scale; 0 is Keras's initial_scale, 2¹⁵.
	Initial float64
	// GrowthSteps is Keras's dynamic_growth_steps; 0 is its 2000.
	GrowthSteps int
}

// orDefault fills in Keras's defaults.
func (l LossScale) orDefault() LossScale {
	if l.Initial == 0 {
		l.Initial = 1 << 15
	}
	if l.GrowthSteps == 0 {
		l.GrowthSteps = 2000
	}
	return l
}

func (l LossScale) validate() error {
	if !(l.Initial > 0) || l.Initial > 1e38 {
		return fmt.Errorf("compile: initial loss scale %v must be positive and finite in float32", l.Initial)
	}
	if l.GrowthSteps < 1 {
		return fmt.Errorf("compile: loss scale growth steps %d must be at least 1", l.GrowthSteps)
	}
	return nil
}

// lossScaler holds the scale's state, checkpointed under the names of
// Keras's LossScaleOptimizer variables, and the ops that use it.
type lossScaler struct {
	LossScale
	// scale is dynamic_scale, float32. Its one read (scale.read) scales
	// and unscales the gradients alike, and update reads it after both.
	scale   *Variable
	counter *Variable // step_counter: finite steps since the scale last changed
	// skipped counts the skipped steps (not a Keras variable): with the
	// optimizer's iterations, the steps run (Model.Steps).
	skipped *Variable
	// finite is true when every unscaled gradient is finite.
	finite tf.Output
	// unscaled are the ops that divide the gradients by the scale.
	unscaled []*tf.Operation
}

const lossScaleName = "loss_scale_optimizer"

func (m *Model) newLossScaler(s *op.Scope, l LossScale) *lossScaler {
	ls := &lossScaler{LossScale: l}
	ls.scale = m.newVariable(s, lossScaleName+"/dynamic_scale", nil, tf.Float)
	ls.counter = m.newVariable(s, lossScaleName+"/step_counter", nil, tf.Int64)
	ls.skipped = m.newVariable(s, "train/skipped_steps", nil, tf.Int64)
	return ls
}

// times multiplies x, a float32 gradient seed (dlogits, the loss), by the
// scale: its gradients are then scale times the true ones.
func (ls *lossScaler) times(s *op.Scope, x tf.Output) tf.Output {
	return op.Mul(s.SubScope("Mul"), x, ls.scale.read)
}

// unscale divides grads by the scale, as the LossScaleOptimizer does
// before the inner optimizer applies them, and sets finite.
func (ls *lossScaler) unscale(s *op.Scope, grads []tf.Output) []tf.Output {
	out := make([]tf.Output, len(grads))
	all := make([]tf.Output, len(grads))
	for i, g := range grads {
		// DivNoNan, not RealDiv: the float16 rewrites run RealDiv in
		// float16 after a float16 op, where a small gradient divided by
		// the scale would underflow, which is what scaling prevents; no
		// rewrite lists DivNoNan, so it divides in float32 as Keras does
		// (its gradients are float32 by then). The scale is never 0.
		out[i] = op.DivNoNan(s.SubScope("DivNoNan"), g, ls.scale.read)
		ls.unscaled = append(ls.unscaled, out[i].Op)
		all[i] = op.All(s.SubScope("All"), op.IsFinite(s.SubScope("IsFinite"), out[i]), allAxes(s, out[i]))
	}
	ls.finite = op.All(s.SubScope("All"), op.Pack(s.SubScope("Pack"), all), op.Const(s.SubScope("Const"), int32(0)))
	return out
}

func allAxes(s *op.Scope, x tf.Output) tf.Output {
	return op.Range(s.SubScope("Range"), op.Const(s.SubScope("Const"), int32(0)), op.Rank(s.SubScope("Rank"), x), op.Const(s.SubScope("Const"), int32(1)))
}

// gate passes g on only when the step's gradients are finite: otherwise
// its output is dead, and so is every op that reads it (the optimizer's
// update of the weight, its weight decay and average) or runs after one
// (the iteration counter), which is how the step is skipped.
func (ls *lossScaler) gate(s *op.Scope, g tf.Output) tf.Output {
	_, whenFinite := op.Switch(s.SubScope("Switch"), g, ls.finite)
	// An op's control edges carry its deadness, but a Switch's own are
	// live on either branch: consumers that only wait for g (weight
	// decay) wait for this Identity.
	return op.Identity(s.SubScope("Identity"), whenFinite)
}

// update sets the next step's scale and counter, whether or not the step
// was skipped: Keras's _stateful_handle_finite_grads (counter+1, or scale
// doubled and counter 0 once it reaches GrowthSteps−1) and
// _stateful_handle_non_finite_grads (scale halved, counter 0).
func (ls *lossScaler) update(s *op.Scope) *tf.Operation {
	s = s.WithControlDependencies(append([]*tf.Operation{ls.finite.Op}, ls.unscaled...)...)
	counter := ls.counter.read
	i64 := func(v int64) tf.Output { return op.Const(s.SubScope("Const"), v) }
	f32 := func(v float32) tf.Output { return op.Const(s.SubScope("Const"), v) }
	grow := op.Equal(s.SubScope("Equal"), counter, i64(int64(ls.GrowthSteps-1)))
	scale := op.Select(s.SubScope("Select"), ls.finite,
		op.Select(s.SubScope("Select"), grow, op.Mul(s.SubScope("Mul"), ls.scale.read, f32(2)), ls.scale.read),
		op.Mul(s.SubScope("Mul"), ls.scale.read, f32(0.5)))
	next := op.Select(s.SubScope("Select"), ls.finite,
		op.Select(s.SubScope("Select"), grow, i64(0), op.AddV2(s.SubScope("AddV2"), counter, i64(1))),
		i64(0))
	skip := op.Select(s.SubScope("Select"), ls.finite, i64(0), i64(1))
	return op.NoOp(s.WithControlDependencies(
		op.AssignVariableOp(s.SubScope("AssignVariableOp"), ls.scale.handle, scale),
		op.AssignVariableOp(s.SubScope("AssignVariableOp"), ls.counter.handle, next),
		op.AssignAddVariableOp(s.SubScope("AssignAddVariableOp"), ls.skipped.handle, skip)))
}

// Steps is the number of training steps run: the optimizer's iterations,
// plus the steps loss scaling skipped (which Keras's iterations do not
// count either). Fit resumes from it.
func (m *Model) Steps() (int64, error) {
	it, err := m.Iterations()
	if err != nil || m.lossScale == nil {
		return it, err
	}
	skipped, err := m.counter(m.lossScale.skipped)
	return it + skipped, err
}

// LossScale reads the current loss scale and finite-step counter; ok is
// false when the model does not scale its loss (no Options.LossScale, and
// not mixed_float16).
func (m *Model) LossScale() (scale float32, counter int64, ok bool, err error) {
	ls := m.lossScale
	if ls == nil {
		return 0, 0, false, nil
	}
	out, err := m.sess.Run(nil, []tf.Output{ls.scale.read, ls.counter.read}, nil)
	if err != nil {
		return 0, 0, true, fmt.Errorf("read loss scale: %w", err)
	}
	return TensorValue(out[0]).(float32), TensorValue(out[1]).(int64), true, nil
}
