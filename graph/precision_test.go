package graph

import (
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	tf "github.com/wamuir/graft/tensorflow"
	configpb "github.com/wamuir/graft/tensorflow/core/protobuf/for_core_protos_go_proto"
	"github.com/wamuir/graft/tensorflow/op"
	"google.golang.org/protobuf/proto"

	"github.com/cifar-pipeline/cifar-pipeline/config"
)

// smallConvNet is a quick net with every op kind the shipped presets use
// in the bfloat16 rewrite: conv, bias, ReLU, pooling, dense, softmax.
func smallConvNet() []config.Layer {
	return []config.Layer{
		lay("conv2d", "filters", 8, "kernel_size", 3, "padding", "same", "activation", "relu"),
		lay("max_pooling2d", "pool_size", 2),
		lay("dropout", "rate", 0.25),
		lay("flatten"),
		lay("dense", "units", 32, "activation", "relu"),
		lay("dense", "units", 10, "activation", "softmax"),
	}
}

func TestCheckPrecision(t *testing.T) {
	for _, tc := range []struct {
		in   string
		gpu  bool
		want Precision
		err  string
	}{
		{in: "", want: Float32},
		{in: "float32", want: Float32},
		{in: "mixed_bfloat16", want: MixedBFloat16},
		{in: "mixed_float16", err: "mixed_float16 needs a GPU"},
		{in: "mixed_float16", gpu: true, want: MixedFloat16},
		{in: "", gpu: true, want: Float32},
		{in: "float32", gpu: true, want: Float32},
		// Its rewrite is oneDNN's: on a GPU the graph would stay float32.
		{in: "mixed_bfloat16", gpu: true, err: "use mixed_float16 on a GPU, or runtime.device: cpu"},
		{in: "bfloat16", err: `"bfloat16" is not one of float32, mixed_bfloat16, mixed_float16`},
		{in: "mixed_bfloat17", err: "did you mean mixed_bfloat16?"},
		{in: "FLOAT32", err: "is not one of"},
		{in: "float32 ", err: "is not one of"},
		{in: "\x00", err: "is not one of"},
	} {
		got, err := CheckPrecision(tc.in, tc.gpu)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("CheckPrecision(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			continue
		}
		var ke *config.KeyError
		switch {
		case err == nil:
			t.Errorf("CheckPrecision(%q, gpu %v): no error, want %q", tc.in, tc.gpu, tc.err)
		case !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "runtime.precision: ") || strings.Contains(err.Error(), "\n"):
			t.Errorf("CheckPrecision(%q, gpu %v): %q; want one line naming runtime.precision with %q", tc.in, tc.gpu, err, tc.err)
		case !errors.As(err, &ke):
			t.Errorf("CheckPrecision(%q): %T is not a config.KeyError", tc.in, err)
		}
	}
}

// Compile refuses mixed_float16 before building anything when its session
// sees no GPU (here: none, or hidden by the session's device placement);
// an unknown name too.
func TestCompileRefusesPrecision(t *testing.T) {
	hideGPUs := func(cp *configpb.ConfigProto) { cp.DeviceCount = map[string]int32{"GPU": 0} }
	if gpu, err := onGPU(Options{Session: hideGPUs}); err != nil || gpu {
		t.Fatalf("a session with device_count GPU 0 sees a GPU: %v %v", gpu, err)
	}
	for p, want := range map[Precision]string{MixedFloat16: "needs a GPU", "float64": "is not one of"} {
		m, err := Compile(newNet(t, smallConvNet()), Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: optimizer(t, "rmsprop"), Precision: p, Session: hideGPUs})
		if err == nil {
			m.Close()
			t.Errorf("precision %s: compiled, want an error", p)
		} else if !strings.Contains(err.Error(), want) {
			t.Errorf("precision %s: %v, want %q", p, err, want)
		}
	}
}

// The float32 default must stay the graph and session it was before
// precision existed: no rewrite configured; mixed_bfloat16 turns on
// exactly the oneDNN bfloat16 rewrite, mixed_float16 the CUDA float16 one.
func TestPrecisionSessionConfig(t *testing.T) {
	decode := func(o Options) *configpb.ConfigProto {
		so, err := sessionOptions(o)
		if err != nil {
			t.Fatal(err)
		}
		cp := &configpb.ConfigProto{}
		if err := proto.Unmarshal(so.Config, cp); err != nil {
			t.Fatal(err)
		}
		return cp
	}
	if ro := decode(Options{}).GraphOptions.RewriteOptions; ro != nil {
		t.Errorf("float32 session has rewrite options %v", ro)
	}
	if ro := decode(Options{Precision: Float32}).GraphOptions.RewriteOptions; ro != nil {
		t.Errorf("float32 session has rewrite options %v", ro)
	}
	ro := decode(Options{Precision: MixedBFloat16}).GraphOptions.RewriteOptions
	if ro == nil || ro.AutoMixedPrecisionOnednnBfloat16 != configpb.RewriterConfig_ON || ro.AutoMixedPrecision != configpb.RewriterConfig_DEFAULT {
		t.Errorf("mixed_bfloat16 session: rewrite options %v, want auto_mixed_precision_onednn_bfloat16 ON", ro)
	}
	ro = decode(Options{Precision: MixedFloat16}).GraphOptions.RewriteOptions
	if ro == nil || ro.AutoMixedPrecision != configpb.RewriterConfig_ON || ro.AutoMixedPrecisionOnednnBfloat16 != configpb.RewriterConfig_DEFAULT || ro.AutoMixedPrecisionCpu != configpb.RewriterConfig_DEFAULT {
		t.Errorf("mixed_float16 session: rewrite options %v, want auto_mixed_precision (CUDA float16) ON alone", ro)
	}
}

// TestChannelSumAccumulatesInFloat32 holds Call.ChannelSum's premise: in a
// mixed_bfloat16 session the rewrite runs the Sum after a conv in bfloat16
// and its kernel accumulates in float32. 131,072 inputs of 1+2⁻¹⁰ (1 in
// bfloat16) sum to exactly 2¹⁷ that way; float32 throughout gives 131,200,
// a bfloat16 accumulator stops at 256.
func TestChannelSumAccumulatesInFloat32(t *testing.T) {
	s := op.NewScope()
	x := op.Placeholder(s.SubScope("x"), tf.Float, op.PlaceholderShape(tf.MakeShape(128, 32, 32, 1)))
	y := op.Conv2D(s.SubScope("conv"), x, op.Const(s.SubScope("kernel"), [][][][]float32{{{{1}}}}), []int64{1, 1, 1, 1}, "VALID")
	sum := op.Sum(s.SubScope("sum"), y, op.Const(s.SubScope("axes"), []int32{0, 1, 2}))
	g, err := s.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    Precision
		want float32
	}{{Float32, 131072 * (1 + 1.0/1024)}, {MixedBFloat16, 131072}} {
		so, err := sessionOptions(Options{Precision: tc.p})
		if err != nil {
			t.Fatal(err)
		}
		sess, err := tf.NewSession(g, so)
		if err != nil {
			t.Fatal(err)
		}
		a := Array{Shape: []int{128, 32, 32, 1}, Data: make([]float32, 128*32*32)}
		for i := range a.Data {
			a.Data[i] = 1 + 1.0/1024
		}
		in, err := float32Tensor(a)
		if err != nil {
			t.Fatal(err)
		}
		out, err := sess.Run(map[tf.Output]*tf.Tensor{x: in}, []tf.Output{sum}, nil)
		sess.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := TensorValue(out[0]).([]float32)[0]; got != tc.want {
			t.Errorf("%s: sum of 131072 × (1+2⁻¹⁰) = %v, want %v", tc.p, got, tc.want)
		}
	}
}

// A checkpoint is float32 whatever the precision: one written by a
// mixed_bfloat16 model restores bit for bit into a float32 one and the
// reverse, optimiser slots and counters included, and training goes on.
func TestPrecisionCheckpointPortable(t *testing.T) {
	images, labels := tinyData(96, 10, 3)
	for _, tc := range []struct{ from, to Precision }{{MixedBFloat16, Float32}, {Float32, MixedBFloat16}} {
		t.Run(string(tc.from)+"->"+string(tc.to), func(t *testing.T) {
			opts := func(p Precision, seed int64) Options {
				return Options{Seed: seed, Normalize: true, Classes: 10, Optimizer: optimizer(t, "rmsprop"), Precision: p}
			}
			src := compileNet(t, smallConvNet(), opts(tc.from, 1))
			for _, v := range src.State {
				if v.DType != tf.Float && v.DType != tf.Int64 && v.DType != tf.String {
					t.Fatalf("%s model: variable %s is %v, want float32", tc.from, v.Name, v.DType)
				}
			}
			for k := range 3 {
				if _, err := src.TrainStep(images[k*32*3072:(k+1)*32*3072], labels[k*32:(k+1)*32], 32, 1, int64(k)); err != nil {
					t.Fatal(err)
				}
			}
			prefix := filepath.Join(t.TempDir(), "ckpt")
			if err := src.Save(prefix); err != nil {
				t.Fatal(err)
			}
			dst := compileNet(t, smallConvNet(), opts(tc.to, 2)) // another seed: restore must overwrite
			if err := dst.Restore(prefix); err != nil {
				t.Fatal(err)
			}
			want, err := src.GetState()
			if err != nil {
				t.Fatal(err)
			}
			got, err := dst.GetState()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d float32 variables restored, want %d", len(got), len(want))
			}
			for name, w := range want {
				if d := maxAbsDiff(got[name].Data, w.Data); d != 0 {
					t.Errorf("%s: restored with max abs diff %g, want bit-identical", name, d)
				}
			}
			if it, err := dst.Iterations(); err != nil || it != 3 {
				t.Errorf("iterations after restore: %d, %v; want 3", it, err)
			}
			// Both evaluate the same weights; they differ only by bfloat16
			// rounding (one rounding of the probabilities: 2⁻⁸ relative).
			a, err := src.TestStep(images[:64*3072], labels[:64], 64)
			if err != nil {
				t.Fatal(err)
			}
			b, err := dst.TestStep(images[:64*3072], labels[:64], 64)
			if err != nil {
				t.Fatal(err)
			}
			if d := math.Abs(a.Loss - b.Loss); d > a.Loss/64 || d == 0 {
				t.Errorf("eval loss %s %.6f vs %s %.6f: want within 1/64 and not equal (the precisions differ)", tc.from, a.Loss, tc.to, b.Loss)
			}
			if _, err := dst.TrainStep(images[:32*3072], labels[:32], 32, 1, 3); err != nil {
				t.Fatalf("training after restore: %v", err)
			}
		})
	}
}

// mixed_bfloat16 trains as float32 does: from the same weights, on a
// learnable set, the loss falls as far, within bfloat16's rounding.
func TestMixedBFloat16Learns(t *testing.T) {
	images, labels := tinyData(256, 10, 1)
	final := map[Precision]StepResult{}
	for _, p := range []Precision{Float32, MixedBFloat16} {
		m := compileNet(t, smallConvNet(), Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: optimizer(t, "adam"), Precision: p})
		for epoch := range 4 {
			for k := range 8 {
				if _, err := m.TrainStep(images[k*32*3072:(k+1)*32*3072], labels[k*32:(k+1)*32], 32, 1, int64(epoch*8+k)); err != nil {
					t.Fatal(err)
				}
			}
		}
		r, err := m.TestStep(images, labels, 256)
		if err != nil {
			t.Fatal(err)
		}
		final[p] = r
		t.Logf("%s: loss %.4f, %d/256 correct", p, r.Loss, r.Correct)
	}
	f, b := final[Float32], final[MixedBFloat16]
	if f.Loss > 2 || f.Correct < 200 {
		t.Fatalf("float32 did not learn (loss %.4f, %d/256): the comparison is vacuous", f.Loss, f.Correct)
	}
	if math.Abs(b.Loss-f.Loss) > 0.05*f.Loss || b.Correct < f.Correct-8 {
		t.Errorf("mixed_bfloat16 loss %.4f (%d/256) vs float32 %.4f (%d/256): want within 5%% and 8 images", b.Loss, b.Correct, f.Loss, f.Correct)
	}
}
