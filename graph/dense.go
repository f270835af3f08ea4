package graph

import (
	"fmt"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Dense is keras.layers.Dense on a flat input: keras/src/layers/core/dense.py.
type Dense struct {
	Units      int `mapstructure:"units"`
	WeightArgs `mapstructure:",squash"`
}

func init() {
	RegisterLayer(Kind{Type: "dense", Class: "Dense", New: func() Layer {
		return &Dense{WeightArgs: DefaultWeightArgs()}
	}})
}

func (l *Dense) Build(in []Shape) (Shape, []Param, error) {
	if len(in[0]) != 1 {
		return nil, nil, fmt.Errorf("Dense after a %d-D output %v: add a flatten or global pooling layer before it", len(in[0]), in[0])
	}
	if l.Units < 1 {
		return nil, nil, fmt.Errorf("units: %d must be >= 1", l.Units)
	}
	if err := l.WeightArgs.check(); err != nil {
		return nil, nil, err
	}
	return Shape{l.Units}, l.params([]int{in[0][0], l.Units}), nil
}

func (l *Dense) Call(c *Call) tf.Output {
	x := op.MatMul(c.sub("MatMul"), c.In[0], c.Params[0])
	if l.UseBias {
		x = op.BiasAdd(c.sub("BiasAdd"), x, c.Params[1])
	}
	return x
}

// Backward: the kernel gradient xᵀ·dy, the bias gradient BiasAddGrad, and
// the input gradient dy·Wᵀ as BatchMatMulV2 with adj_y, which runs
// oneDNN's matmul on the transposed kernel ~1.5× faster here than MatMul
// with transpose_b (BENCHMARKS.md); same product, summation order within
// 2e-6 relative.
func (l *Dense) Backward(c *Call, dy tf.Output) (dx, dw []tf.Output) {
	dw = []tf.Output{op.MatMul(c.sub("MatMul"), c.In[0], dy, op.MatMulTransposeA(true))}
	if l.UseBias {
		dw = append(dw, op.BiasAddGrad(c.sub("BiasAddGrad"), dy))
	}
	dx = make([]tf.Output, 1)
	if c.NeedInput[0] {
		dx[0] = op.BatchMatMulV2(c.sub("BatchMatMulV2"), dy, c.Params[0], op.BatchMatMulV2AdjY(true))
	}
	return dx, dw
}

func (l *Dense) KerasConfig() map[string]any {
	return l.kerasConfig(map[string]any{"units": l.Units, "quantization_config": nil})
}
