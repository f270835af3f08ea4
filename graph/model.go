package graph

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strings"

	tf "github.com/wamuir/graft/tensorflow"
	configpb "github.com/wamuir/graft/tensorflow/core/protobuf/for_core_protos_go_proto"
	"github.com/wamuir/graft/tensorflow/op"
	"google.golang.org/protobuf/proto"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/internal/atomicfile"
)

// Options configures how a Sequential becomes a trainable TensorFlow graph.
type Options struct {
	// Seed seeds glorot_uniform initialisation; dropout masks are drawn from
	// (Seed, step) so a resumed run repeats them.
	Seed int64
	// Normalize divides the uint8 input by 255 inside the graph.
	Normalize bool
	// Classes is the number of classes of the one-hot targets.
	Classes int
	// Optimizer is the Keras optimiser and its hyperparameters.
	Optimizer config.Optimizer
	// IntraOpThreads and InterOpThreads size TensorFlow's pools (0: default).
	IntraOpThreads, InterOpThreads int
	// XLA turns on global JIT compilation (OptimizerOptions ON_1). On a
	// CPU-only TensorFlow this clusters nothing unless the process also
	// runs with TF_XLA_FLAGS=--tf_xla_cpu_global_jit; with it, a training
	// step was 7–10× slower than without XLA here (BENCHMARKS.md).
	XLA bool
	// AutoGradients builds the backward pass with Graph.AddGradients (the
	// C++ gradient registry) instead of the explicit one of backward.go.
	// Both use the same TensorFlow gradient kernels; the explicit pass
	// feeds ReluGrad the ReLU output, as Python TensorFlow does, which
	// leaves each BiasAdd with a single consumer so that grappler fuses
	// Conv2D/MatMul+BiasAdd+Relu in the forward pass. Models the explicit
	// pass does not cover (no final softmax, other activations) always
	// use AddGradients.
	AutoGradients bool
}

// Variable is one variable of the model graph: a weight, an optimiser slot
// or a counter. Name is its checkpoint key.
//
// Variables are resource variables, except the weights RMSprop updates row
// by row and their slots (see buildOptimizer), which are reference
// variables (VariableV2): a row-wise update puts a resource variable in
// copy-on-read mode, and every step would then copy the matrix.
type Variable struct {
	Name  string
	Shape []int
	DType tf.DataType

	ref       bool      // a VariableV2; handle is its reference output
	handle    tf.Output // resource handle, or the reference for ref variables
	read      tf.Output // value for evaluation, checkpoints and GetWeights
	trainRead tf.Output // value for the training step (the same as read for resource variables)
	assignIn  tf.Output
	assign    *tf.Operation
}

// Model is a compiled Sequential: a TensorFlow graph and session holding the
// weights, the optimiser state, and the train, eval and predict paths.
type Model struct {
	Seq  *Sequential
	opts Options

	graph *tf.Graph
	sess  *tf.Session

	// Weights are the trainable variables in layer order (kernel, bias).
	Weights []*Variable
	// State are all checkpointed variables: weights, optimiser slots and
	// counters (optimizer/iteration, train/epoch).
	State []*Variable

	iteration *Variable
	epoch     *Variable
	runState  *Variable // see runstate.go

	images, labels, dropSeed tf.Output
	// Training path (dropout active).
	logits, loss, correct tf.Output
	grads                 []tf.Output
	trainOp               *tf.Operation
	// Inference path (dropout off).
	evalLogits, evalProbs, evalLoss, evalCorrect tf.Output

	ckpt checkpointOps
}

// Compile builds the model graph (forward paths, loss, gradients and the
// optimiser's fused update ops), starts a session and initialises every
// variable: glorot_uniform kernels, zero biases, zero slots.
func Compile(seq *Sequential, opts Options) (*Model, error) {
	if opts.Classes == 0 {
		opts.Classes = 10
	}
	if got := seq.Output(); len(got) != 1 || got[0] != opts.Classes {
		return nil, fmt.Errorf("model output %v does not match %d classes: end with dense(%d) + softmax", got, opts.Classes, opts.Classes)
	}
	m := &Model{Seq: seq, opts: opts}
	s := op.NewScope()
	if err := m.build(s); err != nil {
		return nil, err
	}
	g, err := s.Finalize()
	if err != nil {
		return nil, fmt.Errorf("build graph: %w", err)
	}
	m.graph = g
	so, err := sessionOptions(opts)
	if err != nil {
		return nil, err
	}
	if m.sess, err = tf.NewSession(g, so); err != nil {
		return nil, fmt.Errorf("start TensorFlow session: %w", err)
	}
	if err := m.initialize(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func sessionOptions(o Options) (*tf.SessionOptions, error) {
	cp := &configpb.ConfigProto{
		IntraOpParallelismThreads: int32(o.IntraOpThreads),
		InterOpParallelismThreads: int32(o.InterOpThreads),
		GraphOptions:              &configpb.GraphOptions{OptimizerOptions: &configpb.OptimizerOptions{}},
	}
	if o.XLA {
		cp.GraphOptions.OptimizerOptions.GlobalJitLevel = configpb.OptimizerOptions_ON_1
		// TensorFlow ignores global JIT on the CPU unless this flag is in
		// TF_XLA_FLAGS, which it reads once per process, at the first
		// session: so the config's xla: true means what it says.
		if f := os.Getenv("TF_XLA_FLAGS"); !strings.Contains(f, "--tf_xla_cpu_global_jit") {
			os.Setenv("TF_XLA_FLAGS", strings.TrimSpace(f+" --tf_xla_cpu_global_jit"))
		}
	} else {
		cp.GraphOptions.OptimizerOptions.GlobalJitLevel = configpb.OptimizerOptions_OFF
	}
	b, err := proto.Marshal(cp)
	if err != nil {
		return nil, fmt.Errorf("encode session config: %w", err)
	}
	return &tf.SessionOptions{Config: b}, nil
}

// Close releases the session.
func (m *Model) Close() error {
	if m.sess == nil {
		return nil
	}
	err := m.sess.Close()
	m.sess = nil
	return err
}

func (m *Model) newVariable(s *op.Scope, name string, shape []int, dt tf.DataType) *Variable {
	vs := s.SubScope(strings.NewReplacer("/", "_", ":", "_").Replace(name))
	v := &Variable{Name: name, Shape: shape, DType: dt}
	v.handle = op.VarHandleOp(vs.SubScope("VarHandleOp"), dt, tf.MakeShape(shape64(shape)...), op.VarHandleOpSharedName(name))
	v.read = op.ReadVariableOp(vs.SubScope("ReadVariableOp"), v.handle, dt)
	v.assignIn = op.Placeholder(vs.SubScope("init"), dt, op.PlaceholderShape(tf.MakeShape(shape64(shape)...)))
	v.assign = op.AssignVariableOp(vs.SubScope("AssignVariableOp"), v.handle, v.assignIn)
	v.trainRead = v.read
	m.State = append(m.State, v)
	return v
}

// newRefVariable adds a reference variable (VariableV2). Its reads share the
// variable's buffer (no copy), so every op of the training step that reads
// it must run before its in-place update: buildOptimizer orders the update
// after the consumers of trainRead, which only the training step uses.
func (m *Model) newRefVariable(s *op.Scope, name string, shape []int, dt tf.DataType) *Variable {
	vs := s.SubScope(strings.NewReplacer("/", "_", ":", "_").Replace(name))
	v := &Variable{Name: name, Shape: shape, DType: dt, ref: true}
	v.handle = vs.AddOperation(tf.OpSpec{Type: "VariableV2", Name: "VariableV2",
		Attrs: map[string]any{"shape": tf.MakeShape(shape64(shape)...), "dtype": dt, "shared_name": name}}).Output(0)
	v.read = op.Identity(vs.SubScope("Read"), v.handle)
	v.trainRead = op.Identity(vs.SubScope("TrainRead"), v.handle)
	v.assignIn = op.Placeholder(vs.SubScope("init"), dt, op.PlaceholderShape(tf.MakeShape(shape64(shape)...)))
	v.assign = vs.AddOperation(tf.OpSpec{Type: "Assign", Name: "Assign", Input: []tf.Input{v.handle, v.assignIn}})
	m.State = append(m.State, v)
	return v
}

func (m *Model) build(root *op.Scope) error {
	seq, o := m.Seq, m.opts
	in := seq.Input
	m.images = op.Placeholder(root.SubScope("images"), tf.Uint8, op.PlaceholderShape(tf.MakeShape(-1, int64(in[0]), int64(in[1]), int64(in[2]))))
	m.labels = op.Placeholder(root.SubScope("labels"), tf.Int32, op.PlaceholderShape(tf.MakeShape(-1)))
	m.dropSeed = op.Placeholder(root.SubScope("dropout_seed"), tf.Int64, op.PlaceholderShape(tf.MakeShape(2)))

	// Weights, in layer order, named as Keras names them. The training
	// step and evaluation read them through separate ops (see Variable).
	vars, evalVars := map[*Layer][]tf.Output{}, map[*Layer][]tf.Output{}
	for _, l := range seq.Layers {
		for _, p := range l.Params {
			newVar := m.newVariable
			if m.rowWise(p.Shape) {
				newVar = m.newRefVariable
			}
			v := newVar(root, l.Name+"/"+p.Name, p.Shape, tf.Float)
			m.Weights = append(m.Weights, v)
			vars[l] = append(vars[l], v.trainRead)
			evalVars[l] = append(evalVars[l], v.read)
		}
	}

	x := op.Cast(root.SubScope("Cast"), m.images, tf.Float)
	if o.Normalize {
		// The notebook's X.astype('float32') / 255: a true division, as there.
		x = op.RealDiv(root.SubScope("RealDiv"), x, op.Const(root.SubScope("Const"), float32(255)))
	}
	var tp tape
	trainLogits, trainOut := m.forwardTape(root.SubScope("train"), x, vars, &tp)
	evalLogits, evalOut := m.forward(root.SubScope("eval"), x, evalVars, false)
	m.logits, m.evalLogits, m.evalProbs = trainLogits, evalLogits, evalOut

	onehot := op.OneHot(root.SubScope("OneHot"), m.labels, op.Const(root.SubScope("Const"), int32(o.Classes)), op.Const(root.SubScope("Const"), float32(1)), op.Const(root.SubScope("Const"), float32(0)))
	var dlogits tf.Output
	m.loss, m.correct, dlogits = m.lossAndCorrect(root.SubScope("train_loss"), trainLogits, trainOut, onehot)
	m.evalLoss, m.evalCorrect, _ = m.lossAndCorrect(root.SubScope("eval_loss"), evalLogits, evalOut, onehot)

	if err := root.Err(); err != nil {
		return fmt.Errorf("build forward graph: %w", err)
	}
	reads := make([]tf.Output, len(m.Weights))
	for i, v := range m.Weights {
		reads[i] = v.trainRead
	}
	if o.AutoGradients || !m.explicitBackward() {
		m.grads = op.Gradients(root.SubScope("gradients"), []tf.Output{m.loss}, reads)
	} else {
		m.grads = m.backward(root.SubScope("backward"), &tp, vars, dlogits)
	}
	if err := root.Err(); err != nil {
		return fmt.Errorf("build gradients: %w", err)
	}
	if err := m.buildOptimizer(root.SubScope(o.Optimizer.Name)); err != nil {
		return err
	}
	m.epoch = m.newVariable(root, "train/epoch", nil, tf.Int64)
	m.addRunState(root)
	m.buildCheckpointOps(root.SubScope("checkpoint"))
	return root.Err()
}

// forward applies the layers. It returns the logits (the input of a final
// softmax; the output itself when the model does not end in one) and the
// model output. training selects dropout.
func (m *Model) forward(s *op.Scope, x tf.Output, vars map[*Layer][]tf.Output, training bool) (logits, out tf.Output) {
	var tp *tape
	if training {
		tp = &tape{}
	}
	return m.forwardTape(s, x, vars, tp)
}

// forwardTape is forward; a non-nil tape selects the training path and
// records what the explicit backward pass needs.
func (m *Model) forwardTape(s *op.Scope, x tf.Output, vars map[*Layer][]tf.Output, tp *tape) (logits, out tf.Output) {
	final := m.Seq.FinalSoftmax()
	training := tp != nil
	for i, l := range m.Seq.Layers {
		ls := s.SubScope(l.Name)
		rec := record{in: x}
		switch l.Kind {
		case "conv2d":
			x = op.Conv2D(ls.SubScope("Conv2D"), x, vars[l][0], []int64{1, int64(l.Strides[0]), int64(l.Strides[1]), 1}, strings.ToUpper(l.Padding))
			x = op.BiasAdd(ls.SubScope("BiasAdd"), x, vars[l][1])
		case "dense":
			x = op.MatMul(ls.SubScope("MatMul"), x, vars[l][0])
			x = op.BiasAdd(ls.SubScope("BiasAdd"), x, vars[l][1])
		case "max_pooling2d":
			x = op.MaxPool(ls.SubScope("MaxPool"), x, []int64{1, int64(l.PoolSize[0]), int64(l.PoolSize[1]), 1},
				[]int64{1, int64(l.Strides[0]), int64(l.Strides[1]), 1}, strings.ToUpper(l.Padding))
		case "flatten":
			x = op.Reshape(ls.SubScope("Reshape"), x, op.Const(ls.SubScope("Const"), []int32{-1, int32(l.Out.Size())}))
		case "dropout":
			if training && l.Rate > 0 {
				x, rec.mask = m.dropout(ls, x, l.Rate, int64(i), l.In.Size())
			}
		}
		rec.pre = x
		switch l.Activation {
		case "relu":
			x = op.Relu(ls.SubScope("Relu"), x)
		case "softmax":
			if i == len(m.Seq.Layers)-1 && final {
				logits = x
			}
			x = op.Softmax(ls.SubScope("Softmax"), x)
		}
		rec.out = x
		if training {
			tp.records = append(tp.records, rec)
		}
	}
	if !final {
		logits = x
	}
	return logits, x
}

// dropout is Keras's inverted dropout: units are kept with probability
// 1−rate and scaled by 1/(1−rate). The mask is a stateless function of the
// fed step seed and the layer index, so a resumed run draws the same masks.
// It is drawn as random bytes rather than floats: each 32-bit Philox word
// gives four uint8 (rate a multiple of 1/256, as the notebook's 0.25 and
// 0.5) or two uint16 draws, and a unit is kept when its draw is at least
// round(rate·2^bits); that costs a quarter (half) of the random words of
// StatelessRandomUniform. The mask, 0 or 1/(1−rate) per unit, is returned
// for the backward pass (dx = dy·mask).
func (m *Model) dropout(s *op.Scope, x tf.Output, rate float64, layer int64, units int) (y, mask tf.Output) {
	seed := op.Add(s.SubScope("Add"), m.dropSeed, op.Const(s.SubScope("Const"), []int64{0, layer * 1_000_003}))
	dt, per, levels := tf.Uint16, 2, 65536.0
	if r := rate * 256; r == math.Round(r) {
		dt, per, levels = tf.Uint8, 4, 256
	}
	words := (units + per - 1) / per
	batch := op.Slice(s.SubScope("Slice"), op.Shape(s.SubScope("Shape"), x, op.ShapeOutType(tf.Int32)), op.Const(s.SubScope("Const"), []int32{0}), op.Const(s.SubScope("Const"), []int32{1}))
	shape := op.ConcatV2(s.SubScope("ConcatV2"), []tf.Output{batch, op.Const(s.SubScope("Const"), []int32{int32(words)})}, op.Const(s.SubScope("Const"), int32(0)))
	bits := op.StatelessRandomUniformFullInt(s.SubScope("StatelessRandomUniformFullInt"), shape, seed, op.StatelessRandomUniformFullIntDtype(tf.Uint32))
	draws := op.Reshape(s.SubScope("Reshape"), op.Bitcast(s.SubScope("Bitcast"), bits, dt), op.Const(s.SubScope("Const"), []int32{-1, int32(words * per)}))
	if words*per != units {
		draws = op.Slice(s.SubScope("Slice"), draws, op.Const(s.SubScope("Const"), []int32{0, 0}), op.Const(s.SubScope("Const"), []int32{-1, int32(units)}))
	}
	draws = op.Reshape(s.SubScope("Reshape"), draws, op.Shape(s.SubScope("Shape"), x, op.ShapeOutType(tf.Int32)))
	threshold := math.Min(math.Round(rate*levels), levels-1)
	var t tf.Output
	if dt == tf.Uint8 {
		t = op.Const(s.SubScope("Const"), uint8(threshold))
	} else {
		t = op.Const(s.SubScope("Const"), uint16(threshold))
	}
	keep := op.GreaterEqual(s.SubScope("GreaterEqual"), draws, t)
	mask = selectV2(s.SubScope("SelectV2"), keep, op.Const(s.SubScope("Const"), float32(1/(1-rate))), op.Const(s.SubScope("Const"), float32(0)))
	return op.Mul(s.SubScope("Mul"), x, mask), mask
}

// selectV2 is TensorFlow's broadcasting SelectV2 (graft wraps only Select).
func selectV2(s *op.Scope, cond, x, y tf.Output) tf.Output {
	if s.Err() != nil {
		return tf.Output{}
	}
	return s.AddOperation(tf.OpSpec{Type: "SelectV2", Input: []tf.Input{cond, x, y}}).Output(0)
}

// lossAndCorrect is Keras's categorical_crossentropy under fit plus the
// count of correct categorical_accuracy predictions. Keras's TF backend
// (keras/src/backend/tensorflow/nn.py, categorical_crossentropy) sees that
// the output comes from a Softmax op, recovers its input as logits and calls
// tf.nn.softmax_cross_entropy_with_logits; we match that path. Without a
// final softmax the output is taken as probabilities, renormalised and
// clipped to [1e-7, 1−1e-7], as Keras does. Reduction: mean over the batch
// (sum_over_batch_size). With a final softmax it also returns the
// gradient of the loss with respect to the logits, as TensorFlow's
// registered gradient forms it: the op's backprop output times the mean's
// 1/N.
func (m *Model) lossAndCorrect(s *op.Scope, logits, out, onehot tf.Output) (loss, correct, dlogits tf.Output) {
	var perExample tf.Output
	if m.Seq.FinalSoftmax() {
		var backprop tf.Output
		perExample, backprop = op.SoftmaxCrossEntropyWithLogits(s.SubScope("SoftmaxCrossEntropyWithLogits"), logits, onehot)
		n := op.Cast(s.SubScope("Cast"), op.Size(s.SubScope("Size"), perExample), tf.Float)
		inv := op.RealDiv(s.SubScope("RealDiv"), op.Const(s.SubScope("Const"), float32(1)), n)
		dlogits = op.Mul(s.SubScope("Mul"), backprop, inv)
	} else {
		p := op.Div(s.SubScope("Div"), out, op.Sum(s.SubScope("Sum"), out, op.Const(s.SubScope("Const"), int32(-1)), op.SumKeepDims(true)))
		p = op.ClipByValue(s.SubScope("ClipByValue"), p, op.Const(s.SubScope("Const"), float32(1e-7)), op.Const(s.SubScope("Const"), float32(1-1e-7)))
		perExample = op.Neg(s.SubScope("Neg"), op.Sum(s.SubScope("Sum"), op.Mul(s.SubScope("Mul"), onehot, op.Log(s.SubScope("Log"), p)), op.Const(s.SubScope("Const"), int32(-1))))
	}
	loss = op.Mean(s.SubScope("Mean"), perExample, op.Const(s.SubScope("Const"), int32(0)))
	pred := op.ArgMax(s.SubScope("ArgMax"), out, op.Const(s.SubScope("Const"), int32(1)), op.ArgMaxOutputType(tf.Int32))
	correct = op.Sum(s.SubScope("Sum"), op.Cast(s.SubScope("Cast"), op.Equal(s.SubScope("Equal"), pred, m.labels), tf.Int32), op.Const(s.SubScope("Const"), int32(0)))
	return loss, correct, dlogits
}

// initialize assigns glorot_uniform kernels (limit √(6/(fan_in+fan_out)),
// Keras's default), zero biases, zero optimiser slots and counters.
func (m *Model) initialize() error {
	rng := rand.New(rand.NewPCG(uint64(m.opts.Seed), 0x676c6f726f74)) // "glorot"
	values := map[*Variable]any{}
	params := map[string]Param{}
	for _, l := range m.Seq.Layers {
		for _, p := range l.Params {
			params[l.Name+"/"+p.Name] = p
		}
	}
	for _, v := range m.State {
		if v.DType != tf.Float {
			values[v] = Array{} // marker: zero scalar
			continue
		}
		a := Array{Shape: v.Shape, Data: make([]float32, Shape(v.Shape).Size())}
		if p, ok := params[v.Name]; ok && p.FanIn > 0 {
			limit := math.Sqrt(6 / float64(p.FanIn+p.FanOut))
			for i := range a.Data {
				a.Data[i] = float32((2*rng.Float64() - 1) * limit)
			}
		}
		values[v] = a
	}
	for _, v := range m.State {
		var t *tf.Tensor
		var err error
		switch v.DType {
		case tf.Int64:
			t, err = tf.NewTensor(int64(0))
		case tf.String:
			t, err = tf.NewTensor("")
		default:
			t, err = float32Tensor(values[v].(Array))
		}
		if err != nil {
			return fmt.Errorf("init %s: %w", v.Name, err)
		}
		if _, err := m.sess.Run(map[tf.Output]*tf.Tensor{v.assignIn: t}, nil, []*tf.Operation{v.assign}); err != nil {
			return fmt.Errorf("init %s: %w", v.Name, err)
		}
	}
	return nil
}

// GetWeights returns the trainable weights by checkpoint name.
func (m *Model) GetWeights() (map[string]Array, error) {
	return m.readVars(m.Weights)
}

// GetState returns every float32 variable (weights and optimiser slots).
func (m *Model) GetState() (map[string]Array, error) {
	var vs []*Variable
	for _, v := range m.State {
		if v.DType == tf.Float {
			vs = append(vs, v)
		}
	}
	return m.readVars(vs)
}

func (m *Model) readVars(vs []*Variable) (map[string]Array, error) {
	fetch := make([]tf.Output, len(vs))
	for i, v := range vs {
		fetch[i] = v.read
	}
	out, err := m.sess.Run(nil, fetch, nil)
	if err != nil {
		return nil, fmt.Errorf("read weights: %w", err)
	}
	res := make(map[string]Array, len(vs))
	for i, v := range vs {
		if res[v.Name], err = toArray(out[i]); err != nil {
			return nil, fmt.Errorf("read %s: %w", v.Name, err)
		}
	}
	return res, nil
}

// SetWeights assigns the named float32 variables (weights or slots). Every
// name must exist with the same shape.
func (m *Model) SetWeights(w map[string]Array) error {
	byName := map[string]*Variable{}
	for _, v := range m.State {
		byName[v.Name] = v
	}
	for name, a := range w {
		v, ok := byName[name]
		if !ok {
			return fmt.Errorf("set weights: model has no variable %s", name)
		}
		if !sameShape(v.Shape, a.Shape) {
			return fmt.Errorf("set weights: %s has shape %v, model wants %v", name, a.Shape, v.Shape)
		}
		t, err := float32Tensor(a)
		if err != nil {
			return fmt.Errorf("set weights %s: %w", name, err)
		}
		if _, err := m.sess.Run(map[tf.Output]*tf.Tensor{v.assignIn: t}, nil, []*tf.Operation{v.assign}); err != nil {
			return fmt.Errorf("set weights %s: %w", name, err)
		}
	}
	return nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Counter reads an int64 counter variable: optimizer iterations or epochs.
func (m *Model) counter(v *Variable) (int64, error) {
	out, err := m.sess.Run(nil, []tf.Output{v.read}, nil)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", v.Name, err)
	}
	return out[0].Value().(int64), nil
}

func (m *Model) setCounter(v *Variable, n int64) error {
	t, err := tf.NewTensor(n)
	if err != nil {
		return err
	}
	_, err = m.sess.Run(map[tf.Output]*tf.Tensor{v.assignIn: t}, nil, []*tf.Operation{v.assign})
	return err
}

// Iterations is the optimiser's step count (Keras's optimizer.iterations).
func (m *Model) Iterations() (int64, error) { return m.counter(m.iteration) }

// Epoch is the number of completed epochs recorded in the model state.
func (m *Model) Epoch() (int64, error) { return m.counter(m.epoch) }

// SetEpoch records the number of completed epochs.
func (m *Model) SetEpoch(n int64) error { return m.setCounter(m.epoch, n) }

// Device names the device TensorFlow places the training step on: the
// first GPU when the library has CUDA and sees one, else the CPU.
func (m *Model) Device() string {
	devs, err := m.sess.ListDevices()
	if err != nil {
		return "unknown device"
	}
	for _, d := range devs {
		if d.Type == "GPU" {
			return d.Name
		}
	}
	if len(devs) > 0 {
		return devs[0].Name
	}
	return "unknown device"
}

// WriteGraphDef writes the model's GraphDef (binary protobuf) to path, for
// inspection and profiling outside Go (e.g. tf.compat.v1 import_graph_def).
func (m *Model) WriteGraphDef(path string) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		_, err := m.graph.WriteTo(w)
		return err
	})
}
