package imagefile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/image/bmp"

	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
)

// Quadrant colours of the test picture: TL red, TR green, BL blue, BR yellow.
var quad = [4]color.NRGBA{{255, 0, 0, 255}, {0, 200, 0, 255}, {0, 0, 255, 255}, {250, 250, 0, 255}}

// quadrants is a w×h picture whose four quadrants have the quad colours.
func quadrants(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			q := 0
			if x >= w/2 {
				q++
			}
			if y >= h/2 {
				q += 2
			}
			img.SetNRGBA(x, y, quad[q])
		}
	}
	return img
}

func encode(t *testing.T, format string, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&buf, img)
	case "jpeg":
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95})
	case "gif":
		err = gif.Encode(&buf, img, nil)
	case "bmp":
		err = bmp.Encode(&buf, img)
	default:
		t.Fatalf("no Go encoder for %s", format)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func pixel(p []uint8, w, x, y int) [3]int {
	i := (y*w + x) * 3
	return [3]int{int(p[i]), int(p[i+1]), int(p[i+2])}
}

func near(a [3]int, c color.NRGBA, tol int) bool {
	d := func(x int, y uint8) bool { v := x - int(y); return v <= tol && v >= -tol }
	return d(a[0], c.R) && d(a[1], c.G) && d(a[2], c.B)
}

// checkQuadrants asserts the quadrant colours survive at the quadrant centres.
func checkQuadrants(t *testing.T, p []uint8, h, w, tol int) {
	t.Helper()
	if len(p) != h*w*3 {
		t.Fatalf("len = %d, want %d", len(p), h*w*3)
	}
	pts := [4][2]int{{w / 4, h / 4}, {3 * w / 4, h / 4}, {w / 4, 3 * h / 4}, {3 * w / 4, 3 * h / 4}}
	for q, pt := range pts {
		if got := pixel(p, w, pt[0], pt[1]); !near(got, quad[q], tol) {
			t.Errorf("quadrant %d at %v = %v, want ≈%v", q, pt, got, quad[q])
		}
	}
}

func TestLoadFormats(t *testing.T) {
	dir := t.TempDir()
	src := quadrants(128, 96) // 4:3, centre-cropped to square
	for _, tc := range []struct {
		format string
		tol    int
	}{{"png", 2}, {"jpeg", 12}, {"gif", 8}, {"bmp", 2}} {
		t.Run(tc.format, func(t *testing.T) {
			// Misleading extension: the format is sniffed from content.
			p := writeFile(t, filepath.Join(dir, "img_"+tc.format+".dat"), encode(t, tc.format, src))
			got, err := Load(p, 32, 32)
			if err != nil {
				t.Fatal(err)
			}
			checkQuadrants(t, got, 32, 32, tc.tol)
			// Non-square target.
			got, err = Load(p, 16, 24)
			if err != nil {
				t.Fatal(err)
			}
			checkQuadrants(t, got, 16, 24, tc.tol)
		})
	}
}

func TestLoadAlphaOnWhite(t *testing.T) {
	img := quadrants(64, 64)
	for y := 0; y < 32; y++ { // top half fully transparent
		for x := 0; x < 64; x++ {
			img.SetNRGBA(x, y, color.NRGBA{0, 0, 0, 0})
		}
	}
	for y := 32; y < 64; y++ { // bottom-left half-transparent blue
		for x := 0; x < 32; x++ {
			img.SetNRGBA(x, y, color.NRGBA{0, 0, 255, 128})
		}
	}
	p := writeFile(t, filepath.Join(t.TempDir(), "a.png"), encode(t, "png", img))
	got, err := Load(p, 32, 32)
	if err != nil {
		t.Fatal(err)
	}
	white := color.NRGBA{255, 255, 255, 255}
	if px := pixel(got, 32, 8, 8); !near(px, white, 1) {
		t.Errorf("transparent pixel = %v, want white", px)
	}
	if px := pixel(got, 32, 8, 24); !near(px, color.NRGBA{127, 127, 255, 255}, 2) {
		t.Errorf("half-transparent blue over white = %v, want ≈(127,127,255)", px)
	}
	if px := pixel(got, 32, 24, 24); !near(px, quad[3], 2) {
		t.Errorf("opaque pixel = %v, want %v", px, quad[3])
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	good := encode(t, "png", quadrants(40, 40))
	jpg := encode(t, "jpeg", quadrants(40, 40))
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"notes.txt", []byte("hello, this is not an image\n"), "notes.txt: not an image (unknown format)"},
		{"empty.png", nil, "empty.png: not an image (unknown format)"},
		{"trunc.png", good[:len(good)/2], "trunc.png: corrupt png image"},
		{"header.png", good[:20], "header.png: corrupt png image"},
		{"trunc.jpg", jpg[:len(jpg)/3], "trunc.jpg: corrupt jpeg image"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, filepath.Join(dir, tc.name), tc.data)
			_, err := Load(p, 32, 32)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Fatalf("err = %q, want one line containing %q", msg, tc.want)
			}
		})
	}
	_, err := Load(filepath.Join(dir, "missing.png"), 32, 32)
	if err == nil || !strings.Contains(err.Error(), "missing.png: cannot read: no such file") {
		t.Fatalf("missing file: %v", err)
	}
	_, err = Load(dir, 32, 32)
	if err == nil || !strings.Contains(err.Error(), dir+": cannot read") {
		t.Fatalf("directory: %v", err)
	}
	p := writeFile(t, filepath.Join(dir, "ok.png"), good)
	if _, err := Load(p, 0, 32); err == nil {
		t.Fatal("zero height accepted")
	}
}

func TestLoadRefusesHugeCanvas(t *testing.T) {
	// A PNG whose IHDR declares 20000×20000 pixels (and no pixel data): it
	// must be refused from the header alone.
	p := writeFile(t, filepath.Join(t.TempDir(), "bomb.png"), pngHeader(20000, 20000))
	_, err := Load(p, 32, 32)
	if err == nil || !strings.Contains(err.Error(), "bomb.png: png image too large (20000x20000") {
		t.Fatalf("err = %v", err)
	}
	// Issue 14 case 8: a 1,000,000×1 strip is within the pixel count but
	// its cover-resize is not; refused from the header by the side limit.
	p = writeFile(t, filepath.Join(t.TempDir(), "strip.png"), pngHeader(1_000_000, 1))
	_, err = Load(p, 32, 32)
	if err == nil || !strings.Contains(err.Error(), "strip.png: png image too large (1000000x1") || !strings.Contains(err.Error(), "16384 pixels a side") {
		t.Fatalf("err = %v", err)
	}
}

// TestLoadRefusesNonRegular: issue 14 case 8. A FIFO is refused at once
// (opening it would block for a writer), a device too, and a 5 GB sparse
// file is refused by its size without being read.
func TestLoadRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.png")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sparse := filepath.Join(dir, "sparse.png")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(5 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, tc := range []struct{ path, want string }{
		{fifo, "pipe.png: not a regular file (a named pipe)"},
		{"/dev/zero", "/dev/zero: not a regular file (a character device)"},
		{sparse, "sparse.png: 5368709120 bytes, over the 256 MiB limit"},
	} {
		_, err := Load(tc.path, 32, 32)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.path, err, tc.want)
		}
	}
}

// pngHeader is a PNG signature and an IHDR declaring w×h 8-bit grey pixels,
// with no pixel data.
func pngHeader(w, h uint32) []byte {
	ihdr := make([]byte, 17)
	copy(ihdr, "IHDR")
	binary.BigEndian.PutUint32(ihdr[4:], w)
	binary.BigEndian.PutUint32(ihdr[8:], h)
	ihdr[12], ihdr[13] = 8, 0 // 8-bit grey
	var buf bytes.Buffer
	buf.WriteString("\x89PNG\r\n\x1a\n")
	binary.Write(&buf, binary.BigEndian, uint32(13))
	buf.Write(ihdr)
	binary.Write(&buf, binary.BigEndian, crc32.ChecksumIEEE(ihdr))
	return buf.Bytes()
}

func TestWalk(t *testing.T) {
	dir := t.TempDir()
	png1 := encode(t, "png", quadrants(8, 8))
	for _, f := range []string{"b.png", "a.jpg", "sub/c.gif", "sub/deeper/d.txt", ".hidden.png", ".git/x.png", "sub/.cache/y.png"} {
		writeFile(t, filepath.Join(dir, f), png1)
	}
	if err := os.Symlink(filepath.Join(dir, "b.png"), filepath.Join(dir, "link.png")); err != nil {
		t.Fatal(err)
	}
	explicit := writeFile(t, filepath.Join(t.TempDir(), ".explicit.png"), png1)
	missing := filepath.Join(dir, "nope.png")
	got, err := Walk([]string{explicit, dir, missing, filepath.Join(dir, "b.png")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		explicit,
		filepath.Join(dir, "a.jpg"),
		filepath.Join(dir, "b.png"),
		filepath.Join(dir, "link.png"),
		filepath.Join(dir, "sub/c.gif"),
		filepath.Join(dir, "sub/deeper/d.txt"),
		missing,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Walk =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestWalkUnreadableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can read any directory")
	}
	dir := t.TempDir()
	sub := filepath.Join(dir, "locked")
	if err := os.Mkdir(sub, 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(sub, 0o755)
	if _, err := Walk([]string{dir}); err == nil || !strings.Contains(err.Error(), "locked: cannot read directory") {
		t.Fatalf("err = %v", err)
	}
}

// The Python side writes WebP (Go has no encoder) and an EXIF-rotated JPEG,
// and computes Pillow's centre-crop + Lanczos reduction of a photo-like
// picture as a reference for the resize.
const pyImages = `
import sys, json, numpy as np
from PIL import Image, ImageOps
d = sys.argv[1]
w, h = 128, 96
a = np.zeros((h, w, 3), np.uint8)
a[:h//2, :w//2] = (255, 0, 0); a[:h//2, w//2:] = (0, 200, 0)
a[h//2:, :w//2] = (0, 0, 255); a[h//2:, w//2:] = (250, 250, 0)
Image.fromarray(a).save(d + "/q.webp", lossless=True)
Image.fromarray(a).save(d + "/q_lossy.webp", quality=90)
rgba = np.dstack([a, np.full((h, w), 255, np.uint8)]); rgba[:h//2] = 0
Image.fromarray(rgba, "RGBA").save(d + "/alpha.webp", lossless=True)
# Stored rotated 90° clockwise with EXIF orientation 8 (rotate 90° CW to view... i.e. viewer undoes it).
rot = Image.fromarray(a).transpose(Image.Transpose.ROTATE_270)
exif = Image.Exif(); exif[0x0112] = 8
rot.save(d + "/exif.jpg", quality=95, exif=exif.tobytes())
# Photo-like smooth picture with fine detail.
yy, xx = np.mgrid[0:300, 0:400].astype(np.float64)
photo = np.stack([128 + 100*np.sin(xx/37.0)*np.cos(yy/23.0), 128 + 90*np.sin((xx+yy)/51.0), 128 + 60*np.cos(xx/13.0 + yy/71.0)], -1)
photo = np.clip(photo, 0, 255).astype(np.uint8)
Image.fromarray(photo).save(d + "/photo.png")
ref = ImageOps.fit(Image.fromarray(photo), (32, 32), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
print(json.dumps(np.asarray(ref).reshape(-1).tolist()))
`

func TestWebPExifAndPillowReference(t *testing.T) {
	dir := t.TempDir()
	var ref []int
	if err := json.Unmarshal(testenv.RunPython(t, pyImages, dir), &ref); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file string
		tol  int
	}{{"q.webp", 2}, {"q_lossy.webp", 24}, {"exif.jpg", 12}} {
		got, err := Load(filepath.Join(dir, tc.file), 32, 32)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(tc.file, func(t *testing.T) { checkQuadrants(t, got, 32, 32, tc.tol) })
	}
	got, err := Load(filepath.Join(dir, "alpha.webp"), 32, 32)
	if err != nil {
		t.Fatal(err)
	}
	if px := pixel(got, 32, 8, 8); !near(px, color.NRGBA{255, 255, 255, 255}, 1) {
		t.Errorf("transparent webp pixel = %v, want white", px)
	}

	got, err = Load(filepath.Join(dir, "photo.png"), 32, 32)
	if err != nil {
		t.Fatal(err)
	}
	if len(ref) != len(got) {
		t.Fatalf("reference has %d values, Load %d", len(ref), len(got))
	}
	var sum, maxd int
	for i := range got {
		d := int(got[i]) - ref[i]
		if d < 0 {
			d = -d
		}
		sum += d
		maxd = max(maxd, d)
	}
	mean := float64(sum) / float64(len(got))
	t.Logf("vs Pillow ImageOps.fit(LANCZOS): mean |diff| %.2f, max %d", mean, maxd)
	if mean > 2 || maxd > 16 {
		t.Errorf("Load differs from Pillow's Lanczos fit: mean |diff| %.2f, max %d", mean, maxd)
	}
}
