package graph

import (
	"math"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// SGD is keras.optimizers.SGD (keras/src/optimizers/sgd.py): var −= lr·g,
// or with momentum Keras's form m = μm − lr·g, var += m (TensorFlow's
// ResourceApplyKerasMomentum, nesterov as Keras).
type SGD struct {
	Base `mapstructure:",squash"`

	LR       float64 `mapstructure:"learning_rate"`
	Momentum float64 `mapstructure:"momentum"`
	Nesterov bool    `mapstructure:"nesterov"`
}

func init() {
	RegisterOptimizer(OptimizerKind{Name: "sgd", Class: "SGD", New: func() Optimizer { return &SGD{LR: 0.01, Base: DefaultBase()} }})
}

func (o *SGD) Validate() error {
	if err := o.validateBase(); err != nil {
		return err
	}
	if err := finiteIn("learning_rate", o.LR, 0, math.Inf(1), true, true); err != nil {
		return err
	}
	return finiteIn("momentum", o.Momentum, 0, 1, false, true)
}

func (o *SGD) LearningRate() float64 { return o.LR }

func (o *SGD) Update(u *Updater, w *Variable, g tf.Output) *tf.Operation {
	s := u.Scope()
	if o.Momentum == 0 {
		return op.ResourceApplyGradientDescent(s.SubScope("ResourceApplyGradientDescent"), w.Handle(), u.LR(), g)
	}
	mom := u.Slot(w, "momentum")
	return op.ResourceApplyKerasMomentum(s.SubScope("ResourceApplyKerasMomentum"), w.Handle(), mom.Handle(), u.LR(), g,
		u.F(o.Momentum), op.ResourceApplyKerasMomentumUseNesterov(o.Nesterov))
}

func (o *SGD) KerasConfig() map[string]any {
	return o.kerasBase(map[string]any{"learning_rate": o.LR, "momentum": o.Momentum, "nesterov": o.Nesterov})
}

func (o *SGD) SlotsPerWeight() int {
	if o.Momentum == 0 {
		return 0
	}
	return 1
}
