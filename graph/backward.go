package graph

import (
	"strings"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// record is what the training forward pass keeps of one layer for the
// explicit backward pass.
type record struct {
	// in is the layer's input, pre its output before the activation, out
	// its output after it.
	in, pre, out tf.Output
	// mask is an active dropout's mask: 0 or 1/(1−rate) per unit.
	mask tf.Output
}

// tape is the training forward pass, one record per layer.
type tape struct {
	records []record
}

// explicitBackward reports whether backward covers the model: layers of the
// known kinds, ReLU or linear activations, and a final softmax whose
// cross-entropy gradient the loss op provides.
func (m *Model) explicitBackward() bool {
	if !m.Seq.FinalSoftmax() {
		return false
	}
	last := len(m.Seq.Layers) - 1
	for i, l := range m.Seq.Layers {
		switch l.Kind {
		case "conv2d", "dense", "max_pooling2d", "flatten", "dropout", "activation":
		default:
			return false
		}
		switch l.Activation {
		case "", "linear", "relu":
		case "softmax":
			if i != last {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// backward builds the gradient of the training loss with respect to every
// weight (in Weights order) from TensorFlow's own gradient kernels, wired as
// Python TensorFlow's registered gradients wire them: BiasAddGrad,
// Conv2DBackpropFilter/Input, MatMul with a transpose (BatchMatMulV2 for a
// dense layer's input gradient), MaxPoolGrad, the
// dropout mask product, and ReluGrad on the ReLU *output*. dlogits is the
// gradient at the input of the final softmax.
func (m *Model) backward(s *op.Scope, tp *tape, vars map[*Layer][]tf.Output, dlogits tf.Output) []tf.Output {
	layers := m.Seq.Layers
	grads := map[*Layer][]tf.Output{}
	dy := dlogits
	last := len(layers) - 1
	// reluDone marks a ReLU whose gradient was already taken after the
	// max-pooling that follows it (see the max_pooling2d case).
	reluDone := false
	for i := last; i >= 0; i-- {
		l, r := layers[i], tp.records[i]
		ls := s.SubScope(l.Name)
		needInput := i > 0
		// Gradient at the activation's input.
		switch l.Activation {
		case "relu":
			if !reluDone {
				dy = op.ReluGrad(ls.SubScope("ReluGrad"), dy, r.out)
			}
			reluDone = false
		case "softmax":
			// i == last: dlogits is already the gradient at the softmax input.
		}
		switch l.Kind {
		case "conv2d":
			strides := []int64{1, int64(l.Strides[0]), int64(l.Strides[1]), 1}
			padding := strings.ToUpper(l.Padding)
			kernel := vars[l][0]
			// The bias gradient sums dy over all but the channel axis.
			// BiasAddGrad on dy seen as rows × channels: the same sum, but
			// the oneDNN layout pass then leaves Conv2DBackpropFilter
			// alone instead of fusing the two into
			// _MklNativeConv2DBackpropFilterWithBias, whose bias path made
			// the filter gradient ~25% slower (BENCHMARKS.md, History).
			channels := op.Const(ls.SubScope("Const"), []int32{-1, int32(l.Params[1].Shape[0])})
			db := op.BiasAddGrad(ls.SubScope("BiasAddGrad"), op.Reshape(ls.SubScope("Reshape"), dy, channels))
			dw := op.Conv2DBackpropFilter(ls.SubScope("Conv2DBackpropFilter"), r.in,
				op.Const(ls.SubScope("Const"), int32Shape(l.Params[0].Shape)), dy, strides, padding)
			grads[l] = []tf.Output{dw, db}
			if needInput {
				dy = op.Conv2DBackpropInput(ls.SubScope("Conv2DBackpropInput"), op.Shape(ls.SubScope("Shape"), r.in, op.ShapeOutType(tf.Int32)),
					kernel, dy, strides, padding)
			}
		case "dense":
			kernel := vars[l][0]
			db := op.BiasAddGrad(ls.SubScope("BiasAddGrad"), dy)
			dw := op.MatMul(ls.SubScope("MatMul"), r.in, dy, op.MatMulTransposeA(true))
			grads[l] = []tf.Output{dw, db}
			if needInput {
				// dy·Wᵀ. BatchMatMulV2 with adj_y runs oneDNN's matmul on the
				// transposed kernel ~1.5× faster here than MatMul with
				// transpose_b (BENCHMARKS.md); same product, summation order
				// within 2e-6 relative.
				dy = op.BatchMatMulV2(ls.SubScope("BatchMatMulV2"), dy, kernel, op.BatchMatMulV2AdjY(true))
			}
		case "max_pooling2d":
			if needInput && l.Activation == "" && layers[i-1].Activation == "relu" {
				// ReLU then max-pooling: take the ReLU's gradient on the
				// pooled side, a quarter of the units for a 2×2 pool. Exact:
				// MaxPoolGrad routes each gradient to its window's first
				// maximum, which is a zero of the ReLU exactly when the
				// pooled output is zero (all of the window ≤ 0), and ReluGrad
				// on the pooled output zeroes those same gradients.
				dy = op.ReluGrad(ls.SubScope("ReluGrad"), dy, r.out)
				reluDone = true
			}
			if needInput {
				dy = op.MaxPoolGrad(ls.SubScope("MaxPoolGrad"), r.in, r.pre, dy,
					[]int64{1, int64(l.PoolSize[0]), int64(l.PoolSize[1]), 1},
					[]int64{1, int64(l.Strides[0]), int64(l.Strides[1]), 1}, strings.ToUpper(l.Padding))
			}
		case "flatten":
			if needInput {
				dy = op.Reshape(ls.SubScope("Reshape"), dy, op.Shape(ls.SubScope("Shape"), r.in, op.ShapeOutType(tf.Int32)))
			}
		case "dropout":
			if r.mask != (tf.Output{}) {
				dy = op.Mul(ls.SubScope("Mul"), dy, r.mask) // y = x·mask
			}
		}
	}
	var out []tf.Output
	for _, l := range layers {
		out = append(out, grads[l]...)
	}
	return out
}

func int32Shape(s []int) []int32 {
	out := make([]int32, len(s))
	for i, d := range s {
		out[i] = int32(d)
	}
	return out
}
