package graph

import (
	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Flatten is keras.layers.Flatten (channels_last): keras/src/layers/reshaping/flatten.py.
type Flatten struct{}

func init() {
	RegisterLayer(Kind{Type: "flatten", Class: "Flatten", New: func() Layer { return &Flatten{} }})
}

func (l *Flatten) Build(in []Shape) (Shape, []Param, error) { return Shape{in[0].Size()}, nil, nil }

func (l *Flatten) Call(c *Call) tf.Output {
	return op.Reshape(c.sub("Reshape"), c.In[0], op.Const(c.sub("Const"), []int32{-1, int32(c.OutShape.Size())}))
}

func (l *Flatten) Backward(c *Call, dy tf.Output) (dx, dw []tf.Output) {
	dx = make([]tf.Output, 1)
	if c.NeedInput[0] {
		dx[0] = op.Reshape(c.sub("Reshape"), dy, op.Shape(c.sub("Shape"), c.In[0], op.ShapeOutType(tf.Int32)))
	}
	return dx, nil
}

func (l *Flatten) KerasConfig() map[string]any { return map[string]any{"data_format": "channels_last"} }
