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
//     var −= (m·α)/(√v+ε), α = lr·√(1−β2^t)/(1−β1^t), t = iterations+1.
//     Built from single ops, not ResourceApplyAdam: the fused kernel forms
//     1−β in float32 (T(1)−beta2 = 1−0.999f = 0.00099998713), while Keras
//     forms it in float64 and rounds once (0.001f); no float32 β input can
//     give 1−β = 0.001f (1−β is a multiple of 2⁻²⁴ for β ∈ [½, 1)). That
//     1.3e-5 relative change in v's gain moves weights by ~4e-8 after 3
//     steps on fixed gradients, yet enough to flip a near-tied max-pool or
//     ReLU in a deep net and move its conv kernels by 1e-4. Each op below
//     is the float32 op Keras runs, in Keras's order.
//
// A large matrix (the shallow net's 8192×512 dense kernel) is updated by
// SparseApplyRMSProp over all its rows instead: the same law
// (v = ρv + (1−ρ)g², Keras's own form; then lr·g·rsqrt(v+ε)), applied row
// by row, so each row's var, v and g are read once while in cache, where the
// dense kernel makes three passes over 16 MiB arrays (BENCHMARKS.md,
// History: 3.4–4.8 → 2.3–2.5 ms a step). It is the reference-variable op:
// on a resource variable a sparse update switches TensorFlow to
// copy-on-read, a 16 MiB copy at every read (1.3–3.9 ms a step).
//
// Slot names follow Keras 3: <optimizer>/<layer>_<weight>_<slot>.
func (m *Model) buildOptimizer(s *op.Scope) error {
	o := m.opts.Optimizer
	name := o.Name
	m.iteration = m.newVariable(s, name+"/iteration", nil, tf.Int64)
	f := func(x float64) tf.Output { return op.Const(s.SubScope("Const"), float32(x)) }
	slot := func(w *Variable, what string) *Variable {
		newVar := m.newVariable
		if w.ref {
			newVar = m.newRefVariable
		}
		return newVar(s, name+"/"+strings.ReplaceAll(w.Name, "/", "_")+"_"+what, w.Shape, tf.Float)
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
				if w.ref {
					// In place on shared buffers: after every op of the step that reads w.
					var readers []*tf.Operation
					for _, c := range w.trainRead.Consumers() {
						readers = append(readers, c.Op)
					}
					applies = append(applies, s.WithControlDependencies(readers...).AddOperation(tf.OpSpec{Type: "SparseApplyRMSProp",
						Input: []tf.Input{w.handle, ms.handle, mom.handle, f(o.LearningRate), f(o.Rho), f(o.Momentum), f(o.Epsilon), g,
							op.Const(s.SubScope("Const"), allRows(w.Shape[0]))}}))
					continue
				}
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
			applies = append(applies, m.adamUpdate(s.SubScope("Adam"), w, slot(w, "momentum"), slot(w, "velocity"), g, step))
		default:
			return fmt.Errorf("optimizer %q: not one of rmsprop, sgd, adam", name)
		}
	}
	inc := op.AssignAddVariableOp(s.WithControlDependencies(applies...), m.iteration.handle, op.Const(s.SubScope("Const"), int64(1)))
	m.trainOp = op.NoOp(s.WithControlDependencies(inc))
	return s.Err()
}

// sparseRMSPropMin is the weight size from which RMSprop updates row by row.
const sparseRMSPropMin = 1 << 20

// rowWise reports whether a weight of this shape is updated row by row
// (non-centred RMSprop on a matrix of sparseRMSPropMin weights or more).
func (m *Model) rowWise(shape []int) bool {
	o := m.opts.Optimizer
	return o.Name == "rmsprop" && !o.Centered && len(shape) == 2 && shape[0]*shape[1] >= sparseRMSPropMin
}

// allRows is the indices 0..n−1.
func allRows(n int) []int32 {
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(i)
	}
	return idx
}

// adamUpdate adds Keras 3's Adam.update_step (amsgrad off) for one weight w
// with slots mm (first moment) and vv (second moment), gradient g and
// float32 step t = iterations+1, and returns the op that completes it.
// Constants are rounded to float32 once from float64, as Keras's Python
// floats are, and every read of a slot is ordered after its update.
func (m *Model) adamUpdate(s *op.Scope, w, mm, vv *Variable, g, step tf.Output) *tf.Operation {
	o := m.opts.Optimizer
	f := func(x float64) tf.Output { return op.Const(s.SubScope("Const"), float32(x)) }
	one := f(1)
	b1p := op.Pow(s.SubScope("Pow"), f(o.Beta1), step)
	b2p := op.Pow(s.SubScope("Pow"), f(o.Beta2), step)
	// alpha = lr * sqrt(1 - beta_2_power) / (1 - beta_1_power), in float32.
	alpha := op.RealDiv(s.SubScope("alpha"),
		op.Mul(s.SubScope("Mul"), f(o.LearningRate), op.Sqrt(s.SubScope("Sqrt"), op.Sub(s.SubScope("Sub"), one, b2p))),
		op.Sub(s.SubScope("Sub"), one, b1p))
	// slot += (x - slot) * (1 - beta), then read the updated slot.
	moment := func(name string, v *Variable, x tf.Output, oneMinusBeta float64) tf.Output {
		ss := s.SubScope(name)
		old := op.ReadVariableOp(ss.SubScope("ReadVariableOp"), v.handle, tf.Float)
		inc := op.Mul(ss.SubScope("Mul"), op.Sub(ss.SubScope("Sub"), x, old), f(oneMinusBeta))
		add := op.AssignAddVariableOp(ss.SubScope("AssignAddVariableOp"), v.handle, inc)
		return op.ReadVariableOp(ss.SubScope("updated").WithControlDependencies(add), v.handle, tf.Float)
	}
	mNew := moment("momentum", mm, g, 1-o.Beta1)
	vNew := moment("velocity", vv, op.Square(s.SubScope("Square"), g), 1-o.Beta2)
	upd := op.RealDiv(s.SubScope("RealDiv"), op.Mul(s.SubScope("Mul"), mNew, alpha),
		op.AddV2(s.SubScope("AddV2"), op.Sqrt(s.SubScope("Sqrt"), vNew), f(o.Epsilon)))
	return op.AssignSubVariableOp(s.SubScope("AssignSubVariableOp"), w.handle, upd)
}
