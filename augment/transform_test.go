package augment

import (
	"image"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/disintegration/imaging"
)

// ksUniform is the Kolmogorov–Smirnov statistic of xs against U(lo, hi).
func ksUniform(xs []float64, lo, hi float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := float64(len(s))
	d := 0.0
	for i, x := range s {
		f := (x - lo) / (hi - lo)
		d = math.Max(d, math.Max(math.Abs(f-float64(i)/n), math.Abs(float64(i+1)/n-f)))
	}
	return d
}

func meanVar(xs []float64) (m, v float64) {
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	return m, v / float64(len(xs)-1)
}

// TestRandomLaw draws 10,000 transforms and checks every parameter's law.
func TestRandomLaw(t *testing.T) {
	const n = 10000
	p := Params{
		RotationRange: 40, WidthShiftRange: 0.2, HeightShiftRange: 0.25,
		ShearRange: 10, ZoomRange: []float64{0.2}, ChannelShiftRange: 30,
		BrightnessRange: []float64{0.5, 1.5}, HorizontalFlip: true,
	}
	h, w := 32, 40
	cols := map[string][]float64{}
	var hflips, vflips int
	smp := newSampler()
	for i := 0; i < n; i++ {
		tr := p.Random(smp.reset(7, domainStream, 0, i), h, w)
		cols["theta"] = append(cols["theta"], tr.Theta)
		cols["tx"] = append(cols["tx"], tr.Tx)
		cols["ty"] = append(cols["ty"], tr.Ty)
		cols["shear"] = append(cols["shear"], tr.Shear)
		cols["zx"] = append(cols["zx"], tr.Zx)
		cols["zy"] = append(cols["zy"], tr.Zy)
		cols["channel"] = append(cols["channel"], tr.ChannelShift)
		cols["brightness"] = append(cols["brightness"], tr.Brightness)
		if tr.FlipHorizontal {
			hflips++
		}
		if tr.FlipVertical {
			vflips++
		}
	}
	// 1% critical value of the KS statistic is 1.63/√n.
	ksLimit := 1.63 / math.Sqrt(n)
	for _, c := range []struct {
		name   string
		lo, hi float64
	}{
		{"theta", -40, 40},
		{"tx", -0.25 * float64(h), 0.25 * float64(h)}, // height_shift_range × rows
		{"ty", -0.2 * float64(w), 0.2 * float64(w)},   // width_shift_range × cols
		{"shear", -10, 10},
		{"zx", 0.8, 1.2},
		{"zy", 0.8, 1.2},
		{"channel", -30, 30},
		{"brightness", 0.5, 1.5},
	} {
		xs := cols[c.name]
		lo, hi := slices.Min(xs), slices.Max(xs)
		m, v := meanVar(xs)
		wantM, wantV := (c.lo+c.hi)/2, (c.hi-c.lo)*(c.hi-c.lo)/12
		se := math.Sqrt(wantV / n)
		ks := ksUniform(xs, c.lo, c.hi)
		t.Logf("%-10s range [%.4f, %.4f] of [%g, %g]  mean %.4f (want %.4f ± %.4f)  var %.4f (want %.4f)  KS %.4f (< %.4f)",
			c.name, lo, hi, c.lo, c.hi, m, wantM, 4*se, v, wantV, ks, ksLimit)
		if lo < c.lo || hi > c.hi {
			t.Errorf("%s: range [%g, %g] leaves [%g, %g]", c.name, lo, hi, c.lo, c.hi)
		}
		// The extremes should nearly reach the bounds with 10,000 draws.
		if lo > c.lo+0.002*(c.hi-c.lo) || hi < c.hi-0.002*(c.hi-c.lo) {
			t.Errorf("%s: range [%g, %g] does not cover [%g, %g]", c.name, lo, hi, c.lo, c.hi)
		}
		if math.Abs(m-wantM) > 4*se {
			t.Errorf("%s: mean %g, want %g ± %g", c.name, m, wantM, 4*se)
		}
		if math.Abs(v-wantV) > 0.05*wantV {
			t.Errorf("%s: variance %g, want %g ± 5%%", c.name, v, wantV)
		}
		if ks > ksLimit {
			t.Errorf("%s: KS statistic %g against the uniform law exceeds %g", c.name, ks, ksLimit)
		}
	}
	// zx and zy are drawn independently.
	mx, vx := meanVar(cols["zx"])
	my, vy := meanVar(cols["zy"])
	cov := 0.0
	for i := range cols["zx"] {
		cov += (cols["zx"][i] - mx) * (cols["zy"][i] - my)
	}
	rho := cov / float64(n-1) / math.Sqrt(vx*vy)
	t.Logf("corr(zx, zy) %.4f; horizontal flip rate %.4f; vertical flips %d", rho, float64(hflips)/n, vflips)
	if math.Abs(rho) > 4/math.Sqrt(n) {
		t.Errorf("corr(zx, zy) = %g: zooms are not independent", rho)
	}
	if rate := float64(hflips) / n; math.Abs(rate-0.5) > 4*0.5/math.Sqrt(n) {
		t.Errorf("horizontal flip rate %g, want 0.5", rate)
	}
	if vflips != 0 {
		t.Errorf("%d vertical flips with vertical_flip off", vflips)
	}
}

// TestIntegerShiftLaw checks Keras's int form: choice(N) pixels with a
// random sign, so 0 has probability 1/N and ±k each 1/(2N).
func TestIntegerShiftLaw(t *testing.T) {
	const n = 10000
	p := Params{WidthShiftRange: 3, HeightShiftRange: 0.5, VerticalFlip: true}
	counts := map[float64]int{}
	var vflips int
	smp := newSampler()
	for i := 0; i < n; i++ {
		tr := p.Random(smp.reset(1, domainStream, 3, i), 32, 32)
		counts[tr.Ty]++
		if tr.Tx < -16 || tr.Tx > 16 {
			t.Fatalf("tx %g outside ±0.5·32", tr.Tx)
		}
		if tr.FlipVertical {
			vflips++
		}
		if tr.FlipHorizontal || tr.Theta != 0 || tr.Zx != 1 || tr.Zy != 1 || tr.Shear != 0 || tr.Brightness != 0 {
			t.Fatalf("unrequested parameters drawn: %+v", tr)
		}
	}
	want := map[float64]float64{0: 1.0 / 3, 1: 1.0 / 6, -1: 1.0 / 6, 2: 1.0 / 6, -2: 1.0 / 6}
	for v, c := range counts {
		pv, ok := want[v]
		if !ok {
			t.Errorf("ty = %g is not a whole shift in {-2..2}", v)
			continue
		}
		f := float64(c) / n
		if se := math.Sqrt(pv * (1 - pv) / n); math.Abs(f-pv) > 4*se {
			t.Errorf("P(ty = %g) = %.4f, want %.4f", v, f, pv)
		}
	}
	t.Logf("int shift 3: %v; vertical flip rate %.4f", counts, float64(vflips)/n)
	if rate := float64(vflips) / n; math.Abs(rate-0.5) > 0.02 {
		t.Errorf("vertical flip rate %g, want 0.5", rate)
	}
}

func TestAtIsPerImage(t *testing.T) {
	p := Params{RotationRange: 40, ZoomRange: []float64{0.2}, HorizontalFlip: true}
	a := p.At(5, 2, 17, 32, 32)
	if b := p.At(5, 2, 17, 32, 32); a != b {
		t.Fatalf("At not deterministic: %+v vs %+v", a, b)
	}
	for _, o := range []Transform{p.At(6, 2, 17, 32, 32), p.At(5, 3, 17, 32, 32), p.At(5, 2, 18, 32, 32)} {
		if o == a {
			t.Errorf("different (seed, epoch, index) gave the same transform %+v", a)
		}
	}
}

// TestAxisTap pins scipy 1.17's order-1 boundary values on the row
// [10 20 30 40] (probed with scipy.ndimage.affine_transform, cval 100).
func TestAxisTap(t *testing.T) {
	row := []float64{10, 20, 30, 40}
	xs := []float64{-5.5, -4.5, -3.5, -2.5, -1.5, -1.2, -1, -0.7, -0.5, -0.2, 0, 0.5, 2.5, 3, 3.2, 3.5, 3.7, 4, 4.2, 4.5, 5.5, 7.5, 9.5}
	want := map[FillMode][]float64{
		FillNearest:  {10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 15, 35, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40},
		FillConstant: {100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 10, 15, 35, 40, 100, 100, 100, 100, 100, 100, 100, 100, 100},
		FillReflect:  {35, 40, 35, 25, 15, 12, 10, 10, 10, 10, 10, 15, 35, 40, 40, 40, 40, 40, 38, 35, 25, 10, 25},
		FillWrap:     {15, 25, 35, 15, 25, 28, 30, 33, 35, 38, 10, 15, 35, 40, 12, 15, 17, 20, 22, 25, 35, 25, 15},
	}
	for mode, ws := range want {
		for i, x := range xs {
			tp := axisTap(x, len(row), mode)
			got := 100.0
			if tp.ok {
				got = row[tp.i0]*(1-float64(tp.f)) + row[tp.i1]*float64(tp.f)
			}
			if math.Round(got) != ws[i] {
				t.Errorf("%v at x=%g: %g, want %g (scipy)", mode, x, got, ws[i])
			}
		}
	}
}

// TestFlipMatchesImaging checks the folded flips against imaging.FlipH/FlipV
// applied after the unflipped warp, as Keras flips after the warp.
func TestFlipMatchesImaging(t *testing.T) {
	h, w, c := 32, 32, 3
	src := naturalImages(1, h, w, c, 3)
	base := Transform{Theta: 23, Tx: 2.5, Zx: 1.1, Zy: 0.9}
	plain := make([]uint8, h*w*c)
	base.Apply(plain, src, h, w, c, FillReflect, 0)
	for _, fl := range []struct{ h, v bool }{{true, false}, {false, true}, {true, true}} {
		tr := base
		tr.FlipHorizontal, tr.FlipVertical = fl.h, fl.v
		got := make([]uint8, h*w*c)
		tr.Apply(got, src, h, w, c, FillReflect, 0)
		ref := image3(plain, h, w)
		if fl.h {
			ref = imaging.FlipH(ref)
		}
		if fl.v {
			ref = imaging.FlipV(ref)
		}
		for p := 0; p < h*w; p++ {
			for k := 0; k < c; k++ {
				if got[p*c+k] != ref.Pix[4*p+k] {
					t.Fatalf("flip h=%v v=%v: pixel %d ch %d = %d, imaging says %d", fl.h, fl.v, p, k, got[p*c+k], ref.Pix[4*p+k])
				}
			}
		}
	}
}

func image3(b []uint8, h, w int) *image.NRGBA { return toNRGBA(b, h, w, 3) }

func TestIdentityAndPointOps(t *testing.T) {
	h, w, c := 8, 8, 3
	src := naturalImages(1, h, w, c, 4)
	got := make([]uint8, len(src))
	Transform{}.Apply(got, src, h, w, c, FillNearest, 0)
	if !slices.Equal(got, src) {
		t.Fatal("zero Transform changed the image")
	}
	// A 360° rotation is the identity up to rounding of cos/sin.
	Transform{Theta: 360}.Apply(got, src, h, w, c, FillNearest, 0)
	for i := range src {
		if d := int(got[i]) - int(src[i]); d < -1 || d > 1 {
			t.Fatalf("360° rotation moved byte %d: %d -> %d", i, src[i], got[i])
		}
	}
	Transform{Brightness: 0.5}.Apply(got, src, h, w, c, FillNearest, 0)
	for i := range src {
		if got[i] != uint8(float32(src[i])*0.5) {
			t.Fatalf("brightness 0.5: byte %d %d -> %d", i, src[i], got[i])
		}
	}
	lo, hi := slices.Min(src), slices.Max(src)
	Transform{ChannelShift: 300}.Apply(got, src, h, w, c, FillNearest, 0)
	for i := range got {
		if got[i] != hi {
			t.Fatalf("channel shift +300 should saturate at the image max %d, got %d (min %d)", hi, got[i], lo)
		}
	}
}

func TestFromConfig(t *testing.T) {
	good := config.Default().Augment
	good.RotationRange, good.WidthShiftRange, good.HeightShiftRange = 40, 0.2, 0.2
	good.ZoomRange, good.HorizontalFlip = []float64{0.2}, true
	p, err := FromConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi := p.zoomBounds(); lo != 0.8 || hi != 1.2 || p.FillMode != FillNearest {
		t.Fatalf("FromConfig: zoom [%g, %g], fill %v", lo, hi, p.FillMode)
	}
	for _, c := range []struct {
		name string
		mut  func(*config.Augment)
		key  string
	}{
		{"fill", func(a *config.Augment) { a.FillMode = "mirror" }, "augment.fill_mode"},
		{"zoom3", func(a *config.Augment) { a.ZoomRange = []float64{1, 2, 3} }, "augment.zoom_range"},
		{"zoom1", func(a *config.Augment) { a.ZoomRange = []float64{1.5} }, "augment.zoom_range"},
		{"brightness", func(a *config.Augment) { a.BrightnessRange = []float64{0.5} }, "augment.brightness_range"},
		{"rotation", func(a *config.Augment) { a.RotationRange = -1 }, "augment.rotation_range"},
		{"shift", func(a *config.Augment) { a.WidthShiftRange = math.NaN() }, "augment.width_shift_range"},
	} {
		a := good
		c.mut(&a)
		_, err := FromConfig(a)
		if err == nil || !containsLine(err.Error(), c.key) {
			t.Errorf("%s: error %v, want one line naming %s", c.name, err, c.key)
		}
	}
}

func containsLine(s, sub string) bool {
	return !strings.Contains(s, "\n") && strings.Contains(s, sub)
}
