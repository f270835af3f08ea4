package augment

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
)

// numpyCropScript applies, per row, numpy's np.pad (mode "reflect" or
// "constant"; checked equal to TensorFlow's tf.pad "REFLECT"/"CONSTANT")
// and the crop window, the flip as x[:, ::-1], and DeVries &
// Taylor's cutout exactly as their util/cutout.py clips it
// (y1 = clip(y − L//2, 0, h), y2 = clip(y + L//2, 0, h)), writing uint8.
const numpyCropScript = `
import json, sys
import numpy as np
import tensorflow as tf
imgs_path, rows_path, out_path, n, h, w, c = sys.argv[1:8]
n, h, w, c = int(n), int(h), int(w), int(c)
imgs = np.fromfile(imgs_path, dtype=np.uint8).reshape(n, h, w, c)
rows = json.load(open(rows_path))
out = np.empty((len(rows), h, w, c), dtype=np.uint8)
for r, row in enumerate(rows):
    p = row["padding"]
    x = imgs[row["image"]]
    if row["mode"] == "reflect":
        x = np.pad(x, ((p, p), (p, p), (0, 0)), mode="reflect")
        t = tf.pad(imgs[row["image"]], [[p, p], [p, p], [0, 0]], mode="REFLECT").numpy()
    else:
        x = np.pad(x, ((p, p), (p, p), (0, 0)), mode="constant", constant_values=row["value"])
        t = tf.pad(imgs[row["image"]], [[p, p], [p, p], [0, 0]], mode="CONSTANT", constant_values=row["value"]).numpy()
    if not np.array_equal(x, t):
        sys.exit("row %d: np.pad and tf.pad differ" % r)
    x = x[row["cy"]:row["cy"] + h, row["cx"]:row["cx"] + w].copy()
    if row["flip"]:
        x = x[:, ::-1].copy()
    L = row["size"]
    for y, xx in zip(row["ys"], row["xs"]):
        y1, y2 = np.clip(y - L // 2, 0, h), np.clip(y + L // 2, 0, h)
        x1, x2 = np.clip(xx - L // 2, 0, w), np.clip(xx + L // 2, 0, w)
        x[y1:y2, x1:x2] = row["cut_value"]
    out[r] = x
out.tofile(out_path)
`

// TestModernNumpyParity crosses the crop (reflect and constant padding,
// every padding from 1 to 31 and the extreme windows), the flip and the
// cutout against numpy on real CIFAR-10 images, byte for byte; the script
// also checks that TensorFlow's tf.pad pads exactly as np.pad does.
func TestModernNumpyParity(t *testing.T) {
	if testing.Short() {
		t.Skip("numpy parity runs Python; skipped in -short mode")
	}
	testenv.Python(t)
	imgs, n, h, w, c := parityImages(t)
	size := h * w * c
	type row struct {
		Image    int    `json:"image"`
		Padding  int    `json:"padding"`
		Mode     string `json:"mode"`
		Value    int    `json:"value"`
		CY       int    `json:"cy"`
		CX       int    `json:"cx"`
		Flip     bool   `json:"flip"`
		Size     int    `json:"size"`
		CutValue int    `json:"cut_value"`
		Ys       []int  `json:"ys"`
		Xs       []int  `json:"xs"`
	}
	var rows []row
	var params []Params
	var draws []Draw
	add := func(img int, p Params, d Draw) {
		rows = append(rows, row{img, p.Crop.Padding, p.Crop.Mode.String(), int(p.Crop.Value), d.CropY, d.CropX, d.Flip,
			p.Cutout.Size, int(p.Cutout.Value), append([]int{}, d.CutY...), append([]int{}, d.CutX...)})
		params, draws = append(params, p), append(draws, d)
	}
	k := 0
	for pad := 1; pad < 32; pad++ {
		for _, mode := range []PadMode{PadReflect, PadConstant} {
			p := Params{Crop: Crop{Padding: pad, Mode: mode, Value: uint8(3 * pad)}, Flip: FlipRandom,
				Cutout: Cutout{Size: 2 * (pad%8 + 1), Count: pad % 3, Value: 250}}
			// The stream's draw for this image, then the four extreme windows.
			add(k%n, p, p.DrawAt(13, pad, k, h, w))
			for _, o := range [][2]int{{0, 0}, {0, 2 * pad}, {2 * pad, 0}, {2 * pad, 2 * pad}} {
				add(k%n, p, Draw{CropY: o[0], CropX: o[1], Flip: o[0] == 0})
			}
			k++
		}
	}
	dir := t.TempDir()
	imgPath, rowsPath, outPath := filepath.Join(dir, "images.u8"), filepath.Join(dir, "rows.json"), filepath.Join(dir, "numpy.u8")
	if err := os.WriteFile(imgPath, imgs, 0o644); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(rows)
	if err := os.WriteFile(rowsPath, js, 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.RunPython(t, numpyCropScript, imgPath, rowsPath, outPath, itoa(n), itoa(h), itoa(w), itoa(c))
	ref, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(ref) != len(rows)*size {
		t.Fatalf("numpy wrote %d bytes, want %d", len(ref), len(rows)*size)
	}
	got := make([]uint8, size)
	for r := range rows {
		i := rows[r].Image
		params[r].ApplyModern(got, imgs[i*size:(i+1)*size], h, w, c, &draws[r])
		if want := ref[r*size : (r+1)*size]; !slices.Equal(got, want) {
			t.Fatalf("row %d %+v: Go differs from numpy", r, rows[r])
		}
	}
	t.Logf("%d crop/flip/cutout rows equal to numpy (np.pad = tf.pad) byte for byte", len(rows))
}
