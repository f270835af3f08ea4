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

func (s Shape) equal(o Shape) bool { return sameShape(s, o) }

// Node is one layer of a Net, resolved: its inputs, shapes and variables.
type Node struct {
	// Name is the layer's name (Keras's auto-name unless the config gives one).
	Name string
	Kind *Kind
	// Layer holds the decoded arguments; nil for the model input.
	Layer Layer
	// Inputs are the nodes feeding this one (the Net's Input node for the
	// first layer of a model).
	Inputs []*Node
	// In are the input shapes, Out the output shape.
	In  []Shape
	Out Shape
	// Params are the layer's variables.
	Params []Param
	// Index is the node's position in Net.Nodes; Key its config key
	// (model.layers[3]).
	Index int
	Key   string
	// consumers counts the nodes reading this one's output.
	consumers int
}

// Activation is the Keras activation the node ends in ("" for none).
func (n *Node) Activation() string {
	if a, ok := n.Layer.(Activated); ok {
		return a.ActivationName()
	}
	return ""
}

// Trainable reports whether the layer trains (Keras's layer.trainable):
// false when its config froze it.
func (n *Node) Trainable() bool {
	for _, p := range n.Params {
		if p.Frozen {
			return false
		}
	}
	return true
}

// freeze makes the layer's weights constants of training, as Keras's
// trainable = False does. A layer with state of its own (BatchNormalization)
// is refused: Keras then also runs it in inference mode, which this engine
// does not.
func (n *Node) freeze() error {
	for _, p := range n.Params {
		if !p.Trainable {
			return fmt.Errorf("false is not supported for %s (Keras would also switch it to inference mode); remove the key", n.Kind.Class)
		}
	}
	for i := range n.Params {
		n.Params[i].Frozen = true
	}
	return nil
}

// ParamCount counts the node's weights, and how many are trainable.
func (n *Node) ParamCount() (total, trainable int) {
	for _, p := range n.Params {
		k := Shape(p.Shape).Size()
		total += k
		if p.Learned() {
			trainable += k
		}
	}
	return total, trainable
}

// Net is a model architecture: an input and layers in topological order,
// the last being the output. A chain (each layer fed by the one before) is
// a Keras Sequential; anything else a Keras Functional model.
type Net struct {
	Input *Node
	Nodes []*Node
}

// NewNet resolves a config model against an input shape (height, width,
// channels): each layer's arguments are decoded over its kind's Keras
// defaults, layers are named as Keras names them, and every shape and
// variable is resolved. Errors are config.KeyErrors naming the layer
// (model.layers[i]) and what is wrong, found before any data is loaded:
// an unknown kind or argument, an input that does not exist or comes
// later (which is also how a cycle shows), a merge of mismatched shapes,
// a layer whose output nothing uses.
func NewNet(m config.Model, input []int) (*Net, error) {
	if len(m.Layers) == 0 {
		return nil, config.KeyErrorf("model.layers", "empty; list at least one layer (see config.yaml)")
	}
	net := &Net{Input: &Node{Name: config.InputName, Out: Shape(append([]int(nil), input...)), Index: -1}}
	byName := map[string]*Node{config.InputName: net.Input}
	later := map[string]bool{}
	counts := map[string]int{}
	for i, cl := range m.Layers {
		if cl.Name != "" {
			later[cl.Name] = true
		}
		_ = i
	}
	for i, cl := range m.Layers {
		key := fmt.Sprintf("model.layers[%d]", i)
		kind, ok := kinds[cl.Type]
		if !ok {
			return nil, config.KeyErrorf(key+".type", "%q is not a layer kind%s (known: %s)", cl.Type, suggestName(cl.Type, LayerTypes()), strings.Join(LayerTypes(), ", "))
		}
		n := &Node{Name: cl.Name, Kind: kind, Index: i, Key: key}
		if n.Name == "" {
			// Keras numbers auto-names per class: conv2d, conv2d_1, ...
			for {
				if c := counts[kind.Type]; c == 0 {
					n.Name = kind.Type
				} else {
					n.Name = fmt.Sprintf("%s_%d", kind.Type, c)
				}
				counts[kind.Type]++
				if !later[n.Name] {
					break
				}
			}
		}
		if _, dup := byName[n.Name]; dup {
			return nil, config.KeyErrorf(key+".name", "layer name %q is used twice", n.Name)
		}
		fail := func(format string, args ...any) error {
			return config.KeyErrorf(key, "layer %q: %s", n.Name, fmt.Sprintf(format, args...))
		}
		// Inputs: named, or the previous layer.
		if len(cl.Inputs) == 0 {
			prev := net.Input
			if i > 0 {
				prev = net.Nodes[i-1]
			}
			n.Inputs = []*Node{prev}
		}
		for _, name := range cl.Inputs {
			in, ok := byName[name]
			switch {
			case ok:
				n.Inputs = append(n.Inputs, in)
			case name == n.Name:
				return nil, fail("inputs: names the layer itself (a cycle)")
			case later[name]:
				return nil, fail("inputs: %q comes later in model.layers (a cycle, or list the layers in order)", name)
			default:
				return nil, fail("inputs: no layer %q before it%s", name, suggestName(name, nodeNames(byName)))
			}
		}
		if len(n.Inputs) < kind.MinInputs || (kind.MaxInputs > 0 && len(n.Inputs) > kind.MaxInputs) {
			want := fmt.Sprint(kind.MinInputs)
			if kind.MaxInputs == 0 {
				want = fmt.Sprintf("%d or more", kind.MinInputs)
			}
			return nil, fail("%s takes %s inputs, got %d", kind.Class, want, len(n.Inputs))
		}
		n.Layer = kind.New()
		if err := config.DecodeArgs(cl.Args, n.Layer, key, kind.Type); err != nil {
			return nil, fmt.Errorf("layer %q: %w", n.Name, err)
		}
		for _, in := range n.Inputs {
			n.In = append(n.In, in.Out)
			in.consumers++
		}
		var err error
		if n.Out, n.Params, err = n.Layer.Build(n.In); err != nil {
			return nil, fail("%v", err)
		}
		for _, p := range n.Params {
			if check := initializers[p.Init].checkShape; check != nil {
				if err := check(p.Shape); err != nil {
					return nil, fail("%s: %v", p.Name+"_initializer", err)
				}
			}
		}
		if cl.Trainable != nil && !*cl.Trainable {
			if err := n.freeze(); err != nil {
				return nil, fail("trainable: %v", err)
			}
		}
		byName[n.Name] = n
		net.Nodes = append(net.Nodes, n)
	}
	for _, n := range net.Nodes[:len(net.Nodes)-1] {
		if n.consumers == 0 {
			return nil, config.KeyErrorf(n.Key, "layer %q: its output is used by no layer (only the last layer is the model's output)", n.Name)
		}
	}
	return net, nil
}

func nodeNames(m map[string]*Node) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// suggestName returns " (did you mean X?)" for a close name.
func suggestName(s string, names []string) string { return config.Suggest(s, names) }

// Output is the model's output node.
func (n *Net) Output() *Node { return n.Nodes[len(n.Nodes)-1] }

// IsSequential reports whether the net is a chain, each layer fed by the
// one before: a Keras Sequential model.
func (n *Net) IsSequential() bool {
	for i, node := range n.Nodes {
		prev := n.Input
		if i > 0 {
			prev = n.Nodes[i-1]
		}
		if len(node.Inputs) != 1 || node.Inputs[0] != prev {
			return false
		}
	}
	return true
}

// ParamCount counts the model's weights: total, trainable and
// non-trainable, as Keras's summary does.
func (n *Net) ParamCount() (total, trainable, nonTrainable int) {
	for _, node := range n.Nodes {
		t, tr := node.ParamCount()
		total += t
		trainable += tr
	}
	return total, trainable, total - trainable
}

// FinalSoftmax reports whether the model ends in a softmax activation,
// whose input then serves as the logits of the loss (Keras's _get_logits
// path).
func (n *Net) FinalSoftmax() bool { return n.Output().Activation() == "softmax" }

// Summary renders Keras's model.summary() table: a Functional model adds
// the "Connected to" column.
func (n *Net) Summary() string {
	var b strings.Builder
	seq := n.IsSequential()
	widths := []int{31, 26, 12}
	if !seq {
		widths = []int{31, 26, 12, 25}
	}
	total := 0
	for _, w := range widths {
		total += w
	}
	line := func(ch string) { b.WriteString(strings.Repeat(ch, total) + "\n") }
	row := func(cols ...string) {
		for i, c := range cols {
			if i == 2 {
				fmt.Fprintf(&b, "%*s", widths[i], c)
				if len(cols) > 3 {
					b.WriteString(" ")
				}
				continue
			}
			w := widths[i]
			if i == 3 {
				w--
			}
			fmt.Fprintf(&b, "%-*s", w, c)
		}
		b.WriteString("\n")
	}
	name := "sequential"
	if !seq {
		name = "functional"
	}
	fmt.Fprintf(&b, "Model: %q\n", name)
	line("━")
	if seq {
		row("Layer (type)", "Output Shape", "Param #")
	} else {
		row("Layer (type)", "Output Shape", "Param #", "Connected to")
	}
	line("━")
	nodes := n.Nodes
	if !seq {
		row(fmt.Sprintf("%s (InputLayer)", "input_layer"), n.Input.Out.String(), "0", "-")
		line("─")
	}
	for i, node := range nodes {
		t, _ := node.ParamCount()
		label := fmt.Sprintf("%s (%s)", node.Name, node.Kind.Class)
		if seq {
			row(label, node.Out.String(), commas(t))
		} else {
			var from []string
			for _, in := range node.Inputs {
				name := in.Name
				if in == n.Input {
					name = "input_layer"
				}
				from = append(from, name+"[0][0]")
			}
			row(label, node.Out.String(), commas(t), strings.Join(from, ", "))
		}
		if i < len(nodes)-1 {
			line("─")
		}
	}
	line("━")
	all, tr, non := n.ParamCount()
	fmt.Fprintf(&b, " Total params: %s (%s)\n", commas(all), humanBytes(4*all))
	fmt.Fprintf(&b, " Trainable params: %s (%s)\n", commas(tr), humanBytes(4*tr))
	fmt.Fprintf(&b, " Non-trainable params: %s (%s)\n", commas(non), humanBytes(4*non))
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
