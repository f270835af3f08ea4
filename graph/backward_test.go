package graph

import (
	"math"
	"strings"
	"testing"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/internal/enginetest"
)

// compileSmallAutograd is compileSmall with the backward pass built by
// Graph.AddGradients (the C++ gradient registry).
func compileSmallAutograd(t *testing.T, opt string) *Model {
	t.Helper()
	return compileNet(t, smallNet(), Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: optimizer(t, opt), AutoGradients: true})
}

// miniDeep has every layer kind and path of the deep net: stacked convs
// (same and strided valid), relu, pooling, dropout before and after flatten.
func miniDeep() []config.Layer {
	return []config.Layer{
		lay("conv2d", "filters", 4, "kernel_size", 3, "padding", "same"),
		lay("activation", "activation", "relu"),
		lay("conv2d", "filters", 6, "kernel_size", 3, "padding", "same", "activation", "relu"),
		lay("max_pooling2d", "pool_size", 2),
		lay("dropout", "rate", 0.25),
		lay("conv2d", "filters", 8, "kernel_size", 3, "strides", 3),
		lay("activation", "activation", "relu"),
		lay("max_pooling2d", "pool_size", 2),
		lay("dropout", "rate", 0.3),
		lay("flatten"),
		lay("dense", "units", 16, "activation", "relu"),
		lay("dropout", "rate", 0.5),
		lay("dense", "units", 10),
		lay("activation", "activation", "softmax"),
	}
}

// mergeNet joins branches: zero padding, concatenation along channels and
// along features, global max and average pooling.
func mergeNet() []config.Layer {
	return []config.Layer{
		lay("conv2d", "filters", 8, "kernel_size", 3, "padding", "same"),
		lay("activation", "activation", "relu", "name", "a"),
		lay("zero_padding2d", "padding", []any{1, 1}),
		lay("conv2d", "filters", 6, "kernel_size", 3, "activation", "elu", "name", "b", "strides", []any{1, 1}),
		lay("max_pooling2d", "pool_size", []any{3, 5}, "strides", 1, "padding", "same"),
		lay("concatenate", "inputs", []string{"a", "max_pooling2d"}),
		lay("dropout", "rate", 0.2, "name", "pooled"),
		lay("conv2d", "filters", 10, "kernel_size", 3, "padding", "same", "activation", "relu"),
		lay("global_max_pooling2d", "name", "gmp"),
		lay("global_average_pooling2d", "inputs", []string{"pooled"}, "name", "gap"),
		lay("concatenate", "inputs", []string{"gmp", "gap"}),
		lay("batch_normalization"),
		lay("dense", "units", 10, "activation", "softmax"),
	}
}

// poolNet sums conv bias gradients on the pooled side (Call.ChannelSum):
// through an Activation layer, two max-pools in a row, overlapping windows
// with padding, and a ReLU fused into the conv.
func poolNet() []config.Layer {
	return []config.Layer{
		lay("conv2d", "filters", 5, "kernel_size", 3, "padding", "same"),
		lay("activation", "activation", "relu"),
		lay("max_pooling2d", "pool_size", 3, "strides", 2, "padding", "same"),
		lay("max_pooling2d", "pool_size", 2),
		lay("conv2d", "filters", 6, "kernel_size", 3, "padding", "same", "activation", "relu"),
		lay("max_pooling2d", "pool_size", 2, "strides", 1),
		lay("flatten"),
		lay("dense", "units", 10, "activation", "softmax"),
	}
}

// TestChannelSumReadsPooledGradient checks that the bias gradients of
// poolNet's convs sum the pooled gradient (the equality of the sums is
// TestExplicitBackwardMatchesAddGradients's): the first conv's, through
// its Activation layer, the first pool's gradient after the ReLU's (taken
// there, so the second pool's cannot pass); the second conv's, with its
// ReLU fused, its pool's.
func TestChannelSumReadsPooledGradient(t *testing.T) {
	m := compileNet(t, poolNet(), Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: optimizer(t, "rmsprop")})
	inputs := map[string]string{}
	for _, n := range graphDef(t, m).Node {
		if n.Op == "Sum" {
			inputs[n.Name] = n.Input[0]
		}
	}
	for conv, want := range map[string]string{"conv2d": "backward/max_pooling2d/ReluGrad/", "conv2d_1": "backward/max_pooling2d_2/ReluGrad/"} {
		in, ok := inputs["backward/"+conv+"/Sum/Sum"]
		if !ok {
			t.Fatalf("%s: no bias-gradient Sum in the graph", conv)
		}
		if !strings.HasPrefix(in, want) {
			t.Errorf("%s: bias gradient sums %s, want the pooled gradient %s…", conv, in, want)
		}
	}
}

// TestExplicitBackwardMatchesAddGradients checks the explicit backward pass
// against TensorFlow's C++ gradient registry on the same graph, with
// dropout active (both read the same masks).
func TestExplicitBackwardMatchesAddGradients(t *testing.T) {
	const n = 16
	images, labels := parityBatches(t, n)
	for _, tc := range []struct {
		name string
		net  []config.Layer
	}{{"small", smallNet()}, {"mini-deep", miniDeep()}, {"residual", enginetest.SmallResNet()}, {"merges", mergeNet()}, {"pools", poolNet()}} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Seed: 7, Normalize: true, Classes: 10, Optimizer: optimizer(t, "rmsprop")}
			explicit := compileNet(t, tc.net, o)
			o.AutoGradients = true
			auto := compileNet(t, tc.net, o)
			if !explicit.explicitBackward() {
				t.Fatal("explicit backward does not cover the net")
			}
			le, lossE, ge, err := explicit.Probe(images, labels, n, 3, 4)
			if err != nil {
				t.Fatal(err)
			}
			la, lossA, ga, err := auto.Probe(images, labels, n, 3, 4)
			if err != nil {
				t.Fatal(err)
			}
			// The forward graphs are the same ops, but grappler may fuse
			// them differently (a BiasAdd with one consumer or two).
			if d := relDiff(le.Data, la.Data); d > 1e-6 || math.Abs(lossE-lossA) > 1e-6 {
				t.Fatalf("forward differs: logits %g, loss %g vs %g", d, lossE, lossA)
			}
			for i, v := range explicit.Weights {
				// Same kernels; a conv's bias gradient sums in another order (a
				// Sum, of the pooled gradient after a max-pool), ~1e-7
				// relative per partial sum.
				if d := relDiff(ge[i].Data, ga[i].Data); d > 1e-5 || math.IsNaN(d) {
					t.Errorf("grad %s: relative diff %.3g", v.Name, d)
				}
				if maxAbsDiff(ga[i].Data, make([]float32, len(ga[i].Data))) == 0 {
					t.Errorf("grad %s is all zero: comparison is vacuous", v.Name)
				}
			}
		})
	}
}

// TestReluGradReadsReluOutput checks the point of the explicit pass: no
// ReluGrad reads a BiasAdd output, so each BiasAdd has the Relu as its only
// consumer and grappler can fuse Conv2D/MatMul+BiasAdd+Relu. The C++
// registry's gradient (AutoGradients) reads the Relu input.
func TestReluGradReadsReluOutput(t *testing.T) {
	count := func(m *Model) (fromBiasAdd, total int) {
		for _, o := range m.graph.Operations() {
			if o.Type() != "BiasAdd" {
				continue
			}
			for _, c := range o.Output(0).Consumers() {
				if c.Op.Type() == "ReluGrad" {
					fromBiasAdd++
				}
			}
		}
		for _, o := range m.graph.Operations() {
			if o.Type() == "ReluGrad" {
				total++
			}
		}
		return fromBiasAdd, total
	}
	o := Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: optimizer(t, "rmsprop")}
	if b, total := count(compileNet(t, miniDeep(), o)); b != 0 || total != 4 {
		t.Errorf("explicit: %d of %d ReluGrads read a BiasAdd output, want 0 of 4", b, total)
	}
	o.AutoGradients = true
	if b, _ := count(compileNet(t, miniDeep(), o)); b == 0 {
		t.Errorf("AddGradients: no ReluGrad reads a BiasAdd output; the C++ registry changed, revisit backward.go")
	}
}

// TestExplicitBackwardFallback: a net without a final softmax (probability
// loss path) is outside the explicit pass and still trains via
// AddGradients.
func TestExplicitBackwardFallback(t *testing.T) {
	net := smallNet()
	net[len(net)-1] = lay("activation", "activation", "linear")
	m := compileNet(t, net, Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: optimizer(t, "rmsprop")})
	if m.explicitBackward() {
		t.Fatal("explicit backward claims a net without a final softmax")
	}
	images, labels := tinyData(8, 10, 2)
	if _, _, grads, err := m.Probe(images, labels, 8, 1, 1); err != nil || len(grads) != len(m.Weights) {
		t.Fatalf("probe: %d grads, err %v", len(grads), err)
	}
}

// TestDropoutMask checks the byte-drawn dropout masks: values 0 or
// 1/(1−rate), kept fraction 1−rate, a function of (seed, step, layer).
func TestDropoutMask(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		units int
	}{{0.25, 4096}, {0.5, 1001}, {0.3, 4097}, {0.1, 2}} {
		s := op.NewScope()
		seedIn := op.Placeholder(s.SubScope("seed"), tf.Int64, op.PlaceholderShape(tf.MakeShape(2)))
		x := op.Placeholder(s.SubScope("x"), tf.Float, op.PlaceholderShape(tf.MakeShape(-1, int64(tc.units))))
		c := &Call{Scope: s.SubScope("dropout"), In: []tf.Output{x}, InShapes: []Shape{{tc.units}}, Training: true, Seed: seedIn, Index: 3}
		y := (&Dropout{Rate: tc.rate}).Call(c)
		mask, _ := c.Kept("mask")
		g, err := s.Finalize()
		if err != nil {
			t.Fatal(err)
		}
		sess, err := tf.NewSession(g, nil)
		if err != nil {
			t.Fatal(err)
		}
		const batch = 64
		ones := make([][]float32, batch)
		for i := range ones {
			ones[i] = make([]float32, tc.units)
			for j := range ones[i] {
				ones[i][j] = 1
			}
		}
		xt, _ := tf.NewTensor(ones)
		run := func(seed, step int64) ([][]float32, [][]float32) {
			st, _ := tf.NewTensor([]int64{seed, step})
			out, err := sess.Run(map[tf.Output]*tf.Tensor{x: xt, seedIn: st}, []tf.Output{y, mask}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return TensorValue(out[0]).([][]float32), TensorValue(out[1]).([][]float32)
		}
		ya, ma := run(1, 5)
		yb, _ := run(1, 5)
		yc, _ := run(1, 6)
		scale := float32(1 / (1 - tc.rate))
		kept, same, sameNext := 0, 0, 0
		for i := range ya {
			for j, v := range ya[i] {
				if v != 0 && v != scale || v != ma[i][j] {
					t.Fatalf("rate %g: output %g (mask %g), want 0 or %g", tc.rate, v, ma[i][j], scale)
				}
				if v != 0 {
					kept++
				}
				if yb[i][j] == v {
					same++
				}
				if yc[i][j] == v {
					sameNext++
				}
			}
		}
		total := batch * tc.units
		frac := float64(kept) / float64(total)
		if sd := math.Sqrt(tc.rate * (1 - tc.rate) / float64(total)); math.Abs(frac-(1-tc.rate)) > 5*sd+1.0/65536 {
			t.Errorf("rate %g: kept %.4f of units, want %.4f", tc.rate, frac, 1-tc.rate)
		}
		if same != total {
			t.Errorf("rate %g: same seed and step gave a different mask", tc.rate)
		}
		if sameNext == total {
			t.Errorf("rate %g: the next step repeated the mask", tc.rate)
		}
		sess.Close()
	}
}
