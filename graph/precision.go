package graph

import (
	"fmt"
	"slices"
	"strings"

	tf "github.com/wamuir/graft/tensorflow"

	"github.com/cifar-pipeline/cifar-pipeline/config"
)

// Precision is a Keras dtype policy name (keras/src/dtype_policies/
// dtype_policy.py): the dtype the layers compute in, with float32
// variables in every case, so checkpoints do not depend on it.
type Precision string

// The policies runtime.precision names. Float32 is the default.
const (
	Float32       Precision = "float32"
	MixedBFloat16 Precision = "mixed_bfloat16"
	MixedFloat16  Precision = "mixed_float16"
)

// CheckPrecision resolves a runtime.precision value ("" is float32) and
// refuses a policy whose rewrite would be inert where the graph runs (gpu:
// on a GPU), which would train in float32 under another name:
// mixed_float16 is TensorFlow's CUDA float16 rewrite (the CPU has no fast
// float16 kernels; it trains with dynamic loss scaling, loss_scale.go),
// mixed_bfloat16 its oneDNN rewrite, for the CPU. The error is a one-line
// config.KeyError.
func CheckPrecision(name string, gpu bool) (Precision, error) {
	if name == "" {
		return Float32, nil
	}
	if !slices.Contains(config.Precisions, name) {
		return "", config.KeyErrorf("runtime.precision", "%q is not one of %s%s", name, strings.Join(config.Precisions, ", "), suggestName(name, config.Precisions))
	}
	p := Precision(name)
	switch {
	case p == MixedFloat16 && !gpu:
		return "", config.KeyErrorf("runtime.precision", "mixed_float16 needs a GPU (the CPU has no fast float16 kernels) and this graph would run on the CPU: use mixed_bfloat16 or float32 on the CPU")
	case p == MixedBFloat16 && gpu:
		return "", config.KeyErrorf("runtime.precision", "mixed_bfloat16 is TensorFlow's oneDNN (CPU) rewrite and would leave a graph on the GPU in float32: use mixed_float16 on a GPU, or runtime.device: cpu")
	}
	return p, nil
}

// onGPU reports whether a session with o's configuration (its device
// placement, Options.Session) sees a GPU, which then runs the graph: from
// the devices of such a session on an empty graph.
func onGPU(o Options) (bool, error) {
	so, err := sessionOptions(Options{Session: o.Session})
	if err != nil {
		return false, err
	}
	s, err := tf.NewSession(tf.NewGraph(), so)
	if err != nil {
		return false, fmt.Errorf("list TensorFlow devices: %w", err)
	}
	defer s.Close()
	devs, err := s.ListDevices()
	if err != nil {
		return false, fmt.Errorf("list TensorFlow devices: %w", err)
	}
	return slices.ContainsFunc(devs, func(d tf.Device) bool { return d.Type == "GPU" }), nil
}

// ComputeDType is the policy's compute dtype as Keras names it: the dtype
// of the layers' outputs (float32, bfloat16, float16).
func (p Precision) ComputeDType() string {
	switch p {
	case MixedBFloat16:
		return "bfloat16"
	case MixedFloat16:
		return "float16"
	}
	return "float32"
}

// OrDefault is the policy's name, float32 for the zero value.
func (p Precision) OrDefault() Precision {
	if p == "" {
		return Float32
	}
	return p
}
