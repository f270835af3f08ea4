package config

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
)

// MaxQueueBatches caps augment.queue_batches: the stream keeps that many
// batches ahead of training, each allocated; a few keep the step fed.
const MaxQueueBatches = 1024

// nonFinite returns the key of the first NaN or infinite float in v (a
// config struct), named by the mapstructure tags: a NaN compares false with
// every bound, so range checks alone let it through.
func nonFinite(v reflect.Value, prefix string) (string, float64, bool) {
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return prefix, f, true
		}
	case reflect.Struct:
		for i := range v.NumField() {
			tag := v.Type().Field(i).Tag.Get("mapstructure")
			key := tag
			if prefix != "" {
				key = prefix + "." + tag
			}
			if k, f, bad := nonFinite(v.Field(i), key); bad {
				return k, f, true
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			if k, f, bad := nonFinite(v.Index(i), fmt.Sprintf("%s[%d]", prefix, i)); bad {
				return k, f, true
			}
		}
	}
	return "", 0, false
}

// Precisions are the Keras dtype policy names runtime.precision accepts
// (whether this runtime can run one is the engine's to say).
var Precisions = []string{"float32", "mixed_bfloat16", "mixed_float16"}

// Validate checks values that types alone cannot: ranges, enumerations and
// per-layer arguments. The error names the offending key.
func (c *Config) Validate() error {
	if key, f, bad := nonFinite(reflect.ValueOf(*c), ""); bad {
		return fmt.Errorf("%s: %v is not a finite number: give a number", key, f)
	}
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
	case len(d.Mean) != len(d.Std):
		return fmt.Errorf("data.mean and data.std: give both, one value per channel (%v and %v)", d.Mean, d.Std)
	case len(d.Mean) > 0 && len(d.ImageShape) == 3 && len(d.Mean) != d.ImageShape[2]:
		return fmt.Errorf("data.mean: %v must have one value per channel (%d)", d.Mean, d.ImageShape[2])
	case slices.ContainsFunc(d.Std, func(s float64) bool { return !(s > 0) }):
		return fmt.Errorf("data.std: %v: every value must be > 0", d.Std)
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
	case t.LabelSmoothing < 0 || t.LabelSmoothing >= 1:
		return fmt.Errorf("train.label_smoothing: %v is outside [0, 1)", t.LabelSmoothing)
	case t.Loss != "categorical_crossentropy":
		return fmt.Errorf("train.loss: %q is not supported (categorical_crossentropy)", t.Loss)
	case !slices.Contains([]string{"auto", "bar", "line", "none"}, t.Verbose):
		return fmt.Errorf("train.verbose: %q is not one of auto, bar, line, none", t.Verbose)
	}
	if t.Optimizer.Name == "" {
		return fmt.Errorf("train.optimizer.name: missing (rmsprop, sgd, adam, ...)")
	}
	if len(c.Model.Layers) == 0 {
		return fmt.Errorf("model.layers: empty; list at least one layer (see config.yaml)")
	}
	for i, l := range c.Model.Layers {
		if l.Type == "" {
			return &KeyError{Key: fmt.Sprintf("model.layers[%d].type", i), Err: fmt.Errorf("missing (conv2d, dense, ...)")}
		}
	}

	switch e := c.Evaluate; {
	case e.TTATranslate < 0:
		return fmt.Errorf("evaluate.tta_translate: %d must be >= 0 (pixels; 0 for flips only)", e.TTATranslate)
	case e.TTATranslate > 0 && !e.TTA:
		return fmt.Errorf("evaluate.tta_translate: %d needs evaluate.tta: true (translations are part of test-time augmentation)", e.TTATranslate)
	case len(c.Data.ImageShape) == 3 && e.TTATranslate > 0 && 2*e.TTATranslate >= min(c.Data.ImageShape[0], c.Data.ImageShape[1]):
		return fmt.Errorf("evaluate.tta_translate: %d pixels must be under half the image size %dx%d", e.TTATranslate, c.Data.ImageShape[0], c.Data.ImageShape[1])
	}

	if !slices.Contains(Precisions, c.Runtime.Precision) {
		return fmt.Errorf("runtime.precision: %q is not one of %s", c.Runtime.Precision, strings.Join(Precisions, ", "))
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
	case a.Crop.Padding < 0:
		return fmt.Errorf("augment.crop.padding: %d must be >= 0 (0 = no crop)", a.Crop.Padding)
	case a.Crop.Padding > 0 && len(d.ImageShape) == 3 && a.Crop.Padding >= min(d.ImageShape[0], d.ImageShape[1]):
		return fmt.Errorf("augment.crop.padding: %d must be below the image size %dx%d (reflect padding needs it)", a.Crop.Padding, d.ImageShape[0], d.ImageShape[1])
	case !slices.Contains([]string{"reflect", "constant"}, a.Crop.Mode):
		return fmt.Errorf("augment.crop.mode: %q is not one of reflect, constant", a.Crop.Mode)
	case a.Crop.Value < 0 || a.Crop.Value > 255:
		return fmt.Errorf("augment.crop.value: %d must be a pixel value in 0..255", a.Crop.Value)
	case !slices.Contains([]string{"none", "random", "alternate"}, a.Flip):
		return fmt.Errorf("augment.flip: %q is not one of none, random, alternate", a.Flip)
	case a.Flip != "none" && a.HorizontalFlip:
		return fmt.Errorf("augment.flip: %q with augment.horizontal_flip true would flip twice; set one of them", a.Flip)
	case a.Cutout.Size < 0:
		return fmt.Errorf("augment.cutout.size: %d must be > 0 (or 0 for no cutout)", a.Cutout.Size)
	case a.Cutout.Size == 0 && a.Cutout.Count > 1:
		return fmt.Errorf("augment.cutout.size: 0 with count %d erases nothing; set size > 0 (DeVries & Taylor: 16 for CIFAR-10)", a.Cutout.Count)
	case a.Cutout.Count < 0:
		return fmt.Errorf("augment.cutout.count: %d must be >= 0", a.Cutout.Count)
	case a.Cutout.Value < 0 || a.Cutout.Value > 255:
		return fmt.Errorf("augment.cutout.value: %d must be a pixel value in 0..255", a.Cutout.Value)
	case a.Workers < 0:
		return fmt.Errorf("augment.workers: %d must be >= 0", a.Workers)
	case a.QueueBatches < 1 || a.QueueBatches > MaxQueueBatches:
		return fmt.Errorf("augment.queue_batches: %d must be in [1, %d]", a.QueueBatches, MaxQueueBatches)
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
	if _, err := ParseXLA(string(r.XLA)); err != nil {
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
