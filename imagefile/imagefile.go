// Package imagefile decodes user image files (JPEG, PNG, GIF, BMP, WebP) into
// the h×w RGB uint8 pixels the classifier takes, and expands the file and
// directory arguments of `pipeline predict`.
package imagefile

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/gif"  // register GIF (first frame is used)
	_ "image/jpeg" // register JPEG
	_ "image/png"  // register PNG
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/disintegration/imaging"
	_ "golang.org/x/image/bmp"  // register BMP
	_ "golang.org/x/image/webp" // register WebP
)

// MaxPixels bounds the decoded size (width×height) Load accepts, so a tiny
// file declaring a huge canvas (a decompression bomb) is refused before any
// pixel memory is allocated.
const MaxPixels = 100 << 20

// MaxSide bounds the width and the height on their own: centre-cropping
// and resizing a 1,000,000×1 strip (1 KB as a PNG) first scales it to
// cover the target, tens of GB of pixels.
const MaxSide = 16384

// MaxFileBytes bounds the size of a file Load reads: no image this tool
// can decode within MaxPixels is larger, and a 5 GB (sparse) file would
// otherwise be read whole.
const MaxFileBytes = 256 << 20

// filter is the resampling filter used to shrink images to the model's size.
// Lanczos (a = 3): imaging widens the kernel by the reduction factor when
// downscaling, so every source pixel contributes (no aliasing or moiré, unlike
// nearest/bilinear sampling as in tf.image.resize without antialias), while
// keeping edges sharper than Box/area averaging. CIFAR-10's images are photos
// reduced to 32×32 that look smooth, not aliased, so an anti-aliased but
// sharp reduction gives inputs closest to what the model was trained on. It
// matches Pillow's ImageOps.fit(..., LANCZOS) to within 1 level (tested).
var filter = imaging.Lanczos

// Load reads the image at path and returns its pixels as h×w×3 RGB uint8 in
// row-major HWC order (the CIFAR layout the model's input expects).
//
//   - Formats: JPEG, PNG, GIF (first frame), BMP, WebP; detected from the
//     content, not the extension. JPEG EXIF orientation is applied, so phone
//     photos are upright.
//   - Transparency is composited over white: transparent pixels carry no
//     colour of their own, and cut-out objects (icons, product shots) are
//     meant to be seen on a light page; compositing over black instead would
//     give dark silhouettes that no CIFAR photo has.
//   - Aspect ratio: the image is centre-cropped to h:w, then resized with
//     imaging.Lanczos (imaging.Fill; see filter for why Lanczos). CIFAR
//     objects are undistorted and roughly centred; stretching a 4:3 photo
//     into a square would squash the object.
//
// Errors are one line naming the file, e.g. "x.txt: not an image (unknown
// format)".
func Load(path string, h, w int) ([]uint8, error) {
	if h <= 0 || w <= 0 {
		return nil, fmt.Errorf("%s: bad target size %dx%d", path, h, w)
	}
	data, err := readRegular(path)
	if err != nil {
		return nil, err
	}
	return Decode(path, data, h, w)
}

// readRegular reads a regular file of at most MaxFileBytes. FIFOs, devices
// and sockets are refused without reading (opening a FIFO would block until
// a writer came; a device may never end).
func readRegular(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read: %v", path, unwrapPath(err))
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s: cannot read: is a directory", path)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s): give image files", path, kind(st.Mode()))
	}
	if st.Size() > MaxFileBytes {
		return nil, fmt.Errorf("%s: %d bytes, over the %d MiB limit for an image file", path, st.Size(), MaxFileBytes>>20)
	}
	// O_NONBLOCK: should the path have become a FIFO since the Stat, the
	// open does not wait for a writer; fstat below catches it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read: %v", path, unwrapPath(err))
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file: give image files", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read: %v", path, unwrapPath(err))
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%s: over the %d MiB limit for an image file", path, MaxFileBytes>>20)
	}
	return data, nil
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	}
	return m.Type().String()
}

// Decode is Load on file contents already in memory; name is used in errors.
func Decode(name string, data []byte, h, w int) ([]uint8, error) {
	if h <= 0 || w <= 0 {
		return nil, fmt.Errorf("%s: bad target size %dx%d", name, h, w)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return nil, fmt.Errorf("%s: not an image (unknown format)", name)
		}
		return nil, fmt.Errorf("%s: corrupt %s: %v", name, sniff(data), oneLine(err))
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("%s: empty %s image (%dx%d)", name, format, cfg.Width, cfg.Height)
	}
	if cfg.Width > MaxSide || cfg.Height > MaxSide || int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return nil, fmt.Errorf("%s: %s image too large (%dx%d; limits: %d pixels a side, %d pixels in all)", name, format, cfg.Width, cfg.Height, MaxSide, MaxPixels)
	}
	img, err := imaging.Decode(bytes.NewReader(data), imaging.AutoOrientation(true))
	if err != nil {
		return nil, fmt.Errorf("%s: corrupt %s image: %v", name, format, oneLine(err))
	}
	return toRGB(img, h, w), nil
}

// toRGB composites img over white, centre-crops and resizes it to h×w, and
// returns HWC RGB bytes.
func toRGB(img image.Image, h, w int) []uint8 {
	b := img.Bounds()
	flat := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(flat, flat.Bounds(), &image.Uniform{C: color.White}, image.Point{}, draw.Src)
	draw.Draw(flat, flat.Bounds(), img, b.Min, draw.Over)
	var small *image.NRGBA
	if b.Dx() == w && b.Dy() == h {
		small = flat
	} else {
		small = imaging.Fill(flat, w, h, imaging.Center, filter)
	}
	out := make([]uint8, h*w*3)
	for y := 0; y < h; y++ {
		row := small.Pix[y*small.Stride:]
		for x := 0; x < w; x++ {
			copy(out[(y*w+x)*3:(y*w+x)*3+3], row[x*4:x*4+3])
		}
	}
	return out
}

// sniff names the format a corrupt file claims to be, from its magic bytes.
func sniff(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("\xff\xd8")):
		return "jpeg image"
	case bytes.HasPrefix(data, []byte("\x89PNG")):
		return "png image"
	case bytes.HasPrefix(data, []byte("GIF8")):
		return "gif image"
	case bytes.HasPrefix(data, []byte("BM")):
		return "bmp image"
	case len(data) >= 12 && string(data[0:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "webp image"
	}
	return "image"
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// Walk expands paths for prediction: a directory is walked recursively and
// contributes its regular files (and symlinks to files), and its FIFOs,
// devices and sockets (which Load refuses, each on its own line), in
// lexical order;
// hidden entries (names starting with ".") inside directories are skipped.
// All regular files are included, not only ones with image extensions, so a
// stray non-image is reported by Load rather than silently ignored. Paths
// named explicitly are kept as given, in order, even if they do not exist or
// are hidden, so Load reports them on their own line. Duplicates are dropped.
// The error is non-nil only when a directory cannot be read.
func Walk(paths []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, root := range paths {
		st, err := os.Stat(root)
		if err != nil || !st.IsDir() {
			add(root)
			continue
		}
		var files []string
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("%s: cannot read directory: %v", p, unwrapPath(err))
			}
			if p != root && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			switch {
			case d.Type().IsRegular():
				files = append(files, p)
			case d.Type()&fs.ModeSymlink != 0:
				if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
					files = append(files, p)
				} else if err != nil {
					files = append(files, p) // dangling: let Load report it
				}
			case !d.IsDir():
				files = append(files, p) // FIFO, device, socket: Load reports it, unopened
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(files)
		for _, f := range files {
			add(f)
		}
	}
	return out, nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
