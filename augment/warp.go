package augment

import "math"

// mat3 is a row-major 3×3 homogeneous matrix.
type mat3 [3][3]float64

func (a mat3) mul(b mat3) mat3 {
	var c mat3
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			c[i][j] = a[i][0]*b[0][j] + a[i][1]*b[1][j] + a[i][2]*b[2][j]
		}
	}
	return c
}

// matrix is apply_affine_transform's final_affine_matrix and final_offset
// for an h×w image: rotation · shift · shear · zoom, only the present ones,
// offset to the centre (h/2 − 0.5, w/2 − 0.5) in Keras's (x, y) order, then
// rows and columns swapped. It maps an output (row, col) to input
// coordinates, as scipy.ndimage.affine_transform does. ok is false when
// Keras skips the warp (no geometric parameter set).
func (t Transform) matrix(h, w int) (m [2][3]float64, ok bool) {
	zx, zy := t.Zx, t.Zy
	if zx == 0 {
		zx = 1
	}
	if zy == 0 {
		zy = 1
	}
	var tm mat3
	have := false
	compose := func(b mat3) {
		if have {
			tm = tm.mul(b)
		} else {
			tm, have = b, true
		}
	}
	if t.Theta != 0 {
		th := t.Theta * math.Pi / 180 // np.deg2rad
		c, s := math.Cos(th), math.Sin(th)
		compose(mat3{{c, -s, 0}, {s, c, 0}, {0, 0, 1}})
	}
	if t.Tx != 0 || t.Ty != 0 {
		compose(mat3{{1, 0, t.Tx}, {0, 1, t.Ty}, {0, 0, 1}})
	}
	if t.Shear != 0 {
		sh := t.Shear * math.Pi / 180
		compose(mat3{{1, -math.Sin(sh), 0}, {0, math.Cos(sh), 0}, {0, 0, 1}})
	}
	if zx != 1 || zy != 1 {
		compose(mat3{{zx, 0, 0}, {0, zy, 0}, {0, 0, 1}})
	}
	if !have {
		return m, false
	}
	ox, oy := float64(h)/2-0.5, float64(w)/2-0.5
	tm = mat3{{1, 0, ox}, {0, 1, oy}, {0, 0, 1}}.mul(tm).mul(mat3{{1, 0, -ox}, {0, 1, -oy}, {0, 0, 1}})
	// transform_matrix[:, [0, 1]] = transform_matrix[:, [1, 0]]; then rows.
	for i := 0; i < 3; i++ {
		tm[i][0], tm[i][1] = tm[i][1], tm[i][0]
	}
	tm[0], tm[1] = tm[1], tm[0]
	return [2][3]float64{{tm[0][0], tm[0][1], tm[0][2]}, {tm[1][0], tm[1][1], tm[1][2]}}, true
}

// tap is one axis of a bilinear sample: two source indices and the weight
// of the second; ok is false when the point takes the constant.
type tap struct {
	i0, i1 int
	f      float32
	ok     bool
}

// axisTap maps the input coordinate x on an axis of n samples to its two
// neighbours with scipy.ndimage's order-1 boundary rules (checked against
// scipy 1.17 point by point):
//   - nearest: x is clamped to [0, n−1];
//   - constant: any x outside [0, n−1] takes cval (no blending with cval);
//   - reflect: the neighbours floor(x), floor(x)+1 are read from the
//     half-sample symmetric extension d c b a | a b c d | d c b a;
//   - wrap: x outside [0, n−1] is moved by multiples of n−1 (scipy's legacy
//     "wrap", not "grid-wrap"), then interpolated inside.
func axisTap(x float64, n int, mode FillMode) tap {
	last := float64(n - 1)
	if x < 0 || x > last {
		switch mode {
		case FillConstant:
			return tap{}
		case FillNearest:
			x = math.Max(0, math.Min(x, last))
		case FillWrap:
			if n <= 1 {
				x = 0
			} else if x < 0 {
				x += last * (math.Trunc(-x/last) + 1)
			} else {
				x -= last * math.Trunc(x/last)
			}
		case FillReflect:
			fl := math.Floor(x)
			return tap{i0: reflectIndex(int(fl), n), i1: reflectIndex(int(fl)+1, n), f: float32(x - fl), ok: true}
		}
	}
	fl := math.Floor(x)
	i0 := int(fl)
	i1 := i0 + 1
	if i1 > n-1 {
		i1 = n - 1
	}
	return tap{i0: i0, i1: i1, f: float32(x - fl), ok: true}
}

// reflectIndex maps an integer index onto [0, n) by half-sample symmetry.
func reflectIndex(i, n int) int {
	p := 2 * n
	i %= p
	if i < 0 {
		i += p
	}
	if i >= n {
		i = p - 1 - i
	}
	return i
}

// Apply writes t applied to src into dst, both h×w×c uint8 (HWC) of the
// same size and not overlapping, the way Keras's apply_transform does:
// affine warp, channel shift, horizontal flip, vertical flip, brightness.
//
// The warp is written here rather than taken from imaging because imaging
// has no general affine transform (only rotations by an angle about the
// centre, flips, resizes) and none of scipy.ndimage's fill modes (nearest
// edge replication, reflect, wrap, a constant cval): it fills outside the
// image with one background colour. Flips are folded into the inverse map
// (the output pixel (r, c) samples the warp at the mirrored position), which
// is exactly Keras's flip-after-warp at no cost, instead of an imaging.FlipH
// that would convert to NRGBA and allocate per image; the tests check the
// result against imaging.FlipH.
//
// Coordinates are computed in float64 as scipy does (so points on the
// border fall on the same side of it), blending is float32, rounding as
// scipy's uint8 output (t + 0.5, truncated, clipped). No allocation.
func (t Transform) Apply(dst, src []uint8, h, w, c int, mode FillMode, cval float64) {
	n := h * w * c
	if len(src) < n || len(dst) < n {
		panic("augment: Apply buffer smaller than h*w*c")
	}
	src, dst = src[:n], dst[:n]
	m, warp := t.matrix(h, w)
	if !warp && !t.FlipHorizontal && !t.FlipVertical {
		copy(dst, src)
	} else {
		if !warp {
			m = [2][3]float64{{1, 0, 0}, {0, 1, 0}}
		}
		warpInto(dst, src, h, w, c, m, t.FlipHorizontal, t.FlipVertical, mode, cval)
	}
	if t.ChannelShift != 0 {
		channelShift(dst, t.ChannelShift)
	}
	if t.Brightness != 0 {
		brightness(dst, t.Brightness)
	}
}

func round8(v float32) uint8 {
	if v <= 0 {
		return 0
	}
	v += 0.5
	if v >= 255 {
		return 255
	}
	return uint8(v)
}

// blend8 rounds a convex combination of uint8 values (so v ≥ 0, and at
// most 255 plus float error) as scipy does.
func blend8(v float32) uint8 {
	return uint8(min(v+0.5, 255))
}

func warpInto(dst, src []uint8, h, w, c int, m [2][3]float64, flipH, flipV bool, mode FillMode, cval float64) {
	cv := round8(float32(cval))
	lastR, lastC := float64(h-1), float64(w-1)
	stride := w * c
	o := 0
	for r := 0; r < h; r++ {
		rr := r
		if flipV {
			rr = h - 1 - r
		}
		fr := float64(rr)
		for col := 0; col < w; col++ {
			cc := col
			if flipH {
				cc = w - 1 - col
			}
			fc := float64(cc)
			// scipy: icoor = Σ coordinate·matrix, then + shift.
			y := fr*m[0][0] + fc*m[0][1] + m[0][2]
			x := fr*m[1][0] + fc*m[1][1] + m[1][2]
			var ty, tx tap
			if y >= 0 && y < lastR && x >= 0 && x < lastC {
				// Inside: truncation is floor for non-negative values.
				iy, ix := int(y), int(x)
				ty = tap{i0: iy, i1: iy + 1, f: float32(y - float64(iy)), ok: true}
				tx = tap{i0: ix, i1: ix + 1, f: float32(x - float64(ix)), ok: true}
			} else {
				ty = axisTap(y, h, mode)
				tx = axisTap(x, w, mode)
				if !ty.ok || !tx.ok {
					for k := 0; k < c; k++ {
						dst[o+k] = cv
					}
					o += c
					continue
				}
			}
			w00 := (1 - ty.f) * (1 - tx.f)
			w01 := (1 - ty.f) * tx.f
			w10 := ty.f * (1 - tx.f)
			w11 := ty.f * tx.f
			o00 := ty.i0*stride + tx.i0*c
			o01 := ty.i0*stride + tx.i1*c
			o10 := ty.i1*stride + tx.i0*c
			o11 := ty.i1*stride + tx.i1*c
			if c == 3 {
				p00, p01, p10, p11 := src[o00:o00+3], src[o01:o01+3], src[o10:o10+3], src[o11:o11+3]
				d := dst[o : o+3]
				d[0] = blend8(float32(p00[0])*w00 + float32(p01[0])*w01 + float32(p10[0])*w10 + float32(p11[0])*w11)
				d[1] = blend8(float32(p00[1])*w00 + float32(p01[1])*w01 + float32(p10[1])*w10 + float32(p11[1])*w11)
				d[2] = blend8(float32(p00[2])*w00 + float32(p01[2])*w01 + float32(p10[2])*w10 + float32(p11[2])*w11)
			} else {
				for k := 0; k < c; k++ {
					d := float32(src[o00+k])*w00 + float32(src[o01+k])*w01 + float32(src[o10+k])*w10 + float32(src[o11+k])*w11
					dst[o+k] = blend8(d)
				}
			}
			o += c
		}
	}
}

// channelShift is apply_channel_shift: one intensity added to every channel,
// clipped to the image's own minimum and maximum.
func channelShift(img []uint8, intensity float64) {
	if len(img) == 0 {
		return
	}
	lo, hi := minMax(img)
	s := float32(intensity)
	flo, fhi := float32(lo), float32(hi)
	for i, v := range img {
		img[i] = round8(min(max(float32(v)+s, flo), fhi))
	}
}

// brightness is apply_brightness_shift(scale=False) on an 8-bit image: PIL's
// ImageEnhance.Brightness blends with black, out = trunc(v·b) clipped to
// 0..255.
func brightness(img []uint8, b float64) {
	f := float32(b)
	for i, v := range img {
		t := float32(v) * f
		switch {
		case t <= 0:
			img[i] = 0
		case t >= 255:
			img[i] = 255
		default:
			img[i] = uint8(t)
		}
	}
}

// minMax is the smallest and largest value of a non-empty image.
func minMax(img []uint8) (lo, hi uint8) {
	lo, hi = img[0], img[0]
	for _, v := range img {
		lo = min(lo, v)
		hi = max(hi, v)
	}
	return lo, hi
}
