package graph

import (
	"fmt"
	"strings"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Conv2D is keras.layers.Conv2D (channels_last, no dilation or groups):
// keras/src/layers/convolutional/base_conv.py. Conv2D(64, 3, 3) in the
// notebook is kernel 3, stride 3, as positional arguments mean in Keras 3.
type Conv2D struct {
	Filters    int    `mapstructure:"filters"`
	KernelSize []int  `mapstructure:"kernel_size"`
	Strides    []int  `mapstructure:"strides"`
	Padding    string `mapstructure:"padding"`
	WeightArgs `mapstructure:",squash"`

	kernel, strides [2]int
}

func init() {
	RegisterLayer(Kind{Type: "conv2d", Class: "Conv2D", New: func() Layer {
		return &Conv2D{Padding: "valid", WeightArgs: DefaultWeightArgs()}
	}})
}

func (l *Conv2D) Build(in []Shape) (Shape, []Param, error) {
	if err := oneSpatialInput("Conv2D", in); err != nil {
		return nil, nil, err
	}
	var err error
	if l.Filters < 1 {
		return nil, nil, fmt.Errorf("filters: %d must be >= 1", l.Filters)
	}
	if len(l.KernelSize) == 0 {
		return nil, nil, fmt.Errorf("kernel_size: missing (e.g. kernel_size: 3)")
	}
	if l.kernel, err = pair("kernel_size", l.KernelSize, [2]int{}); err != nil {
		return nil, nil, err
	}
	if l.strides, err = pair("strides", l.Strides, [2]int{1, 1}); err != nil {
		return nil, nil, err
	}
	if err := checkPadding(l.Padding); err != nil {
		return nil, nil, err
	}
	if err := l.WeightArgs.check(); err != nil {
		return nil, nil, err
	}
	h := convOut(in[0][0], l.kernel[0], l.strides[0], l.Padding)
	w := convOut(in[0][1], l.kernel[1], l.strides[1], l.Padding)
	if h < 1 || w < 1 {
		return nil, nil, fmt.Errorf("kernel %v with stride %v does not fit input %v", l.kernel, l.strides, in[0])
	}
	return Shape{h, w, l.Filters}, l.params([]int{l.kernel[0], l.kernel[1], in[0][2], l.Filters}), nil
}

func (l *Conv2D) stride4() []int64 { return []int64{1, int64(l.strides[0]), int64(l.strides[1]), 1} }

func (l *Conv2D) Call(c *Call) tf.Output {
	x := op.Conv2D(c.sub("Conv2D"), c.In[0], c.Params[0], l.stride4(), strings.ToUpper(l.Padding))
	if l.UseBias {
		x = op.BiasAdd(c.sub("BiasAdd"), x, c.Params[1])
	}
	return x
}

// Backward wires TensorFlow's registered Conv2D gradients. The bias
// gradient is Call.ChannelSum rather than BiasAddGrad:
//   - Sum reads dy once, accumulating in float32 also on bfloat16 input;
//     under mixed_bfloat16 the rewrite runs it in bfloat16 as it comes,
//     where BiasAddGrad needs dy cast to float32 first (its bfloat16
//     kernel sums in bfloat16, far off on a large dy);
//   - after a ReLU and a max-pool it sums the pooled gradient, a quarter
//     of dy's units for a 2×2 pool;
//   - and the oneDNN layout pass leaves Conv2DBackpropFilter alone instead
//     of fusing it with a BiasAddGrad on the same dy into
//     _MklNativeConv2DBackpropFilterWithBias, whose bias path made the
//     filter gradient ~25% slower in float32 (BENCHMARKS.md, History) and
//     sums in bfloat16 under mixed_bfloat16.
func (l *Conv2D) Backward(c *Call, dy tf.Output) (dx, dw []tf.Output) {
	padding := strings.ToUpper(l.Padding)
	kernelShape := []int32{int32(l.kernel[0]), int32(l.kernel[1]), int32(c.InShapes[0][2]), int32(l.Filters)}
	dw = []tf.Output{op.Conv2DBackpropFilter(c.sub("Conv2DBackpropFilter"), c.In[0], op.Const(c.sub("Const"), kernelShape), dy, l.stride4(), padding)}
	if l.UseBias {
		dw = append(dw, c.ChannelSum(dy))
	}
	dx = make([]tf.Output, 1)
	if c.NeedInput[0] {
		dx[0] = op.Conv2DBackpropInput(c.sub("Conv2DBackpropInput"), op.Shape(c.sub("Shape"), c.In[0], op.ShapeOutType(tf.Int32)), c.Params[0], dy, l.stride4(), padding)
	}
	return dx, dw
}

func (l *Conv2D) KerasConfig() map[string]any {
	return l.kerasConfig(map[string]any{
		"filters": l.Filters, "kernel_size": l.kernel[:], "strides": l.strides[:], "padding": l.Padding,
		"data_format": "channels_last", "dilation_rate": []int{1, 1}, "groups": 1, "activity_regularizer": nil,
	})
}
