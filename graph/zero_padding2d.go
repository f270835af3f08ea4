package graph

import (
	"fmt"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// ZeroPadding2D is keras.layers.ZeroPadding2D (channels_last): zeros added
// above, below, left and right (keras/src/layers/reshaping/zero_padding2d.py).
// padding is one int (all sides), [h, w] (symmetric), or
// [[top, bottom], [left, right]], as Keras takes it.
type ZeroPadding2D struct {
	Padding any `mapstructure:"padding"` // nil: Keras's default, 1

	pad [2][2]int
}

func init() {
	RegisterLayer(Kind{Type: "zero_padding2d", Class: "ZeroPadding2D", New: func() Layer { return &ZeroPadding2D{} }})
}

// padInt reads one padding amount.
func padInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, x >= 0
	case float64:
		return int(x), x >= 0 && x == float64(int(x))
	}
	return 0, false
}

func (l *ZeroPadding2D) Build(in []Shape) (Shape, []Param, error) {
	if err := oneSpatialInput("ZeroPadding2D", in); err != nil {
		return nil, nil, err
	}
	if l.Padding == nil {
		l.Padding = 1 // Keras's default
	}
	bad := fmt.Errorf("padding: %v must be n, [h, w] or [[top, bottom], [left, right]] of whole numbers >= 0", l.Padding)
	switch p := l.Padding.(type) {
	case []any:
		if len(p) != 2 {
			return nil, nil, bad
		}
		for i, side := range p {
			if n, ok := padInt(side); ok {
				l.pad[i] = [2]int{n, n}
				continue
			}
			pair, ok := side.([]any)
			if !ok || len(pair) != 2 {
				return nil, nil, bad
			}
			for j, v := range pair {
				n, ok := padInt(v)
				if !ok {
					return nil, nil, bad
				}
				l.pad[i][j] = n
			}
		}
	default:
		n, ok := padInt(p)
		if !ok {
			return nil, nil, bad
		}
		l.pad = [2][2]int{{n, n}, {n, n}}
	}
	return Shape{in[0][0] + l.pad[0][0] + l.pad[0][1], in[0][1] + l.pad[1][0] + l.pad[1][1], in[0][2]}, nil, nil
}

func (l *ZeroPadding2D) Call(c *Call) tf.Output {
	p := [][]int32{{0, 0}, {int32(l.pad[0][0]), int32(l.pad[0][1])}, {int32(l.pad[1][0]), int32(l.pad[1][1])}, {0, 0}}
	return op.Pad(c.sub("Pad"), c.In[0], op.Const(c.sub("paddings"), p))
}

// Backward is TensorFlow's Pad gradient: the unpadded window of dy.
func (l *ZeroPadding2D) Backward(c *Call, dy tf.Output) (dx, dw []tf.Output) {
	dx = make([]tf.Output, 1)
	if c.NeedInput[0] {
		in := c.InShapes[0]
		dx[0] = op.Slice(c.sub("Slice"), dy, op.Const(c.sub("begin"), []int32{0, int32(l.pad[0][0]), int32(l.pad[1][0]), 0}),
			op.Const(c.sub("size"), []int32{-1, int32(in[0]), int32(in[1]), int32(in[2])}))
	}
	return dx, nil
}

func (l *ZeroPadding2D) KerasConfig() map[string]any {
	return map[string]any{"padding": [][]int{l.pad[0][:], l.pad[1][:]}, "data_format": "channels_last"}
}
