package graph

import (
	"strings"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// AveragePooling2D is keras.layers.AveragePooling2D: pool_size (2, 2),
// strides None meaning pool_size, padding valid; TensorFlow's AvgPool,
// which with "same" padding averages over the window's valid pixels only
// (keras/src/layers/pooling/average_pooling2d.py → tf.nn.avg_pool2d).
type AveragePooling2D struct {
	PoolSize []int  `mapstructure:"pool_size"`
	Strides  []int  `mapstructure:"strides"`
	Padding  string `mapstructure:"padding"`

	pool, strides [2]int
}

func init() {
	RegisterLayer(Kind{Type: "average_pooling2d", Class: "AveragePooling2D", New: func() Layer { return &AveragePooling2D{Padding: "valid"} }})
}

func (l *AveragePooling2D) Build(in []Shape) (out Shape, _ []Param, err error) {
	l.pool, l.strides, out, err = poolBuild("AveragePooling2D", in, l.PoolSize, l.Strides, l.Padding)
	return out, nil, err
}

func (l *AveragePooling2D) Call(c *Call) tf.Output {
	return op.AvgPool(c.sub("AvgPool"), c.In[0], window(l.pool), window(l.strides), strings.ToUpper(l.Padding))
}

func (l *AveragePooling2D) Backward(c *Call, dy tf.Output) (dx, dw []tf.Output) {
	dx = make([]tf.Output, 1)
	if c.NeedInput[0] {
		dx[0] = op.AvgPoolGrad(c.sub("AvgPoolGrad"), op.Shape(c.sub("Shape"), c.In[0], op.ShapeOutType(tf.Int32)), dy,
			window(l.pool), window(l.strides), strings.ToUpper(l.Padding))
	}
	return dx, nil
}

func (l *AveragePooling2D) KerasConfig() map[string]any {
	return map[string]any{"pool_size": l.pool[:], "padding": l.Padding, "strides": l.strides[:], "data_format": "channels_last"}
}
