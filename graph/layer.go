package graph

import (
	"fmt"
	"maps"
	"slices"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// A Layer is one Keras layer: its arguments (decoded from the config over
// the kind's Keras defaults), resolved against its input shapes by Build,
// and the TensorFlow ops of its forward pass. It describes itself as Keras
// does (KerasConfig), so the architecture JSON and the parity test read the
// layer rather than a table of their own.
//
// A kind's file registers it (RegisterLayer) and holds everything about it:
// arguments, validation, shapes, variables, forward, backward and Keras
// config. Nothing else in the engine names a layer kind.
type Layer interface {
	// Build checks the arguments against the input shapes and returns the
	// output shape and the layer's variables (trainable or not), in Keras's
	// weight order. A returned error is one line without the layer's name.
	Build(in []Shape) (out Shape, params []Param, err error)
	// Call adds the forward computation (before any activation, which the
	// model applies; see Activated) and returns the layer's output.
	Call(c *Call) tf.Output
	// KerasConfig is the layer's Keras 3 get_config() except name,
	// trainable and dtype, which the model adds.
	KerasConfig() map[string]any
}

// Differentiable is a Layer that builds its own backward pass from
// TensorFlow's gradient ops. A model whose layers all are uses these;
// otherwise it falls back to TensorFlow's C++ gradient registry
// (Graph.AddGradients) for the whole model.
type Differentiable interface {
	Layer
	// Backward returns the gradient at each input (only where c.NeedInput
	// says so; the rest may be zero tf.Output) and at each trainable
	// parameter, in Params order, given dy, the gradient at the layer's
	// output (before the model's activation).
	Backward(c *Call, dy tf.Output) (dx []tf.Output, dw []tf.Output)
}

// Activated is a Layer ending in a Keras activation (Conv2D, Dense,
// Activation): the model applies it after Call, so that a final softmax's
// input can serve as the logits of the loss, as Keras's does.
type Activated interface {
	ActivationName() string
}

// zeroAtZero is a layer whose gradient routing is unchanged by a ReLU
// before it: it outputs zero exactly where a ReLU on its inputs would have
// zeroed everything it reads (max-pooling), so the ReLU's gradient can be
// taken at this layer's smaller output instead.
type zeroAtZero interface {
	commutesWithReLU() bool
}

// sumPreserving is a layer whose input gradient has, per channel, the same
// sum as the output gradient it is given: max-pooling routes each gradient
// to one input unit, an Activation layer passes it through (its ReLU's
// gradient is taken by the model, or at a max-pool after it). A bias
// gradient below it may then sum the smaller gradient (Call.ChannelSum).
type sumPreserving interface {
	preservesChannelSums() bool
}

// Param is one variable of a layer.
type Param struct {
	// Name is the Keras weight name: kernel, bias, gamma, moving_mean, ...
	Name  string
	Shape []int
	// Init names its initializer (initializers.go): glorot_uniform, zeros, ...
	Init string
	// Trainable params get gradients and optimiser updates; the others are
	// state the layer updates itself (BatchNormalization's moving stats).
	// It says what the kind declares; Frozen overrides it per layer.
	Trainable bool
	// Frozen is set on a trainable param of a layer configured with
	// trainable: false: it keeps its value and gets no gradient.
	Frozen bool
	// Regularizer adds a penalty on the param to the loss (nil: none).
	Regularizer *Regularizer
}

// Learned reports whether the optimizer trains the param: declared
// trainable by its kind and not frozen by its layer.
func (p *Param) Learned() bool { return p.Trainable && !p.Frozen }

// Kind is a registered layer kind.
type Kind struct {
	// Type is the config name, Keras's snake-case auto-name: conv2d.
	Type string
	// Class is the Keras class name: Conv2D.
	Class string
	// MinInputs and MaxInputs bound how many inputs the layer takes
	// (MaxInputs 0: no bound, for merge layers).
	MinInputs, MaxInputs int
	// New returns the layer with Keras's default arguments, as a pointer
	// to a struct whose mapstructure tags are the Keras argument names.
	New func() Layer
}

var kinds = map[string]*Kind{}

// RegisterLayer adds a layer kind. Each kind's file calls it from init.
func RegisterLayer(k Kind) {
	if _, dup := kinds[k.Type]; dup {
		panic("graph: layer kind registered twice: " + k.Type)
	}
	if k.MinInputs == 0 {
		k.MinInputs, k.MaxInputs = 1, 1
	}
	kinds[k.Type] = &k
}

// LayerTypes lists the registered layer kinds' config names, sorted.
func LayerTypes() []string { return slices.Sorted(maps.Keys(kinds)) }

// LookupLayer returns the kind registered under a config name.
func LookupLayer(typ string) (*Kind, bool) {
	k, ok := kinds[typ]
	return k, ok
}

// LayerByClass returns the kind of a Keras class name (Conv2D).
func LayerByClass(class string) (*Kind, bool) {
	for _, k := range kinds {
		if k.Class == class {
			return k, true
		}
	}
	return nil, false
}

// Call is one application of a layer while the model graph is built: what
// the layer's Call and Backward read, and what Call keeps for Backward.
type Call struct {
	// Scope is the layer's own name scope.
	Scope *op.Scope
	// In are the input tensors, InShapes their shapes (without batch).
	In       []tf.Output
	InShapes []Shape
	// OutShape is the output shape Build resolved.
	OutShape Shape
	// Params are the current values of the layer's variables, in the order
	// Build returned them.
	Params []tf.Output
	// Training selects the training behaviour (dropout on, BatchNorm on
	// batch statistics).
	Training bool
	// Seed is the step's int64[2] seed for stateless random ops, and Index
	// the layer's position in the model: a random layer draws from
	// (Seed, Index), so a resumed run repeats its draws.
	Seed  tf.Output
	Index int
	// Shard, when set, says the batch is rows [Start, Start+n) of a
	// global batch of Global rows (one tower of a data-parallel step): a
	// random layer draws for the global batch and keeps its rows, so each
	// example's draw does not depend on how the batch was split.
	Shard *Shard
	// Out is the layer's output, set after Call (for Backward).
	Out tf.Output
	// NeedInput says which inputs Backward must return a gradient for.
	NeedInput []bool

	// sumSource, when set, has the same per-channel sums as Backward's dy
	// and fewer units (the gradient a max-pool routed into dy).
	sumSource tf.Output

	saved   map[string]tf.Output
	updates map[int]tf.Output
}

// Shard is one tower's rows of a data-parallel step's batch: int32
// scalars, the global batch size and the first row.
type Shard struct {
	Global, Start tf.Output
}

// Keep stores a tensor of the forward pass for Backward.
func (c *Call) Keep(key string, t tf.Output) {
	if c.saved == nil {
		c.saved = map[string]tf.Output{}
	}
	c.saved[key] = t
}

// Kept returns a tensor stored by Keep, and whether there is one.
func (c *Call) Kept(key string) (tf.Output, bool) {
	t, ok := c.saved[key]
	return t, ok
}

// Update sets the new value of non-trainable param i, assigned by the
// training step (BatchNormalization's moving statistics). Only training
// calls may update.
func (c *Call) Update(param int, value tf.Output) {
	if c.updates == nil {
		c.updates = map[int]tf.Output{}
	}
	c.updates[param] = value
}

// ChannelSum is dy, the gradient at the layer's output, summed over every
// axis but the last (a bias gradient), taken from a smaller tensor with
// the same sums when the backward pass has one: after a ReLU and a 2×2
// max-pool, a quarter of the units. Under mixed_bfloat16 the rewrite runs
// the Sum in bfloat16, whose CPU kernel accumulates in float32
// (TestChannelSumAccumulatesInFloat32).
func (c *Call) ChannelSum(dy tf.Output) tf.Output {
	axes := make([]int32, len(c.OutShape)) // the batch axis and all but the last of OutShape
	for i := range axes {
		axes[i] = int32(i)
	}
	return op.Sum(c.sub("Sum"), c.channelSumSource(dy), op.Const(c.sub("Const"), axes))
}

// channelSumSource is the tensor whose per-channel sums are dy's: the
// smaller one the backward pass found, else dy itself.
func (c *Call) channelSumSource(dy tf.Output) tf.Output {
	if c.sumSource != (tf.Output{}) {
		return c.sumSource
	}
	return dy
}

// sub is the layer scope's sub-scope for one op.
func (c *Call) sub(name string) *op.Scope { return c.Scope.SubScope(name) }

// constF32 and constI32 add constants in the layer's scope.
func (c *Call) constF32(v any) tf.Output { return op.Const(c.sub("Const"), v) }

// pair reads a Keras int-or-tuple argument of two values (kernel_size: 3
// or [3, 3]); empty gives def.
func pair(key string, v []int, def [2]int) ([2]int, error) {
	switch len(v) {
	case 0:
		return def, nil
	case 1:
		v = []int{v[0], v[0]}
	case 2:
	default:
		return def, fmt.Errorf("%s: %v must be one integer or [h, w]", key, v)
	}
	if v[0] < 1 || v[1] < 1 {
		return def, fmt.Errorf("%s: %v must be positive", key, v)
	}
	return [2]int{v[0], v[1]}, nil
}

// oneSpatialInput checks that a layer has one (height, width, channels)
// input.
func oneSpatialInput(class string, in []Shape) error {
	if len(in[0]) != 3 {
		return fmt.Errorf("%s needs a (height, width, channels) input, got %v", class, in[0])
	}
	return nil
}

// padding checks a Keras padding argument and returns TensorFlow's form.
func checkPadding(p string) error {
	if p != "valid" && p != "same" {
		return fmt.Errorf("padding: %q is not valid or same", p)
	}
	return nil
}

// WeightArgs are the arguments Keras's Conv2D and Dense share: the
// activation and the kernel's and bias's use, initializers and
// regularizers, with Keras's defaults (DefaultWeightArgs).
type WeightArgs struct {
	Activation        string       `mapstructure:"activation"`
	UseBias           bool         `mapstructure:"use_bias"`
	KernelInitializer string       `mapstructure:"kernel_initializer"`
	BiasInitializer   string       `mapstructure:"bias_initializer"`
	KernelRegularizer *Regularizer `mapstructure:"kernel_regularizer"`
	BiasRegularizer   *Regularizer `mapstructure:"bias_regularizer"`
}

// DefaultWeightArgs are Keras's: a bias, glorot_uniform kernels, zero biases.
func DefaultWeightArgs() WeightArgs {
	return WeightArgs{UseBias: true, KernelInitializer: "glorot_uniform", BiasInitializer: "zeros"}
}

func (w *WeightArgs) check() error {
	var err error
	if w.Activation, err = checkActivation(w.Activation); err != nil {
		return err
	}
	if err := checkInitializer("kernel_initializer", w.KernelInitializer); err != nil {
		return err
	}
	if err := checkInitializer("bias_initializer", w.BiasInitializer); err != nil {
		return err
	}
	if err := w.KernelRegularizer.check("kernel_regularizer"); err != nil {
		return err
	}
	if err := w.BiasRegularizer.check("bias_regularizer"); err != nil {
		return err
	}
	if !w.UseBias && w.BiasRegularizer != nil {
		return fmt.Errorf("bias_regularizer: the layer has no bias (use_bias: false)")
	}
	return nil
}

// params are the kernel of the given shape and, with use_bias, a bias of
// the kernel's last dimension.
func (w *WeightArgs) params(kernel []int) []Param {
	ps := []Param{{Name: "kernel", Shape: kernel, Init: w.KernelInitializer, Trainable: true, Regularizer: w.KernelRegularizer}}
	if w.UseBias {
		ps = append(ps, Param{Name: "bias", Shape: []int{kernel[len(kernel)-1]}, Init: w.BiasInitializer, Trainable: true, Regularizer: w.BiasRegularizer})
	}
	return ps
}

func (w *WeightArgs) ActivationName() string { return w.Activation }

// kerasConfig adds the shared arguments to a layer's Keras config.
func (w *WeightArgs) kerasConfig(c map[string]any) map[string]any {
	c["activation"], c["use_bias"] = w.Activation, w.UseBias
	c["kernel_initializer"], c["bias_initializer"] = kerasInitializer(w.KernelInitializer), kerasInitializer(w.BiasInitializer)
	c["kernel_regularizer"], c["bias_regularizer"] = w.KernelRegularizer.keras(), w.BiasRegularizer.keras()
	c["kernel_constraint"], c["bias_constraint"] = nil, nil
	return c
}
