package graph

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// initializer fills a new variable. Values are drawn in Go from the run's
// seed (Keras draws from its own RNG, so the parity tests hand Go's initial
// weights to Keras rather than comparing draws); the distributions and
// their scales are Keras 3's (keras/src/initializers/random_initializers.py,
// constant_initializers.py).
type initializer struct {
	// class is the Keras class name, for the architecture JSON.
	class string
	fill  func(rng *rand.Rand, data []float32, fanIn, fanOut int)
	// fromData, when set, computes the value from the layer's input on
	// training images (see whitening.go); fill holds until then.
	fromData func(s *op.Scope, x tf.Output, shape []int) tf.Output
	// checkShape refuses shapes the initializer cannot fill.
	checkShape func(shape []int) error
}

var initializers = map[string]initializer{
	"zeros": {class: "Zeros", fill: func(_ *rand.Rand, d []float32, _, _ int) { clear(d) }},
	"ones": {class: "Ones", fill: func(_ *rand.Rand, d []float32, _, _ int) {
		for i := range d {
			d[i] = 1
		}
	}},
	// VarianceScaling(scale 1, fan_avg, uniform): limit √(3·scale/n).
	"glorot_uniform": {class: "GlorotUniform", fill: func(rng *rand.Rand, d []float32, in, out int) {
		uniform(rng, d, math.Sqrt(3/(float64(in+out)/2)))
	}},
	// VarianceScaling(scale 1, fan_avg, truncated_normal).
	"glorot_normal": {class: "GlorotNormal", fill: func(rng *rand.Rand, d []float32, in, out int) {
		truncatedNormal(rng, d, math.Sqrt(1/(float64(in+out)/2)))
	}},
	// VarianceScaling(scale 2, fan_in, truncated_normal).
	"he_normal": {class: "HeNormal", fill: func(rng *rand.Rand, d []float32, in, _ int) {
		truncatedNormal(rng, d, math.Sqrt(2/float64(in)))
	}},
	// VarianceScaling(scale 2, fan_in, uniform).
	"he_uniform": {class: "HeUniform", fill: func(rng *rand.Rand, d []float32, in, _ int) {
		uniform(rng, d, math.Sqrt(3*2/float64(in)))
	}},
}

// InitializerNames lists the initializers a layer may use.
func InitializerNames() []string { return slices.Sorted(maps.Keys(initializers)) }

func checkInitializer(key, name string) error {
	if _, ok := initializers[name]; !ok {
		return fmt.Errorf("%s: %q is not one of %v%s", key, name, InitializerNames(), suggestName(name, InitializerNames()))
	}
	return nil
}

// kerasInitializer is an initializer's Keras serialization.
func kerasInitializer(name string) map[string]any {
	if initializers[name].class == "" {
		return nil // no Keras class: the file's weights are the values
	}
	cfg := map[string]any{}
	switch name {
	case "zeros", "ones":
	default:
		cfg["seed"], cfg["input_axes"], cfg["output_axes"] = nil, nil, nil
	}
	return map[string]any{"module": "keras.initializers", "class_name": initializers[name].class, "config": cfg, "registered_name": nil}
}

func uniform(rng *rand.Rand, d []float32, limit float64) {
	for i := range d {
		d[i] = float32((2*rng.Float64() - 1) * limit)
	}
}

// truncatedNormal draws N(0, σ²) truncated at two standard deviations, with
// σ = stddev/0.87962566103423978, the standard deviation of a unit normal
// truncated there, so the result has stddev as Keras's VarianceScaling does.
func truncatedNormal(rng *rand.Rand, d []float32, stddev float64) {
	sigma := stddev / 0.87962566103423978
	for i := range d {
		for {
			z := rng.NormFloat64()
			if z >= -2 && z <= 2 {
				d[i] = float32(z * sigma)
				break
			}
		}
	}
}

// fans is Keras's compute_fans: for a conv kernel (…, in, out) the
// receptive field times the channel counts.
func fans(shape []int) (in, out int) {
	switch len(shape) {
	case 0:
		return 1, 1
	case 1:
		return shape[0], shape[0]
	case 2:
		return shape[0], shape[1]
	}
	rf := 1
	for _, d := range shape[:len(shape)-2] {
		rf *= d
	}
	return shape[len(shape)-2] * rf, shape[len(shape)-1] * rf
}

// InitializerByClass returns the name of the initializer whose Keras class
// is class (GlorotUniform → glorot_uniform), for reading Keras configs.
func InitializerByClass(class string) (string, bool) {
	for name, in := range initializers {
		if in.class != "" && in.class == class {
			return name, true
		}
	}
	return "", false
}
