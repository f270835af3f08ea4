package graph

import (
	"fmt"
	"strings"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Add is keras.layers.Add: the element-wise sum of two or more inputs of
// one shape, summed left to right as Keras's _merge_function does
// (keras/src/layers/merging/add.py).
type Add struct{}

func init() {
	RegisterLayer(Kind{Type: "add", Class: "Add", MinInputs: 2, New: func() Layer { return &Add{} }})
}

func (l *Add) Build(in []Shape) (Shape, []Param, error) {
	for _, s := range in[1:] {
		if !s.equal(in[0]) {
			return nil, nil, fmt.Errorf("inputs have shapes %s", shapeList(in))
		}
	}
	return in[0], nil, nil
}

// shapeList renders input shapes as "(8, 8, 32) and (8, 8, 64)".
func shapeList(in []Shape) string {
	var parts []string
	for _, sh := range in {
		dims := make([]string, len(sh))
		for i, d := range sh {
			dims[i] = fmt.Sprint(d)
		}
		parts = append(parts, "("+strings.Join(dims, ", ")+")")
	}
	last := len(parts) - 1
	return strings.Join(parts[:last], ", ") + " and " + parts[last]
}

func (l *Add) Call(c *Call) tf.Output {
	y := c.In[0]
	for _, x := range c.In[1:] {
		y = op.AddV2(c.sub("AddV2"), y, x)
	}
	return y
}

func (l *Add) Backward(c *Call, dy tf.Output) (dx, dw []tf.Output) {
	dx = make([]tf.Output, len(c.In))
	for i := range dx {
		dx[i] = dy
	}
	return dx, nil
}

func (l *Add) KerasConfig() map[string]any { return map[string]any{} }
