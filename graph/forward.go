package graph

import (
	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// pass is one forward pass through a Net: each node's Call (with what it
// kept for the backward pass), its output before and after its activation,
// the logits the loss reads and the model output.
type pass struct {
	calls       map[*Node]*Call
	pre, post   map[*Node]tf.Output
	logits, out tf.Output
}

// Preprocess is how uint8 images become the model's float input.
type Preprocess struct {
	// Normalize divides by 255, the notebook's X.astype('float32') / 255
	// (a true division, as there).
	Normalize bool
	// Mean and Std, when set, then standardise each channel:
	// (x − mean) / std, per channel, on the [0, 1] scale when Normalize.
	Mean, Std []float64
}

// apply adds the preprocessing of images to s.
func (p Preprocess) apply(s *op.Scope, images tf.Output) tf.Output {
	x := op.Cast(s.SubScope("Cast"), images, tf.Float)
	if p.Normalize {
		x = op.RealDiv(s.SubScope("RealDiv"), x, op.Const(s.SubScope("Const"), float32(255)))
	}
	if len(p.Mean) > 0 {
		mean, std := make([]float32, len(p.Mean)), make([]float32, len(p.Std))
		for i := range mean {
			mean[i], std[i] = float32(p.Mean[i]), float32(p.Std[i])
		}
		x = op.RealDiv(s.SubScope("RealDiv"), op.Sub(s.SubScope("Sub"), x, op.Const(s.SubScope("mean"), mean)), op.Const(s.SubScope("std"), std))
	}
	return x
}

// forward applies the layers in order. params holds each node's variable
// values; training selects dropout and batch statistics, drawing random
// layers from seed. The logits are the input of a final softmax (the
// output itself when the model does not end in one).
func (n *Net) forward(s *op.Scope, x tf.Output, params map[*Node][]tf.Output, training bool, seed tf.Output) *pass {
	return n.forwardShard(s, x, params, training, seed, nil)
}

// forwardShard is forward on one tower's rows of a global batch (see
// Call.Shard).
func (n *Net) forwardShard(s *op.Scope, x tf.Output, params map[*Node][]tf.Output, training bool, seed tf.Output, shard *Shard) *pass {
	p := &pass{calls: map[*Node]*Call{}, pre: map[*Node]tf.Output{}, post: map[*Node]tf.Output{n.Input: x}}
	for _, node := range n.Nodes {
		c := &Call{Scope: s.SubScope(node.Name), InShapes: node.In, OutShape: node.Out, Params: params[node],
			Training: training, Seed: seed, Index: node.Index, Shard: shard}
		for _, in := range node.Inputs {
			c.In = append(c.In, p.post[in])
		}
		c.Out = node.Layer.Call(c)
		p.calls[node], p.pre[node] = c, c.Out
		y := c.Out
		if a := node.Activation(); a != "" && a != "linear" {
			y = activations[a].forward(c.Scope, y)
		}
		p.post[node] = y
	}
	last := n.Output()
	p.out = p.post[last]
	p.logits = p.out
	if n.FinalSoftmax() {
		p.logits = p.pre[last]
	}
	return p
}

// Inference adds the serving path to s: uint8 NHWC images to the model
// output (class probabilities after a final softmax), with each node's
// variable values from params (inference mode: no dropout, moving
// statistics). The SavedModel export builds its graph with it.
func (n *Net) Inference(s *op.Scope, images tf.Output, pre Preprocess, params map[*Node][]tf.Output) tf.Output {
	return n.forward(s.SubScope("model"), pre.apply(s, images), params, false, tf.Output{}).out
}

// InferenceTTA is Inference that also returns the output with test-time
// augmentation (see tta): flips, and translations by translate pixels
// when it is above 0.
func (n *Net) InferenceTTA(s *op.Scope, images tf.Output, pre Preprocess, params map[*Node][]tf.Output, translate int) (out, tta tf.Output) {
	x := pre.apply(s, images)
	out = n.forward(s.SubScope("model"), x, params, false, tf.Output{}).out
	return out, n.tta(s, x, out, params, translate)
}

// tta is test-time augmentation of out, the output on x: the mean of the
// outputs on x and on x mirrored left to right (NHWC axis 2). With
// translate > 0 it is airbench's mirror + translate (legacy/airbench94.py,
// infer_mirror_translate): half that mean, plus a quarter each of the same
// mean on x shifted by translate pixels up-left and down-right (reflect
// padding).
func (n *Net) tta(s *op.Scope, x, out tf.Output, params map[*Node][]tf.Output, translate int) tf.Output {
	ts := s.SubScope("tta")
	mirror := func(s *op.Scope, x, out tf.Output) tf.Output {
		if out == (tf.Output{}) {
			out = n.forward(s.SubScope("model"), x, params, false, tf.Output{}).out
		}
		flipped := op.ReverseV2(s.SubScope("ReverseV2"), x, op.Const(s.SubScope("axis"), []int32{2}))
		other := n.forward(s.SubScope("mirror"), flipped, params, false, tf.Output{}).out
		return op.Mul(s.SubScope("Mul"), op.AddV2(s.SubScope("AddV2"), out, other), op.Const(s.SubScope("half"), float32(0.5)))
	}
	mean := mirror(ts, x, out)
	if translate <= 0 {
		return mean
	}
	t := int32(translate)
	h, w := int32(n.Input.Out[0]), int32(n.Input.Out[1])
	padded := op.MirrorPad(ts.SubScope("MirrorPad"), x, op.Const(ts.SubScope("paddings"), [][]int32{{0, 0}, {t, t}, {t, t}, {0, 0}}), "REFLECT")
	size := op.Const(ts.SubScope("size"), []int32{-1, h, w, -1})
	upLeft := op.Slice(ts.SubScope("up_left"), padded, op.Const(ts.SubScope("begin"), []int32{0, 0, 0, 0}), size)
	downRight := op.Slice(ts.SubScope("down_right"), padded, op.Const(ts.SubScope("begin"), []int32{0, 2 * t, 2 * t, 0}), size)
	shifted := op.AddV2(ts.SubScope("AddV2"), mirror(ts.SubScope("up_left"), upLeft, tf.Output{}), mirror(ts.SubScope("down_right"), downRight, tf.Output{}))
	return op.AddV2(ts.SubScope("AddV2"), op.Mul(ts.SubScope("Mul"), mean, op.Const(ts.SubScope("half"), float32(0.5))),
		op.Mul(ts.SubScope("Mul"), shifted, op.Const(ts.SubScope("quarter"), float32(0.25))))
}

// explicitBackward reports whether the layers' own Backward covers the
// model: every layer is Differentiable and the model ends in a softmax
// whose cross-entropy gradient the loss op provides.
func (m *Model) explicitBackward() bool {
	if !m.Net.FinalSoftmax() {
		return false
	}
	for _, node := range m.Net.Nodes {
		if _, ok := node.Layer.(Differentiable); !ok {
			return false
		}
	}
	return true
}

// backward builds the gradient of the training loss with respect to every
// trainable weight (in Weights order), walking the nodes in reverse
// topological order: each node's output gradient is the sum over its
// consumers (AddN), taken through its activation's gradient and then the
// layer's Backward. dlogits is the gradient at the input of the final
// softmax; penalties are the regularizers' weight gradients.
func (m *Model) backward(s *op.Scope, p *pass, dlogits tf.Output, penalties map[*Variable]tf.Output) []tf.Output {
	net := m.Net
	dOut := map[*Node][]tf.Output{}
	last := net.Output()
	grads := map[*Variable]tf.Output{}
	// reluDone marks a node whose ReLU gradient a zeroAtZero consumer
	// already took on its own (smaller) output.
	reluDone := map[*Node]bool{}
	// sums[n] has the same per-channel sums as the gradient at n's output
	// and fewer units: what a sumPreserving consumer was given (Call.ChannelSum).
	sums := map[*Node]tf.Output{}
	for i := len(net.Nodes) - 1; i >= 0; i-- {
		node := net.Nodes[i]
		c := p.calls[node]
		ns := s.SubScope(node.Name)
		var dy tf.Output
		switch {
		case node == last && net.FinalSoftmax():
			dy = dlogits // already the gradient at the softmax input
		case len(dOut[node]) == 1:
			dy = dOut[node][0]
		default:
			dy = op.AddN(ns.SubScope("AddN"), dOut[node])
		}
		// dy keeps its per-channel sums unless an activation's gradient
		// changes it.
		sumKept := len(dOut[node]) == 1
		if a := node.Activation(); node != last || !net.FinalSoftmax() {
			if a != "" && a != "linear" && !reluDone[node] {
				dy = activations[a].grad(ns, dy, p.pre[node], p.post[node])
				sumKept = false
			}
		}
		// A ReLU right before a max-pool: its gradient on the pooled side.
		if z, ok := node.Layer.(zeroAtZero); ok && z.commutesWithReLU() && node.Activation() == "" {
			if in := node.Inputs[0]; in != net.Input && in.Activation() == "relu" && in.consumers == 1 {
				dy = op.ReluGrad(ns.SubScope("ReluGrad"), dy, p.post[node])
				reluDone[in] = true
				sumKept = false
			}
		}
		c.sumSource = tf.Output{}
		if sumKept {
			c.sumSource = sums[node] // none unless a sumPreserving consumer set one
		}
		c.NeedInput = make([]bool, len(node.Inputs))
		for j, in := range node.Inputs {
			c.NeedInput[j] = in != net.Input
		}
		c.Scope = ns
		dx, dw := node.Layer.(Differentiable).Backward(c, dy)
		for j, in := range node.Inputs {
			if c.NeedInput[j] {
				dOut[in] = append(dOut[in], dx[j])
			}
		}
		if sp, ok := node.Layer.(sumPreserving); ok && sp.preservesChannelSums() && len(node.Inputs) == 1 {
			sums[node.Inputs[0]] = c.channelSumSource(dy)
		}
		k := 0
		for _, v := range m.params[node] {
			if !v.param.Trainable {
				continue
			}
			g := dw[k]
			k++
			if v.param.Frozen {
				continue
			}
			if pg, ok := penalties[v]; ok {
				g = op.AddV2(ns.SubScope("AddV2"), g, pg)
			}
			grads[v] = g
		}
	}
	out := make([]tf.Output, len(m.Weights))
	for i, v := range m.Weights {
		out[i] = grads[v]
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
