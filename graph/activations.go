package graph

import (
	"fmt"
	"maps"
	"math"
	"slices"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// activation is a Keras activation function: its forward op and its
// gradient from TensorFlow's gradient ops, given the gradient dy at its
// output, its input x and output y. Each is the op Keras 3's TensorFlow
// backend runs (keras/src/activations/activations.py →
// keras/src/backend/tensorflow/nn.py), with Keras's default arguments.
type activation struct {
	forward func(s *op.Scope, x tf.Output) tf.Output
	grad    func(s *op.Scope, dy, x, y tf.Output) tf.Output
}

// leakyReLUSlope is keras.activations.leaky_relu's default negative_slope.
const leakyReLUSlope = 0.2

var activations = map[string]activation{
	"linear": {
		forward: func(s *op.Scope, x tf.Output) tf.Output { return x },
		grad:    func(s *op.Scope, dy, x, y tf.Output) tf.Output { return dy },
	},
	"relu": {
		forward: func(s *op.Scope, x tf.Output) tf.Output { return op.Relu(s.SubScope("Relu"), x) },
		// Python TensorFlow's registered gradient feeds ReluGrad the output.
		grad: func(s *op.Scope, dy, x, y tf.Output) tf.Output { return op.ReluGrad(s.SubScope("ReluGrad"), dy, y) },
	},
	"elu": { // alpha 1: tf.nn.elu
		forward: func(s *op.Scope, x tf.Output) tf.Output { return op.Elu(s.SubScope("Elu"), x) },
		grad:    func(s *op.Scope, dy, x, y tf.Output) tf.Output { return op.EluGrad(s.SubScope("EluGrad"), dy, y) },
	},
	"leaky_relu": {
		forward: func(s *op.Scope, x tf.Output) tf.Output {
			return op.LeakyRelu(s.SubScope("LeakyRelu"), x, op.LeakyReluAlpha(leakyReLUSlope))
		},
		grad: func(s *op.Scope, dy, x, y tf.Output) tf.Output {
			return op.LeakyReluGrad(s.SubScope("LeakyReluGrad"), dy, x, op.LeakyReluGradAlpha(leakyReLUSlope))
		},
	},
	"tanh": {
		forward: func(s *op.Scope, x tf.Output) tf.Output { return op.Tanh(s.SubScope("Tanh"), x) },
		grad:    func(s *op.Scope, dy, x, y tf.Output) tf.Output { return op.TanhGrad(s.SubScope("TanhGrad"), y, dy) },
	},
	"sigmoid": {
		forward: func(s *op.Scope, x tf.Output) tf.Output { return op.Sigmoid(s.SubScope("Sigmoid"), x) },
		grad: func(s *op.Scope, dy, x, y tf.Output) tf.Output {
			return op.SigmoidGrad(s.SubScope("SigmoidGrad"), y, dy)
		},
	},
	// silu (swish): tf.nn.silu, x·σ(x), whose custom gradient is
	// dy·σ(x)·(1 + x·(1 − σ(x))).
	"silu": {
		forward: func(s *op.Scope, x tf.Output) tf.Output {
			return op.Mul(s.SubScope("Mul"), x, op.Sigmoid(s.SubScope("Sigmoid"), x))
		},
		grad: func(s *op.Scope, dy, x, y tf.Output) tf.Output {
			sg := op.Sigmoid(s.SubScope("Sigmoid"), x)
			one := op.Const(s.SubScope("one"), float32(1))
			g := op.Mul(s.SubScope("Mul"), sg, op.AddV2(s.SubScope("AddV2"), one, op.Mul(s.SubScope("Mul"), x, op.Sub(s.SubScope("Sub"), one, sg))))
			return op.Mul(s.SubScope("Mul"), dy, g)
		},
	},
	// gelu: keras.activations.gelu defaults to approximate=False, the exact
	// 0.5·x·(1 + erf(x/√2)) of tf.nn.gelu; its derivative is
	// Φ(x) + x·φ(x).
	"gelu": {
		forward: func(s *op.Scope, x tf.Output) tf.Output {
			c := func(v float64) tf.Output { return op.Const(s.SubScope("Const"), float32(v)) }
			erf := op.Erf(s.SubScope("Erf"), op.RealDiv(s.SubScope("RealDiv"), x, c(1.4142135623730951)))
			return op.Mul(s.SubScope("Mul"), op.Mul(s.SubScope("Mul"), c(0.5), x), op.AddV2(s.SubScope("AddV2"), c(1), erf))
		},
		grad: func(s *op.Scope, dy, x, y tf.Output) tf.Output {
			c := func(v float64) tf.Output { return op.Const(s.SubScope("Const"), float32(v)) }
			cdf := op.Mul(s.SubScope("Mul"), c(0.5), op.AddV2(s.SubScope("AddV2"), c(1), op.Erf(s.SubScope("Erf"), op.RealDiv(s.SubScope("RealDiv"), x, c(math.Sqrt2)))))
			pdf := op.Mul(s.SubScope("Mul"), c(1/math.Sqrt(2*math.Pi)), op.Exp(s.SubScope("Exp"), op.Mul(s.SubScope("Mul"), c(-0.5), op.Square(s.SubScope("Square"), x))))
			return op.Mul(s.SubScope("Mul"), dy, op.AddV2(s.SubScope("AddV2"), cdf, op.Mul(s.SubScope("Mul"), x, pdf)))
		},
	},
	// softmax over the last axis; its gradient as TensorFlow's SoftmaxGrad:
	// (dy − Σ dy·y)·y. A final softmax is not differentiated: the loss
	// takes its input as logits.
	"softmax": {
		forward: func(s *op.Scope, x tf.Output) tf.Output { return op.Softmax(s.SubScope("Softmax"), x) },
		grad: func(s *op.Scope, dy, x, y tf.Output) tf.Output {
			dot := op.Sum(s.SubScope("Sum"), op.Mul(s.SubScope("Mul"), dy, y), op.Const(s.SubScope("axis"), int32(-1)), op.SumKeepDims(true))
			return op.Mul(s.SubScope("Mul"), op.Sub(s.SubScope("Sub"), dy, dot), y)
		},
	},
}

// activationAliases are Keras's other names for an activation.
var activationAliases = map[string]string{"swish": "silu", "": "linear"}

// ActivationNames lists the activations a layer may use.
func ActivationNames() []string { return slices.Sorted(maps.Keys(activations)) }

// checkActivation resolves an activation argument to its Keras name.
func checkActivation(name string) (string, error) {
	if a, ok := activationAliases[name]; ok {
		name = a
	}
	if _, ok := activations[name]; !ok {
		return "", fmt.Errorf("activation: %q is not one of %v%s", name, ActivationNames(), suggestName(name, ActivationNames()))
	}
	return name, nil
}
