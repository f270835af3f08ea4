package graph

import (
	"math"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// RMSprop is keras.optimizers.RMSprop (keras/src/optimizers/rmsprop.py):
// v = ρv + (1−ρ)g²; var −= lr·g/√(v+ε), as TensorFlow's fused
// ResourceApplyRMSProp computes it (its momentum slot, with momentum 0,
// holds exactly that increment); centered → ResourceApplyCenteredRMSProp
// (v − ḡ² + ε under the root).
//
// On the CPU (Options.DenseUpdates false), a large matrix (the shallow
// net's 8192×512 dense kernel) is updated by SparseApplyRMSProp over all
// its rows instead: the same law, applied row by row, so each row's var,
// v and g are read once while in cache, where the dense kernel makes three
// passes over 16 MiB arrays (BENCHMARKS.md, History). SparseApplyRMSProp
// has no GPU kernel, so a GPU run sets DenseUpdates. It is the reference-variable op: on a resource variable a
// sparse update switches TensorFlow to copy-on-read, a 16 MiB copy at
// every read.
type RMSprop struct {
	Base `mapstructure:",squash"`

	LR       float64 `mapstructure:"learning_rate"`
	Rho      float64 `mapstructure:"rho"`
	Momentum float64 `mapstructure:"momentum"`
	Epsilon  float64 `mapstructure:"epsilon"`
	Centered bool    `mapstructure:"centered"`
}

func init() {
	RegisterOptimizer(OptimizerKind{Name: "rmsprop", Class: "RMSprop", New: func() Optimizer {
		return &RMSprop{LR: 0.001, Rho: 0.9, Epsilon: 1e-7, Base: DefaultBase()}
	}})
}

func (o *RMSprop) Validate() error {
	if err := o.validateBase(); err != nil {
		return err
	}
	if err := finiteIn("learning_rate", o.LR, 0, math.Inf(1), true, true); err != nil {
		return err
	}
	if err := finiteIn("rho", o.Rho, 0, 1, true, true); err != nil {
		return err
	}
	if err := finiteIn("momentum", o.Momentum, 0, 1, false, true); err != nil {
		return err
	}
	return finiteIn("epsilon", o.Epsilon, 0, 1, true, false)
}

func (o *RMSprop) LearningRate() float64 { return o.LR }

// sparseRMSPropMin is the weight size from which RMSprop updates row by row.
const sparseRMSPropMin = 1 << 20

func (o *RMSprop) refVariable(shape []int) bool {
	return !o.Centered && len(shape) == 2 && shape[0]*shape[1] >= sparseRMSPropMin
}

func (o *RMSprop) Update(u *Updater, w *Variable, g tf.Output) *tf.Operation {
	s := u.Scope()
	if o.Centered {
		mg, ms, mom := u.Slot(w, "average_gradient"), u.Slot(w, "velocity"), u.Slot(w, "momentum")
		return op.ResourceApplyCenteredRMSProp(s.SubScope("ResourceApplyCenteredRMSProp"), w.Handle(), mg.Handle(), ms.Handle(), mom.Handle(),
			u.LR(), u.F(o.Rho), u.F(o.Momentum), u.F(o.Epsilon), g)
	}
	ms, mom := u.Slot(w, "velocity"), u.Slot(w, "momentum")
	if w.IsRef() {
		// In place on shared buffers: after every op of the step that reads w.
		return s.WithControlDependencies(w.TrainReaders()...).AddOperation(tf.OpSpec{Type: "SparseApplyRMSProp",
			Input: []tf.Input{w.Handle(), ms.Handle(), mom.Handle(), u.LR(), u.F(o.Rho), u.F(o.Momentum), u.F(o.Epsilon), g,
				op.Const(s.SubScope("Const"), allRows(w.Shape[0]))}})
	}
	return op.ResourceApplyRMSProp(s.SubScope("ResourceApplyRMSProp"), w.Handle(), ms.Handle(), mom.Handle(),
		u.LR(), u.F(o.Rho), u.F(o.Momentum), u.F(o.Epsilon), g)
}

// allRows is the indices 0..n−1.
func allRows(n int) []int32 {
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(i)
	}
	return idx
}

func (o *RMSprop) KerasConfig() map[string]any {
	return o.kerasBase(map[string]any{"learning_rate": o.LR, "rho": o.Rho, "momentum": o.Momentum, "epsilon": o.Epsilon, "centered": o.Centered})
}

func (o *RMSprop) SlotsPerWeight() int {
	if o.Centered {
		return 3
	}
	return 2
}
