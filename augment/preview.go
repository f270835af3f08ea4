package augment

import (
	"fmt"
	"image"
	"image/color"
	"io"
	"os"
	"path/filepath"

	"github.com/disintegration/imaging"

	"github.com/cifar-pipeline/cifar-pipeline/internal/atomicfile"
)

// SheetName is the contact sheet's file name in the preview directory.
const SheetName = "contact_sheet.png"

// SheetScale is how much the contact sheet enlarges each image (nearest
// neighbour, so pixels stay visible).
const SheetScale = 4

// PreviewFile names one preview JPEG as Keras's flow(save_to_dir=...) does:
// "{prefix}_{index}_{hash}.jpeg", index being the dataset index.
func PreviewFile(prefix string, index, hash int) string {
	return fmt.Sprintf("%s_%d_%d.jpeg", prefix, index, hash)
}

// WritePreviews writes, for each dataset index in indices, perImage
// augmentations of that image (images is NHWC h×w×c uint8, c 1 or 3) as
// dir/{prefix}_{index}_{hash}.jpeg — hash a random int in [0, 1e4) as
// Keras's np.random.randint(1e4), redrawn on a clash so nothing is
// overwritten — each min–max rescaled per image as array_to_img(scale=True),
// JPEG quality 75 (PIL's default). It also writes dir/contact_sheet.png:
// one row per index, the original in the first column and its
// augmentations across, unscaled pixel values enlarged SheetScale× by
// nearest neighbour. Everything is a pure function of seed; every file is
// written to a temporary name and renamed.
func WritePreviews(dir string, images []uint8, h, w, c int, indices []int, perImage int, p Params, seed int64, prefix string) (files []string, sheet string, err error) {
	if c != 1 && c != 3 {
		return nil, "", fmt.Errorf("preview: %d channels: want 1 or 3", c)
	}
	size := h * w * c
	if h <= 0 || w <= 0 || len(images)%size != 0 {
		return nil, "", fmt.Errorf("preview: %d bytes are not whole %d×%d×%d images", len(images), h, w, c)
	}
	n := len(images) / size
	for _, i := range indices {
		if i < 0 || i >= n {
			return nil, "", fmt.Errorf("preview: image index %d outside the %d images", i, n)
		}
	}
	if perImage < 0 {
		return nil, "", fmt.Errorf("preview: per_image %d: want >= 0", perImage)
	}
	if err := p.Validate(); err != nil {
		return nil, "", err
	}
	if err := p.checkShape(h, w); err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", fmt.Errorf("preview: %w", err)
	}

	cell := image.Pt(w*SheetScale, h*SheetScale)
	const gap = 4
	sheetImg := imaging.New((perImage+1)*(cell.X+gap)+gap+gap, len(indices)*(cell.Y+gap)+gap, color.White)
	iw := newImageWorker()
	hashes := newSampler().reset(seed, domainPreview, -1, -1)
	used := map[string]bool{}
	aug := make([]uint8, size)
	scaled := make([]uint8, size)
	for row, idx := range indices {
		src := images[idx*size : (idx+1)*size]
		y := gap + row*(cell.Y+gap)
		sheetImg = imaging.Paste(sheetImg, imaging.Resize(toNRGBA(src, h, w, c), cell.X, cell.Y, imaging.NearestNeighbor), image.Pt(gap, y))
		for k := 0; k < perImage; k++ {
			iw.apply(p, aug, src, seed, domainPreview, k, idx, h, w, c)
			x := gap + gap + (k+1)*(cell.X+gap)
			sheetImg = imaging.Paste(sheetImg, imaging.Resize(toNRGBA(aug, h, w, c), cell.X, cell.Y, imaging.NearestNeighbor), image.Pt(x, y))

			name := PreviewFile(prefix, idx, hashes.IntN(10000))
			for used[name] {
				name = PreviewFile(prefix, idx, hashes.IntN(10000))
			}
			used[name] = true
			ScaleMinMax(scaled, aug)
			path := filepath.Join(dir, name)
			img := toNRGBA(scaled, h, w, c)
			if err := writeAtomic(path, func(wr io.Writer) error {
				return imaging.Encode(wr, img, imaging.JPEG, imaging.JPEGQuality(75))
			}); err != nil {
				return files, "", err
			}
			files = append(files, path)
		}
	}
	sheet = filepath.Join(dir, SheetName)
	if err := writeAtomic(sheet, func(wr io.Writer) error { return imaging.Encode(wr, sheetImg, imaging.PNG) }); err != nil {
		return files, "", err
	}
	return files, sheet, nil
}

// ScaleMinMax is Keras's array_to_img(scale=True) on one image: x − min,
// divided by the new max when it is not 0, times 255, truncated to uint8
// (float32 arithmetic, as Keras's floatx).
func ScaleMinMax(dst, src []uint8) {
	if len(src) == 0 {
		return
	}
	lo, hi := minMax(src)
	rng := float32(hi - lo)
	for i, v := range src {
		x := float32(v - lo)
		if rng != 0 {
			x /= rng
		}
		dst[i] = uint8(x * 255)
	}
}

// toNRGBA converts one HWC image (c 1 or 3) to an opaque NRGBA.
func toNRGBA(src []uint8, h, w, c int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for p := 0; p < h*w; p++ {
		d := img.Pix[4*p : 4*p+4]
		if c == 1 {
			d[0], d[1], d[2] = src[p], src[p], src[p]
		} else {
			d[0], d[1], d[2] = src[3*p], src[3*p+1], src[3*p+2]
		}
		d[3] = 255
	}
	return img
}

// writeAtomic writes path through atomicfile: renamed into place only when
// complete.
func writeAtomic(path string, write func(io.Writer) error) error {
	return atomicfile.Write(path, write)
}
