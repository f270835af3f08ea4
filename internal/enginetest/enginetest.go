// Package enginetest gives the engine's tests (graph, train, export and the
// Keras parity tests) their shared inputs and comparisons: small learnable
// image sets, config layers written tersely, raw float32 files for the
// Python side, and the relative differences the tolerances are argued in.
package enginetest

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"unsafe"

	"github.com/cifar-pipeline/cifar-pipeline/config"
)

// Layer is a config layer of kind typ with arguments given as key, value
// pairs: Layer("conv2d", "filters", 8, "kernel_size", 3); "name" and
// "inputs" ([]string) set the layer's name and inputs.
func Layer(typ string, kv ...any) config.Layer {
	l := config.Layer{Type: typ, Args: map[string]any{}}
	for i := 0; i+1 < len(kv); i += 2 {
		switch k := kv[i].(string); k {
		case "name":
			l.Name = kv[i+1].(string)
		case "inputs":
			l.Inputs = kv[i+1].([]string)
		default:
			l.Args[k] = kv[i+1]
		}
	}
	return l
}

// Optimizer is a config optimizer with arguments as key, value pairs.
func Optimizer(name string, kv ...any) config.Optimizer {
	c := config.Optimizer{Name: name, Args: map[string]any{}}
	for i := 0; i+1 < len(kv); i += 2 {
		c.Args[kv[i].(string)] = kv[i+1]
	}
	return c
}

// TinyData is a fixed, learnable 32×32×3 dataset: each class lights a
// different 4×4 patch of a different channel on a noisy background.
func TinyData(n, classes int, seed uint64) (images, labels []uint8) {
	rng := rand.New(rand.NewPCG(seed, 1))
	images = make([]uint8, n*32*32*3)
	labels = make([]uint8, n)
	for i := range n {
		c := i % classes
		labels[i] = uint8(c)
		img := images[i*3072 : (i+1)*3072]
		for p := range img {
			img[p] = uint8(rng.IntN(80))
		}
		y0, x0 := (c/4)*8, (c%4)*8
		for y := y0; y < y0+4; y++ {
			for x := x0; x < x0+4; x++ {
				img[(y*32+x)*3+c%3] = 230
			}
		}
	}
	return images, labels
}

// ParityBatches returns n images for parity tests: natural-like noise with
// no flat regions, since max-pooling ties route gradients by
// implementation-defined tie-breaking, which differs between kernels.
func ParityBatches(n int) (images, labels []uint8) {
	images, labels = TinyData(n, 10, 5)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range images {
		images[i] = uint8(min(255, int(images[i])/2+rng.IntN(128)))
	}
	return images, labels
}

// MaxAbsDiff is max |a−b|.
func MaxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// RelDiff is max |a−b| / max(1, max |b|).
func RelDiff(a, b []float32) float64 {
	scale := 1.0
	for _, v := range b {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	return MaxAbsDiff(a, b) / scale
}

// UpdateDiff is max |(got−w0) − (want−w0)| / max |want−w0|: how far a
// weight's update differs from the reference update, relative to the
// largest reference update.
func UpdateDiff(w0, got, want []float32) float64 {
	scale, diff := 0.0, 0.0
	for i := range w0 {
		scale = math.Max(scale, math.Abs(float64(want[i])-float64(w0[i])))
		diff = math.Max(diff, math.Abs(float64(got[i])-float64(want[i])))
	}
	return diff / scale
}

// F32Bytes views float32s as their little-endian bytes.
func F32Bytes(a []float32) []byte {
	if len(a) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&a[0])), 4*len(a))
}

// WriteRaw writes b to path or fails the test.
func WriteRaw(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ReadF32 reads n raw little-endian float32s from path.
func ReadF32(t testing.TB, path string, n int) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4*n {
		t.Fatalf("%s: %d bytes, want %d", path, len(b), 4*n)
	}
	out := make([]float32, n)
	copy(F32Bytes(out), b)
	return out
}

// SmallNet is a small notebook-style net: conv, ReLU, pooling, dropout,
// dense, softmax.
func SmallNet() []config.Layer {
	return []config.Layer{
		Layer("conv2d", "filters", 8, "kernel_size", 3, "padding", "same"),
		Layer("activation", "activation", "relu"),
		Layer("max_pooling2d", "pool_size", 2),
		Layer("dropout", "rate", 0.25),
		Layer("flatten"),
		Layer("dense", "units", 10),
		Layer("activation", "activation", "softmax"),
	}
}

// SmallResNet is a small residual net: BatchNormalization, a skip
// connection with a 1×1 projection (Add), average and global pooling.
func SmallResNet() []config.Layer {
	return []config.Layer{
		Layer("conv2d", "filters", 8, "kernel_size", 3, "padding", "same", "kernel_initializer", "he_normal", "name", "stem"),
		Layer("batch_normalization"),
		Layer("activation", "activation", "relu", "name", "stem_relu"),
		Layer("conv2d", "filters", 12, "kernel_size", 3, "strides", 2, "padding", "same", "kernel_initializer", "he_normal"),
		Layer("batch_normalization"),
		Layer("activation", "activation", "relu"),
		Layer("conv2d", "filters", 12, "kernel_size", 3, "padding", "same", "use_bias", false),
		Layer("batch_normalization", "name", "bn_b"),
		Layer("conv2d", "filters", 12, "kernel_size", 1, "strides", 2, "padding", "same", "inputs", []string{"stem_relu"}, "name", "proj",
			"kernel_regularizer", map[string]any{"l2": 1e-3}),
		Layer("add", "inputs", []string{"bn_b", "proj"}),
		Layer("activation", "activation", "relu"),
		Layer("average_pooling2d", "pool_size", 2),
		Layer("global_average_pooling2d"),
		Layer("dense", "units", 10, "activation", "softmax"),
	}
}

// MergesNet joins branches with the merge and padding kinds:
// ZeroPadding2D, Concatenate (channels and features), GlobalMaxPooling2D,
// GlobalAveragePooling2D; and Rescaling on the logits.
//
// SmallResNet and MergesNet are the nets that hold every layer kind to
// Keras (internal/kerasparity) and through Keras's own files (export): a
// new layer kind joins one of them (or a new net here), and both tests then
// cover it.
func MergesNet() []config.Layer {
	return []config.Layer{
		Layer("conv2d", "filters", 8, "kernel_size", 3, "padding", "same"),
		Layer("activation", "activation", "relu", "name", "a"),
		Layer("zero_padding2d", "padding", []any{[]any{1, 1}, []any{2, 0}}),
		Layer("conv2d", "filters", 6, "kernel_size", 3, "activation", "relu", "name", "b"),
		Layer("concatenate", "inputs", []string{"a", "b"}),
		Layer("max_pooling2d", "pool_size", 2, "name", "pooled"),
		Layer("conv2d", "filters", 10, "kernel_size", 3, "padding", "same"),
		Layer("activation", "activation", "relu"),
		Layer("global_max_pooling2d", "name", "gmp"),
		Layer("global_average_pooling2d", "inputs", []string{"pooled"}, "name", "gap"),
		Layer("concatenate", "inputs", []string{"gmp", "gap"}, "axis", 1),
		Layer("dense", "units", 10, "use_bias", false),
		Layer("rescaling", "scale", 1.0/9, "offset", 0.25),
		Layer("activation", "activation", "softmax"),
	}
}

// WhitenedNet is airbench's shape in miniature: a frozen patch-whitening
// first layer (its kernel computed from data: Model.InitFromData), GELU,
// a BatchNormalization without scale at airbench's momentum, global
// max-pooling, and the logits rescaled before the softmax.
func WhitenedNet() []config.Layer {
	frozen := false
	whiten := Layer("conv2d", "filters", 24, "kernel_size", 2, "kernel_initializer", "patch_whitening", "name", "whiten")
	whiten.Trainable = &frozen
	return []config.Layer{
		whiten,
		Layer("activation", "activation", "gelu"),
		Layer("conv2d", "filters", 8, "kernel_size", 3, "padding", "same", "use_bias", false),
		Layer("max_pooling2d", "pool_size", 2),
		Layer("batch_normalization", "momentum", 0.6, "scale", false),
		Layer("activation", "activation", "gelu"),
		Layer("global_max_pooling2d"),
		Layer("dense", "units", 10, "use_bias", false),
		Layer("rescaling", "scale", 1.0/9),
		Layer("activation", "activation", "softmax"),
	}
}

// CorrelatedImages are n noise images (NHWC) whose channels and
// neighbouring pixels are correlated by different amounts, so that their
// 2×2 patches have a covariance with well-separated eigenvalues (each
// patch-whitening filter is then fixed up to its sign), and random labels.
func CorrelatedImages(n int, seed uint64) (images, labels []uint8) {
	rng, lrng := rand.New(rand.NewPCG(seed, 2)), rand.New(rand.NewPCG(seed, 3))
	images, labels = make([]uint8, n*32*32*3), make([]uint8, n)
	for i := range n {
		labels[i] = uint8(lrng.IntN(10))
		base := rng.Float64() * 120
		for y := range 32 {
			row := rng.NormFloat64() * 25
			for x := range 32 {
				px := rng.NormFloat64() * 12
				for c := range 3 {
					v := base + row*float64(c+1)/3 + px*float64(3-c) + rng.NormFloat64()*4*float64(c+1) + 40
					images[((i*32+y)*32+x)*3+c] = uint8(min(255, max(0, v)))
				}
			}
		}
	}
	return images, labels
}
