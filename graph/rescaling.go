package graph

import (
	"fmt"
	"math"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Rescaling is keras.layers.Rescaling: inputs·scale + offset, in training
// and inference alike (keras/src/layers/preprocessing/rescaling.py). After
// the last Dense it is airbench's fixed logit scale, which keeps the
// classifier's effective learning rate in step with the BatchNorm-scaled
// convolutions at one global rate. Keras also accepts a per-channel array
// for scale; this layer takes a number.
type Rescaling struct {
	Scale  *float64 `mapstructure:"scale"`
	Offset float64  `mapstructure:"offset"`
}

func init() {
	RegisterLayer(Kind{Type: "rescaling", Class: "Rescaling", New: func() Layer { return &Rescaling{} }})
}

func (l *Rescaling) Build(in []Shape) (Shape, []Param, error) {
	if l.Scale == nil {
		return nil, nil, fmt.Errorf("scale: missing (required, a number such as 0.111)")
	}
	for _, v := range []struct {
		key string
		x   float64
	}{{"scale", *l.Scale}, {"offset", l.Offset}} {
		if math.IsNaN(v.x) || math.IsInf(v.x, 0) {
			return nil, nil, fmt.Errorf("%s: %v must be a finite number", v.key, v.x)
		}
	}
	return in[0], nil, nil
}

func (l *Rescaling) Call(c *Call) tf.Output {
	y := op.Mul(c.sub("Mul"), c.In[0], op.Const(c.sub("scale"), float32(*l.Scale)))
	if l.Offset == 0 {
		return y
	}
	return op.AddV2(c.sub("AddV2"), y, op.Const(c.sub("offset"), float32(l.Offset)))
}

func (l *Rescaling) Backward(c *Call, dy tf.Output) (dx, dw []tf.Output) {
	dx = make([]tf.Output, 1)
	if c.NeedInput[0] {
		dx[0] = op.Mul(c.sub("Mul"), dy, op.Const(c.sub("scale"), float32(*l.Scale)))
	}
	return dx, nil
}

func (l *Rescaling) KerasConfig() map[string]any {
	return map[string]any{"scale": *l.Scale, "offset": l.Offset}
}
