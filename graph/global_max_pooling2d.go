package graph

import (
	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// GlobalMaxPooling2D is keras.layers.GlobalMaxPooling2D (channels_last):
// the maximum over height and width
// (keras/src/layers/pooling/global_max_pooling2d.py → ops.max).
type GlobalMaxPooling2D struct {
	KeepDims bool `mapstructure:"keepdims"`
}

func init() {
	RegisterLayer(Kind{Type: "global_max_pooling2d", Class: "GlobalMaxPooling2D", New: func() Layer { return &GlobalMaxPooling2D{} }})
}

func (l *GlobalMaxPooling2D) Build(in []Shape) (Shape, []Param, error) {
	if err := oneSpatialInput("GlobalMaxPooling2D", in); err != nil {
		return nil, nil, err
	}
	if l.KeepDims {
		return Shape{1, 1, in[0][2]}, nil, nil
	}
	return Shape{in[0][2]}, nil, nil
}

func (l *GlobalMaxPooling2D) Call(c *Call) tf.Output {
	return op.Max(c.sub("Max"), c.In[0], op.Const(c.sub("axes"), []int32{1, 2}), op.MaxKeepDims(l.KeepDims))
}

// Backward is TensorFlow's registered Max gradient (_MinOrMaxGrad): dy goes
// to every position equal to the maximum, shared evenly between ties.
func (l *GlobalMaxPooling2D) Backward(c *Call, dy tf.Output) (dx, dw []tf.Output) {
	dx = make([]tf.Output, 1)
	if !c.NeedInput[0] {
		return dx, nil
	}
	ch := int32(c.InShapes[0][2])
	keep := []int32{-1, 1, 1, ch}
	y := op.Reshape(c.sub("Reshape"), c.Out, op.Const(c.sub("Const"), keep))
	g := op.Reshape(c.sub("Reshape"), dy, op.Const(c.sub("Const"), keep))
	hits := op.Cast(c.sub("Cast"), op.Equal(c.sub("Equal"), y, c.In[0]), tf.Float)
	count := op.Sum(c.sub("Sum"), hits, op.Const(c.sub("axes"), []int32{1, 2}), op.SumKeepDims(true))
	dx[0] = op.Mul(c.sub("Mul"), op.RealDiv(c.sub("RealDiv"), hits, count), g)
	return dx, nil
}

// commutesWithReLU: like max-pooling, the global maximum of a ReLU's
// output is zero exactly when the ReLU zeroed its whole window.
func (l *GlobalMaxPooling2D) commutesWithReLU() bool { return true }

func (l *GlobalMaxPooling2D) KerasConfig() map[string]any {
	return map[string]any{"data_format": "channels_last", "keepdims": l.KeepDims}
}
