package augment

import (
	"math"
	"math/rand/v2"
)

// Transform is one explicit set of apply_transform parameters, as Keras's
// get_random_transform returns them.
type Transform struct {
	// Theta is the rotation in degrees.
	Theta float64
	// Tx and Ty are Keras's shifts in pixels (Tx comes from
	// height_shift_range × rows, Ty from width_shift_range × cols).
	Tx, Ty float64
	// Shear is the shear angle in degrees.
	Shear float64
	// Zx and Zy are the zoom factors; 0 is read as 1 (no zoom).
	Zx, Zy float64
	// FlipHorizontal and FlipVertical flip after the warp.
	FlipHorizontal, FlipVertical bool
	// ChannelShift is the channel shift intensity; 0 = none.
	ChannelShift float64
	// Brightness is the brightness factor; 0 = none (Keras's None).
	Brightness float64
}

// Random draws a transform for an h×w image following Keras's
// get_random_transform, in the same draw order: θ, tx, ty, shear, zx and zy,
// horizontal flip, vertical flip (both coins always tossed), channel shift,
// brightness. np.random.uniform(a, b) is a + (b−a)·U[0,1) here too; only the
// generator differs (PCG instead of MT19937).
func (p Params) Random(r *rand.Rand, h, w int) Transform {
	var t Transform
	if p.RotationRange != 0 {
		t.Theta = uniform(r, -p.RotationRange, p.RotationRange)
	}
	t.Tx = drawShift(r, p.HeightShiftRange, h)
	t.Ty = drawShift(r, p.WidthShiftRange, w)
	if p.ShearRange != 0 {
		t.Shear = uniform(r, -p.ShearRange, p.ShearRange)
	}
	t.Zx, t.Zy = 1, 1
	if lo, hi := p.zoomBounds(); !(lo == 1 && hi == 1) {
		t.Zx = uniform(r, lo, hi)
		t.Zy = uniform(r, lo, hi)
	}
	t.FlipHorizontal = r.Float64() < 0.5 && p.HorizontalFlip
	t.FlipVertical = r.Float64() < 0.5 && p.VerticalFlip
	if p.ChannelShiftRange != 0 {
		t.ChannelShift = uniform(r, -p.ChannelShiftRange, p.ChannelShiftRange)
	}
	if len(p.BrightnessRange) == 2 {
		t.Brightness = uniform(r, p.BrightnessRange[0], p.BrightnessRange[1])
	}
	return t
}

func uniform(r *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }

// drawShift is Keras's shift law for one axis: an integral v ≥ 1 is the int
// form (np.random.choice(v) times a random sign, whole pixels), otherwise
// U(−v, v), scaled by the axis size when v < 1.
func drawShift(r *rand.Rand, v float64, size int) float64 {
	if v == 0 {
		return 0
	}
	if v >= 1 && v == math.Trunc(v) && v < 1<<31 {
		t := float64(r.IntN(int(v)))
		if r.IntN(2) == 0 {
			t = -t
		}
		return t
	}
	t := uniform(r, -v, v)
	if v < 1 {
		t *= float64(size)
	}
	return t
}

// Domains separate the RNG streams of the stream, materialisation and
// previews so they never share a draw.
const (
	domainStream uint64 = iota + 1
	domainMaterialize
	domainPreview
)

// splitmix64 is a bijective 64-bit mixer (Steele et al.).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// streamKey derives the PCG seed of one image's stream from (seed, domain,
// epoch, index): nothing else, so results do not depend on worker count or
// order.
func streamKey(seed int64, domain uint64, epoch, index int) (uint64, uint64) {
	a := splitmix64(uint64(seed) ^ splitmix64(domain))
	a = splitmix64(a ^ uint64(int64(epoch)))
	a = splitmix64(a ^ uint64(int64(index)))
	return a, splitmix64(a ^ 0x6a09e667f3bcc909)
}

// sampler is a reusable per-goroutine generator: reseeding costs no
// allocation.
type sampler struct {
	pcg rand.PCG
	r   *rand.Rand
}

func newSampler() *sampler {
	s := &sampler{}
	s.r = rand.New(&s.pcg)
	return s
}

func (s *sampler) reset(seed int64, domain uint64, epoch, index int) *rand.Rand {
	s.pcg.Seed(streamKey(seed, domain, epoch, index))
	return s.r
}

// At is the transform the stream applies to dataset image index in epoch
// (for an h×w image): a pure function of (seed, epoch, index).
func (p Params) At(seed int64, epoch, index, h, w int) Transform {
	return p.Random(newSampler().reset(seed, domainStream, epoch, index), h, w)
}
