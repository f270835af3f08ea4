package report

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var cifarNames = strings.Fields("airplane automobile bird cat deer dog frog horse ship truck")

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 300 {
		t.Fatalf("%s is %dx%d, want at least 400x300", path, b.Dx(), b.Dy())
	}
	return img
}

// countNear counts pixels within tol of c in every channel.
func countNear(img image.Image, c color.RGBA, tol int) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			d := func(v uint32, w uint8) bool { return math.Abs(float64(int(v>>8)-int(w))) <= float64(tol) }
			if d(r, c.R) && d(g, c.G) && d(bl, c.B) {
				n++
			}
		}
	}
	return n
}

func sampleHistory(n int, val bool) History {
	var h History
	for e := 0; e < n; e++ {
		f := float64(e)
		h = append(h, Epoch{Epoch: e, Loss: 2 / (1 + f), Accuracy: 0.3 + 0.05*f, HasVal: val,
			ValLoss: 2.2 / (1 + 0.8*f), ValAccuracy: 0.28 + 0.045*f, Seconds: 30, ImagesPerSec: 1500, LearningRate: 1e-3})
	}
	return h
}

func TestPlotCurves(t *testing.T) {
	dir := t.TempDir()
	nanHist := sampleHistory(4, true)
	nanHist[3].Loss = math.NaN()
	for _, tc := range []struct {
		name    string
		h       History
		wantVal bool
	}{
		{"with_val", sampleHistory(20, true), true},
		{"no_val", sampleHistory(5, false), false},
		{"one_epoch", sampleHistory(1, true), true},
		{"nan_loss", nanHist, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".png")
			if err := PlotCurves(path, tc.h); err != nil {
				t.Fatal(err)
			}
			img := decodePNG(t, path)
			tr, va := countNear(img, trainColor, 10), countNear(img, valColor, 10)
			if tr < 50 {
				t.Errorf("train curve: %d pixels of its colour", tr)
			}
			if tc.wantVal != (va >= 50) {
				t.Errorf("validation curve pixels %d, want present=%v", va, tc.wantVal)
			}
		})
	}
	if err := PlotCurves(filepath.Join(dir, "empty.png"), nil); err == nil {
		t.Fatal("empty history accepted")
	}
}

func TestPlotConfusion(t *testing.T) {
	// Class 0 always right (dark cell), class 1 split evenly between 1 and 2.
	var labels, preds []int
	for i := 0; i < 100; i++ {
		labels, preds = append(labels, 0), append(preds, 0)
		labels, preds = append(labels, 1), append(preds, 1+i%2)
		labels, preds = append(labels, i%10), append(preds, (i*7)%10)
	}
	m := Evaluate(labels, preds, cifarNames, 1)
	path := filepath.Join(t.TempDir(), "confusion.png")
	if err := PlotConfusion(path, m); err != nil {
		t.Fatal(err)
	}
	img := decodePNG(t, path)
	pal := newBlues(256)
	darkest := pal[255].(color.RGBA)
	// The airplane→airplane cell (rate 1) is a large block of the darkest blue.
	if n := countNear(img, darkest, 6); n < 1500 {
		t.Errorf("darkest cell: %d pixels, want a whole cell", n)
	}
	if err := PlotConfusion(path, Metrics{}); err == nil {
		t.Fatal("empty metrics accepted")
	}
}

func TestPlotMisclassified(t *testing.T) {
	const n, h, w, c = 30, 32, 32, 3
	magenta := color.RGBA{255, 0, 255, 255}
	images := make([]uint8, n*h*w*c)
	labels, preds := make([]int, n), make([]int, n)
	wrong := 0
	for i := 0; i < n; i++ {
		labels[i], preds[i] = i%10, i%10
		px := [3]uint8{20, 160, 60} // green: correct
		if i%3 == 0 {
			preds[i] = (i + 3) % 10
			px = [3]uint8{magenta.R, magenta.G, magenta.B}
			wrong++
		}
		for p := 0; p < h*w; p++ {
			copy(images[(i*h*w+p)*c:], px[:])
		}
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		max, shown int
	}{{100, wrong}, {4, 4}} {
		path := filepath.Join(dir, "mis.png")
		if err := PlotMisclassified(path, images, h, w, c, labels, preds, cifarNames, tc.max); err != nil {
			t.Fatal(err)
		}
		img := decodePNG(t, path)
		// Each shown image is upscaled 4×: 128×128 magenta pixels, no green.
		got := countNear(img, magenta, 2)
		want := tc.shown * 128 * 128
		if got < want*95/100 || got > want*105/100 {
			t.Errorf("max %d: %d magenta pixels, want ≈%d (%d images)", tc.max, got, want, tc.shown)
		}
		if g := countNear(img, color.RGBA{20, 160, 60, 255}, 2); g > 0 {
			t.Errorf("max %d: %d pixels of correctly classified images shown", tc.max, g)
		}
	}
	// Grey images and no errors at all still give a picture.
	grey := make([]uint8, 2*8*8)
	path := filepath.Join(dir, "none.png")
	if err := PlotMisclassified(path, grey, 8, 8, 1, []int{1, 2}, []int{1, 2}, cifarNames, 10); err != nil {
		t.Fatal(err)
	}
	decodePNG(t, path)
	for _, bad := range []struct {
		img     []uint8
		c       int
		l, p    []int
		wantErr string
	}{
		{images[:10], 3, labels, preds, "image bytes"},
		{images, 4, labels, preds, "channels"},
		{images, 3, labels, preds[:3], "predictions"},
	} {
		err := PlotMisclassified(path, bad.img, h, w, bad.c, bad.l, bad.p, cifarNames, 5)
		if err == nil || !strings.Contains(err.Error(), bad.wantErr) || !strings.Contains(err.Error(), path) {
			t.Errorf("err = %v, want one naming %s and %q", err, path, bad.wantErr)
		}
	}
}
