package graph

import (
	"fmt"
	"math/rand/v2"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Patch whitening is airbench's first layer (Keller Jordan,
// cifar10-airbench, legacy/airbench94.py: init_whitening_conv): a k×k
// convolution whose 2·k·k·c filters are the eigenvectors of the covariance
// of the training images' k×k patches, each divided by √(eigenvalue + ε),
// and the same filters negated. Its output is the patches in a
// decorrelated basis of unit variance, which the network then need not
// learn. Keras has no such initializer: like a preprocessing layer's
// adapt(), it is computed once from data (Model.InitFromData) before the
// first step. The Keras files carry the resulting weights with a null
// initializer.
const (
	// whiteningEpsilon is airbench's ε, added to each eigenvalue.
	whiteningEpsilon = 5e-4
	// WhiteningImages is how many training images the covariance is
	// estimated from (airbench: the first 5000).
	WhiteningImages = 5000
)

func init() {
	initializers["patch_whitening"] = initializer{
		fill:       func(_ *rand.Rand, d []float32, _, _ int) { clear(d) }, // until InitFromData
		fromData:   patchWhitening,
		checkShape: checkWhiteningShape,
	}
}

func checkWhiteningShape(shape []int) error {
	if len(shape) != 4 {
		return fmt.Errorf("patch_whitening initializes a conv2d kernel, not a weight of shape %v", shape)
	}
	kh, kw, c, filters := shape[0], shape[1], shape[2], shape[3]
	if want := 2 * kh * kw * c; filters != want {
		return fmt.Errorf("patch_whitening needs filters = 2 × kernel height × kernel width × input channels = %d, not %d", want, filters)
	}
	return nil
}

// patchWhitening computes the kernel (shape kh×kw×c×2kh·kw·c) from x, the
// layer's input (N×H×W×c). The covariance and its eigendecomposition run
// in float64: the kernel divides by the square roots of the smallest
// eigenvalues, and a bfloat16 rewrite of a float32 MatMul would swamp them.
func patchWhitening(s *op.Scope, x tf.Output, shape []int) tf.Output {
	kh, kw, c := int64(shape[0]), int64(shape[1]), int64(shape[2])
	d := kh * kw * c
	patches := op.ExtractImagePatches(s.SubScope("patches"), x, []int64{1, kh, kw, 1}, []int64{1, 1, 1, 1}, []int64{1, 1, 1, 1}, "VALID")
	rows := op.Cast(s.SubScope("Cast"), op.Reshape(s.SubScope("Reshape"), patches, op.Const(s.SubScope("rows_shape"), []int64{-1, d})), tf.Double)
	n := op.Cast(s.SubScope("n"), op.Shape(s.SubScope("Shape"), rows, op.ShapeOutType(tf.Int64)), tf.Double)
	n = op.Slice(s.SubScope("Slice"), n, op.Const(s.SubScope("begin"), []int64{0}), op.Const(s.SubScope("size"), []int64{1}))
	cov := op.RealDiv(s.SubScope("cov"), op.MatMul(s.SubScope("MatMul"), rows, rows, op.MatMulTransposeA(true)), n)
	// Eigenvalues ascending, eigenvectors in the columns: reversed so the
	// first filter is the direction of largest variance, as airbench's.
	e, v := op.SelfAdjointEigV2(s.SubScope("eig"), cov)
	e = op.ReverseV2(s.SubScope("e_desc"), e, op.Const(s.SubScope("axis0"), []int32{0}))
	v = op.ReverseV2(s.SubScope("v_desc"), v, op.Const(s.SubScope("axis1"), []int32{1}))
	scale := op.Rsqrt(s.SubScope("Rsqrt"), op.AddV2(s.SubScope("AddV2"), e, op.Const(s.SubScope("eps"), float64(whiteningEpsilon))))
	w := op.Mul(s.SubScope("Mul"), v, scale) // column j scaled by 1/√(λj + ε)
	w = op.Reshape(s.SubScope("kernel_shape"), w, op.Const(s.SubScope("shape"), []int64{kh, kw, c, d}))
	w = op.ConcatV2(s.SubScope("ConcatV2"), []tf.Output{w, op.Neg(s.SubScope("Neg"), w)}, op.Const(s.SubScope("axis3"), int32(3)))
	return op.Cast(s.SubScope("float32"), w, tf.Float)
}

// dataInit is a variable whose initial value is computed from data.
type dataInit struct {
	v     *Variable
	value tf.Output
}

// buildDataInits adds, for every param whose initializer needs data, the
// ops computing its value from the inference pass's input to its layer.
func (m *Model) buildDataInits(s *op.Scope, eval *pass) {
	for _, n := range m.Net.Nodes {
		for i, p := range n.Params {
			in := initializers[p.Init]
			if in.fromData == nil {
				continue
			}
			ns := s.SubScope(n.Name + "_" + p.Name)
			m.dataInits = append(m.dataInits, dataInit{v: m.params[n][i], value: in.fromData(ns, eval.calls[n].In[0], p.Shape)})
		}
	}
}

// NeedsData reports whether a variable's initializer is computed from
// training images (InitFromData), as patch_whitening's is.
func (m *Model) NeedsData() bool { return len(m.dataInits) > 0 }

// InitFromData computes the data-derived initial values from n uint8 NHWC
// training images, in layer order (a later layer sees the earlier ones'
// values). Call it once on a fresh model, before the first step; a
// restored or imported model already holds them.
func (m *Model) InitFromData(images []uint8, n int) error {
	if len(m.dataInits) == 0 {
		return nil
	}
	feeds, err := m.batchFeeds(images, nil, n)
	if err != nil {
		return fmt.Errorf("initialize from data: %w", err)
	}
	for _, di := range m.dataInits {
		out, err := m.sess.Run(feeds, []tf.Output{di.value}, nil)
		if err != nil {
			return fmt.Errorf("initialize %s from data: %s", di.v.Name, FirstLine(err))
		}
		if _, err := m.sess.Run(map[tf.Output]*tf.Tensor{di.v.assignIn: out[0]}, nil, []*tf.Operation{di.v.assign}); err != nil {
			return fmt.Errorf("initialize %s from data: %s", di.v.Name, FirstLine(err))
		}
	}
	return nil
}
