package augment

import (
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/internal/cifartest"
)

// parityCount is how many real CIFAR-10 test images the parity test uses.
const parityCount = 64

// parityImages returns the first parityCount images of the real CIFAR-10
// test set (HWC), fetched through the dataset chain into the cache.
func parityImages(t *testing.T) (imgs []uint8, n, h, w, c int) {
	t.Helper()
	set := cifartest.Real(t)
	s := set.Test.Slice(0, parityCount)
	return s.Images, s.Len(), s.H, s.W, s.C
}
