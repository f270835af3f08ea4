package graph

import (
	"math"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Adam is keras.optimizers.Adam with amsgrad off (keras/src/optimizers/adam.py):
// m += (g−m)(1−β1), v += (g²−v)(1−β2), var −= (m·α)/(√v+ε),
// α = lr·√(1−β2^t)/(1−β1^t), t = iterations+1.
//
// Built from single ops, not ResourceApplyAdam: the fused kernel forms 1−β
// in float32 (T(1)−beta2 = 1−0.999f = 0.00099998713), while Keras forms it
// in float64 and rounds once (0.001f); no float32 β input can give
// 1−β = 0.001f (1−β is a multiple of 2⁻²⁴ for β ∈ [½, 1)). That 1.3e-5
// relative change in v's gain moves weights by ~4e-8 after 3 steps on
// fixed gradients, yet enough to flip a near-tied max-pool or ReLU in a
// deep net and move its conv kernels by 1e-4. Each op below is the float32
// op Keras runs, in Keras's order, and every read of a slot is ordered
// after its update.
type Adam struct {
	Base `mapstructure:",squash"`

	LR      float64 `mapstructure:"learning_rate"`
	Beta1   float64 `mapstructure:"beta_1"`
	Beta2   float64 `mapstructure:"beta_2"`
	Epsilon float64 `mapstructure:"epsilon"`
}

func init() {
	RegisterOptimizer(OptimizerKind{Name: "adam", Class: "Adam", New: func() Optimizer {
		return &Adam{LR: 0.001, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-7, Base: DefaultBase()}
	}})
}

func (o *Adam) Validate() error {
	if err := o.validateBase(); err != nil {
		return err
	}
	if err := finiteIn("learning_rate", o.LR, 0, math.Inf(1), true, true); err != nil {
		return err
	}
	if err := finiteIn("beta_1", o.Beta1, 0, 1, false, true); err != nil {
		return err
	}
	if err := finiteIn("beta_2", o.Beta2, 0, 1, false, true); err != nil {
		return err
	}
	return finiteIn("epsilon", o.Epsilon, 0, 1, true, false)
}

func (o *Adam) LearningRate() float64 { return o.LR }

func (o *Adam) Update(u *Updater, w *Variable, g tf.Output) *tf.Operation {
	s := u.Scope().SubScope("Adam")
	mm, vv := u.Slot(w, "momentum"), u.Slot(w, "velocity")
	one := u.F(1)
	step := u.Step()
	b1p := op.Pow(s.SubScope("Pow"), u.F(o.Beta1), step)
	b2p := op.Pow(s.SubScope("Pow"), u.F(o.Beta2), step)
	// alpha = lr * sqrt(1 - beta_2_power) / (1 - beta_1_power), in float32.
	alpha := op.RealDiv(s.SubScope("alpha"),
		op.Mul(s.SubScope("Mul"), u.LR(), op.Sqrt(s.SubScope("Sqrt"), op.Sub(s.SubScope("Sub"), one, b2p))),
		op.Sub(s.SubScope("Sub"), one, b1p))
	// slot += (x - slot) * (1 - beta), then read the updated slot.
	moment := func(name string, v *Variable, x tf.Output, oneMinusBeta float64) tf.Output {
		ss := s.SubScope(name)
		old := op.ReadVariableOp(ss.SubScope("ReadVariableOp"), v.Handle(), tf.Float)
		inc := op.Mul(ss.SubScope("Mul"), op.Sub(ss.SubScope("Sub"), x, old), u.F(oneMinusBeta))
		add := op.AssignAddVariableOp(ss.SubScope("AssignAddVariableOp"), v.Handle(), inc)
		return op.ReadVariableOp(ss.SubScope("updated").WithControlDependencies(add), v.Handle(), tf.Float)
	}
	mNew := moment("momentum", mm, g, 1-o.Beta1)
	vNew := moment("velocity", vv, op.Square(s.SubScope("Square"), g), 1-o.Beta2)
	upd := op.RealDiv(s.SubScope("RealDiv"), op.Mul(s.SubScope("Mul"), mNew, alpha),
		op.AddV2(s.SubScope("AddV2"), op.Sqrt(s.SubScope("Sqrt"), vNew), u.F(o.Epsilon)))
	return op.AssignSubVariableOp(s.SubScope("AssignSubVariableOp"), w.Handle(), upd)
}

func (o *Adam) KerasConfig() map[string]any {
	return o.kerasBase(map[string]any{"learning_rate": o.LR, "beta_1": o.Beta1, "beta_2": o.Beta2, "epsilon": o.Epsilon, "amsgrad": false})
}

func (o *Adam) SlotsPerWeight() int { return 2 }
