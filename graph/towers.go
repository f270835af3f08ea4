package graph

import (
	"fmt"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// towerStep is the training step's forward and backward pass split
// data-parallel over Options.Towers: each tower takes an even slice of the
// batch (rows [⌊i·B/N⌋, ⌊(i+1)·B/N⌋)), and the towers' results are
// combined on the variables' device (the master's, worker task 0).
type towerStep struct {
	// logits are the towers' logits in batch order.
	logits tf.Output
	// loss is the mean loss over the global batch (before penalties);
	// correct the number of correct predictions.
	loss, correct tf.Output
	// grads are the weights' gradients of loss, in Weights order: the sum
	// of the towers' gradients, each of its examples' losses over the
	// global batch size.
	grads []tf.Output
	// updates are the layers' state updates (moving statistics): the mean
	// of the towers' values.
	updates map[*Node]map[int]tf.Output
}

// buildTowers adds the towers of the training step. The explicit backward
// pass is built per tower, with each tower's ops on its device; gradients
// taken by Graph.AddGradients would carry no device (they would all run on
// the master), so a model it does not cover is refused.
//
// The gradient is exactly the single-process one up to float summation
// order: a single process's dlogits is softmax-cross-entropy's backprop
// times 1/B (the batch mean), each tower's is its rows of the same
// backprop times the same 1/B, so each weight's gradient is a sum over the
// same per-example terms, grouped by tower and then added.
//
// BatchNormalization normalises each tower by its own batch statistics,
// as Keras's layer does under tf.distribute with its default
// synchronized=False (keras/src/layers/normalization/batch_normalization.py:
// "If `False`, each replica uses its own local batch statistics"), so a
// net with it differs from
// a single process by design; its moving statistics are updated with the
// mean of the towers' updated values.
func (m *Model) buildTowers(s *op.Scope, vals map[*Node][]tf.Output) (*towerStep, error) {
	net, o := m.Net, m.opts
	if !m.explicitBackward() {
		return nil, fmt.Errorf("compile: data-parallel training needs the layers' own backward pass: the model must end in softmax and use only layers with one (graph.Differentiable)")
	}
	if o.AutoGradients {
		return nil, fmt.Errorf("compile: data-parallel training builds the backward pass per tower; AutoGradients cannot place it")
	}
	n := len(o.Towers)
	shape := op.Shape(s.SubScope("Shape"), m.images, op.ShapeOutType(tf.Int32))
	global := op.GatherV2(s.SubScope("GatherV2"), shape, op.Const(s.SubScope("Const"), int32(0)), op.Const(s.SubScope("Const"), int32(0)))
	inv := op.RealDiv(s.SubScope("RealDiv"), op.Const(s.SubScope("Const"), float32(1)), op.Cast(s.SubScope("Cast"), global, tf.Float))
	i32 := func(s *op.Scope, v int32) tf.Output { return op.Const(s.SubScope("Const"), v) }

	ts := &towerStep{updates: map[*Node]map[int]tf.Output{}}
	var logits, lossSums, corrects []tf.Output
	grads := make([][]tf.Output, len(m.Weights))
	updates := map[*Node]map[int][]tf.Output{}
	for i, dev := range o.Towers {
		// Slicing runs on the master, so each tower receives only its rows.
		bs := s.SubScope(fmt.Sprintf("tower_%d", i))
		start := op.FloorDiv(bs.SubScope("FloorDiv"), op.Mul(bs.SubScope("Mul"), global, i32(bs, int32(i))), i32(bs, int32(n)))
		end := op.FloorDiv(bs.SubScope("FloorDiv"), op.Mul(bs.SubScope("Mul"), global, i32(bs, int32(i+1))), i32(bs, int32(n)))
		size := op.Sub(bs.SubScope("Sub"), end, start)
		zero, all, one := i32(bs, 0), i32(bs, -1), op.Const(bs.SubScope("Const"), []int32{1})
		images := op.Slice(bs.SubScope("images"), m.images,
			op.Pack(bs.SubScope("Pack"), []tf.Output{start, zero, zero, zero}), op.Pack(bs.SubScope("Pack"), []tf.Output{size, all, all, all}))
		labels := op.Slice(bs.SubScope("labels"), m.labels, op.Reshape(bs.SubScope("Reshape"), start, one), op.Reshape(bs.SubScope("Reshape"), size, one))

		ds := bs.WithDevice(dev)
		x := o.Preprocess().apply(ds.SubScope("preprocess"), images)
		p := net.forwardShard(ds.SubScope("train"), x, vals, true, m.dropSeed, &Shard{Global: global, Start: start})
		ls := ds.SubScope("loss")
		perExample, backprop := op.SoftmaxCrossEntropyWithLogits(ls.SubScope("SoftmaxCrossEntropyWithLogits"), p.logits, m.targets(ls, labels))
		lossSums = append(lossSums, op.Sum(ls.SubScope("Sum"), perExample, i32(ls, 0)))
		pred := op.ArgMax(ls.SubScope("ArgMax"), p.out, i32(ls, 1), op.ArgMaxOutputType(tf.Int32))
		corrects = append(corrects, op.Sum(ls.SubScope("Sum"), op.Cast(ls.SubScope("Cast"), op.Equal(ls.SubScope("Equal"), pred, labels), tf.Int32), i32(ls, 0)))
		logits = append(logits, p.logits)
		dlogits := op.Mul(ls.SubScope("Mul"), backprop, inv)
		if m.lossScale != nil {
			dlogits = m.lossScale.times(ls, dlogits)
		}
		for k, g := range m.backward(ds.SubScope("backward"), p, dlogits, nil) {
			grads[k] = append(grads[k], g)
		}
		for node, c := range p.calls {
			for j, v := range c.updates {
				if updates[node] == nil {
					updates[node] = map[int][]tf.Output{}
				}
				updates[node][j] = append(updates[node][j], v)
			}
		}
	}
	sum := func(s *op.Scope, xs []tf.Output) tf.Output {
		if len(xs) == 1 {
			return xs[0]
		}
		return op.AddN(s.SubScope("AddN"), xs)
	}
	cs := s.SubScope("combine")
	ts.logits = logits[0]
	if len(logits) > 1 {
		ts.logits = op.ConcatV2(cs.SubScope("ConcatV2"), logits, i32(cs, 0))
	}
	ts.loss = op.Mul(cs.SubScope("Mul"), sum(cs, lossSums), inv)
	ts.correct = sum(cs, corrects)
	for _, g := range grads {
		ts.grads = append(ts.grads, sum(cs, g))
	}
	for node, byParam := range updates {
		ts.updates[node] = map[int]tf.Output{}
		for j, vs := range byParam {
			ts.updates[node][j] = op.Mul(cs.SubScope("Mul"), sum(cs, vs), op.Const(cs.SubScope("Const"), float32(1/float64(len(vs)))))
		}
	}
	return ts, s.Err()
}
