package graph

import (
	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// GlobalAveragePooling2D is keras.layers.GlobalAveragePooling2D
// (channels_last): the mean over height and width
// (keras/src/layers/pooling/global_average_pooling2d.py → ops.mean).
type GlobalAveragePooling2D struct {
	KeepDims bool `mapstructure:"keepdims"`
}

func init() {
	RegisterLayer(Kind{Type: "global_average_pooling2d", Class: "GlobalAveragePooling2D", New: func() Layer { return &GlobalAveragePooling2D{} }})
}

func (l *GlobalAveragePooling2D) Build(in []Shape) (Shape, []Param, error) {
	if err := oneSpatialInput("GlobalAveragePooling2D", in); err != nil {
		return nil, nil, err
	}
	if l.KeepDims {
		return Shape{1, 1, in[0][2]}, nil, nil
	}
	return Shape{in[0][2]}, nil, nil
}

func (l *GlobalAveragePooling2D) Call(c *Call) tf.Output {
	return op.Mean(c.sub("Mean"), c.In[0], op.Const(c.sub("axes"), []int32{1, 2}), op.MeanKeepDims(l.KeepDims))
}

// Backward is TensorFlow's Mean gradient: dy spread over the window, then
// divided by its size.
func (l *GlobalAveragePooling2D) Backward(c *Call, dy tf.Output) (dx, dw []tf.Output) {
	dx = make([]tf.Output, 1)
	if c.NeedInput[0] {
		in := c.InShapes[0]
		g := op.Reshape(c.sub("Reshape"), dy, op.Const(c.sub("Const"), []int32{-1, 1, 1, int32(in[2])}))
		g = op.BroadcastTo(c.sub("BroadcastTo"), g, op.Shape(c.sub("Shape"), c.In[0], op.ShapeOutType(tf.Int32)))
		dx[0] = op.RealDiv(c.sub("RealDiv"), g, op.Const(c.sub("Const"), float32(in[0]*in[1])))
	}
	return dx, nil
}

func (l *GlobalAveragePooling2D) KerasConfig() map[string]any {
	return map[string]any{"data_format": "channels_last", "keepdims": l.KeepDims}
}
