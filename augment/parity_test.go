package augment

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
)

// kerasApplyScript runs Keras's ImageDataGenerator.apply_transform on every
// image for every parameter row, writing float32 results.
const kerasApplyScript = `
import json, os, sys
import numpy as np
from keras.src.legacy.preprocessing.image import ImageDataGenerator
imgs_path, rows_path, out_path, n, h, w, c = sys.argv[1:8]
n, h, w, c = int(n), int(h), int(w), int(c)
imgs = np.fromfile(imgs_path, dtype=np.uint8).reshape(n, h, w, c).astype(np.float32)
rows = json.load(open(rows_path))
out = np.empty((len(rows), n, h, w, c), dtype=np.float32)
for r, row in enumerate(rows):
    gen = ImageDataGenerator(fill_mode=row["fill_mode"], cval=row["cval"])
    t = row["t"]
    params = {"theta": t["Theta"], "tx": t["Tx"], "ty": t["Ty"], "shear": t["Shear"],
              "zx": t["Zx"], "zy": t["Zy"],
              "flip_horizontal": t["FlipHorizontal"], "flip_vertical": t["FlipVertical"],
              "channel_shift_intensity": t["ChannelShift"] or None,
              "brightness": t["Brightness"] or None}
    for i in range(n):
        out[r, i] = gen.apply_transform(imgs[i], params)
out.tofile(out_path)
`

type parityRow struct {
	name string
	t    Transform
	mode FillMode
	cval float64
	// control, when set, is a wrong fill mode the comparison must reject.
	control *FillMode
}

func parityTable() []parityRow {
	id := func(t Transform) Transform {
		if t.Zx == 0 {
			t.Zx = 1
		}
		if t.Zy == 0 {
			t.Zy = 1
		}
		return t
	}
	wrap, reflect := FillWrap, FillReflect
	rows := []parityRow{
		{"rotate40_nearest", id(Transform{Theta: 40}), FillNearest, 0, nil},
		{"rotate-25_shift_nearest", id(Transform{Theta: -25, Tx: 3.2, Ty: -5.7}), FillNearest, 0, nil},
		{"zoom_0.8x1.2_nearest", Transform{Zx: 0.8, Zy: 1.2}, FillNearest, 0, nil},
		{"notebook_like_nearest_hflip", Transform{Theta: 38.2, Tx: 6.1, Ty: -6.3, Zx: 1.18, Zy: 0.83, FlipHorizontal: true}, FillNearest, 0, nil},
		{"shear20_rotate10_constant0", id(Transform{Theta: 10, Shear: 20}), FillConstant, 0, nil},
		{"rotate33_zoom_shift_constant127.5", Transform{Theta: 33, Tx: -2.5, Ty: 4.25, Zx: 1.2, Zy: 1.1}, FillConstant, 127.5, nil},
		{"int_shift_constant200", id(Transform{Tx: 3, Ty: -2}), FillConstant, 200, nil},
		{"rotate30_shift_reflect", id(Transform{Theta: 30, Tx: 5.5, Ty: -3.3}), FillReflect, 0, &wrap},
		{"zoom_out_0.7_reflect", Transform{Zx: 0.7, Zy: 0.7, Theta: -12}, FillReflect, 0, nil},
		{"rotate15_shift_wrap", id(Transform{Theta: 15, Tx: 6.5, Ty: -4.25}), FillWrap, 0, &reflect},
		{"zoom_out_0.75x0.9_wrap", Transform{Zx: 0.75, Zy: 0.9, Tx: 1.7}, FillWrap, 0, nil},
		{"vflip_hflip_shift_nearest", id(Transform{Tx: -4.6, Ty: 2.2, FlipHorizontal: true, FlipVertical: true}), FillNearest, 0, nil},
		{"hflip_only", id(Transform{FlipHorizontal: true}), FillNearest, 0, nil},
		{"channel_shift30_rotate", id(Transform{Theta: -20, ChannelShift: 30}), FillNearest, 0, nil},
		{"brightness0.6_rotate", id(Transform{Theta: 8, Brightness: 0.6}), FillNearest, 0, nil},
	}
	// Random combinations of every parameter, cycling through the modes.
	broad := Params{RotationRange: 180, WidthShiftRange: 0.3, HeightShiftRange: 0.3, ShearRange: 30,
		ZoomRange: []float64{0.6, 1.4}, HorizontalFlip: true, VerticalFlip: true}
	smp := newSampler()
	for i := 0; i < 8; i++ {
		mode := FillMode(i % 4)
		rows = append(rows, parityRow{"random" + itoa(i) + "_" + mode.String(), broad.Random(smp.reset(99, domainStream, 0, i), 32, 32), mode, 64, nil})
	}
	return rows
}

func TestKerasParity(t *testing.T) {
	if testing.Short() {
		t.Skip("Keras parity runs Python; skipped in -short mode")
	}
	testenv.Python(t)
	imgs, n, h, w, c := parityImages(t)
	rows := parityTable()

	dir := t.TempDir()
	imgPath := filepath.Join(dir, "images.u8")
	if err := os.WriteFile(imgPath, imgs, 0o644); err != nil {
		t.Fatal(err)
	}
	type jsonRow struct {
		T        Transform `json:"t"`
		FillMode string    `json:"fill_mode"`
		Cval     float64   `json:"cval"`
	}
	var jr []jsonRow
	for _, r := range rows {
		jr = append(jr, jsonRow{r.t, r.mode.String(), r.cval})
	}
	rowsJSON, _ := json.Marshal(jr)
	rowsPath := filepath.Join(dir, "rows.json")
	if err := os.WriteFile(rowsPath, rowsJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	outPath := filepath.Join(dir, "keras.f32")
	testenv.RunPython(t, kerasApplyScript, imgPath, rowsPath, outPath, itoa(n), itoa(h), itoa(w), itoa(c))
	raw, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	size := h * w * c
	if len(raw) != 4*len(rows)*n*size {
		t.Fatalf("keras output has %d bytes, want %d", len(raw), 4*len(rows)*n*size)
	}
	got := make([]uint8, size)
	for ri, row := range rows {
		var sum, maxd float64
		var at string
		for i := 0; i < n; i++ {
			row.t.Apply(got, imgs[i*size:(i+1)*size], h, w, c, row.mode, row.cval)
			for j := 0; j < size; j++ {
				off := 4 * ((ri*n+i)*size + j)
				want := float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[off:])))
				d := math.Abs(float64(got[j]) - want)
				sum += d
				if d > maxd {
					maxd = d
					pix := j / c
					at = "image " + itoa(i) + " row " + itoa(pix/w) + " col " + itoa(pix%w) + " ch " + itoa(j%c)
				}
			}
		}
		mean := sum / float64(n*size)
		if row.control != nil {
			// Negative control: Go with another fill mode must miss Keras.
			var csum, cmax float64
			for i := 0; i < n; i++ {
				row.t.Apply(got, imgs[i*size:(i+1)*size], h, w, c, *row.control, row.cval)
				for j := 0; j < size; j++ {
					off := 4 * ((ri*n+i)*size + j)
					d := math.Abs(float64(got[j]) - float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[off:]))))
					csum += d
					cmax = math.Max(cmax, d)
				}
			}
			t.Logf("%-36s control: Go with %v instead: mean |Δ| %.4f, max |Δ| %.1f", row.name, *row.control, csum/float64(n*size), cmax)
			if csum/float64(n*size) <= 1.0 && cmax <= 8 {
				t.Errorf("%s: the comparison cannot tell %v from %v", row.name, row.mode, *row.control)
			}
		}
		t.Logf("%-36s mean |Δ| %.4f  max |Δ| %.3f at %s", row.name, mean, maxd, at)
		if mean > 1.0 || maxd > 8 {
			t.Errorf("%s: mean |Δ| %.4f (limit 1.0), max |Δ| %.3f (limit 8) at %s", row.name, mean, maxd, at)
		}
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
