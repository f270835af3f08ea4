package augment

import (
	"context"
	"errors"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/cifar-pipeline/cifar-pipeline/pixels"
)

var notebook = Params{RotationRange: 40, WidthShiftRange: 0.2, HeightShiftRange: 0.2, ZoomRange: []float64{0.2}, HorizontalFlip: true}

func testSource(n int) *pixels.Set {
	labels := make([]uint8, n)
	for i := range labels {
		labels[i] = uint8(i % 10)
	}
	return &pixels.Set{Images: naturalImages(n, 32, 32, 3, 9), Labels: labels, H: 32, W: 32, C: 3}
}

func drain(t *testing.T, s *Stream) (imgs, labels []uint8, sizes []int) {
	t.Helper()
	for k := 0; ; k++ {
		b, ok := s.Next()
		if !ok {
			break
		}
		if b.Index != k {
			t.Fatalf("batch %d came out as %d", k, b.Index)
		}
		imgs = append(imgs, b.Images...)
		labels = append(labels, b.Labels...)
		sizes = append(sizes, b.N)
		s.Recycle(b)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	return
}

// TestStreamDeterministicAcrossWorkers: the same epoch with 1, 2 and 5
// workers and different queue sizes gives identical batches, covering the
// whole order with the last partial batch kept, each image transformed by
// Params.At.
func TestStreamDeterministicAcrossWorkers(t *testing.T) {
	src := testSource(203)
	order := rand.New(rand.NewPCG(1, 2)).Perm(src.Len())
	var ref []uint8
	for _, wq := range [][2]int{{1, 1}, {2, 3}, {5, 8}} {
		s, err := NewStream(context.Background(), src, order, 32, notebook, 11, 4, wq[0], wq[1])
		if err != nil {
			t.Fatal(err)
		}
		imgs, labels, sizes := drain(t, s)
		s.Close()
		if want := []int{32, 32, 32, 32, 32, 32, 11}; !slices.Equal(sizes, want) {
			t.Fatalf("batch sizes %v, want %v", sizes, want)
		}
		for j, idx := range order {
			if labels[j] != src.Labels[idx] {
				t.Fatalf("label %d is %d, want %d", j, labels[j], src.Labels[idx])
			}
		}
		if ref == nil {
			ref = imgs
			// Spot-check against the per-image law.
			size := 32 * 32 * 3
			want := make([]uint8, size)
			for _, j := range []int{0, 77, 202} {
				idx := order[j]
				notebook.At(11, 4, idx, 32, 32).Apply(want, src.Images[idx*size:(idx+1)*size], 32, 32, 3, FillNearest, 0)
				if !slices.Equal(want, imgs[j*size:(j+1)*size]) {
					t.Fatalf("image %d of the epoch differs from At(seed, epoch, %d)", j, idx)
				}
			}
		} else if !slices.Equal(ref, imgs) {
			t.Fatalf("workers=%d queue=%d changed the batches", wq[0], wq[1])
		}
	}
	// Another epoch augments differently.
	s, _ := NewStream(context.Background(), src, order, 32, notebook, 11, 5, 2, 2)
	imgs, _, _ := drain(t, s)
	s.Close()
	if slices.Equal(ref, imgs) {
		t.Fatal("epoch 5 produced the same augmentations as epoch 4")
	}
}

// TestStreamCancel cancels mid-epoch (context and Close) and checks that
// no goroutine outlives the stream.
func TestStreamCancel(t *testing.T) {
	src := testSource(300)
	order := make([]int, 3000) // 10 passes over the images
	for i := range order {
		order[i] = i % src.Len()
	}
	before := runtime.NumGoroutine()
	for _, viaCtx := range []bool{true, false} {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := NewStream(ctx, src, order, 16, notebook, 1, 0, 4, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			if _, ok := s.Next(); !ok {
				t.Fatalf("stream ended early: %v", s.Err())
			}
		}
		if viaCtx {
			cancel()
			for { // Next checks ctx, so this ends at once
				if _, ok := s.Next(); !ok {
					break
				}
			}
			if !errors.Is(s.Err(), context.Canceled) {
				t.Fatalf("Err after cancel = %v", s.Err())
			}
		}
		s.Close()
		s.Close()
		cancel()
		if _, ok := s.Next(); ok {
			t.Fatal("Next after Close returned a batch")
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, g, buf[:runtime.Stack(buf, true)])
	}
}

func TestStreamBadInput(t *testing.T) {
	src := testSource(4)
	for _, c := range []struct {
		name  string
		src   *pixels.Set
		order []int
		bs    int
	}{
		{"index", src, []int{0, 4}, 2},
		{"batch", src, []int{0}, 0},
		{"shape", &pixels.Set{Images: src.Images[:10], Labels: src.Labels, H: 32, W: 32, C: 3}, []int{0}, 1},
	} {
		if _, err := NewStream(context.Background(), c.src, c.order, c.bs, notebook, 1, 0, 1, 1); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

func TestMaterialize(t *testing.T) {
	src := testSource(37)
	x1, y1 := Materialize(src.Images, src.Labels, 32, 32, 3, 5, notebook, 3, 1)
	x2, y2 := Materialize(src.Images, src.Labels, 32, 32, 3, 5, notebook, 3, 4)
	if int64(len(x1)+len(y1)) != MaterializeBytes(37, 32, 32, 3, 5) {
		t.Fatalf("materialised %d bytes, MaterializeBytes says %d", len(x1)+len(y1), MaterializeBytes(37, 32, 32, 3, 5))
	}
	if !slices.Equal(x1, x2) || !slices.Equal(y1, y2) {
		t.Fatal("worker count changed the materialised copies")
	}
	size := 32 * 32 * 3
	for i := 0; i < 37; i++ {
		for j := 0; j < 5; j++ {
			o := i*5 + j
			if y1[o] != src.Labels[i] {
				t.Fatalf("label of copy %d of image %d is %d, want %d", j, i, y1[o], src.Labels[i])
			}
			if j > 0 && slices.Equal(x1[o*size:(o+1)*size], x1[(o-1)*size:o*size]) {
				t.Fatalf("copies %d and %d of image %d are identical", j-1, j, i)
			}
		}
	}
	if MaterializeBytes(50000, 32, 32, 3, 5) != 50000*5*3073 {
		t.Fatal("MaterializeBytes formula")
	}
}

func TestWritePreviews(t *testing.T) {
	src := testSource(20)
	dir := filepath.Join(t.TempDir(), "preview")
	indices := []int{0, 3, 19}
	files, sheet, err := WritePreviews(dir, src.Images, 32, 32, 3, indices, 5, notebook, 42, "cifar")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 15 {
		t.Fatalf("%d files, want 15", len(files))
	}
	re := regexp.MustCompile(`^cifar_(0|3|19)_([0-9]{1,4})\.jpeg$`)
	seen := map[string]bool{}
	for _, f := range files {
		if !re.MatchString(filepath.Base(f)) {
			t.Errorf("file name %s does not follow {prefix}_{index}_{hash}.jpeg", f)
		}
		seen[f] = true
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(fh)
		fh.Close()
		if err != nil || img.Bounds().Dx() != 32 || img.Bounds().Dy() != 32 {
			t.Fatalf("%s: %v, bounds %v", f, err, img.Bounds())
		}
	}
	if len(seen) != 15 {
		t.Fatalf("only %d distinct file names", len(seen))
	}
	fh, err := os.Open(sheet)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatal(err)
	}
	cell := 32*SheetScale + 4
	if b := img.Bounds(); b.Dx() != 6*cell+8 || b.Dy() != 3*cell+4 {
		t.Fatalf("sheet %v, want %dx%d", b, 6*cell+8, 3*cell+4)
	}
	// The first column is the original, enlarged: check one pixel of image 3.
	r, g, b, _ := img.At(4+SheetScale*5, 4+cell+SheetScale*7).RGBA()
	o := (3*32*32 + 7*32 + 5) * 3
	if uint8(r>>8) != src.Images[o] || uint8(g>>8) != src.Images[o+1] || uint8(b>>8) != src.Images[o+2] {
		t.Fatalf("sheet original pixel (%d,%d,%d), want %v", r>>8, g>>8, b>>8, src.Images[o:o+3])
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 16 {
		t.Fatalf("%d entries in %s (temporary files left?), want 16", len(entries), dir)
	}
	// Same seed, same previews.
	files2, _, err := WritePreviews(t.TempDir(), src.Images, 32, 32, 3, indices, 5, notebook, 42, "cifar")
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		if filepath.Base(files[i]) != filepath.Base(files2[i]) {
			t.Fatalf("names differ for the same seed: %s vs %s", files[i], files2[i])
		}
	}
	if _, _, err := WritePreviews(dir, src.Images, 32, 32, 3, []int{20}, 1, notebook, 1, "x"); err == nil {
		t.Fatal("out-of-range index accepted")
	}
}

func TestScaleMinMax(t *testing.T) {
	src := []uint8{50, 100, 150}
	dst := make([]uint8, 3)
	ScaleMinMax(dst, src)
	if !slices.Equal(dst, []uint8{0, 127, 255}) {
		t.Fatalf("ScaleMinMax = %v, want [0 127 255] (Keras truncates)", dst)
	}
	ScaleMinMax(dst, []uint8{9, 9, 9})
	if !slices.Equal(dst, []uint8{0, 0, 0}) {
		t.Fatalf("flat image: %v", dst)
	}
}

// BenchmarkAugment measures the notebook's transform on CIFAR-sized images;
// b.N images, spread over GOMAXPROCS goroutines (-cpu 1,2).
func BenchmarkAugment(b *testing.B) {
	src := testSource(1000)
	size := 32 * 32 * 3
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		smp := newSampler()
		dst := make([]uint8, size)
		i := 0
		for pb.Next() {
			idx := i % 1000
			notebook.Random(smp.reset(1, domainStream, 0, i), 32, 32).Apply(dst, src.Images[idx*size:(idx+1)*size], 32, 32, 3, FillNearest, 0)
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}
