package graph

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	tf "github.com/wamuir/graft/tensorflow"
	configpb "github.com/wamuir/graft/tensorflow/core/protobuf/for_core_protos_go_proto"
	"github.com/wamuir/graft/tensorflow/op"
	"google.golang.org/protobuf/proto"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/internal/atomicfile"
)

// Options configures how a Net becomes a trainable TensorFlow graph.
type Options struct {
	// Seed seeds weight initialisation; dropout masks are drawn from
	// (Seed, step) so a resumed run repeats them.
	Seed int64
	// Normalize divides the uint8 input by 255 inside the graph.
	Normalize bool
	// Mean and Std standardise each channel after it (Preprocess).
	Mean, Std []float64
	// Classes is the number of classes of the one-hot targets; the model's
	// output must have exactly this many units.
	Classes int
	// Optimizer is the Keras optimiser with its arguments (NewOptimizer).
	Optimizer Optimizer
	// IntraOpThreads and InterOpThreads size TensorFlow's pools (0: default).
	IntraOpThreads, InterOpThreads int
	// XLA turns on global JIT compilation (OptimizerOptions ON_1). On a
	// CPU-only TensorFlow this clusters nothing unless the process also
	// runs with TF_XLA_FLAGS=--tf_xla_cpu_global_jit (the pipeline command
	// sets it at start-up: TensorFlow reads it once per process, and a
	// library must not change the environment); with it, a training step
	// was 6–13× slower than without XLA here (BENCHMARKS.md).
	XLA bool
	// Session, when set, adjusts the session's configuration (the device
	// placement: visible GPUs, memory growth).
	Session func(*configpb.ConfigProto)
	// LabelSmoothing is Keras's categorical_crossentropy label_smoothing:
	// targets become onehot·(1−ls) + ls/classes (keras/src/losses/losses.py).
	LabelSmoothing float64
	// AutoGradients builds the backward pass with Graph.AddGradients (the
	// C++ gradient registry) instead of the layers' own Backward. Both use
	// the same TensorFlow gradient kernels; the explicit pass feeds
	// ReluGrad the ReLU output, as Python TensorFlow does, which leaves
	// each BiasAdd with a single consumer so that grappler fuses
	// Conv2D/MatMul+BiasAdd+Relu in the forward pass. Models the explicit
	// pass does not cover (no final softmax) always use AddGradients.
	AutoGradients bool
	// TTATranslate adds translations by that many pixels to the test-time
	// augmentation (PredictBatchTTA and the SavedModel's TTA signature);
	// 0 is flips alone.
	TTATranslate int
	// Towers, when set, splits the training step data-parallel over these
	// devices (/job:worker/task:i of a cluster, see towers.go); the
	// variables, the optimiser update and the eval and predict paths stay
	// on the session's master.
	Towers []string
	// Target is the session target: empty for this process, or
	// grpc://host:port, a cluster's master (its worker task 0).
	Target string
	// OperationTimeout, when set, fails any session run that takes longer
	// (DEADLINE_EXCEEDED). A cluster run needs it: when a worker dies,
	// TensorFlow keeps retrying its gRPC channel and the step never ends.
	OperationTimeout time.Duration
	// Precision is the Keras dtype policy: float32 (the zero value too),
	// mixed_bfloat16 or, on a GPU, mixed_float16 (see precision.go).
	Precision Precision
	// LossScale, when set, trains with dynamic loss scaling (Keras's
	// LossScaleOptimizer, which wraps an optimizer under any policy);
	// mixed_float16 always does, with Keras's defaults when it is nil.
	LossScale *LossScale
	// DenseUpdates makes every weight a resource variable updated by the
	// optimizer's fused dense kernel (ResourceApplyRMSProp), never row by
	// row on a reference variable (RMSprop's SparseApplyRMSProp, which has
	// no GPU kernel in TF 2.18: on a GPU the weight and its slots would be
	// pinned to the CPU). The law is the same; set it when a GPU runs the
	// graph (device.Placement.DenseUpdates).
	DenseUpdates bool
}

// Variable is one variable of the model graph: a weight, a layer's state
// (BatchNormalization's moving statistics), an optimiser slot or a
// counter. Name is its checkpoint key.
//
// Variables are resource variables, except the weights an optimizer
// updates in place row by row and their slots (see RMSprop), which are
// reference variables (VariableV2): a row-wise update puts a resource
// variable in copy-on-read mode, and every step would then copy the matrix.
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
	param     *Param // the layer parameter it holds, if any
}

// Model is a compiled Net: a TensorFlow graph and session holding the
// weights, the layers' state, the optimiser state, and the train, eval and
// predict paths.
type Model struct {
	Net  *Net
	opts Options
	opt  Optimizer
	// optName names the optimizer's variables (rmsprop/iteration, ...).
	optName string

	graph *tf.Graph
	sess  *tf.Session

	// Weights are the trainable variables in layer order (kernel, bias).
	Weights []*Variable
	// NonTrainable are the layers' state variables (moving statistics).
	NonTrainable []*Variable
	// State are all checkpointed variables: weights, layer state,
	// optimiser slots and counters (optimizer/iteration, train/epoch,
	// train/run_state).
	State []*Variable

	params    map[*Node][]*Variable
	iteration *Variable
	epoch     *Variable
	runState  *Variable

	images, labels, dropSeed tf.Output
	// lr is the fed learning rate under a schedule; lrVar the optimizer's
	// learning_rate variable under a constant rate.
	lr    tf.Output
	lrVar *Variable
	// lossScale scales the loss when Options.LossScale is set (always
	// under mixed_float16), nil otherwise.
	lossScale *lossScaler
	// Training path (dropout active, batch statistics).
	logits, loss, correct tf.Output
	grads                 []tf.Output
	stateUpdates          []*tf.Operation
	// averages pairs each weight with its moving average (use_ema).
	averages [][2]*Variable
	trainOp  *tf.Operation
	// Inference path (dropout off, moving statistics).
	evalLogits, evalProbs, evalLoss, evalCorrect tf.Output
	// evalProbsTTA is evalProbs with flip test-time augmentation.
	evalProbsTTA tf.Output

	ckpt checkpointOps
	// dataInits are the variables initialized from training images.
	dataInits []dataInit
}

// Compile builds the model graph (forward paths, loss, gradients and the
// optimiser's update ops), starts a session and initialises every
// variable from the layers' initializers and the seed; slots and counters
// start at zero.
func Compile(net *Net, opts Options) (*Model, error) {
	if opts.Classes < 2 {
		return nil, fmt.Errorf("compile: %d classes: a classifier needs at least 2", opts.Classes)
	}
	if opts.LabelSmoothing < 0 || opts.LabelSmoothing >= 1 {
		return nil, fmt.Errorf("compile: label smoothing %v is outside [0, 1)", opts.LabelSmoothing)
	}
	if len(opts.Mean) != len(opts.Std) || (len(opts.Mean) > 0 && len(opts.Mean) != net.Input.Out[2]) {
		return nil, fmt.Errorf("compile: mean %v and std %v must both have one value per channel (%d)", opts.Mean, opts.Std, net.Input.Out[2])
	}
	if opts.Optimizer == nil {
		return nil, fmt.Errorf("compile: no optimizer")
	}
	if got := net.Output().Out; len(got) != 1 || got[0] != opts.Classes {
		return nil, config.KeyErrorf(net.Output().Key, "layer %q: model output %v does not match %d classes: end with dense(%d) + softmax",
			net.Output().Name, got, opts.Classes, opts.Classes)
	}
	gpu := false
	if opts.Precision == MixedFloat16 || opts.Precision == MixedBFloat16 {
		var err error
		if gpu, err = onGPU(opts); err != nil {
			return nil, err
		}
	}
	var err error
	if opts.Precision, err = CheckPrecision(string(opts.Precision), gpu); err != nil {
		return nil, err
	}
	if opts.Precision == MixedFloat16 && opts.LossScale == nil {
		opts.LossScale = &LossScale{}
	}
	if opts.LossScale != nil {
		l := opts.LossScale.orDefault()
		if err := l.validate(); err != nil {
			return nil, err
		}
		opts.LossScale = &l
	}
	m := &Model{Net: net, opts: opts, opt: opts.Optimizer, optName: OptimizerName(opts.Optimizer)}
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
	} else {
		cp.GraphOptions.OptimizerOptions.GlobalJitLevel = configpb.OptimizerOptions_OFF
	}
	if o.Precision == MixedBFloat16 {
		// mixed_bfloat16 is TensorFlow's own grappler rewrite of the
		// float32 graph (auto_mixed_precision_onednn_bfloat16), not an
		// explicit bfloat16 graph. It does what Keras's policy does: the
		// variables, optimiser and slots stay float32, each weight is cast
		// to bfloat16 once per step where a bfloat16 op reads it; convs
		// and matmuls (with their fused bias and ReLU), ReLU gradients,
		// pooling, dropout, AddN and FusedBatchNorm (bfloat16 activations,
		// float32 statistics) run in bfloat16 forward and backward; weight
		// gradients are cast back to float32 for the optimiser (a conv's
		// bias gradient is summed in float32), and the loss ops
		// (SoftmaxCrossEntropyWithLogits, Mean) stay float32. The profile
		// (BENCHMARKS.md, issue 16) bounds what an explicit bfloat16 graph
		// could add: every Cast left in a rewritten step takes 2–5% of it,
		// and most of them (weights to bfloat16, gradients to float32) an
		// explicit graph needs as well; it would cost a dtype path through
		// every layer kind, and the float32 graph would no longer be the
		// only one the layers build. The rewrite touches only this session:
		// the float32 graph, its checkpoint and the SavedModel are the same
		// in every precision.
		cp.GraphOptions.RewriteOptions = &configpb.RewriterConfig{AutoMixedPrecisionOnednnBfloat16: configpb.RewriterConfig_ON}
	}
	if o.Precision == MixedFloat16 {
		// The same rewrite for CUDA's float16 (auto_mixed_precision: on
		// GPUs of compute capability 7.0 or later, the ops of TensorFlow's
		// float16 allow list and the ops between them); the loss scaling
		// is in the graph (loss_scale.go). TensorFlow's CPU emulation of
		// it (auto_mixed_precision_cpu) is not offered: it aborts the
		// process on the deep preset's graph (std::out_of_range in the
		// rewrite, TensorFlow 2.18).
		cp.GraphOptions.RewriteOptions = &configpb.RewriterConfig{AutoMixedPrecision: configpb.RewriterConfig_ON}
	}
	if o.Target != "" {
		// Variables of this session are its own, not shared with other
		// sessions on the same servers (a server outlives every run: it
		// cannot be stopped), and are freed with it.
		cp.IsolateSessionState = true
	}
	cp.OperationTimeoutInMs = o.OperationTimeout.Milliseconds()
	if o.Session != nil {
		o.Session(cp)
	}
	b, err := proto.Marshal(cp)
	if err != nil {
		return nil, fmt.Errorf("encode session config: %w", err)
	}
	return &tf.SessionOptions{Target: o.Target, Config: b}, nil
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
	net, o := m.Net, m.opts
	in := net.Input.Out
	m.images = op.Placeholder(root.SubScope("images"), tf.Uint8, op.PlaceholderShape(tf.MakeShape(-1, int64(in[0]), int64(in[1]), int64(in[2]))))
	m.labels = op.Placeholder(root.SubScope("labels"), tf.Int32, op.PlaceholderShape(tf.MakeShape(-1)))
	m.dropSeed = op.Placeholder(root.SubScope("dropout_seed"), tf.Int64, op.PlaceholderShape(tf.MakeShape(2)))

	// Variables, in layer order, named as Keras names them. The training
	// step and evaluation read them through separate ops (see Variable).
	refs, _ := m.opt.(refVariables)
	if b := m.opt.base(); b.WeightDecay > 0 || b.UseEMA {
		refs = nil // decay and averages read and assign the weight as a resource
	}
	if o.DenseUpdates {
		refs = nil
	}
	m.params = map[*Node][]*Variable{}
	trainVals, evalVals := map[*Node][]tf.Output{}, map[*Node][]tf.Output{}
	for _, n := range net.Nodes {
		for i := range n.Params {
			p := &n.Params[i]
			newVar := m.newVariable
			if p.Learned() && refs != nil && refs.refVariable(p.Shape) {
				newVar = m.newRefVariable
			}
			v := newVar(root, n.Name+"/"+p.Name, p.Shape, tf.Float)
			v.param = p
			if p.Learned() {
				m.Weights = append(m.Weights, v)
			} else {
				m.NonTrainable = append(m.NonTrainable, v)
			}
			m.params[n] = append(m.params[n], v)
			trainVals[n] = append(trainVals[n], v.trainRead)
			evalVals[n] = append(evalVals[n], v.read)
		}
	}

	if o.LossScale != nil {
		m.lossScale = m.newLossScaler(root.SubScope(lossScaleName), *o.LossScale)
	}

	x := o.Preprocess().apply(root.SubScope("preprocess"), m.images)
	var train *pass
	var towers *towerStep
	if len(o.Towers) > 0 {
		var err error
		if towers, err = m.buildTowers(root.SubScope("towers"), trainVals); err != nil {
			return err
		}
		m.logits = towers.logits
	} else {
		train = net.forward(root.SubScope("train"), x, trainVals, true, m.dropSeed)
		m.logits = train.logits
	}
	eval := net.forward(root.SubScope("eval"), x, evalVals, false, tf.Output{})
	m.evalLogits, m.evalProbs = eval.logits, eval.out
	m.evalProbsTTA = net.tta(root.SubScope("eval"), x, eval.out, evalVals, o.TTATranslate)
	m.buildDataInits(root.SubScope("data_init"), eval)

	targets := m.targets(root, m.labels)
	var dlogits tf.Output
	if towers != nil {
		m.loss, m.correct = towers.loss, towers.correct
	} else {
		m.loss, m.correct, dlogits = m.lossAndCorrect(root.SubScope("train_loss"), train.logits, train.out, targets)
	}
	m.evalLoss, m.evalCorrect, _ = m.lossAndCorrect(root.SubScope("eval_loss"), eval.logits, eval.out, targets)
	// Weight penalties join both losses, as Keras's compute_loss adds
	// model.losses in training and evaluation alike.
	var regGrads map[*Variable]tf.Output
	m.loss, regGrads = m.addPenalties(root.SubScope("train_penalty"), m.loss, true)
	m.evalLoss, _ = m.addPenalties(root.SubScope("eval_penalty"), m.evalLoss, false)

	if err := root.Err(); err != nil {
		return fmt.Errorf("build forward graph: %w", err)
	}
	// Under loss scaling the gradients are taken of loss·scale, weight
	// penalties included (Keras scales the whole loss), then unscaled.
	seed := func(s *op.Scope, x tf.Output) tf.Output { return x }
	if ls := m.lossScale; ls != nil {
		seed = ls.times
		ss := root.SubScope("loss_scale")
		for v, g := range regGrads {
			regGrads[v] = ls.times(ss, g)
		}
	}
	if towers != nil {
		m.grads = towers.grads
		bs := root.SubScope("penalty_grads")
		for i, v := range m.Weights {
			if g, ok := regGrads[v]; ok {
				m.grads[i] = op.AddV2(bs.SubScope("AddV2"), m.grads[i], g)
			}
		}
	} else if o.AutoGradients || !m.explicitBackward() {
		reads := make([]tf.Output, len(m.Weights))
		for i, v := range m.Weights {
			reads[i] = v.trainRead
		}
		m.grads = op.Gradients(root.SubScope("gradients"), []tf.Output{seed(root.SubScope("loss_scale"), m.loss)}, reads)
	} else {
		m.grads = m.backward(root.SubScope("backward"), train, seed(root.SubScope("loss_scale"), dlogits), regGrads)
	}
	if ls := m.lossScale; ls != nil {
		m.grads = ls.unscale(root.SubScope("loss_scale").SubScope("unscale"), m.grads)
	}
	if err := root.Err(); err != nil {
		return fmt.Errorf("build gradients: %w", err)
	}
	// The layers' state updates (moving statistics) run with the step.
	us := root.SubScope("state_update")
	for _, n := range net.Nodes {
		var updates map[int]tf.Output
		if towers != nil {
			updates = towers.updates[n]
		} else {
			updates = train.calls[n].updates
		}
		for i, val := range updates {
			v := m.params[n][i]
			m.stateUpdates = append(m.stateUpdates, op.AssignVariableOp(us.SubScope("AssignVariableOp"), v.handle, val))
		}
	}
	optScope := root.SubScope(m.optName)
	m.iteration = m.newVariable(optScope, m.optName+"/iteration", nil, tf.Int64)
	if err := m.buildOptimizer(optScope); err != nil {
		return err
	}
	m.epoch = m.newVariable(root, "train/epoch", nil, tf.Int64)
	m.runState = m.newVariable(root, "train/run_state", nil, tf.String)
	m.buildCheckpointOps(root.SubScope("checkpoint"))
	return root.Err()
}

// targets are the one-hot training targets of labels, label-smoothed as
// Keras's categorical_crossentropy does.
func (m *Model) targets(root *op.Scope, labels tf.Output) tf.Output {
	o := m.opts
	onehot := op.OneHot(root.SubScope("OneHot"), labels, op.Const(root.SubScope("Const"), int32(o.Classes)), op.Const(root.SubScope("Const"), float32(1)), op.Const(root.SubScope("Const"), float32(0)))
	targets := onehot
	if ls := o.LabelSmoothing; ls > 0 {
		// Keras: y_true * (1.0 - label_smoothing) + (label_smoothing / num_classes),
		// the Python floats rounded to float32, the division in float32.
		ss := root.SubScope("label_smoothing")
		targets = op.AddV2(ss.SubScope("AddV2"), op.Mul(ss.SubScope("Mul"), onehot, op.Const(ss.SubScope("keep"), float32(1-ls))),
			op.RealDiv(ss.SubScope("RealDiv"), op.Const(ss.SubScope("ls"), float32(ls)), op.Const(ss.SubScope("classes"), float32(o.Classes))))
	}
	return targets
}

// addPenalties adds the weight regularizers' penalties to loss, and
// returns their gradients by variable.
func (m *Model) addPenalties(s *op.Scope, loss tf.Output, training bool) (tf.Output, map[*Variable]tf.Output) {
	var terms []tf.Output
	grads := map[*Variable]tf.Output{}
	for _, v := range m.Weights {
		if v.param.Regularizer == nil {
			continue
		}
		w := v.read
		if training {
			w = v.trainRead
		}
		term, g := v.param.Regularizer.penalty(s.SubScope("penalty"), w)
		terms = append(terms, term)
		grads[v] = g
	}
	if len(terms) == 0 {
		return loss, grads
	}
	sum := terms[0]
	if len(terms) > 1 {
		sum = op.AddN(s.SubScope("AddN"), terms)
	}
	return op.AddV2(s.SubScope("AddV2"), loss, sum), grads
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
	if m.Net.FinalSoftmax() {
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

// initialize fills every layer variable from its initializer (drawn in
// Go from the seed, in variable order), and zeroes slots and counters.
func (m *Model) initialize() error {
	rng := rand.New(rand.NewPCG(uint64(m.opts.Seed), 0x676c6f726f74)) // "glorot"
	for _, v := range m.State {
		var t *tf.Tensor
		var err error
		switch v.DType {
		case tf.Int64:
			t, err = tf.NewTensor(int64(0))
		case tf.String:
			t, err = tf.NewTensor("")
		case tf.Float:
			if v == m.lrVar {
				t, err = tf.NewTensor(float32(m.opt.LearningRate()))
				break
			}
			if m.lossScale != nil && v == m.lossScale.scale {
				t, err = tf.NewTensor(float32(m.lossScale.Initial))
				break
			}
			fallthrough
		default:
			a := Array{Shape: v.Shape, Data: make([]float32, Shape(v.Shape).Size())}
			if v.param != nil {
				in, out := fans(v.Shape)
				initializers[v.param.Init].fill(rng, a.Data, in, out)
			}
			t, err = float32Tensor(a)
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
		if res[v.Name], err = ToArray(out[i]); err != nil {
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
	return TensorValue(out[0]).(int64), nil
}

func (m *Model) setCounter(v *Variable, n int64) error {
	t, err := tf.NewTensor(n)
	if err != nil {
		return err
	}
	_, err = m.sess.Run(map[tf.Output]*tf.Tensor{v.assignIn: t}, nil, []*tf.Operation{v.assign})
	return err
}

// SetRunState stores an opaque byte string in the model state
// (train/run_state), saved in and restored from every checkpoint: the
// pipeline keeps there what must survive a resume with the weights.
func (m *Model) SetRunState(b []byte) error {
	t, err := tf.NewTensor(string(b))
	if err != nil {
		return err
	}
	_, err = m.sess.Run(map[tf.Output]*tf.Tensor{m.runState.assignIn: t}, nil, []*tf.Operation{m.runState.assign})
	return err
}

// RunState returns what SetRunState stored (empty for a fresh model, or
// one restored from a checkpoint without it).
func (m *Model) RunState() ([]byte, error) {
	out, err := m.sess.Run(nil, []tf.Output{m.runState.read}, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", m.runState.Name, err)
	}
	return []byte(TensorValue(out[0]).(string)), nil
}

// LearningRate is the rate the optimizer's next update applies: the
// schedule's at the updates done (Keras's iterations, which a step loss
// scaling skipped does not advance), or the learning_rate variable's (which
// SetLearningRate may have changed). It is what Keras logs as
// learning_rate.
func (m *Model) LearningRate() (float64, error) {
	if m.lrVar == nil {
		it, err := m.Iterations()
		if err != nil {
			return 0, err
		}
		return Schedule(m.opt).Rate(it), nil
	}
	out, err := m.sess.Run(nil, []tf.Output{m.lrVar.read}, nil)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", m.lrVar.Name, err)
	}
	return float64(TensorValue(out[0]).(float32)), nil
}

// SetLearningRate sets a constant learning rate, as Keras's
// ReduceLROnPlateau does; a model trained on a schedule refuses it.
func (m *Model) SetLearningRate(v float64) error {
	if m.lrVar == nil {
		return fmt.Errorf("set learning rate: the optimizer follows a schedule")
	}
	t, err := tf.NewTensor(float32(v))
	if err != nil {
		return err
	}
	_, err = m.sess.Run(map[tf.Output]*tf.Tensor{m.lrVar.assignIn: t}, nil, []*tf.Operation{m.lrVar.assign})
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

// Preprocess is how the model turns uint8 images into its input.
func (o Options) Preprocess() Preprocess {
	return Preprocess{Normalize: o.Normalize, Mean: o.Mean, Std: o.Std}
}

// Options returns the options the model was compiled with.
func (m *Model) Options() Options { return m.opts }

// Optimizer returns the model's optimizer.
func (m *Model) Optimizer() Optimizer { return m.opt }
