package graph

import (
	"fmt"
	"maps"
	"math"
	"path"
	"slices"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/schedule"
)

// An Optimizer is a Keras 3 optimizer: its arguments (decoded from the
// config over Keras's defaults), its slots and its update ops. Each
// optimizer's file registers it (RegisterOptimizer) and holds all of it.
type Optimizer interface {
	// Validate checks the arguments; an error names the argument.
	Validate() error
	// Update adds the ops that apply gradient g to weight w, creating w's
	// slots through u, and returns the op that completes the update.
	Update(u *Updater, w *Variable, g tf.Output) *tf.Operation
	// LearningRate is the configured (initial) learning rate.
	LearningRate() float64
	// SlotsPerWeight is how many slot variables of a weight's size the
	// optimizer keeps (for memory estimates before compiling).
	SlotsPerWeight() int
	// KerasConfig is the optimizer's Keras get_config() except name.
	KerasConfig() map[string]any

	base() *Base
}

// Base holds the arguments every Keras 3 optimizer takes
// (keras/src/optimizers/base_optimizer.py); each optimizer embeds it.
//
//   - weight_decay: before each update, var −= var·wd·lr, decoupled from
//     the gradient (the TensorFlow backend's _apply_weight_decay,
//     keras/src/backend/tensorflow/optimizer.py), on every trainable
//     weight; 0 means off (Keras's None).
//   - use_ema, ema_momentum: after each update, average = m·average +
//     (1−m)·var with m = ema_momentum except on the first step (m = 0);
//     when training ends the weights are replaced by their averages
//     (finalize_variable_values), so evaluation and export use them.
//   - ema_overwrite_frequency: with use_ema, every that many steps the
//     weights themselves are set to their averages, after the step whose
//     iterations+1 it divides (base_optimizer.py, apply). Training then
//     continues from the average: the Lookahead-style pull that airbench
//     applies every 5 steps.
type Base struct {
	WeightDecay           float64 `mapstructure:"weight_decay"`
	UseEMA                bool    `mapstructure:"use_ema"`
	EMAMomentum           float64 `mapstructure:"ema_momentum"`
	EMAOverwriteFrequency int     `mapstructure:"ema_overwrite_frequency"`
	// LRMultipliers scales the learning rate (not the weight decay) of
	// the weights whose name, layer/param, matches a pattern (path.Match
	// syntax): airbench's 64× rate for BatchNormalization biases,
	// {"*/beta": 64}. Not a Keras argument — Keras has one rate per
	// optimizer, as PyTorch's parameter groups have several — so the Keras
	// files do not carry it.
	LRMultipliers map[string]float64 `mapstructure:"learning_rate_multipliers"`

	schedule     schedule.Schedule
	scheduleArgs map[string]any // the config's schedule mapping, if any
}

// DefaultBase is Keras's: no weight decay, no EMA (momentum 0.99 if on).
func DefaultBase() Base { return Base{EMAMomentum: 0.99} }

func (b *Base) base() *Base { return b }

func (b *Base) validateBase() error {
	if err := finiteIn("weight_decay", b.WeightDecay, 0, math.Inf(1), false, true); err != nil {
		return err
	}
	for _, pat := range slices.Sorted(maps.Keys(b.LRMultipliers)) {
		key := "learning_rate_multipliers." + pat
		if _, err := path.Match(pat, ""); err != nil {
			return fmt.Errorf("%s: not a pattern (%v); use layer/param names with * and ?, e.g. */beta", key, err)
		}
		if err := finiteIn(key, b.LRMultipliers[pat], 0, math.Inf(1), true, true); err != nil {
			return err
		}
	}
	if b.EMAOverwriteFrequency < 0 {
		return fmt.Errorf("ema_overwrite_frequency: %d must be >= 1 (or leave it out)", b.EMAOverwriteFrequency)
	}
	if b.EMAOverwriteFrequency > 0 && !b.UseEMA {
		return fmt.Errorf("ema_overwrite_frequency: %d has no effect without use_ema: true (add it, or remove the key)", b.EMAOverwriteFrequency)
	}
	return finiteIn("ema_momentum", b.EMAMomentum, 0, 1, false, false)
}

// kerasBase adds the base arguments to an optimizer's Keras config, in
// the form Keras's constructor takes.
func (b *Base) kerasBase(c map[string]any) map[string]any {
	if _, constant := b.schedule.(schedule.Constant); !constant && b.schedule != nil {
		c["learning_rate"] = b.schedule.Config()
	}
	if b.WeightDecay > 0 {
		c["weight_decay"] = b.WeightDecay
	}
	if b.UseEMA {
		c["use_ema"], c["ema_momentum"] = true, b.EMAMomentum
		if b.EMAOverwriteFrequency > 0 {
			c["ema_overwrite_frequency"] = b.EMAOverwriteFrequency
		}
	}
	return c
}

// refVariables is an Optimizer that wants some weights, and their slots, as
// reference variables (see newRefVariable).
type refVariables interface {
	refVariable(shape []int) bool
}

// OptimizerKind is a registered optimizer.
type OptimizerKind struct {
	// Name is the config name (rmsprop) and Class the Keras class (RMSprop).
	Name, Class string
	// New returns the optimizer with Keras's defaults, as a pointer to a
	// struct whose mapstructure tags are the Keras argument names.
	New func() Optimizer
}

var optimizers = map[string]*OptimizerKind{}

// RegisterOptimizer adds an optimizer. Each optimizer's file calls it from init.
func RegisterOptimizer(k OptimizerKind) {
	if _, dup := optimizers[k.Name]; dup {
		panic("graph: optimizer registered twice: " + k.Name)
	}
	optimizers[k.Name] = &k
}

// OptimizerNames lists the registered optimizers.
func OptimizerNames() []string { return slices.Sorted(maps.Keys(optimizers)) }

// NewOptimizer decodes the config's optimizer over its Keras defaults and
// validates it. A key the optimizer does not take, or an invalid value, is
// a config.KeyError under train.optimizer.
func NewOptimizer(c config.Optimizer) (Optimizer, error) {
	k, ok := optimizers[c.Name]
	if !ok {
		return nil, config.KeyErrorf("train.optimizer.name", "%q is not one of %s%s", c.Name, strings.Join(OptimizerNames(), ", "), suggestName(c.Name, OptimizerNames()))
	}
	o := k.New()
	// learning_rate is a number or a schedule (Keras's
	// LearningRateSchedule): the optimizer's own field takes the rate of
	// the first step, the schedule every step's.
	args := c.Args
	var sched schedule.Schedule
	if v, ok := c.Args["learning_rate"].(map[string]any); ok {
		var err error
		if sched, err = schedule.Parse(v); err != nil {
			return nil, keyed(err, schedule.Path)
		}
		args = maps.Clone(c.Args)
		// The optimizer's own rate field holds the first step's rate (a
		// warmup may start at 0, which the field refuses: then the
		// warmup's target).
		first := sched.Rate(0)
		if w, ok := sched.(schedule.Warmup); ok && first <= 0 {
			first = sched.Rate(w.WarmupSteps())
		}
		if first <= 0 {
			first = math.SmallestNonzeroFloat32
		}
		args["learning_rate"] = first
		o.base().scheduleArgs = v
	}
	if err := config.DecodeArgs(args, o, "train.optimizer", c.Name); err != nil {
		return nil, err
	}
	if sched == nil {
		sched = schedule.Constant(o.LearningRate())
	}
	o.base().schedule = sched
	if err := o.Validate(); err != nil {
		var ke *config.KeyError
		if !asKeyError(err, &ke) {
			return nil, config.KeyErrorf("train.optimizer", "%v", err)
		}
		return nil, err
	}
	return o, nil
}

// OptimizerName returns the config name of an optimizer.
func OptimizerName(o Optimizer) string {
	for _, k := range optimizers {
		if fmt.Sprintf("%T", k.New()) == fmt.Sprintf("%T", o) {
			return k.Name
		}
	}
	return ""
}

// OptimizerArgs returns every argument of o, defaults included, in config
// form (learning_rate: 0.001, rho: 0.9, ...): what config.resolved.yaml
// records.
func OptimizerArgs(o Optimizer) map[string]any {
	var m map[string]any
	if err := mapstructure.Decode(o, &m); err != nil {
		panic(fmt.Sprintf("graph: encode optimizer args: %v", err)) // programming error
	}
	if s := o.base().scheduleArgs; s != nil {
		m["learning_rate"] = s
	}
	return m
}

// Schedule is the optimizer's learning rate, step by step (a constant
// unless the config gives a schedule).
func Schedule(o Optimizer) schedule.Schedule { return o.base().schedule }

// keyed turns an error of the form "dotted.key: message" into a
// config.KeyError, so that it names the key's line; other errors are put
// under fallback.
func keyed(err error, fallback string) error {
	msg := err.Error()
	if k, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(k, fallback) && !strings.Contains(k, " ") {
		return config.KeyErrorf(k, "%s", rest)
	}
	return config.KeyErrorf(fallback, "%s", msg)
}

func argErr(key, format string, args ...any) error {
	return config.KeyErrorf("train.optimizer."+key, format, args...)
}

func finiteIn(key string, v, lo, hi float64, loOpen, hiOpen bool) error {
	bad := math.IsNaN(v) || v < lo || v > hi || (loOpen && v == lo) || (hiOpen && v == hi)
	if !bad {
		return nil
	}
	l, h := "[", "]"
	if loOpen {
		l = "("
	}
	if hiOpen {
		h = ")"
	}
	return argErr(key, "%v must be in %s%v, %v%s", v, l, lo, hi, h)
}

// Updater is what an Optimizer's Update builds with: the optimizer's
// scope, its constants and step counter, and slot variables.
type Updater struct {
	m     *Model
	scope *op.Scope
	// vars is the scope variables (slots) are made in: without the
	// control dependencies scope may carry, so they initialise alone.
	vars *op.Scope
	name string
	// lr is the learning rate the step uses.
	lr tf.Output
}

// Scope is the optimizer's scope.
func (u *Updater) Scope() *op.Scope { return u.scope }

// F is a float32 constant, rounded once from float64 as Keras's Python
// floats are.
func (u *Updater) F(x float64) tf.Output { return op.Const(u.scope.SubScope("Const"), float32(x)) }

// LR is the step's learning rate, a float32 scalar.
func (u *Updater) LR() tf.Output { return u.lr }

// Step is the float32 step number t = iterations + 1 (Adam's bias
// correction).
func (u *Updater) Step() tf.Output {
	s := u.scope
	return op.Cast(s.SubScope("Cast"), op.Add(s.SubScope("Add"), u.m.iteration.read, op.Const(s.SubScope("Const"), int64(1))), tf.Float)
}

// Slot returns a new zero-initialised slot of weight w, named as Keras 3
// names it: <optimizer>/<layer>_<weight>_<slot>.
func (u *Updater) Slot(w *Variable, what string) *Variable {
	newVar := u.m.newVariable
	if w.ref {
		newVar = u.m.newRefVariable
	}
	return newVar(u.vars, u.name+"/"+strings.ReplaceAll(w.Name, "/", "_")+"_"+what, w.Shape, tf.Float)
}

// Handle is a variable's handle (resource) or reference.
func (v *Variable) Handle() tf.Output { return v.handle }

// IsRef reports whether v is a reference variable (VariableV2).
func (v *Variable) IsRef() bool { return v.ref }

// TrainReaders are the ops of the training step that read v's value: an
// in-place update of a reference variable must run after them.
func (v *Variable) TrainReaders() []*tf.Operation {
	var ops []*tf.Operation
	for _, c := range v.trainRead.Consumers() {
		ops = append(ops, c.Op)
	}
	return ops
}

// buildOptimizer adds the optimizer's update of every trainable weight and
// the iteration counter, and the training step that runs them.
func (m *Model) buildOptimizer(s *op.Scope) error {
	u := &Updater{m: m, scope: s, vars: s, name: m.optName}
	if _, constant := Schedule(m.opt).(schedule.Constant); constant {
		// Keras's optimizer variable: checkpointed, and what
		// ReduceLROnPlateau changes (SetLearningRate).
		m.lrVar = m.newVariable(s, m.optName+"/learning_rate", nil, tf.Float)
		u.lr = m.lrVar.read
	} else {
		// A schedule: the step's rate, fed by TrainStep.
		m.lr = op.Placeholder(s.SubScope("learning_rate"), tf.Float, op.PlaceholderShape(tf.ScalarShape()))
		u.lr = m.lr
	}
	b := m.opt.base()
	mults, err := b.multipliers(m.Weights)
	if err != nil {
		return err
	}
	var applies []*tf.Operation
	for i, w := range m.Weights {
		g := m.grads[i]
		if m.lossScale != nil {
			g = m.lossScale.gate(s.SubScope("loss_scale"), g)
		}
		wu := *u
		if b.WeightDecay > 0 {
			// var −= var·wd·lr, after the step's reads of var (its gradient
			// is computed) and before its update.
			ds := s.SubScope("weight_decay").WithControlDependencies(g.Op)
			read := op.ReadVariableOp(ds.SubScope("ReadVariableOp"), w.handle, tf.Float)
			decay := op.AssignSubVariableOp(ds.SubScope("AssignSubVariableOp"), w.handle,
				op.Mul(ds.SubScope("Mul"), op.Mul(ds.SubScope("Mul"), read, u.F(b.WeightDecay)), u.lr))
			wu.scope = s.WithControlDependencies(decay)
		}
		if k, ok := mults[w]; ok {
			// After the decay, which keeps the optimizer's own rate.
			wu.lr = op.Mul(s.SubScope("learning_rate_multiplier"), u.lr, u.F(k))
		}
		apply := m.opt.Update(&wu, w, g)
		if b.UseEMA {
			apply = m.updateAverage(&wu, w, apply, b.EMAMomentum, b.EMAOverwriteFrequency)
		}
		applies = append(applies, apply)
	}
	applies = append(applies, m.stateUpdates...)
	inc := op.AssignAddVariableOp(s.WithControlDependencies(applies...), m.iteration.handle, op.Const(s.SubScope("Const"), int64(1)))
	step := []*tf.Operation{inc}
	if m.lossScale != nil {
		// A skipped step leaves inc dead, so the step's NoOp does not run
		// either; the scale's update runs in every step.
		step = append(step, m.lossScale.update(s.SubScope("loss_scale")))
	}
	m.trainOp = op.NoOp(s.WithControlDependencies(step...))
	return s.Err()
}

func asKeyError(err error, ke **config.KeyError) bool {
	for e := err; e != nil; {
		if k, ok := e.(*config.KeyError); ok {
			*ke = k
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

// OptimizerClass returns the Keras class name of an optimizer (RMSprop).
func OptimizerClass(o Optimizer) string {
	if k, ok := optimizers[OptimizerName(o)]; ok {
		return k.Class
	}
	return ""
}

// multipliers resolves learning_rate_multipliers against the trainable
// weights: a weight two patterns match, or a pattern no weight matches, is
// an error (a typo would otherwise leave the rate unchanged).
func (b *Base) multipliers(weights []*Variable) (map[*Variable]float64, error) {
	if len(b.LRMultipliers) == 0 {
		return nil, nil
	}
	key := "train.optimizer.learning_rate_multipliers"
	out := map[*Variable]float64{}
	used := map[string]bool{}
	pats := slices.Sorted(maps.Keys(b.LRMultipliers))
	var names []string
	for _, w := range weights {
		names = append(names, w.Name)
		var hit string
		for _, pat := range pats {
			if ok, _ := path.Match(pat, w.Name); !ok {
				continue
			}
			if hit != "" {
				return nil, config.KeyErrorf(key, "weight %s matches both %q and %q: make the patterns disjoint", w.Name, hit, pat)
			}
			hit = pat
		}
		if hit != "" {
			out[w], used[hit] = b.LRMultipliers[hit], true
		}
	}
	for _, pat := range pats {
		if !used[pat] {
			ex := names
			if len(ex) > 4 {
				ex = ex[:4]
			}
			return nil, config.KeyErrorf(key+"."+pat, "matches no trainable weight (they are named layer/param: %s, ...)", strings.Join(ex, ", "))
		}
	}
	return out, nil
}

// updateAverage adds the moving average of weight w after its update:
// average = m·average + (1−m)·w, m = ema_momentum once iterations > 0
// (read before this step's increment), else 0; with an overwrite frequency
// f, then w = average when (iterations+1) % f == 0.
func (m *Model) updateAverage(u *Updater, w *Variable, after *tf.Operation, momentum float64, overwrite int) *tf.Operation {
	s := u.scope.SubScope("ema").WithControlDependencies(after)
	avg := u.Slot(w, "average")
	m.averages = append(m.averages, [2]*Variable{w, avg})
	notFirst := op.Cast(s.SubScope("Cast"), op.NotEqual(s.SubScope("NotEqual"), m.iteration.read, op.Const(s.SubScope("zero"), int64(0))), tf.Float)
	mom := op.Mul(s.SubScope("Mul"), notFirst, u.F(momentum))
	old := op.ReadVariableOp(s.SubScope("ReadAverage"), avg.handle, tf.Float)
	cur := op.ReadVariableOp(s.SubScope("ReadVariableOp"), w.handle, tf.Float)
	val := op.AddV2(s.SubScope("AddV2"), op.Mul(s.SubScope("Mul"), mom, old),
		op.Mul(s.SubScope("Mul"), op.Sub(s.SubScope("Sub"), u.F(1), mom), cur))
	assign := op.AssignVariableOp(s.SubScope("AssignVariableOp"), avg.handle, val)
	if overwrite == 0 {
		return assign
	}
	next := op.AddV2(s.SubScope("next"), m.iteration.read, op.Const(s.SubScope("one"), int64(1)))
	due := op.Equal(s.SubScope("due"), op.FloorMod(s.SubScope("FloorMod"), next, op.Const(s.SubScope("every"), int64(overwrite))), op.Const(s.SubScope("zero"), int64(0)))
	ws := s.SubScope("overwrite").WithControlDependencies(assign)
	return op.AssignVariableOp(ws.SubScope("AssignVariableOp"), w.handle, op.Select(ws.SubScope("Select"), due, val, cur))
}

// UseAverages replaces every trainable weight by its moving average, as
// Keras's finalize_variable_values does at the end of fit when the
// optimizer has use_ema. Without EMA it does nothing.
func (m *Model) UseAverages() error {
	for _, pair := range m.averages {
		out, err := m.sess.Run(nil, []tf.Output{pair[1].read}, nil)
		if err != nil {
			return fmt.Errorf("read %s: %w", pair[1].Name, err)
		}
		if _, err := m.sess.Run(map[tf.Output]*tf.Tensor{pair[0].assignIn: out[0]}, nil, []*tf.Operation{pair[0].assign}); err != nil {
			return fmt.Errorf("assign %s: %w", pair[0].Name, err)
		}
	}
	return nil
}
