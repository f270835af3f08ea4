package graph

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"github.com/cifar-pipeline/cifar-pipeline/config"
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
	if err := config.DecodeArgs(c.Args, o, "train.optimizer", c.Name); err != nil {
		return nil, err
	}
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
	return m
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
	name  string
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
	return newVar(u.scope, u.name+"/"+strings.ReplaceAll(w.Name, "/", "_")+"_"+what, w.Shape, tf.Float)
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
	u := &Updater{m: m, scope: s, name: m.optName}
	u.lr = op.PlaceholderWithDefault(s.SubScope("learning_rate"), op.Const(s.SubScope("Const"), float32(m.opt.LearningRate())), tf.ScalarShape())
	m.lr = u.lr
	var applies []*tf.Operation
	for i, w := range m.Weights {
		applies = append(applies, m.opt.Update(u, w, m.grads[i]))
	}
	applies = append(applies, m.stateUpdates...)
	inc := op.AssignAddVariableOp(s.WithControlDependencies(applies...), m.iteration.handle, op.Const(s.SubScope("Const"), int64(1)))
	m.trainOp = op.NoOp(s.WithControlDependencies(inc))
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
