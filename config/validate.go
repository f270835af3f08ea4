package config

import (
	"fmt"
	"slices"
)

// Validate checks values that types alone cannot: ranges, enumerations and
// per-layer arguments. The error names the offending key.
func (c *Config) Validate() error {
	d := c.Data
	switch {
	case d.ValidationSplit < 0 || d.ValidationSplit >= 1:
		return fmt.Errorf("data.validation_split: %v is outside [0, 1)", d.ValidationSplit)
	case !slices.Contains([]string{"split", "test", "none"}, d.Validation):
		return fmt.Errorf("data.validation: %q is not one of split, test, none", d.Validation)
	case d.Classes < 2:
		return fmt.Errorf("data.classes: %d must be at least 2", d.Classes)
	case len(d.ImageShape) != 3 || d.ImageShape[0] < 1 || d.ImageShape[1] < 1 || d.ImageShape[2] < 1:
		return fmt.Errorf("data.image_shape: %v must be [height, width, channels], all positive", d.ImageShape)
	case d.LimitTrain < 0 || d.LimitTest < 0:
		return fmt.Errorf("data.limit_train/limit_test: must be >= 0")
	case d.Synthetic.Train < 0 || d.Synthetic.Test < 0:
		return fmt.Errorf("data.synthetic: sizes must be >= 0")
	case d.Synthetic.Train > 0 && d.Synthetic.Test == 0:
		return fmt.Errorf("data.synthetic.test: must be > 0 when data.synthetic.train is set")
	}

	t := c.Train
	switch {
	case t.BatchSize < 1:
		return fmt.Errorf("train.batch_size: %d must be >= 1", t.BatchSize)
	case t.Epochs < 1:
		return fmt.Errorf("train.epochs: %d must be >= 1", t.Epochs)
	case t.StepsPerEpoch < 0:
		return fmt.Errorf("train.steps_per_epoch: %d must be >= 0", t.StepsPerEpoch)
	case t.Loss != "categorical_crossentropy":
		return fmt.Errorf("train.loss: %q is not supported (categorical_crossentropy)", t.Loss)
	case !slices.Contains([]string{"auto", "bar", "line", "none"}, t.Verbose):
		return fmt.Errorf("train.verbose: %q is not one of auto, bar, line, none", t.Verbose)
	}
	if err := t.Optimizer.validate(); err != nil {
		return err
	}

	if len(c.Model.Layers) == 0 {
		return fmt.Errorf("model.layers: empty; list at least one layer (see config.yaml)")
	}
	for i, l := range c.Model.Layers {
		if err := l.validate(); err != nil {
			return fmt.Errorf("model.layers[%d] (%s): %w", i, l.Type, err)
		}
	}

	a := c.Augment
	switch {
	case a.RotationRange < 0:
		return fmt.Errorf("augment.rotation_range: %v must be >= 0", a.RotationRange)
	case a.WidthShiftRange < 0 || a.HeightShiftRange < 0 || a.ShearRange < 0 || a.ChannelShiftRange < 0:
		return fmt.Errorf("augment: shift, shear and channel-shift ranges must be >= 0")
	case len(a.ZoomRange) > 2:
		return fmt.Errorf("augment.zoom_range: %v must be one value z or [lower, upper]", a.ZoomRange)
	case len(a.ZoomRange) == 2 && a.ZoomRange[0] > a.ZoomRange[1]:
		return fmt.Errorf("augment.zoom_range: lower %v exceeds upper %v", a.ZoomRange[0], a.ZoomRange[1])
	case len(a.BrightnessRange) != 0 && len(a.BrightnessRange) != 2:
		return fmt.Errorf("augment.brightness_range: %v must be [lower, upper]", a.BrightnessRange)
	case !slices.Contains([]string{"nearest", "constant", "reflect", "wrap"}, a.FillMode):
		return fmt.Errorf("augment.fill_mode: %q is not one of nearest, constant, reflect, wrap", a.FillMode)
	case a.Workers < 0:
		return fmt.Errorf("augment.workers: %d must be >= 0", a.Workers)
	case a.QueueBatches < 1:
		return fmt.Errorf("augment.queue_batches: %d must be >= 1", a.QueueBatches)
	case a.Materialize < 0:
		return fmt.Errorf("augment.materialize: %d must be >= 0", a.Materialize)
	case a.Preview.Images < 0 || a.Preview.PerImage < 0:
		return fmt.Errorf("augment.preview: images and per_image must be >= 0")
	}

	r := c.Runtime
	if r.IntraOpThreads < 0 || r.InterOpThreads < 0 {
		return fmt.Errorf("runtime: thread counts must be >= 0 (0 lets TensorFlow choose)")
	}
	if _, err := ParseDevice(r.Device); err != nil {
		return err
	}
	if c.Output.Dir == "" {
		return fmt.Errorf("output.dir: empty; name a directory (default output)")
	}
	if c.Output.KeepCheckpoints < 1 {
		return fmt.Errorf("output.keep_checkpoints: %d must be >= 1", c.Output.KeepCheckpoints)
	}
	return nil
}

func (o Optimizer) validate() error {
	if o.LearningRate <= 0 {
		return fmt.Errorf("train.optimizer.learning_rate: %v must be > 0", o.LearningRate)
	}
	if o.Momentum < 0 {
		return fmt.Errorf("train.optimizer.momentum: %v must be >= 0", o.Momentum)
	}
	switch o.Name {
	case "rmsprop":
		if o.Rho <= 0 || o.Rho >= 1 {
			return fmt.Errorf("train.optimizer.rho: %v must be in (0, 1)", o.Rho)
		}
		if o.Epsilon <= 0 {
			return fmt.Errorf("train.optimizer.epsilon: %v must be > 0", o.Epsilon)
		}
	case "adam":
		if o.Beta1 < 0 || o.Beta1 >= 1 || o.Beta2 < 0 || o.Beta2 >= 1 {
			return fmt.Errorf("train.optimizer.beta_1/beta_2: must be in [0, 1)")
		}
		if o.Epsilon <= 0 {
			return fmt.Errorf("train.optimizer.epsilon: %v must be > 0", o.Epsilon)
		}
	case "sgd":
	default:
		return fmt.Errorf("train.optimizer.name: %q is not one of rmsprop, sgd, adam", o.Name)
	}
	return nil
}

// LayerTypes are the Keras layers a model may use.
var LayerTypes = []string{"conv2d", "activation", "max_pooling2d", "dropout", "flatten", "dense"}

// Activations are the activation functions a layer may use.
var Activations = []string{"relu", "softmax", "linear"}

func (l Layer) validate() error {
	pair := func(key string, v []int, allowEmpty bool) error {
		if len(v) == 0 && allowEmpty {
			return nil
		}
		if len(v) != 1 && len(v) != 2 {
			return fmt.Errorf("%s: %v must be one integer or [h, w]", key, v)
		}
		for _, x := range v {
			if x < 1 {
				return fmt.Errorf("%s: %v must be positive", key, v)
			}
		}
		return nil
	}
	unused := func(keys ...string) error {
		set := map[string]bool{
			"filters": l.Filters != 0, "kernel_size": len(l.KernelSize) > 0, "strides": len(l.Strides) > 0,
			"padding": l.Padding != "", "units": l.Units != 0, "activation": l.Activation != "",
			"pool_size": len(l.PoolSize) > 0, "rate": l.Rate != 0,
		}
		for k, isSet := range set {
			if isSet && !slices.Contains(keys, k) {
				return fmt.Errorf("%s does not apply to %s", k, l.Type)
			}
		}
		return nil
	}
	if l.Activation != "" && !slices.Contains(Activations, l.Activation) {
		return fmt.Errorf("activation: %q is not one of %v", l.Activation, Activations)
	}
	switch l.Type {
	case "conv2d":
		if l.Filters < 1 {
			return fmt.Errorf("filters: %d must be >= 1", l.Filters)
		}
		if err := pair("kernel_size", l.KernelSize, false); err != nil {
			return err
		}
		if err := pair("strides", l.Strides, true); err != nil {
			return err
		}
		if l.Padding != "" && l.Padding != "valid" && l.Padding != "same" {
			return fmt.Errorf("padding: %q is not valid or same", l.Padding)
		}
		return unused("filters", "kernel_size", "strides", "padding", "activation")
	case "dense":
		if l.Units < 1 {
			return fmt.Errorf("units: %d must be >= 1", l.Units)
		}
		return unused("units", "activation")
	case "activation":
		if l.Activation == "" {
			return fmt.Errorf("activation: missing (relu, softmax or linear)")
		}
		return unused("activation")
	case "max_pooling2d":
		if err := pair("pool_size", l.PoolSize, true); err != nil {
			return err
		}
		if err := pair("strides", l.Strides, true); err != nil {
			return err
		}
		if l.Padding != "" && l.Padding != "valid" && l.Padding != "same" {
			return fmt.Errorf("padding: %q is not valid or same", l.Padding)
		}
		return unused("pool_size", "strides", "padding")
	case "dropout":
		if l.Rate < 0 || l.Rate >= 1 {
			return fmt.Errorf("rate: %v must be in [0, 1)", l.Rate)
		}
		return unused("rate")
	case "flatten":
		return unused()
	default:
		return fmt.Errorf("type: %q is not one of %v", l.Type, LayerTypes)
	}
}
