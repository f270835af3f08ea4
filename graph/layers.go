// Package graph builds Keras-equivalent Sequential models as TensorFlow
// graphs through graft, and trains, evaluates, predicts with and
// checkpoints them on the TensorFlow runtime.
package graph

import (
	"fmt"
	"strings"

	"github.com/cifar-pipeline/cifar-pipeline/config"
)

// Shape is a tensor shape without the batch dimension (Keras's
// output_shape[1:]).
type Shape []int

// Size is the number of elements in a Shape.
func (s Shape) Size() int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func (s Shape) String() string {
	parts := []string{"None"}
	for _, d := range s {
		parts = append(parts, fmt.Sprint(d))
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// Param is one trainable weight of a layer.
type Param struct {
	// Name is the weight's short name: "kernel" or "bias".
	Name  string
	Shape []int
	// FanIn and FanOut feed glorot_uniform (kernels); zero for biases.
	FanIn, FanOut int
}

// Layer is one Keras layer of a Sequential model.
type Layer struct {
	// Kind is conv2d, activation, max_pooling2d, dropout, flatten or dense.
	Kind string
	// Name is the Keras auto-name (conv2d, conv2d_1, dense, ...).
	Name string

	Filters    int
	KernelSize [2]int
	Strides    [2]int
	Padding    string // "valid" or "same"
	Units      int
	Activation string // "", relu, softmax, linear
	PoolSize   [2]int
	Rate       float64

	In, Out Shape
	Params  []Param
}

// TypeName is the Keras class name of the layer.
func (l *Layer) TypeName() string {
	return map[string]string{
		"conv2d": "Conv2D", "activation": "Activation", "max_pooling2d": "MaxPooling2D",
		"dropout": "Dropout", "flatten": "Flatten", "dense": "Dense",
	}[l.Kind]
}

// ParamCount is the number of weights in the layer.
func (l *Layer) ParamCount() int {
	n := 0
	for _, p := range l.Params {
		n += Shape(p.Shape).Size()
	}
	return n
}

// Sequential is a Keras Sequential model: an input shape and a layer stack
// with every shape and weight resolved.
type Sequential struct {
	Input  Shape
	Layers []*Layer
}

// NewSequential resolves a config layer stack against an input shape
// (height, width, channels), naming layers as Keras does and computing every
// output shape and weight shape.
func NewSequential(layers []config.Layer, input []int) (*Sequential, error) {
	m := &Sequential{Input: Shape(append([]int(nil), input...))}
	counts := map[string]int{}
	in := m.Input
	for i, cl := range layers {
		l := &Layer{Kind: cl.Type, Activation: cl.Activation, Padding: cl.Padding, Rate: cl.Rate,
			Filters: cl.Filters, Units: cl.Units, In: in}
		if l.Padding == "" {
			l.Padding = "valid"
		}
		l.Name = cl.Name
		if l.Name == "" {
			if c := counts[l.Kind]; c == 0 {
				l.Name = l.Kind
			} else {
				l.Name = fmt.Sprintf("%s_%d", l.Kind, c)
			}
		}
		counts[l.Kind]++
		var err error
		if l.Out, err = l.resolve(cl); err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i, l.Name, err)
		}
		m.Layers = append(m.Layers, l)
		in = l.Out
	}
	return m, nil
}

func pair(v []int, def [2]int) [2]int {
	switch len(v) {
	case 1:
		return [2]int{v[0], v[0]}
	case 2:
		return [2]int{v[0], v[1]}
	}
	return def
}

// convOut is Keras's conv/pool output length for one spatial dimension.
func convOut(n, k, s int, padding string) int {
	if padding == "same" {
		return (n + s - 1) / s
	}
	if n < k { // Go's / truncates toward zero: (n-k)/s+1 would be 1, not 0
		return 0
	}
	return (n-k)/s + 1
}

func (l *Layer) resolve(cl config.Layer) (Shape, error) {
	in := l.In
	switch l.Kind {
	case "conv2d":
		if len(in) != 3 {
			return nil, fmt.Errorf("Conv2D needs a (height, width, channels) input, got %v", in)
		}
		l.KernelSize = pair(cl.KernelSize, [2]int{1, 1})
		l.Strides = pair(cl.Strides, [2]int{1, 1})
		h := convOut(in[0], l.KernelSize[0], l.Strides[0], l.Padding)
		w := convOut(in[1], l.KernelSize[1], l.Strides[1], l.Padding)
		if h < 1 || w < 1 {
			return nil, fmt.Errorf("kernel %v with stride %v does not fit input %v", l.KernelSize, l.Strides, in)
		}
		rf := l.KernelSize[0] * l.KernelSize[1]
		l.Params = []Param{
			{Name: "kernel", Shape: []int{l.KernelSize[0], l.KernelSize[1], in[2], l.Filters}, FanIn: rf * in[2], FanOut: rf * l.Filters},
			{Name: "bias", Shape: []int{l.Filters}},
		}
		return Shape{h, w, l.Filters}, nil
	case "max_pooling2d":
		if len(in) != 3 {
			return nil, fmt.Errorf("MaxPooling2D needs a (height, width, channels) input, got %v", in)
		}
		l.PoolSize = pair(cl.PoolSize, [2]int{2, 2})
		l.Strides = pair(cl.Strides, l.PoolSize) // Keras: strides=None means pool_size
		h := convOut(in[0], l.PoolSize[0], l.Strides[0], l.Padding)
		w := convOut(in[1], l.PoolSize[1], l.Strides[1], l.Padding)
		if h < 1 || w < 1 {
			return nil, fmt.Errorf("pool %v does not fit input %v", l.PoolSize, in)
		}
		return Shape{h, w, in[2]}, nil
	case "dense":
		if len(in) != 1 {
			return nil, fmt.Errorf("Dense after a %d-D output %v: add a flatten layer before it", len(in), in)
		}
		l.Params = []Param{
			{Name: "kernel", Shape: []int{in[0], l.Units}, FanIn: in[0], FanOut: l.Units},
			{Name: "bias", Shape: []int{l.Units}},
		}
		return Shape{l.Units}, nil
	case "flatten":
		return Shape{in.Size()}, nil
	case "activation", "dropout":
		return in, nil
	}
	return nil, fmt.Errorf("unknown layer type %q", l.Kind)
}

// Output is the model's output shape.
func (m *Sequential) Output() Shape {
	if len(m.Layers) == 0 {
		return m.Input
	}
	return m.Layers[len(m.Layers)-1].Out
}

// ParamCount is the model's number of trainable weights.
func (m *Sequential) ParamCount() int {
	n := 0
	for _, l := range m.Layers {
		n += l.ParamCount()
	}
	return n
}

// Summary renders a Keras-style model.summary() table.
func (m *Sequential) Summary() string {
	var b strings.Builder
	const w1, w2, w3 = 31, 26, 12
	line := func(ch string) { b.WriteString(strings.Repeat(ch, w1+w2+w3) + "\n") }
	b.WriteString("Model: \"sequential\"\n")
	line("━")
	fmt.Fprintf(&b, "%-*s%-*s%*s\n", w1, "Layer (type)", w2, "Output Shape", w3, "Param #")
	line("━")
	for i, l := range m.Layers {
		fmt.Fprintf(&b, "%-*s%-*s%*s\n", w1, fmt.Sprintf("%s (%s)", l.Name, l.TypeName()), w2, l.Out.String(), w3, commas(l.ParamCount()))
		if i < len(m.Layers)-1 {
			line("─")
		}
	}
	line("━")
	n := m.ParamCount()
	fmt.Fprintf(&b, " Total params: %s (%s)\n", commas(n), humanBytes(4*n))
	fmt.Fprintf(&b, " Trainable params: %s (%s)\n", commas(n), humanBytes(4*n))
	fmt.Fprintf(&b, " Non-trainable params: 0 (0.00 B)\n")
	return b.String()
}

func commas(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func humanBytes(n int) string {
	f := float64(n)
	for _, u := range []string{"B", "KB", "MB", "GB"} {
		if f < 1024 || u == "GB" {
			return fmt.Sprintf("%.2f %s", f, u)
		}
		f /= 1024
	}
	return ""
}

// FinalSoftmax reports whether the model ends in a softmax activation, whose
// input then serves as the logits of the loss (Keras's _get_logits path).
func (m *Sequential) FinalSoftmax() bool {
	if len(m.Layers) == 0 {
		return false
	}
	last := m.Layers[len(m.Layers)-1]
	return last.Activation == "softmax" && (last.Kind == "activation" || last.Kind == "dense" || last.Kind == "conv2d")
}
