package graph

import (
	"fmt"
	"strings"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// buildOptimizer adds the optimiser's slots, its fused TensorFlow update op
// per weight, and the iteration counter, with Keras 3's update laws:
//
//   - rmsprop: v = ρv + (1−ρ)g²; var −= lr·g/√(v+ε) (ResourceApplyRMSProp,
//     whose momentum slot with momentum 0 holds exactly that increment), and
//     centered → ResourceApplyCenteredRMSProp (v − ḡ² + ε under the root);
//   - sgd: var −= lr·g, or Keras's momentum form m = μm − lr·g, var += m
//     (ResourceApplyKerasMomentum, nesterov as Keras);
//   - adam: m += (g−m)(1−β1), v += (g²−v)(1−β2),
//     var −= lr·√(1−β2^t)/(1−β1^t)·m/(√v+ε) with t = iterations+1
//     (ResourceApplyAdam computes that same lr_t).
//
// Slot names follow Keras 3: <optimizer>/<layer>_<weight>_<slot>.
func (m *Model) buildOptimizer(s *op.Scope) error {
	o := m.opts.Optimizer
	name := o.Name
	m.iteration = m.newVariable(s, name+"/iteration", nil, tf.Int64)
	f := func(x float64) tf.Output { return op.Const(s.SubScope("Const"), float32(x)) }
	slot := func(w *Variable, what string) *Variable {
		return m.newVariable(s, name+"/"+strings.ReplaceAll(w.Name, "/", "_")+"_"+what, w.Shape, tf.Float)
	}
	var step tf.Output
	if name == "adam" {
		step = op.Cast(s.SubScope("Cast"), op.Add(s.SubScope("Add"), m.iteration.read, op.Const(s.SubScope("Const"), int64(1))), tf.Float)
	}
	var applies []*tf.Operation
	for i, w := range m.Weights {
		g := m.grads[i]
		switch name {
		case "rmsprop":
			if o.Centered {
				mg, ms, mom := slot(w, "average_gradient"), slot(w, "velocity"), slot(w, "momentum")
				applies = append(applies, op.ResourceApplyCenteredRMSProp(s.SubScope("ResourceApplyCenteredRMSProp"), w.handle, mg.handle, ms.handle, mom.handle,
					f(o.LearningRate), f(o.Rho), f(o.Momentum), f(o.Epsilon), g))
			} else {
				ms, mom := slot(w, "velocity"), slot(w, "momentum")
				applies = append(applies, op.ResourceApplyRMSProp(s.SubScope("ResourceApplyRMSProp"), w.handle, ms.handle, mom.handle,
					f(o.LearningRate), f(o.Rho), f(o.Momentum), f(o.Epsilon), g))
			}
		case "sgd":
			if o.Momentum == 0 {
				applies = append(applies, op.ResourceApplyGradientDescent(s.SubScope("ResourceApplyGradientDescent"), w.handle, f(o.LearningRate), g))
			} else {
				mom := slot(w, "momentum")
				applies = append(applies, op.ResourceApplyKerasMomentum(s.SubScope("ResourceApplyKerasMomentum"), w.handle, mom.handle, f(o.LearningRate), g,
					f(o.Momentum), op.ResourceApplyKerasMomentumUseNesterov(o.Nesterov)))
			}
		case "adam":
			mm, vv := slot(w, "momentum"), slot(w, "velocity")
			b1p := op.Pow(s.SubScope("Pow"), f(o.Beta1), step)
			b2p := op.Pow(s.SubScope("Pow"), f(o.Beta2), step)
			applies = append(applies, op.ResourceApplyAdam(s.SubScope("ResourceApplyAdam"), w.handle, mm.handle, vv.handle, b1p, b2p,
				f(o.LearningRate), f(o.Beta1), f(o.Beta2), f(o.Epsilon), g))
		default:
			return fmt.Errorf("optimizer %q: not one of rmsprop, sgd, adam", name)
		}
	}
	inc := op.AssignAddVariableOp(s.WithControlDependencies(applies...), m.iteration.handle, op.Const(s.SubScope("Const"), int64(1)))
	m.trainOp = op.NoOp(s.WithControlDependencies(inc))
	return s.Err()
}
