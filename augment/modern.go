package augment

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// The modern CIFAR-10 training augmentations (random crop after padding,
// horizontal flip, cutout) on uint8 HWC images. They run after the
// ImageDataGenerator transform when both are set, in this order: warp and
// point ops, crop, flip, cutout. Their random draws come from a generator
// of their own (see modernKey), so turning them on leaves the
// ImageDataGenerator draws of every image unchanged.

// PadMode is how the crop pads the image.
type PadMode int

const (
	// PadReflect is numpy's np.pad(mode="reflect") and TF's tf.pad
	// "REFLECT": mirrored about the edge pixel, which is not repeated
	// (d c b | a b c d | c b a). Padding must be below the image size. The
	// default: the fast CIFAR-10 recipes pad this way (Page's DAWNBench
	// ResNet-9, davidcpage/cifar10-fast utils.py pad: np.pad(...,
	// mode='reflect'), border 4; airbench94.py: F.pad(..., 'reflect'),
	// translate 2).
	PadReflect PadMode = iota
	// PadConstant fills the padding with Crop.Value (np.pad "constant"),
	// as torchvision's RandomCrop(32, padding=4) in He et al.'s ResNet
	// recipe and DeVries & Taylor's train.py (fill 0).
	PadConstant
)

var padNames = map[string]PadMode{"reflect": PadReflect, "constant": PadConstant}

// ParsePadMode maps augment.crop.mode's names to a PadMode.
func ParsePadMode(s string) (PadMode, error) {
	m, ok := padNames[s]
	if !ok {
		return 0, fmt.Errorf("crop.mode %q: want reflect or constant", s)
	}
	return m, nil
}

// String returns the config name of the mode.
func (m PadMode) String() string {
	for k, v := range padNames {
		if v == m {
			return k
		}
	}
	return fmt.Sprintf("PadMode(%d)", int(m))
}

// FlipMode selects the modern horizontal flip.
type FlipMode int

const (
	// FlipNone never flips.
	FlipNone FlipMode = iota
	// FlipRandom flips each image with probability 0.5, drawn afresh per
	// image and epoch.
	FlipRandom
	// FlipAlternate is airbench's derandomised flip (Jordan 2024,
	// github.com/KellerJordan/cifar10-airbench airbench94.py: CifarLoader's
	// __iter__ pre-flips every image once in epoch 0 with batch_flip_lr,
	// p = 0.5, then flips the whole set on odd epochs): image
	// i is flipped in epoch e iff phase(i) XOR (e odd), phase(i) a fair coin
	// fixed by the seed. Any two consecutive epochs show every image once
	// each way.
	FlipAlternate
)

var flipNames = map[string]FlipMode{"none": FlipNone, "random": FlipRandom, "alternate": FlipAlternate}

// ParseFlipMode maps augment.flip's names to a FlipMode.
func ParseFlipMode(s string) (FlipMode, error) {
	m, ok := flipNames[s]
	if !ok {
		return 0, fmt.Errorf("flip %q: want none, random or alternate", s)
	}
	return m, nil
}

// String returns the config name of the mode.
func (m FlipMode) String() string {
	for k, v := range flipNames {
		if v == m {
			return k
		}
	}
	return fmt.Sprintf("FlipMode(%d)", int(m))
}

// Crop is the random crop after padding: pad each side by Padding, take a
// random window of the original size (offsets uniform over [0, 2·Padding]
// on each axis). Padding 0 means no crop.
type Crop struct {
	Padding int
	Mode    PadMode
	Value   uint8
}

// Cutout fills Count squares of side Size with Value, each centred at a
// uniform random pixel (cy, cx) and clipped at the borders: rows
// [cy − Size/2, cy − Size/2 + Size) ∩ [0, H), columns likewise. This is
// DeVries & Taylor 2017's cutout (github.com/uoguelph-mlrg/Cutout,
// util/cutout.py as released: y1 = clip(y − length//2, 0, h),
// y2 = clip(y + length//2, 0, h); their first commit, 02f333a, lacked the
// //2) for even sizes; for odd sizes theirs is one pixel short, this one
// is Size wide. Their CIFAR-10 run used one hole of length 16 after
// RandomCrop(32, padding=4) and a flip (train.py), applied after Normalize,
// so their fill is the mean colour. Size 0 or Count 0 means no cutout.
type Cutout struct {
	Size, Count int
	Value       uint8
}

// Draw is the modern ops' random choice for one image.
type Draw struct {
	// CropY and CropX are the window's top-left corner in the padded image,
	// each in [0, 2·Padding].
	CropY, CropX int
	// Flip mirrors the image left-right.
	Flip bool
	// CutY and CutX are the cutout centres, Count of them.
	CutY, CutX []int
}

// modern reports whether any modern op is on.
func (p Params) modern() bool {
	return p.Crop.Padding > 0 || p.Flip != FlipNone || (p.Cutout.Size > 0 && p.Cutout.Count > 0)
}

// ModernSummary describes the modern ops that are on, for logs ("crop 4
// reflect, flip alternate, cutout 1×8 fill 0"), or "" when none is.
func (p Params) ModernSummary() string {
	var parts []string
	if p.Crop.Padding > 0 {
		s := fmt.Sprintf("crop %d %v", p.Crop.Padding, p.Crop.Mode)
		if p.Crop.Mode == PadConstant {
			s += fmt.Sprintf(" fill %d", p.Crop.Value)
		}
		parts = append(parts, s)
	}
	if p.Flip != FlipNone {
		parts = append(parts, "flip "+p.Flip.String())
	}
	if p.Cutout.Size > 0 && p.Cutout.Count > 0 {
		parts = append(parts, fmt.Sprintf("cutout %d×%d fill %d", p.Cutout.Count, p.Cutout.Size, p.Cutout.Value))
	}
	return strings.Join(parts, ", ")
}

// validateModern checks the modern ops; errors name the config key.
func (p Params) validateModern() error {
	switch {
	case p.Crop.Padding < 0:
		return fmt.Errorf("augment.crop.padding: %d must be >= 0 (0 = no crop)", p.Crop.Padding)
	case p.Crop.Mode != PadReflect && p.Crop.Mode != PadConstant:
		return fmt.Errorf("augment.crop.mode: %v is invalid; want reflect or constant", p.Crop.Mode)
	case p.Flip < FlipNone || p.Flip > FlipAlternate:
		return fmt.Errorf("augment.flip: %v is invalid; want none, random or alternate", p.Flip)
	case p.Flip != FlipNone && p.HorizontalFlip:
		return fmt.Errorf("augment.flip: %v with augment.horizontal_flip true would flip twice; set one of them", p.Flip)
	case p.Cutout.Size < 0:
		return fmt.Errorf("augment.cutout.size: %d must be > 0 (or 0 for no cutout)", p.Cutout.Size)
	case p.Cutout.Count < 0:
		return fmt.Errorf("augment.cutout.count: %d must be >= 0", p.Cutout.Count)
	}
	return nil
}

// checkShape checks that the crop's padding fits an h×w image.
func (p Params) checkShape(h, w int) error {
	if p.Crop.Padding > 0 && p.Crop.Padding >= min(h, w) {
		return fmt.Errorf("augment.crop.padding: %d must be below the image size %dx%d (reflect padding needs it)", p.Crop.Padding, h, w)
	}
	return nil
}

// modernKey is the domain of the modern ops' generator inside a domain.
const modernKey uint64 = 1 << 32

// flipPhaseDomain seeds the per-image phase of FlipAlternate, shared by
// every consumer (stream, materialisation, preview) and every epoch.
const flipPhaseDomain uint64 = 1<<32 + 100

// FlipPhase is the alternate flip's phase of dataset image index: it is
// flipped in epoch e iff FlipPhase XOR (e odd).
func FlipPhase(seed int64, index int) bool {
	a, _ := streamKey(seed, flipPhaseDomain, 0, index)
	return a>>63 == 1
}

// drawModern fills d from r for an h×w image in epoch (or copy) e of
// image index, in this order: crop row, crop column, flip coin, then the
// cutout centres (row, column) — only the draws of the ops that are on.
func (p Params) drawModern(d *Draw, r *rand.Rand, seed int64, epoch, index, h, w int) {
	d.CropY, d.CropX, d.Flip = 0, 0, false
	d.CutY, d.CutX = d.CutY[:0], d.CutX[:0]
	if n := p.Crop.Padding; n > 0 {
		d.CropY = r.IntN(2*n + 1)
		d.CropX = r.IntN(2*n + 1)
	}
	switch p.Flip {
	case FlipRandom:
		d.Flip = r.IntN(2) == 1
	case FlipAlternate:
		d.Flip = FlipPhase(seed, index) != (epoch%2 != 0)
	}
	if p.Cutout.Size > 0 {
		for range p.Cutout.Count {
			d.CutY = append(d.CutY, r.IntN(h))
			d.CutX = append(d.CutX, r.IntN(w))
		}
	}
}

// DrawAt is the modern ops' draw the stream makes for dataset image index
// in epoch (for an h×w image): a pure function of (seed, epoch, index).
func (p Params) DrawAt(seed int64, epoch, index, h, w int) Draw {
	var d Draw
	p.drawModern(&d, newSampler().reset(seed, domainStream|modernKey, epoch, index), seed, epoch, index, h, w)
	return d
}

// ApplyModern writes into dst the h×w×c image src cropped, flipped and cut
// out as d says (d's offsets in [0, 2·Padding], centres inside the image,
// as DrawAt makes them). dst and src must not overlap; len(dst) = len(src)
// = h·w·c.
func (p Params) ApplyModern(dst, src []uint8, h, w, c int, d *Draw) {
	p.cropFlip(dst, src, h, w, c, d)
	p.cutout(dst, h, w, c, d)
}

// padIndex maps coordinate i of the padded axis (i − pad in the original)
// to a source index in [0, n), or −1 for the constant.
func padIndex(i, pad, n int, mode PadMode) int {
	j := i - pad
	if j >= 0 && j < n {
		return j
	}
	if mode == PadConstant {
		return -1
	}
	// np.pad "reflect" with pad < n: a single reflection about the edge.
	if j < 0 {
		return -j
	}
	return 2*(n-1) - j
}

// cropFlip copies the crop window of the padded src (mirrored when d.Flip)
// into dst.
func (p Params) cropFlip(dst, src []uint8, h, w, c int, d *Draw) {
	pad := p.Crop.Padding
	if pad == 0 && !d.Flip {
		copy(dst, src)
		return
	}
	// Source column of each output column, in bytes; −1 = constant.
	var colBuf [256]int
	cols := colBuf[:0]
	if w > len(colBuf) {
		cols = make([]int, 0, w)
	}
	for x := 0; x < w; x++ {
		xx := x
		if d.Flip {
			xx = w - 1 - x
		}
		sx := padIndex(xx+d.CropX, pad, w, p.Crop.Mode)
		if sx >= 0 {
			sx *= c
		}
		cols = append(cols, sx)
	}
	// Contiguous unflipped runs are copied whole.
	lo, hi := 0, w // output columns whose sources are the interior, in order
	if !d.Flip {
		for lo < w && (cols[lo] < 0 || cols[lo] != (lo+d.CropX-pad)*c) {
			lo++
		}
		for hi > lo && (cols[hi-1] < 0 || cols[hi-1] != (hi-1+d.CropX-pad)*c) {
			hi--
		}
	} else {
		lo, hi = 0, 0
	}
	rowBytes := w * c
	v := p.Crop.Value
	for y := 0; y < h; y++ {
		out := dst[y*rowBytes : (y+1)*rowBytes]
		sy := padIndex(y+d.CropY, pad, h, p.Crop.Mode)
		if sy < 0 {
			for i := range out {
				out[i] = v
			}
			continue
		}
		in := src[sy*rowBytes : (sy+1)*rowBytes]
		if hi > lo {
			copy(out[lo*c:hi*c], in[cols[lo]:cols[lo]+(hi-lo)*c])
		}
		for x := 0; x < w; x++ {
			if x == lo && hi > lo {
				x = hi - 1
				continue
			}
			sx := cols[x]
			if sx >= 0 && c == 3 { // RGB: three stores beat a memmove call
				o := x * 3
				out[o], out[o+1], out[o+2] = in[sx], in[sx+1], in[sx+2]
				continue
			}
			o := out[x*c : x*c+c]
			if sx >= 0 {
				copy(o, in[sx:sx+c])
			} else {
				for k := range o {
					o[k] = v
				}
			}
		}
	}
}

// CutoutRect is the clipped square of side size centred at (cy, cx) in an
// h×w image: rows [y0, y1), columns [x0, x1).
func CutoutRect(cy, cx, size, h, w int) (y0, y1, x0, x1 int) {
	y0, x0 = cy-size/2, cx-size/2
	y1, x1 = min(y0+size, h), min(x0+size, w)
	return max(y0, 0), y1, max(x0, 0), x1
}

func (p Params) cutout(dst []uint8, h, w, c int, d *Draw) {
	for k := range d.CutY {
		y0, y1, x0, x1 := CutoutRect(d.CutY[k], d.CutX[k], p.Cutout.Size, h, w)
		for y := y0; y < y1; y++ {
			row := dst[(y*w+x0)*c : (y*w+x1)*c]
			for i := range row {
				row[i] = p.Cutout.Value
			}
		}
	}
}

// imageWorker augments one image at a time for one goroutine, reusing its
// generator, scratch image and draw.
type imageWorker struct {
	smp     *sampler
	scratch []uint8
	draw    Draw
}

func newImageWorker() *imageWorker { return &imageWorker{smp: newSampler()} }

// apply writes into dst image index of epoch (or copy) e augmented by p:
// the ImageDataGenerator transform drawn as before from (seed, domain,
// epoch, index), then the modern ops drawn from their own generator.
func (iw *imageWorker) apply(p Params, dst, src []uint8, seed int64, domain uint64, epoch, index, h, w, c int) {
	t := p.Random(iw.smp.reset(seed, domain, epoch, index), h, w)
	if !p.modern() {
		t.Apply(dst, src, h, w, c, p.FillMode, p.Cval)
		return
	}
	in := src
	if !p.idgIdentity() {
		if len(iw.scratch) < len(src) {
			iw.scratch = make([]uint8, len(src))
		}
		in = iw.scratch[:len(src)]
		t.Apply(in, src, h, w, c, p.FillMode, p.Cval)
	}
	p.drawModern(&iw.draw, iw.smp.reset(seed, domain|modernKey, epoch, index), seed, epoch, index, h, w)
	p.ApplyModern(dst, in, h, w, c, &iw.draw)
}
