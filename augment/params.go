// Package augment reproduces Keras's legacy ImageDataGenerator random
// transforms on uint8 HWC images: the parameter law of random_transform, the
// warp of apply_transform (scipy.ndimage.affine_transform, order 1, with its
// fill modes), plus the modern CIFAR-10 training augmentations (random crop
// after padding, random or alternating flip, cutout), preview JPEGs with a
// contact sheet, and a parallel, ordered, bounded stream of augmented
// batches for training.
package augment

import (
	"fmt"
	"math"

	"github.com/cifar-pipeline/cifar-pipeline/config"
)

// FillMode is how points outside the input are filled, with scipy.ndimage's
// semantics for order=1 (see warp.go).
type FillMode int

const (
	// FillNearest replicates the edge pixel: a a a | a b c d | d d d.
	FillNearest FillMode = iota
	// FillConstant fills with Cval every point outside [0, n-1].
	FillConstant
	// FillReflect is half-sample symmetric: d c b a | a b c d | d c b a.
	FillReflect
	// FillWrap is scipy's legacy "wrap" (not "grid-wrap"): the period is
	// n-1, so the first and last samples coincide.
	FillWrap
)

var fillNames = map[string]FillMode{
	"nearest":  FillNearest,
	"constant": FillConstant,
	"reflect":  FillReflect,
	"wrap":     FillWrap,
}

// ParseFillMode maps Keras's fill_mode names to a FillMode.
func ParseFillMode(s string) (FillMode, error) {
	m, ok := fillNames[s]
	if !ok {
		return 0, fmt.Errorf("fill_mode %q: want nearest, constant, reflect or wrap", s)
	}
	return m, nil
}

// String returns Keras's name of the mode.
func (m FillMode) String() string {
	for k, v := range fillNames {
		if v == m {
			return k
		}
	}
	return fmt.Sprintf("FillMode(%d)", int(m))
}

// Params are ImageDataGenerator's augmentation arguments, with the same
// meaning and defaults-by-zero-value as Keras.
type Params struct {
	// RotationRange r: θ ~ U(−r, r) degrees.
	RotationRange float64
	// WidthShiftRange and HeightShiftRange: a value < 1 is a fraction of the
	// width / height (shift ~ U(−v, v)·size); an integral value N ≥ 1 is
	// Keras's int form (np.random.choice(N) pixels, i.e. 0..N−1, with a
	// random sign); a non-integral value ≥ 1 is U(−v, v) pixels.
	WidthShiftRange  float64
	HeightShiftRange float64
	// ShearRange s: shear ~ U(−s, s) degrees.
	ShearRange float64
	// ZoomRange: empty = no zoom, [z] = [1−z, 1+z], [lo, hi] = bounds; zx
	// and zy are drawn independently.
	ZoomRange []float64
	// ChannelShiftRange c: one intensity ~ U(−c, c) added to every channel,
	// clipped to the image's own min and max.
	ChannelShiftRange float64
	// BrightnessRange [lo, hi]: brightness factor ~ U(lo, hi) (PIL's
	// ImageEnhance.Brightness); empty = none.
	BrightnessRange []float64
	// HorizontalFlip and VerticalFlip flip with probability 0.5.
	HorizontalFlip bool
	VerticalFlip   bool
	// FillMode and Cval: how points outside the image are filled.
	FillMode FillMode
	Cval     float64

	// Crop, Flip and Cutout are the modern ops (modern.go), applied after
	// the ones above; their zero values are off.
	Crop   Crop
	Flip   FlipMode
	Cutout Cutout
}

// FromConfig converts the config's augment section; errors name the key.
func FromConfig(a config.Augment) (Params, error) {
	fm := a.FillMode
	if fm == "" {
		fm = "nearest"
	}
	mode, err := ParseFillMode(fm)
	if err != nil {
		return Params{}, fmt.Errorf("augment.%w", err)
	}
	pad, err := ParsePadMode(a.Crop.Mode)
	if a.Crop.Mode == "" {
		pad, err = PadReflect, nil
	}
	if err != nil {
		return Params{}, fmt.Errorf("augment.%w", err)
	}
	flip, err := ParseFlipMode(a.Flip)
	if a.Flip == "" {
		flip, err = FlipNone, nil
	}
	if err != nil {
		return Params{}, fmt.Errorf("augment.%w", err)
	}
	for _, v := range []struct {
		key string
		v   int
	}{{"crop.value", a.Crop.Value}, {"cutout.value", a.Cutout.Value}} {
		if v.v < 0 || v.v > 255 {
			return Params{}, fmt.Errorf("augment.%s: %d must be a pixel value in 0..255", v.key, v.v)
		}
	}
	p := Params{
		Crop:              Crop{Padding: a.Crop.Padding, Mode: pad, Value: uint8(a.Crop.Value)},
		Flip:              flip,
		Cutout:            Cutout{Size: a.Cutout.Size, Count: a.Cutout.Count, Value: uint8(a.Cutout.Value)},
		RotationRange:     a.RotationRange,
		WidthShiftRange:   a.WidthShiftRange,
		HeightShiftRange:  a.HeightShiftRange,
		ShearRange:        a.ShearRange,
		ZoomRange:         append([]float64(nil), a.ZoomRange...),
		ChannelShiftRange: a.ChannelShiftRange,
		BrightnessRange:   append([]float64(nil), a.BrightnessRange...),
		HorizontalFlip:    a.HorizontalFlip,
		VerticalFlip:      a.VerticalFlip,
		FillMode:          mode,
		Cval:              a.Cval,
	}
	if err := p.Validate(); err != nil {
		return Params{}, err
	}
	return p, nil
}

// Validate checks the ranges; errors name the config key and the fix.
func (p Params) Validate() error {
	for _, f := range []struct {
		key string
		v   float64
	}{
		{"rotation_range", p.RotationRange},
		{"width_shift_range", p.WidthShiftRange},
		{"height_shift_range", p.HeightShiftRange},
		{"shear_range", p.ShearRange},
		{"channel_shift_range", p.ChannelShiftRange},
		{"cval", p.Cval},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || (f.key != "cval" && f.v < 0) {
			return fmt.Errorf("augment.%s: %v is invalid; want a finite number >= 0", f.key, f.v)
		}
	}
	switch len(p.ZoomRange) {
	case 0:
	case 1:
		if z := p.ZoomRange[0]; !(z >= 0 && z < 1) {
			return fmt.Errorf("augment.zoom_range: [%v] is invalid; want z in [0, 1) meaning [1-z, 1+z]", z)
		}
	case 2:
		if lo, hi := p.ZoomRange[0], p.ZoomRange[1]; !(lo > 0 && hi >= lo && !math.IsInf(hi, 0)) {
			return fmt.Errorf("augment.zoom_range: %v is invalid; want [lo, hi] with 0 < lo <= hi", p.ZoomRange)
		}
	default:
		return fmt.Errorf("augment.zoom_range: %v has %d values; want [] (none), [z] or [lo, hi]", p.ZoomRange, len(p.ZoomRange))
	}
	switch len(p.BrightnessRange) {
	case 0:
	case 2:
		if lo, hi := p.BrightnessRange[0], p.BrightnessRange[1]; !(lo >= 0 && hi >= lo && !math.IsInf(hi, 0)) {
			return fmt.Errorf("augment.brightness_range: %v is invalid; want [lo, hi] with 0 <= lo <= hi", p.BrightnessRange)
		}
	default:
		return fmt.Errorf("augment.brightness_range: %v has %d values; want [] (none) or [lo, hi]", p.BrightnessRange, len(p.BrightnessRange))
	}
	if p.FillMode < FillNearest || p.FillMode > FillWrap {
		return fmt.Errorf("augment.fill_mode: %v is invalid; want nearest, constant, reflect or wrap", p.FillMode)
	}
	return p.validateModern()
}

// zoomBounds returns Keras's self.zoom_range.
func (p Params) zoomBounds() (lo, hi float64) {
	switch len(p.ZoomRange) {
	case 1:
		return 1 - p.ZoomRange[0], 1 + p.ZoomRange[0]
	case 2:
		return p.ZoomRange[0], p.ZoomRange[1]
	}
	return 1, 1
}

// Identity reports whether p never changes an image.
func (p Params) Identity() bool { return p.idgIdentity() && !p.modern() }

// idgIdentity reports whether the ImageDataGenerator part of p never
// changes an image.
func (p Params) idgIdentity() bool {
	lo, hi := p.zoomBounds()
	return p.RotationRange == 0 && p.WidthShiftRange == 0 && p.HeightShiftRange == 0 &&
		p.ShearRange == 0 && lo == 1 && hi == 1 && p.ChannelShiftRange == 0 &&
		len(p.BrightnessRange) == 0 && !p.HorizontalFlip && !p.VerticalFlip
}
