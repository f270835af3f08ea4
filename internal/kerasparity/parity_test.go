// Package kerasparity holds the tests that hold the engine to Keras 3: the
// same architecture (rebuilt by Keras from the JSON Go writes), the same
// initial weights and batches, compared output by output.
package kerasparity

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/export"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/internal/enginetest"
	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
)

// Tolerance of the Go/Keras parity test: max |go − keras| ≤ parityTol ·
// max(1, max |keras|) per tensor. Both sides run the same TensorFlow 2.18
// kernels on float32; what differs is the order of reductions (fused
// softmax-cross-entropy vs Keras's graph, oneDNN blocking of the conv and
// matmul sums, RMSprop's ms += (g²−ms)(1−ρ) vs ρ·v + (1−ρ)·g², the fused
// batch normalisation vs tf.nn.moments + tf.nn.batch_normalization). Those
// reorderings change a float32 result by a few ulps of the largest summand,
// i.e. ~1e-7 relative per op, amplified by at most a few tens of ops
// between the input and any compared tensor: 1e-5 relative leaves 10–100×
// headroom, while any semantic slip (a missing /255, stride, epsilon under
// or over the root, bias-correction form, loss reduction, a biased for an
// unbiased variance: n/(n−1) = 1 + 1/2048 at batch 32 on 8×8 maps) moves
// results by 1e-4 or more.
const parityTol = 1e-5

// updateTol bounds UpdateDiff. A weight's update over 3 steps is a few
// lr-sized steps. Measured: ≤ 2.2e-5 of the largest update for RMSprop and
// ≤ 1.6e-4 for Adam and SGD, where a tiny gradient's ~1e-7-of-the-largest
// reordering error is not damped by a per-element normaliser (SGD) or is
// divided by a tiny √v+ε (Adam). A slip in an update law moves
// small-gradient elements' updates by far more: epsilon outside the root
// by ~0.8 of the largest update for |g| ~ 1e-6, 1−ρ for ρ or a missing bias
// correction by a factor of 3 or more.
const updateTol = 1e-3

// deepTol replaces parityTol and updateTol for gradients and weights in a
// deep BatchNormalization net (resnet20): there float32 rounding alone,
// accumulated backward through twenty normalisations (each dividing by a
// batch standard deviation), moves the first layers' gradients by up to
// ~5e-4 relative. Measured: Keras's own float32 gradients on resnet20 are
// that far from Keras's in float64 (stem kernel 5.7e-4, conv2d_6 1e-3), and
// Go's are within 1.3e-4 of Keras's float32 ones. The same rounding
// switches ReLUs whose input lies within it of zero once the weights have
// moved, so over 3 steps a weight's update differs by up to ~2e-2 of the
// largest (measured), held to deepUpdateTol; a slip in the update law
// (nesterov, momentum, learning rate) changes updates by 30% or more, and
// the law itself is held to updateTol by the shallower nets. Forward
// quantities before training (logits, loss, inference outputs) keep
// parityTol, and a wiring slip (an Add of the wrong inputs, a missing
// projection, a stride) moves those far beyond it.
const (
	deepTol       = 2e-3
	deepUpdateTol = 0.1
)

// Tolerances of the mixed_bfloat16 cases. bfloat16 keeps 8 significant
// bits, so one rounding moves a value by up to u = 2⁻⁸ ≈ 3.9e-3 of itself.
// Both sides run the same oneDNN bfloat16 kernels (float32 accumulation
// inside each op); they differ only where one rounds to bfloat16 and the
// other does not: Go's grappler fuses Conv2D+BiasAdd+Relu into one kernel
// with one rounding, Keras rounds after each op; Go's loss and softmax run
// in float32 on the logits, Keras's softmax in bfloat16 and its loss on the
// float32 cast of those probabilities (keras/src/losses/loss.py casts
// y_pred to the loss dtype, which hides the softmax from _get_logits in
// keras/src/backend/tensorflow/nn.py); Go sums a conv's bias gradient in
// float32 (TensorFlow's bfloat16 Sum accumulates in float32 and rounds
// once), Keras in bfloat16 (BiasAddGrad).
//
//   - Forward (logits, loss, inference output): one rounding, u. Measured
//     0 for the logits, ≤ 5e-4 for the probabilities and the loss.
//   - Gradients and weights after 3 steps: 4u ≈ 1.6e-2, a few roundings
//     carried back through the layers. Measured ≤ 3.2e-3 (7.3e-3 for the
//     RMSprop weights). Biases feeding a BatchNormalization are skipped:
//     their true gradient is zero and both sides return rounding noise.
//   - Updates over 3 steps, with SGD only: an SGD update is linear in the
//     gradients, so its error relative to the largest update is the
//     gradients' error relative to the largest gradient, which for a small
//     element is a few u of the largest summands: measured ≤ 0.16, held to
//     0.25. RMSprop divides each gradient by its own root mean square, so an
//     element whose gradient is within bfloat16 noise of zero takes a
//     full-size step of either sign (measured up to 0.99): its law is held
//     to Keras by the float32 cases.
//   - The inference output after 3 RMSprop steps: those full-size steps of
//     either sign move the shallow net's 4M dense weights by up to 7e-3
//     between the sides (within bf16Tol each), which moves the output
//     probabilities by up to 1.7e-2 (measured): held to 8u ≈ 3.1e-2.
//
// What a semantic slip moves, against these: a missing /255, a wrong
// stride or padding moves the logits by O(1); a wrong momentum, learning
// rate or nesterov flag moves SGD's updates by 30% or more. A whole graph
// in float32 where Keras computes in bfloat16 moves the logits by only a
// few u, so checkComputesInBFloat16 checks that separately (Go's float32
// logits must be measurably farther from Keras's than Go's bfloat16 ones);
// a single layer left in float32 moves them by about u, at the edge of
// bf16FwdTol, and is not reliably caught.
const (
	bf16FwdTol          = 1.0 / 256
	bf16Tol             = 4.0 / 256
	bf16UpdateTol       = 0.25
	bf16AfterRMSpropTol = 8.0 / 256
)

var lay = enginetest.Layer

// parityCase is one model and optimizer held to Keras.
type parityCase struct {
	name   string
	file   string         // a shipped config, or
	layers []config.Layer // layers on 32×32×3
	opt    config.Optimizer
	// fusedBN has Keras train BatchNormalization on TensorFlow's fused
	// kernel, as Go does (scripts/keras_parity.py, use_fused_batchnorm):
	// the two are the same function, held to each other by the cases
	// without it, but in a deep ReLU net their ~1e-7 rounding differences
	// switch units whose input lies within rounding of zero, which moves a
	// BatchNormalization's beta gradient (a sum over the batch) by ~1e-3.
	fusedBN bool
	// deep: gradients and weights are held to deepTol.
	deep bool
	// precision is the Keras dtype policy of both sides ("": float32);
	// mixed_bfloat16 cases are held to the bf16 tolerances.
	precision graph.Precision
	// labelSmoothing is the loss's label_smoothing.
	labelSmoothing float64
	// mean and std standardise the input per channel (data.mean/std).
	mean, std []float64
	// lossScale wraps the optimizer in Keras's LossScaleOptimizer.
	lossScale *graph.LossScale
	// steps is the number of training steps compared (0: 3).
	steps int
}

// zoo exercises every layer kind, activation and argument that the shipped
// presets do not: each new kind adds a line here or to a net below.
func zoo() []parityCase {
	acts := []config.Layer{
		lay("conv2d", "filters", 6, "kernel_size", 3, "strides", 2, "activation", "elu", "kernel_initializer", "glorot_normal"),
		lay("conv2d", "filters", 6, "kernel_size", 3, "padding", "same", "activation", "gelu", "bias_initializer", "ones"),
		lay("conv2d", "filters", 6, "kernel_size", 3, "padding", "same", "activation", "silu", "kernel_initializer", "he_uniform"),
		lay("conv2d", "filters", 6, "kernel_size", 3, "padding", "same", "activation", "leaky_relu", "use_bias", false),
		lay("average_pooling2d", "pool_size", 3, "strides", 2, "padding", "same"),
		lay("conv2d", "filters", 6, "kernel_size", 3, "activation", "tanh", "kernel_regularizer", map[string]any{"l1": 1e-3}),
		lay("conv2d", "filters", 6, "kernel_size", 1, "activation", "sigmoid", "bias_regularizer", map[string]any{"l1": 1e-3, "l2": 1e-3}),
		lay("flatten"),
		lay("dense", "units", 24, "activation", "softmax"),
		lay("batch_normalization", "momentum", 0.9, "epsilon", 0.01),
		lay("activation", "activation", "swish"),
		lay("dense", "units", 16, "use_bias", false, "kernel_regularizer", map[string]any{"l2": 1e-3}),
		lay("batch_normalization", "center", false),
		lay("activation", "activation", "linear"),
		lay("dense", "units", 10),
		lay("activation", "activation", "softmax"),
	}
	return []parityCase{
		{name: "merges", layers: enginetest.MergesNet(), opt: enginetest.Optimizer("sgd", "momentum", 0.9)},
		// airbench's pieces: a frozen whitening layer, BatchNormalization
		// without scale, rescaled logits, label smoothing, Nesterov SGD with
		// decoupled weight decay, and the EMA written back every 2 steps
		// (Keras's ema_overwrite_frequency; 3 steps cover one overwrite).
		{name: "whitened/sgd+ema_overwrite", layers: enginetest.WhitenedNet(), labelSmoothing: 0.2,
			mean: []float64{0.4914, 0.4822, 0.4465}, std: []float64{0.2470, 0.2435, 0.2616},
			opt: enginetest.Optimizer("sgd", "momentum", 0.85, "nesterov", true, "weight_decay", 0.005, "use_ema", true, "ema_momentum", 0.5, "ema_overwrite_frequency", 2,
				"learning_rate_multipliers", map[string]any{"*/beta": 64.0})},
		// SGD, whose update is linear in the gradient: RMSprop would scale
		// the ~1e-7 rounding differences of tiny gradients up to lr size.
		{name: "residual", layers: enginetest.SmallResNet(), opt: enginetest.Optimizer("sgd", "momentum", 0.9, "nesterov", true)},
		{name: "residual/fused", layers: enginetest.SmallResNet(), opt: enginetest.Optimizer("rmsprop"), fusedBN: true},
		{name: "activations", layers: acts, opt: enginetest.Optimizer("rmsprop"),
			mean: []float64{0.4914, 0.4822, 0.4465}, std: []float64{0.2470, 0.2435, 0.2616}},
	}
}

// bf16Cases run both sides under Keras's mixed_bfloat16 policy.
func bf16Cases() []parityCase {
	bf := graph.MixedBFloat16
	return []parityCase{
		{name: "bf16/shallow/rmsprop", file: "config.yaml", opt: enginetest.Optimizer("rmsprop"), precision: bf},
		{name: "bf16/shallow/sgd", file: "config.yaml", opt: enginetest.Optimizer("sgd", "momentum", 0.9), precision: bf},
		{name: "bf16/deep/rmsprop", file: "configs/deep.yaml", opt: enginetest.Optimizer("rmsprop"), precision: bf},
		{name: "bf16/deep/sgd", file: "configs/deep.yaml", opt: enginetest.Optimizer("sgd", "momentum", 0.9, "nesterov", true), precision: bf},
		{name: "bf16/residual/sgd", layers: enginetest.SmallResNet(), opt: enginetest.Optimizer("sgd", "momentum", 0.9), fusedBN: true, precision: bf},
	}
}

// TestKerasParity feeds the same architecture, initial weights and batches
// to Keras 3 (scripts/keras_parity.py in the setup venv) and to the Go
// graph, and compares logits, loss, every gradient, every variable (moving
// statistics included) after 3 steps, and the inference-mode outputs
// before and after.
func TestKerasParity(t *testing.T) {
	if testing.Short() {
		t.Skip("Keras parity needs the Python reference; skipped in -short")
	}
	testenv.Python(t) // skips, or fails under make test, without the reference
	cases := []parityCase{
		{name: "shallow/rmsprop", file: "config.yaml", opt: enginetest.Optimizer("rmsprop")},
		{name: "shallow/adam", file: "config.yaml", opt: enginetest.Optimizer("adam")},
		{name: "shallow/adamw+ema", file: "config.yaml", opt: enginetest.Optimizer("adamw", "weight_decay", 1.0, "use_ema", true, "ema_momentum", 0.9)},
		{name: "deep/rmsprop+label_smoothing", file: "configs/deep.yaml", opt: enginetest.Optimizer("rmsprop"), labelSmoothing: 0.2},
		{name: "deep/sgd+weight_decay", file: "configs/deep.yaml", opt: enginetest.Optimizer("sgd", "momentum", 0.9, "nesterov", true, "weight_decay", 0.1)},
		{name: "deep/rmsprop", file: "configs/deep.yaml", opt: enginetest.Optimizer("rmsprop")},
		{name: "deep/adam", file: "configs/deep.yaml", opt: enginetest.Optimizer("adam")},
		{name: "deep/sgd", file: "configs/deep.yaml", opt: enginetest.Optimizer("sgd", "momentum", 0.9, "nesterov", true)},
		// SGD: a conv bias that feeds a BatchNormalization has a true
		// gradient of zero, so both sides compute rounding noise there,
		// which Adam would scale to lr-sized steps of arbitrary sign;
		// Adam's law is held to Keras on the notebook nets above.
		// Keras's LossScaleOptimizer: float32 overflows as float16 does,
		// only at larger scales, so inputs ×10⁴ and a scale of 2¹¹⁷
		// overflow the first gradients (from 2¹¹⁶ at these weights): the
		// run skips steps and halves the scale, applies, and grows it
		// every second applied step, each as Keras does. The learning
		// rate halves every update: Keras evaluates the schedule at the
		// optimizer's iterations, which skipped steps do not advance.
		{name: "loss_scale/rmsprop", layers: append([]config.Layer{lay("rescaling", "scale", 1e4)}, enginetest.SmallNet()...),
			opt: enginetest.Optimizer("rmsprop", "learning_rate", map[string]any{
				"schedule": "exponential_decay", "initial_learning_rate": 1e-3, "decay_steps": 1, "decay_rate": 0.5}),
			lossScale: &graph.LossScale{Initial: 0x1p117, GrowthSteps: 2}, steps: 6},
		{name: "resnet20/sgd", file: "configs/resnet20.yaml", opt: enginetest.Optimizer("sgd", "momentum", 0.9, "nesterov", true), fusedBN: true, deep: true},
	}
	cases = append(cases, zoo()...)
	cases = append(cases, bf16Cases()...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runParity(t, tc) })
	}
}

func runParity(t *testing.T, tc parityCase) {
	const batch = 32
	steps := 3
	if tc.steps > 0 {
		steps = tc.steps
	}
	layers := tc.layers
	if tc.file != "" {
		cfg, err := config.Load(filepath.Join(testenv.RepoRoot(t), tc.file), nil)
		if err != nil {
			t.Fatal(err)
		}
		layers = cfg.Model.Layers
	}
	// Dropout off on both sides: masks come from different RNGs.
	layers = slices.Clone(layers)
	for i, l := range layers {
		if l.Type == "dropout" {
			layers[i] = lay("dropout", "rate", 0.0)
		}
	}
	net, err := graph.NewNet(config.Model{Layers: layers}, []int{32, 32, 3})
	if err != nil {
		t.Fatal(err)
	}
	opt, err := graph.NewOptimizer(tc.opt)
	if err != nil {
		t.Fatal(err)
	}
	m, err := graph.Compile(net, graph.Options{Seed: 11, Normalize: true, Classes: 10, Optimizer: opt, LabelSmoothing: tc.labelSmoothing,
		Mean: tc.mean, Std: tc.std, Precision: tc.precision, LossScale: tc.lossScale})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	dir := t.TempDir()
	if keep := os.Getenv("PARITY_KEEP"); keep != "" {
		dir = filepath.Join(keep, strings.ReplaceAll(tc.name, "/", "_"))
		os.MkdirAll(dir, 0o755)
	}
	arch, err := export.KerasJSONPolicy(net, tc.precision)
	if err != nil {
		t.Fatal(err)
	}
	enginetest.WriteRaw(t, filepath.Join(dir, "model.json"), arch)
	var specLayers []map[string]any
	for i, n := range net.Nodes {
		keys := []string{}
		for k := range layers[i].Args {
			keys = append(keys, k)
		}
		if layers[i].Trainable != nil {
			keys = append(keys, "trainable")
		}
		specLayers = append(specLayers, map[string]any{"name": n.Name, "class": n.Kind.Class, "user_keys": keys})
	}
	optCfg := opt.KerasConfig()
	delete(optCfg, "amsgrad")
	var lossScale map[string]any
	if l := tc.lossScale; l != nil {
		lossScale = map[string]any{"initial_scale": l.Initial, "dynamic_growth_steps": l.GrowthSteps}
	}
	spec, _ := json.Marshal(map[string]any{
		"loss_scale": lossScale,
		"classes":    10, "batches": steps, "layers": specLayers, "fused_batchnorm": tc.fusedBN, "label_smoothing": tc.labelSmoothing, "mean": tc.mean, "std": tc.std,
		"precision": tc.precision.OrDefault(),
		"optimizer": map[string]any{"class": graph.OptimizerClass(opt), "config": optCfg, "lr_multipliers": tc.opt.Args["learning_rate_multipliers"]},
	})
	enginetest.WriteRaw(t, filepath.Join(dir, "spec.json"), spec)
	images, labels := enginetest.ParityBatches(batch * steps)
	// A data-derived kernel (patch_whitening) is computed before Keras
	// gets the initial weights.
	if err := m.InitFromData(images, batch*steps); err != nil {
		t.Fatal(err)
	}
	w0, err := m.GetState()
	if err != nil {
		t.Fatal(err)
	}
	layerVars := append(slices.Clone(m.Weights), m.NonTrainable...)
	for _, v := range layerVars {
		p := filepath.Join(dir, "w", v.Name+".f32")
		os.MkdirAll(filepath.Dir(p), 0o755)
		enginetest.WriteRaw(t, p, enginetest.F32Bytes(w0[v.Name].Data))
	}
	for k := range steps {
		enginetest.WriteRaw(t, filepath.Join(dir, fmt.Sprintf("x_%d.u8", k)), images[k*batch*3072:(k+1)*batch*3072])
		enginetest.WriteRaw(t, filepath.Join(dir, fmt.Sprintf("y_%d.u8", k)), labels[k*batch:(k+1)*batch])
	}
	testenv.RunPython(t, "import runpy,sys; sys.argv=sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
		filepath.Join(testenv.RepoRoot(t), "scripts", "keras_parity.py"), dir)

	out := filepath.Join(dir, "out")
	x0, y0 := images[:batch*3072], labels[:batch]
	logits, loss, grads, err := m.Probe(x0, y0, batch, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	probs0, err := m.PredictBatch(x0, batch)
	if err != nil {
		t.Fatal(err)
	}
	var kl struct {
		Loss0      float64      `json:"loss0"`
		StepLosses []float64    `json:"step_losses"`
		LossScale  [][3]float64 `json:"loss_scale"`
	}
	b, _ := os.ReadFile(filepath.Join(out, "loss.json"))
	if err := json.Unmarshal(b, &kl); err != nil {
		t.Fatal(err)
	}
	// compare holds got to Keras's result in file (under out); diff is
	// RelDiff or an UpdateDiff.
	compare := func(what, file string, got []float32, diff func(got, want []float32) float64, tol float64) {
		t.Helper()
		want := enginetest.ReadF32(t, filepath.Join(out, file), len(got))
		if d := diff(got, want); d > tol || math.IsNaN(d) {
			t.Errorf("%s: relative max diff %.3g > %g", what, d, tol)
		} else {
			t.Logf("%s: %.3g", what, d)
		}
	}
	gradTol, updTol, fwdTol := parityTol, updateTol, parityTol
	if tc.deep {
		gradTol, updTol = deepTol, deepUpdateTol
	}
	if tc.precision == graph.MixedBFloat16 {
		fwdTol, gradTol, updTol = bf16FwdTol, bf16Tol, bf16UpdateTol
	}
	check := func(what, file string, got []float32) {
		t.Helper()
		compare(what, file, got, enginetest.RelDiff, fwdTol)
	}
	check("logits", "logits.f32", logits.Data)
	check("inference output", "probs.f32", probs0)
	if d := math.Abs(loss-kl.Loss0) / math.Max(1, math.Abs(kl.Loss0)); d > fwdTol {
		t.Errorf("loss: go %.8f keras %.8f", loss, kl.Loss0)
	}
	zeroGradient := biasesBeforeBatchNorm(m)
	bf16 := tc.precision == graph.MixedBFloat16
	var f32Grads []graph.Array
	if bf16 {
		f32Grads = checkComputesInBFloat16(t, net, opt, x0, y0, logits.Data, enginetest.ReadF32(t, filepath.Join(out, "logits.f32"), len(logits.Data)))
	}
	for i, v := range m.Weights {
		switch {
		case tc.lossScale != nil && !finite(grads[i].Data):
			// The initial scale overflows this gradient (Keras's probe
			// takes the unscaled loss's): the steps below check what
			// follows from it.
		case bf16 && zeroGradient[v]:
			// Its true gradient is zero: both sides return rounding noise.
		case bf16 && strings.HasSuffix(v.Name, "/bias"):
			// Keras sums a bias gradient in bfloat16 (BiasAddGrad on
			// bfloat16 dy), thousands of terms with cancellation: on the
			// residual net's 1×1 projection that is 0.003 for a float32
			// gradient of 0.032. Go's conv sums dy in float32 (inside
			// the bfloat16 Sum kernel; a dense layer's BiasAddGrad gets dy
			// cast to float32 by the rewrite), so its bias gradients are
			// held to the float32 graph's (itself held to Keras's float32 by
			// the float32 cases), and the weights after training to Keras's.
			compare("grad "+v.Name+" (vs Go float32)", filepath.Join("g", v.Name+".f32"), grads[i].Data, func(got, _ []float32) float64 {
				return enginetest.RelDiff(got, f32Grads[i].Data)
			}, gradTol)
		default:
			compare("grad "+v.Name, filepath.Join("g", v.Name+".f32"), grads[i].Data, enginetest.RelDiff, gradTol)
		}
	}
	for k := range steps {
		r, err := m.TrainStep(images[k*batch*3072:(k+1)*batch*3072], labels[k*batch:(k+1)*batch], batch, 0, int64(k))
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 && math.Abs(r.Loss-kl.StepLosses[0]) > fwdTol*math.Max(1, r.Loss) {
			t.Errorf("step 1 loss: go %.8f keras %.8f", r.Loss, kl.StepLosses[0])
		}
		if tc.lossScale != nil {
			// The loss scale's law: skipped or applied, the same scale,
			// counter and iterations after each step.
			s, c, _, err := m.LossScale()
			if err != nil {
				t.Fatal(err)
			}
			it, err := m.Iterations()
			if err != nil {
				t.Fatal(err)
			}
			got := [3]float64{float64(s), float64(c), float64(it)}
			if k >= len(kl.LossScale) || got != kl.LossScale[k] {
				t.Errorf("after step %d: loss scale, step counter, iterations %v; Keras %v", k+1, got, kl.LossScale)
			} else {
				t.Logf("after step %d: loss scale 2^%.0f, step counter %.0f, iterations %.0f (as Keras)", k+1, math.Log2(got[0]), got[1], got[2])
			}
		}
	}
	w3, err := m.GetState()
	if err != nil {
		t.Fatal(err)
	}
	moved := 0.0
	for _, v := range layerVars {
		file := filepath.Join("after", v.Name+".f32")
		want := enginetest.ReadF32(t, filepath.Join(out, file), len(w3[v.Name].Data))
		compare(fmt.Sprintf("%s after %d steps", v.Name, steps), file, w3[v.Name].Data, enginetest.RelDiff, gradTol)
		if zeroGradient[v] {
			// Its true gradient is zero: both sides step by rounding noise.
			continue
		}
		if !strings.Contains(v.Name, "moving_") {
			moved = math.Max(moved, enginetest.MaxAbsDiff(w0[v.Name].Data, want))
		}
		if bf16 && tc.opt.Name != "sgd" {
			continue // see bf16UpdateTol
		}
		if enginetest.MaxAbsDiff(w0[v.Name].Data, want) == 0 {
			// Frozen in Keras (trainable: false): Go's must not move either;
			// the check above compared it exactly.
			continue
		}
		// The weights hardly move in 3 steps (lr 1e-3), so the check above
		// is near-absolute; the update law (and the moving statistics' law)
		// is checked on the updates themselves, relative to the largest one.
		w0v := w0[v.Name].Data
		compare(fmt.Sprintf("%s update over %d steps", v.Name, steps), file, w3[v.Name].Data,
			func(got, want []float32) float64 { return enginetest.UpdateDiff(w0v, got, want) }, updTol)
	}
	if opt.KerasConfig()["use_ema"] == true {
		for _, v := range m.Weights {
			avg := graph.OptimizerName(opt) + "/" + strings.ReplaceAll(v.Name, "/", "_") + "_average"
			check(v.Name+" moving average", filepath.Join("ema", v.Name+".f32"), w3[avg].Data)
		}
	}
	if moved < 1e-4 {
		t.Fatalf("Keras weights moved only %g in %d steps: comparison is vacuous", moved, steps)
	}
	probs3, err := m.PredictBatch(x0, batch)
	if err != nil {
		t.Fatal(err)
	}
	afterTol := gradTol
	if bf16 && tc.opt.Name != "sgd" {
		afterTol = bf16AfterRMSpropTol
	}
	compare("inference output after training", "probs_after.f32", probs3, enginetest.RelDiff, afterTol)
}

// checkComputesInBFloat16 makes the mixed_bfloat16 comparison meaningful:
// the same net compiled in float32 must give logits measurably farther from
// Keras's bfloat16 ones than the bfloat16 graph's, or the test could not
// tell a float32 graph from a bfloat16 one.
// It returns the float32 graph's gradients.
func checkComputesInBFloat16(t *testing.T, net *graph.Net, opt graph.Optimizer, x, y []byte, bf16Logits, kerasLogits []float32) []graph.Array {
	t.Helper()
	f32, err := graph.Compile(net, graph.Options{Seed: 11, Normalize: true, Classes: 10, Optimizer: opt})
	if err != nil {
		t.Fatal(err)
	}
	defer f32.Close()
	logits, _, grads, err := f32.Probe(x, y, len(y), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	dF32, dBF16 := enginetest.RelDiff(logits.Data, kerasLogits), enginetest.RelDiff(bf16Logits, kerasLogits)
	t.Logf("logits vs Keras mixed_bfloat16: Go float32 %.3g, Go mixed_bfloat16 %.3g", dF32, dBF16)
	if dF32 < 1e-4 || dF32 <= 4*dBF16 {
		t.Errorf("Go's float32 logits are %.3g from Keras's bfloat16 ones, its bfloat16 logits %.3g: the comparison does not resolve the precision", dF32, dBF16)
	}
	return grads
}

// biasesBeforeBatchNorm are the biases of layers whose output only feeds
// BatchNormalization, without an activation between: in training the
// normalisation subtracts the batch mean, so the bias has no effect on the
// loss and its true gradient is zero.
func biasesBeforeBatchNorm(m *graph.Model) map[*graph.Variable]bool {
	consumers := map[*graph.Node][]*graph.Node{}
	for _, n := range m.Net.Nodes {
		for _, in := range n.Inputs {
			consumers[in] = append(consumers[in], n)
		}
	}
	out := map[*graph.Variable]bool{}
	for _, n := range m.Net.Nodes {
		if a := n.Activation(); a != "" && a != "linear" || len(consumers[n]) == 0 {
			continue
		}
		onlyBN := true
		for _, c := range consumers[n] {
			onlyBN = onlyBN && c.Kind.Type == "batch_normalization"
		}
		if !onlyBN {
			continue
		}
		for _, v := range m.Weights {
			if v.Name == n.Name+"/bias" {
				out[v] = true
			}
		}
	}
	return out
}

func finite(xs []float32) bool {
	for _, x := range xs {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}
