package augment

import (
	"math"
	"math/rand/v2"
)

// naturalImages returns n synthetic h×w×c images with natural-image
// statistics (smooth gradients, blobs with edges, mild texture), so warps
// are exercised on structure rather than on noise.
func naturalImages(n, h, w, c int, seed uint64) []uint8 {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([]uint8, n*h*w*c)
	buf := make([]float64, h*w*c)
	for i := 0; i < n; i++ {
		var base, gx, gy [4]float64
		for k := 0; k < c; k++ {
			base[k] = 40 + 170*r.Float64()
			gx[k] = (r.Float64() - 0.5) * 4
			gy[k] = (r.Float64() - 0.5) * 4
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				for k := 0; k < c; k++ {
					buf[(y*w+x)*c+k] = base[k] + gx[k]*float64(x) + gy[k]*float64(y) + 6*r.NormFloat64()
				}
			}
		}
		for b := 0; b < 4; b++ {
			cx, cy := r.Float64()*float64(w), r.Float64()*float64(h)
			rx, ry := 2+r.Float64()*float64(w)/3, 2+r.Float64()*float64(h)/3
			var col [4]float64
			for k := 0; k < c; k++ {
				col[k] = 255 * r.Float64()
			}
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					dx, dy := (float64(x)-cx)/rx, (float64(y)-cy)/ry
					if dx*dx+dy*dy <= 1 {
						for k := 0; k < c; k++ {
							buf[(y*w+x)*c+k] = 0.3*buf[(y*w+x)*c+k] + 0.7*col[k]
						}
					}
				}
			}
		}
		img := out[i*h*w*c : (i+1)*h*w*c]
		for j, v := range buf {
			img[j] = uint8(math.Max(0, math.Min(255, math.Round(v))))
		}
	}
	return out
}
