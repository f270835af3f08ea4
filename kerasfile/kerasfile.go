// Package kerasfile reads and writes Keras 3 model files (.keras, .weights.h5).
//
// The layout is Keras 3.15's own, read from
// keras/src/saving/saving_lib.py (save_weights_only, _save_state,
// _save_container_state, _get_unique_name, H5IOStore, _save_model_to_fileobj)
// and checked against files Keras writes (see the package tests):
//
//	.weights.h5 (HDF5, superblock v0 as h5py writes by default; no root attributes)
//	  /vars                       group, attr name = model name (the model's own variables: none)
//	  /layers/<key>/vars          group per entry of model.layers, attr name = layer.name
//	  /layers/<key>/vars/<i>      dataset per variable: layer._trainable_variables then
//	                              _non_trainable_variables (Layer.save_own_variables), "0", "1", …
//	  /optimizer/vars             group, attr name = optimizer.name (RMSprop: "rm_sprop")
//	  /optimizer/vars/<i>         optimizer.variables (BaseOptimizer.save_own_variables):
//	                              0 = iterations (int64 scalar), 1 = learning_rate (float32
//	                              scalar), then the slots in the order optimizer.build adds them
//	                              (OptimizerVars): RMSprop velocity per variable [, momentum per
//	                              variable][, average_gradient per variable]; Adam momentum and
//	                              velocity interleaved per variable [, velocity_hat per variable];
//	                              SGD momentum per variable when momentum ≠ 0, else nothing
//
// <key> is not the layer's name but snake_case(class name) made unique among
// the model's layers by _get_unique_name: conv2d, conv2d_1, dense, dense_1,
// batch_normalization, … (LayerKeys). A layer without variables (Activation,
// Flatten) still gets its group with the name attribute and no datasets.
// Sequential's model.layers omits the InputLayer; a Functional model's
// includes it (key input_layer). Keras 2.13–2.15 files use
// _layer_checkpoint_dependencies instead of layers; H5IOStore.get falls back
// to it and so does ReadWeightsH5.
//
// .keras is a zip of three stored (uncompressed) members, in this order:
// metadata.json ({"keras_version": …, "date_saved": "%Y-%m-%d@%H:%M:%S"}),
// config.json (json.dumps(serialize_keras_object(model)), the same schema as
// model.to_json()), model.weights.h5 (the layout above). load_model reads only
// config.json and model.weights.h5.
//
// HDF5 goes through the HDF Group's C library (Debian libhdf5-dev, the same
// library h5py is built on) via gonum.org/v1/hdf5: the pure-Go
// github.com/scigolib/hdf5 v0.14.1 cannot write rank-0 datasets, which the
// optimizer's iteration and learning_rate are.
package kerasfile

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Tensor is one saved variable: its shape and row-major values. Float
// variables (all layer weights, optimizer slots, learning rate) use Data;
// the optimizer's int64 iteration counter uses Int64 instead.
type Tensor struct {
	Shape []int
	Data  []float32
	Int64 []int64
}

// Len is the element count Shape implies (1 for a scalar).
func (t Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// LayerVars is the saved state of one layer.
type LayerVars struct {
	// Key is the layer's group under layers/ (LayerKeys computes it; a nested
	// model's layers have keys like "sequential/layers/dense").
	Key string
	// Name is the layer's name (the vars group's name attribute); informative
	// only, Keras matches layers by Key.
	Name string
	// Vars are the trainable then the non-trainable variables, in the
	// layer's creation order (Conv2D/Dense: kernel, bias; BatchNormalization:
	// gamma, beta, moving_mean, moving_variance).
	Vars []Tensor
}

// Weights is the content of a Keras 3 weights file.
type Weights struct {
	// Model is the model's name (attribute of /vars); "" writes "sequential".
	Model string
	// Layers in model.layers order when written. Read back, they are in
	// config.json's order for ReadKeras and in the file's (alphabetical
	// HDF5) order for ReadWeightsH5: look layers up with Layer.
	Layers []LayerVars
	// OptimizerName is the optimizer's name attribute; "" with Optimizer
	// set writes "optimizer".
	OptimizerName string
	// Optimizer is optimizer.variables in Keras's order (empty: no
	// optimizer group is written).
	Optimizer []Tensor
	// Source is the file the weights were read from ("" when built in
	// memory); Check names it in its errors.
	Source string
}

// Layer returns the layer saved under key.
func (w Weights) Layer(key string) (LayerVars, bool) {
	for _, l := range w.Layers {
		if l.Key == key {
			return l, true
		}
	}
	return LayerVars{}, false
}

// Check verifies that w holds the layers of want (key → shapes of its
// variables, in order) with those shapes and no other layer with variables,
// and returns an error naming the file, the layer and both shapes at the
// first difference. Layers without variables may be absent on either side, as
// Keras's load_weights allows.
func (w Weights) Check(want map[string][][]int) error {
	src := w.Source
	if src == "" {
		src = "weights"
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		shapes := want[k]
		l, ok := w.Layer(k)
		if !ok && len(shapes) == 0 {
			continue
		}
		if !ok {
			return fmt.Errorf("%s: layer %s missing (the file has %s): the model does not match the file", src, k, strings.Join(w.keys(), ", "))
		}
		if len(l.Vars) != len(shapes) {
			return fmt.Errorf("%s: layer %s (%s) has %d variables, the model's has %d: the model does not match the file", src, k, l.Name, len(l.Vars), len(shapes))
		}
		for i, s := range shapes {
			if !slices.Equal(l.Vars[i].Shape, s) {
				return fmt.Errorf("%s: layer %s (%s) variable %d has shape %v in the file, the model wants %v", src, k, l.Name, i, l.Vars[i].Shape, s)
			}
		}
	}
	for _, l := range w.Layers {
		if _, ok := want[l.Key]; !ok && len(l.Vars) > 0 {
			return fmt.Errorf("%s: layer %s (%s) is not in the model: the model does not match the file", src, l.Key, l.Name)
		}
	}
	return nil
}

func (w Weights) keys() []string {
	ks := make([]string, len(w.Layers))
	for i, l := range w.Layers {
		ks[i] = l.Key
	}
	return ks
}

// validate checks what a writer relies on: keys, and data lengths matching
// shapes.
func (w Weights) validate() error {
	seen := map[string]bool{}
	for _, l := range w.Layers {
		if l.Key == "" || strings.HasPrefix(l.Key, "/") || strings.HasSuffix(l.Key, "/") || strings.Contains(l.Key, "//") {
			return fmt.Errorf("layer %q: bad key %q", l.Name, l.Key)
		}
		if seen[l.Key] {
			return fmt.Errorf("layer key %s appears twice", l.Key)
		}
		seen[l.Key] = true
		for i, t := range l.Vars {
			if err := t.validate(); err != nil {
				return fmt.Errorf("layer %s variable %d: %w", l.Key, i, err)
			}
		}
	}
	for i, t := range w.Optimizer {
		if err := t.validate(); err != nil {
			return fmt.Errorf("optimizer variable %d: %w", i, err)
		}
	}
	return nil
}

func (t Tensor) validate() error {
	for _, d := range t.Shape {
		if d < 1 {
			return fmt.Errorf("shape %v has a dimension < 1", t.Shape)
		}
	}
	switch {
	case t.Int64 != nil && t.Data != nil:
		return fmt.Errorf("both Data and Int64 set")
	case t.Int64 != nil && len(t.Int64) != t.Len():
		return fmt.Errorf("shape %v needs %d values, Int64 has %d", t.Shape, t.Len(), len(t.Int64))
	case t.Int64 == nil && len(t.Data) != t.Len():
		return fmt.Errorf("shape %v needs %d values, Data has %d", t.Shape, t.Len(), len(t.Data))
	}
	return nil
}

var (
	nonWord   = regexp.MustCompile(`\W+`)
	upperWord = regexp.MustCompile(`(.)([A-Z][a-z]+)`)
	lowUpper  = regexp.MustCompile(`([a-z])([A-Z])`)
)

// SnakeCase is keras.src.utils.naming.to_snake_case: "Conv2D" → "conv2d",
// "BatchNormalization" → "batch_normalization", "MaxPooling2D" →
// "max_pooling2d".
func SnakeCase(name string) string {
	name = nonWord.ReplaceAllString(name, "")
	name = upperWord.ReplaceAllString(name, "${1}_${2}")
	return strings.ToLower(lowUpper.ReplaceAllString(name, "${1}_${2}"))
}

// LayerKeys gives the weights-file keys of a model's layers from their Keras
// class names, in model.layers order (saving_lib._save_container_state): the
// first Dense is "dense", the second "dense_1", and so on.
func LayerKeys(classNames []string) []string {
	used := map[string]int{}
	keys := make([]string, len(classNames))
	for i, c := range classNames {
		k := SnakeCase(c)
		if n, ok := used[k]; ok {
			used[k] = n + 1
			keys[i] = fmt.Sprintf("%s_%d", k, n+1)
		} else {
			used[k] = 0
			keys[i] = k
		}
	}
	return keys
}
