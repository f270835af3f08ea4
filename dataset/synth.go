package dataset

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// SyntheticMarker is written into a synthetic set's directory; VerifyLocal
// never MD5-checks a directory holding it (its batches may have the
// official size without being CIFAR-10).
const SyntheticMarker = "SYNTHETIC"

// synthPalette tints each class (RGB offsets), so colour alone separates
// the classes; a bright horizontal band at rows 3c..3c+2 separates them too.
var synthPalette = [10][3]int{
	{120, 0, 0}, {0, 120, 0}, {0, 0, 120}, {120, 120, 0}, {120, 0, 120},
	{0, 120, 120}, {120, 60, 0}, {60, 0, 120}, {0, 60, 120}, {90, 90, 90},
}

// SynthImage renders a synthetic image of class c (0..9) with noise from
// r into img (32×32×3 HWC): uniform noise in [0, 64), the class tint and
// the class band. A linear model learns these classes within an epoch.
func SynthImage(img []uint8, c int, r *rand.Rand) {
	for y := range Height {
		band := 0
		if y/3 == c {
			band = 100
		}
		for x := range Width {
			for ch := range Channels {
				v := r.IntN(64) + synthPalette[c][ch] + band
				img[(y*Width+x)*Channels+ch] = uint8(min(v, 255))
			}
		}
	}
}

// WriteSynthetic writes a learnable CIFAR-format set of train and test
// images (10 classes, balanced, in seeded random order) to dir, in the
// official binary layout (files directly in dir), plus SyntheticMarker.
// The same (train, test, seed) always writes the same bytes. A non-empty
// dir without the marker is refused: it may hold real CIFAR-10, which the
// set would overwrite and mark synthetic (switching off its MD5 checks).
func WriteSynthetic(dir string, train, test int, seed int64) error {
	if train < 0 || test < 0 {
		return fmt.Errorf("synthetic set: train %d and test %d must not be negative", train, test)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, SyntheticMarker)); err != nil {
			return fmt.Errorf("synthetic set: %s is not empty and holds no %s marker, so it was not written by pipeline data synth: choose a new or empty directory", dir, SyntheticMarker)
		}
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	gen := func(n int) *Split {
		s := &Split{Images: make([]uint8, n*Height*Width*Channels), Labels: make([]uint8, n), H: Height, W: Width, C: Channels}
		for i := range n {
			s.Labels[i] = uint8(i % 10)
		}
		r.Shuffle(n, func(i, j int) { s.Labels[i], s.Labels[j] = s.Labels[j], s.Labels[i] })
		for i := range n {
			SynthImage(s.Image(i), int(s.Labels[i]), r)
		}
		return s
	}
	tr, te := gen(train), gen(test)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return writeError(dir, err)
	}
	marker := fmt.Sprintf("synthetic CIFAR-format set: train %d, test %d, seed %d (pipeline data synth)\n", train, test, seed)
	if err := writeFileAtomic(filepath.Join(dir, SyntheticMarker), []byte(marker)); err != nil {
		return err
	}
	return WriteDir(dir, tr, te, OfficialClassNames())
}
