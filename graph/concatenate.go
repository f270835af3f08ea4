package graph

import (
	"fmt"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Concatenate is keras.layers.Concatenate: two or more inputs joined along
// axis (default -1, the channels), every other dimension equal
// (keras/src/layers/merging/concatenate.py).
type Concatenate struct {
	Axis int `mapstructure:"axis"`

	dim int // the axis as an index into a Shape (no batch dimension)
}

func init() {
	RegisterLayer(Kind{Type: "concatenate", Class: "Concatenate", MinInputs: 2, New: func() Layer { return &Concatenate{Axis: -1} }})
}

func (l *Concatenate) Build(in []Shape) (Shape, []Param, error) {
	rank := len(in[0])
	dim := l.Axis - 1 // Keras's axis counts the batch dimension
	if l.Axis < 0 {
		dim = rank + l.Axis
	}
	if dim < 0 || dim >= rank {
		return nil, nil, fmt.Errorf("axis: %d is not an axis of a %d-D input %v (the batch axis 0 cannot be joined)", l.Axis, rank, in[0])
	}
	l.dim = dim
	out := append(Shape(nil), in[0]...)
	for _, s := range in[1:] {
		if len(s) != rank {
			return nil, nil, fmt.Errorf("inputs have shapes %s: ranks differ", shapeList(in))
		}
		for i := range s {
			if i != dim && s[i] != in[0][i] {
				return nil, nil, fmt.Errorf("inputs have shapes %s: all but axis %d must match", shapeList(in), l.Axis)
			}
		}
		out[dim] += s[dim]
	}
	return out, nil, nil
}

func (l *Concatenate) Call(c *Call) tf.Output {
	return op.ConcatV2(c.sub("ConcatV2"), c.In, op.Const(c.sub("axis"), int32(l.dim+1)))
}

// Backward splits dy back into the inputs' parts along the axis, as
// TensorFlow's ConcatV2 gradient does.
func (l *Concatenate) Backward(c *Call, dy tf.Output) (dx, dw []tf.Output) {
	sizes := make([]int32, len(c.InShapes))
	for i, s := range c.InShapes {
		sizes[i] = int32(s[l.dim])
	}
	parts := op.SplitV(c.sub("SplitV"), dy, op.Const(c.sub("sizes"), sizes), op.Const(c.sub("axis"), int32(l.dim+1)), int64(len(sizes)))
	return parts, nil
}

func (l *Concatenate) KerasConfig() map[string]any { return map[string]any{"axis": l.Axis} }
