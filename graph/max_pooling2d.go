package graph

import (
	"fmt"
	"strings"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// MaxPooling2D is keras.layers.MaxPooling2D: pool_size (2, 2), strides
// None meaning pool_size, padding valid (keras/src/layers/pooling/max_pooling2d.py).
type MaxPooling2D struct {
	PoolSize []int  `mapstructure:"pool_size"`
	Strides  []int  `mapstructure:"strides"`
	Padding  string `mapstructure:"padding"`

	pool, strides [2]int
}

func init() {
	RegisterLayer(Kind{Type: "max_pooling2d", Class: "MaxPooling2D", New: func() Layer { return &MaxPooling2D{Padding: "valid"} }})
}

// poolBuild resolves a 2-D pooling layer's window and output shape.
func poolBuild(class string, in []Shape, poolSize, strides []int, padding string) (pool, stride [2]int, out Shape, err error) {
	if err = oneSpatialInput(class, in); err != nil {
		return
	}
	if pool, err = pair("pool_size", poolSize, [2]int{2, 2}); err != nil {
		return
	}
	if stride, err = pair("strides", strides, pool); err != nil {
		return
	}
	if err = checkPadding(padding); err != nil {
		return
	}
	h := convOut(in[0][0], pool[0], stride[0], padding)
	w := convOut(in[0][1], pool[1], stride[1], padding)
	if h < 1 || w < 1 {
		err = fmt.Errorf("pool %v does not fit input %v", pool, in[0])
		return
	}
	return pool, stride, Shape{h, w, in[0][2]}, nil
}

func window(p [2]int) []int64 { return []int64{1, int64(p[0]), int64(p[1]), 1} }

func (l *MaxPooling2D) Build(in []Shape) (out Shape, _ []Param, err error) {
	l.pool, l.strides, out, err = poolBuild("MaxPooling2D", in, l.PoolSize, l.Strides, l.Padding)
	return out, nil, err
}

func (l *MaxPooling2D) Call(c *Call) tf.Output {
	return op.MaxPool(c.sub("MaxPool"), c.In[0], window(l.pool), window(l.strides), strings.ToUpper(l.Padding))
}

// Backward is MaxPoolGrad, which routes each gradient to its window's
// first maximum.
func (l *MaxPooling2D) Backward(c *Call, dy tf.Output) (dx, dw []tf.Output) {
	dx = make([]tf.Output, 1)
	if c.NeedInput[0] {
		dx[0] = op.MaxPoolGrad(c.sub("MaxPoolGrad"), c.In[0], c.Out, dy, window(l.pool), window(l.strides), strings.ToUpper(l.Padding))
	}
	return dx, nil
}

// commutesWithReLU: a ReLU then max-pooling may take the ReLU's gradient
// on the pooled side, a quarter of the units for a 2×2 pool. Exact:
// MaxPoolGrad routes each gradient to its window's first maximum, which is
// a zero of the ReLU exactly when the pooled output is zero (all of the
// window ≤ 0), and ReluGrad on the pooled output zeroes those same
// gradients.
func (l *MaxPooling2D) commutesWithReLU() bool { return true }

// preservesChannelSums: MaxPoolGrad adds each gradient to one unit of its
// window (padding is never a window's maximum), so no gradient is lost or
// duplicated.
func (l *MaxPooling2D) preservesChannelSums() bool { return true }

func (l *MaxPooling2D) KerasConfig() map[string]any {
	return map[string]any{"pool_size": l.pool[:], "padding": l.Padding, "strides": l.strides[:], "data_format": "channels_last"}
}
