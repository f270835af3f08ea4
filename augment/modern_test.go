package augment

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
)

// modernAll is the modern recipe the tests and the benchmark use: He et
// al.'s crop (4 px), a random flip and one 8 px cutout.
var modernAll = Params{Crop: Crop{Padding: 4}, Flip: FlipRandom, Cutout: Cutout{Size: 8, Count: 1}}

// mirror returns the h×w×c image flipped left-right.
func mirror(img []uint8, h, w, c int) []uint8 {
	out := make([]uint8, len(img))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			copy(out[(y*w+x)*c:(y*w+x+1)*c], img[(y*w+w-1-x)*c:(y*w+w-x)*c])
		}
	}
	return out
}

// window returns padded[oy:oy+h, ox:ox+w] of a 1-channel padded image
// pw wide.
func window(padded []uint8, pw, oy, ox, h, w int) []uint8 {
	var out []uint8
	for y := oy; y < oy+h; y++ {
		out = append(out, padded[y*pw+ox:y*pw+ox+w]...)
	}
	return out
}

// TestCropPaddingExact checks every crop window of a 3×4 image padded by 2,
// reflect and constant, against padded images written out by hand (numpy's
// np.pad(x, 2, mode="reflect") / mode="constant", constant_values=200), with
// and without the flip, and with a second channel to catch channel mix-ups.
func TestCropPaddingExact(t *testing.T) {
	src := []uint8{
		1, 2, 3, 4,
		5, 6, 7, 8,
		9, 10, 11, 12,
	}
	reflect := []uint8{
		11, 10, 9, 10, 11, 12, 11, 10,
		7, 6, 5, 6, 7, 8, 7, 6,
		3, 2, 1, 2, 3, 4, 3, 2,
		7, 6, 5, 6, 7, 8, 7, 6,
		11, 10, 9, 10, 11, 12, 11, 10,
		7, 6, 5, 6, 7, 8, 7, 6,
		3, 2, 1, 2, 3, 4, 3, 2,
	}
	const k = 200
	constant := []uint8{
		k, k, k, k, k, k, k, k,
		k, k, k, k, k, k, k, k,
		k, k, 1, 2, 3, 4, k, k,
		k, k, 5, 6, 7, 8, k, k,
		k, k, 9, 10, 11, 12, k, k,
		k, k, k, k, k, k, k, k,
		k, k, k, k, k, k, k, k,
	}
	// Two channels: the second is 100 + the first (the fill stays k).
	src2 := make([]uint8, 0, 24)
	for _, v := range src {
		src2 = append(src2, v, 100+v)
	}
	for _, tc := range []struct {
		mode   PadMode
		padded []uint8
	}{{PadReflect, reflect}, {PadConstant, constant}} {
		p := Params{Crop: Crop{Padding: 2, Mode: tc.mode, Value: k}}
		for oy := 0; oy <= 4; oy++ {
			for ox := 0; ox <= 4; ox++ {
				for _, flip := range []bool{false, true} {
					want := window(tc.padded, 8, oy, ox, 3, 4)
					if flip {
						want = mirror(want, 3, 4, 1)
					}
					got := make([]uint8, 12)
					p.ApplyModern(got, src, 3, 4, 1, &Draw{CropY: oy, CropX: ox, Flip: flip})
					if !slices.Equal(got, want) {
						t.Fatalf("%v offset (%d,%d) flip %v: got %v, want %v", tc.mode, oy, ox, flip, got, want)
					}
					got2 := make([]uint8, 24)
					p.ApplyModern(got2, src2, 3, 4, 2, &Draw{CropY: oy, CropX: ox, Flip: flip})
					for i, v := range want {
						w2 := uint8(100) + v
						if v == k { // only the constant fill is 200
							w2 = k
						}
						if got2[2*i] != v || got2[2*i+1] != w2 {
							t.Fatalf("%v offset (%d,%d) flip %v, 2 channels: pixel %d is (%d,%d), want (%d,%d)", tc.mode, oy, ox, flip, i, got2[2*i], got2[2*i+1], v, w2)
						}
					}
				}
			}
		}
	}
}

// TestCutoutClipping checks cutout squares at the corners and in the middle
// of a 5×6 image against masks written out by hand.
func TestCutoutClipping(t *testing.T) {
	white := slices.Repeat([]uint8{255}, 30)
	for _, tc := range []struct {
		name         string
		size, cy, cx int
		mask         string // rows of the 5×6 image; # = erased
	}{
		{"top-left corner, clipped", 4, 0, 0, "##..../##..../....../....../......"},
		{"bottom-right corner, clipped", 4, 4, 5, "....../....../...###/...###/...###"},
		{"inside", 2, 2, 3, "....../..##../..##../....../......"},
		{"odd size is size wide", 3, 2, 2, "....../.###../.###../.###../......"},
		{"larger than the image", 12, 2, 2, "######/######/######/######/######"},
	} {
		p := Params{Cutout: Cutout{Size: tc.size, Count: 1, Value: 9}}
		got := make([]uint8, 30)
		p.ApplyModern(got, white, 5, 6, 1, &Draw{CutY: []int{tc.cy}, CutX: []int{tc.cx}})
		var b strings.Builder
		for y := 0; y < 5; y++ {
			if y > 0 {
				b.WriteByte('/')
			}
			for x := 0; x < 6; x++ {
				switch got[y*6+x] {
				case 9:
					b.WriteByte('#')
				case 255:
					b.WriteByte('.')
				default:
					b.WriteByte('?')
				}
			}
		}
		if b.String() != tc.mask {
			t.Errorf("%s: mask %s, want %s", tc.name, b.String(), tc.mask)
		}
	}
}

// TestModernStreamDeterministic: the stream with the modern ops (on top of
// the notebook's ImageDataGenerator law) gives the same bytes for the same
// (seed, epoch) whatever the worker count, other bytes for another epoch or
// seed, and each image is At's transform followed by DrawAt's modern ops.
func TestModernStreamDeterministic(t *testing.T) {
	src := testSource(100)
	order := rand.New(rand.NewPCG(3, 4)).Perm(src.Len())
	p := notebook
	p.HorizontalFlip = false
	p.Crop, p.Flip, p.Cutout = modernAll.Crop, modernAll.Flip, modernAll.Cutout
	run := func(seed int64, epoch, workers int) []uint8 {
		s, err := NewStream(context.Background(), src, order, 16, p, seed, epoch, workers, 2)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		imgs, _, _ := drain(t, s)
		return imgs
	}
	a := run(7, 3, 1)
	if !slices.Equal(a, run(7, 3, 3)) {
		t.Fatal("worker count changed the modern stream's bytes")
	}
	if slices.Equal(a, run(7, 4, 2)) {
		t.Fatal("epochs 3 and 4 gave identical bytes")
	}
	if slices.Equal(a, run(8, 3, 2)) {
		t.Fatal("seeds 7 and 8 gave identical bytes")
	}
	size := 32 * 32 * 3
	mid, want := make([]uint8, size), make([]uint8, size)
	for _, j := range []int{0, 41, 99} {
		idx := order[j]
		p.At(7, 3, idx, 32, 32).Apply(mid, src.Images[idx*size:(idx+1)*size], 32, 32, 3, p.FillMode, p.Cval)
		d := p.DrawAt(7, 3, idx, 32, 32)
		p.ApplyModern(want, mid, 32, 32, 3, &d)
		if !slices.Equal(want, a[j*size:(j+1)*size]) {
			t.Fatalf("stream image %d is not At followed by DrawAt", j)
		}
	}
	// The ImageDataGenerator draws do not move when the modern ops are on.
	if notebook.At(7, 3, 5, 32, 32) != func() Transform { q := notebook; q.Crop = modernAll.Crop; return q.At(7, 3, 5, 32, 32) }() {
		t.Fatal("turning the crop on changed the ImageDataGenerator transform")
	}
}

// chiSquare is Σ (observed − expected)² / expected for uniform bins.
func chiSquare(counts []int, n int) float64 {
	e := float64(n) / float64(len(counts))
	var s float64
	for _, c := range counts {
		s += (float64(c) - e) * (float64(c) - e) / e
	}
	return s
}

// TestModernLaw: over many images the crop offsets are uniform on
// [0, 2p] per axis and the cutout centres uniform over rows and columns
// (chi-square below the 0.1 % critical value), the random flip's frequency
// is 0.5 ± 3σ, and the erased area matches its exact expectation (± 3σ)
// and, image by image, the clipped rectangle of the drawn centre.
func TestModernLaw(t *testing.T) {
	const n, h, w, pad, size = 18000, 32, 32, 4, 8
	p := Params{Crop: Crop{Padding: pad}, Flip: FlipRandom, Cutout: Cutout{Size: size, Count: 1, Value: 0}}
	cy, cx := make([]int, 2*pad+1), make([]int, 2*pad+1)
	ry, rx := make([]int, h), make([]int, w)
	flips := 0
	white := slices.Repeat([]uint8{255}, h*w*3)
	out := make([]uint8, h*w*3)
	var areaSum, areaSq float64
	for i := 0; i < n; i++ {
		d := p.DrawAt(11, 2, i, h, w)
		cy[d.CropY]++
		cx[d.CropX]++
		ry[d.CutY[0]]++
		rx[d.CutX[0]]++
		if d.Flip {
			flips++
		}
		p.ApplyModern(out, white, h, w, 3, &d)
		erased := 0
		for _, v := range out {
			if v == 0 {
				erased++
			}
		}
		y0, y1, x0, x1 := CutoutRect(d.CutY[0], d.CutX[0], size, h, w)
		if erased != 3*(y1-y0)*(x1-x0) {
			t.Fatalf("image %d: %d bytes erased, the clipped square has %d", i, erased, 3*(y1-y0)*(x1-x0))
		}
		a := float64(erased / 3)
		areaSum += a
		areaSq += a * a
	}
	// Chi-square 0.1 % critical values: df 8 → 26.12, df 31 → 61.10.
	for _, c := range []struct {
		name   string
		counts []int
		crit   float64
	}{{"crop row offset", cy, 26.12}, {"crop column offset", cx, 26.12}, {"cutout centre row", ry, 61.10}, {"cutout centre column", rx, 61.10}} {
		if x2 := chiSquare(c.counts, n); x2 > c.crit {
			t.Errorf("%s: chi-square %.1f > %.2f (counts %v)", c.name, x2, c.crit, c.counts)
		}
	}
	if sigma := math.Sqrt(n * 0.25); math.Abs(float64(flips)-n/2) > 3*sigma {
		t.Errorf("random flip: %d of %d, want %d ± %.0f", flips, n, n/2, 3*sigma)
	}
	// Exact expected clipped area: rows and columns independent, each side
	// averaged over the uniform centre.
	side := func(m int) float64 {
		var s float64
		for c := 0; c < m; c++ {
			a0, a1 := max(c-size/2, 0), min(c-size/2+size, m)
			s += float64(a1 - a0)
		}
		return s / float64(m)
	}
	want := side(h) * side(w)
	mean := areaSum / n
	sd := math.Sqrt((areaSq/n - mean*mean) / n)
	if math.Abs(mean-want) > 3*sd {
		t.Errorf("cutout mean area %.3f, want %.3f ± %.3f", mean, want, 3*sd)
	}
}

// TestAlternateFlip: with flip alternate, every image of the stream is the
// original in one of epochs 0 and 1 and the mirror in the other, epoch 2
// repeats epoch 0, and the per-image phases are fair coins (± 3σ).
func TestAlternateFlip(t *testing.T) {
	src := testSource(400)
	order := rand.New(rand.NewPCG(5, 6)).Perm(src.Len())
	p := Params{Flip: FlipAlternate}
	epoch := func(e int) []uint8 {
		s, err := NewStream(context.Background(), src, order, 64, p, 21, e, 2, 2)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		imgs, _, _ := drain(t, s)
		return imgs
	}
	e0, e1 := epoch(0), epoch(1)
	if !slices.Equal(e0, epoch(2)) {
		t.Fatal("epoch 2 differs from epoch 0")
	}
	size := 32 * 32 * 3
	flipped := 0
	for j, idx := range order {
		orig := src.Images[idx*size : (idx+1)*size]
		mir := mirror(orig, 32, 32, 3)
		a, b := e0[j*size:(j+1)*size], e1[j*size:(j+1)*size]
		switch {
		case slices.Equal(a, orig) && slices.Equal(b, mir):
		case slices.Equal(a, mir) && slices.Equal(b, orig):
			flipped++
		default:
			t.Fatalf("image %d: epochs 0 and 1 are not the original and its mirror", idx)
		}
		if FlipPhase(21, idx) != slices.Equal(a, mir) {
			t.Fatalf("image %d: epoch 0 disagrees with FlipPhase", idx)
		}
	}
	if sigma := math.Sqrt(400 * 0.25); math.Abs(float64(flipped)-200) > 3*sigma {
		t.Errorf("%d of 400 images flipped in epoch 0, want 200 ± %.0f", flipped, 3*sigma)
	}
}

// TestModernBadParams: invalid modern parameters are refused with the
// config key named, by Validate and by NewStream for the image size.
func TestModernBadParams(t *testing.T) {
	for _, c := range []struct {
		p   Params
		key string
	}{
		{Params{Crop: Crop{Padding: -1}}, "augment.crop.padding"},
		{Params{Crop: Crop{Mode: 7}}, "augment.crop.mode"},
		{Params{Flip: 9}, "augment.flip"},
		{Params{Flip: FlipRandom, HorizontalFlip: true}, "augment.flip"},
		{Params{Cutout: Cutout{Size: -2, Count: 1}}, "augment.cutout.size"},
		{Params{Cutout: Cutout{Size: 8, Count: -1}}, "augment.cutout.count"},
	} {
		err := c.p.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), c.key+":") {
			t.Errorf("%+v: err %v, want one naming %s", c.p, err, c.key)
		}
	}
	src := testSource(2)
	_, err := NewStream(context.Background(), src, []int{0, 1}, 2, Params{Crop: Crop{Padding: 32}}, 1, 0, 1, 1)
	if err == nil || !strings.Contains(err.Error(), "augment.crop.padding: 32") {
		t.Errorf("padding 32 on 32×32 images: err %v", err)
	}
}

// BenchmarkModern measures the modern ops on a 128-image CIFAR batch per
// iteration, each GOMAXPROCS goroutine augmenting its own batch (-cpu 1,2).
func BenchmarkModern(b *testing.B) {
	const batch = 128
	src := testSource(batch)
	size := 32 * 32 * 3
	for _, bc := range []struct {
		name string
		p    Params
	}{
		{"crop4_reflect", Params{Crop: Crop{Padding: 4}}},
		{"crop4_constant", Params{Crop: Crop{Padding: 4, Mode: PadConstant}}},
		{"flip_random", Params{Flip: FlipRandom}},
		{"cutout8", Params{Cutout: Cutout{Size: 8, Count: 1}}},
		{"crop4_flip_cutout8", modernAll},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(batch * size))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				iw := newImageWorker()
				dst := make([]uint8, batch*size)
				e := 0
				for pb.Next() {
					for i := 0; i < batch; i++ {
						iw.apply(bc.p, dst[i*size:(i+1)*size], src.Images[i*size:(i+1)*size], 1, domainStream, e, i, 32, 32, 3)
					}
					e++
				}
			})
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// TestModernFromConfig: the config's crop, flip and cutout keys map onto
// Params, show in ModernSummary and make Identity false; the defaults are
// all off.
func TestModernFromConfig(t *testing.T) {
	a := config.Default().Augment
	p, err := FromConfig(a)
	if err != nil {
		t.Fatal(err)
	}
	if p.modern() || p.ModernSummary() != "" || !p.Identity() {
		t.Fatalf("defaults turn a modern op on: %+v", p)
	}
	a.Crop = config.Crop{Padding: 4, Mode: "constant", Value: 128}
	a.Flip = "alternate"
	a.Cutout = config.Cutout{Size: 8, Count: 2, Value: 7}
	if p, err = FromConfig(a); err != nil {
		t.Fatal(err)
	}
	if p.Crop != (Crop{Padding: 4, Mode: PadConstant, Value: 128}) || p.Flip != FlipAlternate || p.Cutout != (Cutout{Size: 8, Count: 2, Value: 7}) || p.Identity() {
		t.Fatalf("FromConfig: %+v", p)
	}
	if s := p.ModernSummary(); s != "crop 4 constant fill 128, flip alternate, cutout 2×8 fill 7" {
		t.Fatalf("ModernSummary = %q", s)
	}
	for _, bad := range []struct {
		mut func(*config.Augment)
		key string
	}{
		{func(a *config.Augment) { a.Crop.Mode = "edge" }, "augment.crop.mode"},
		{func(a *config.Augment) { a.Flip = "both" }, "augment.flip"},
		{func(a *config.Augment) { a.Crop.Value = 300 }, "augment.crop.value"},
		{func(a *config.Augment) { a.Cutout.Value = -1 }, "augment.cutout.value"},
		{func(a *config.Augment) { a.Cutout.Count = -1 }, "augment.cutout.count"},
	} {
		b := config.Default().Augment
		bad.mut(&b)
		if _, err := FromConfig(b); err == nil || !strings.HasPrefix(err.Error(), bad.key) {
			t.Errorf("%s: err %v", bad.key, err)
		}
	}
}
