package dataset_test

import (
	"math"
	"slices"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/dataset"
	"github.com/cifar-pipeline/cifar-pipeline/internal/cifartest"
)

// TestRealCIFAR10 checks the real data, fetched once through the chain into
// the default cache (skipped under -short).
func TestRealCIFAR10(t *testing.T) {
	set := cifartest.Real(t)
	t.Logf("source %s, dir %s", set.Source, set.Dir)
	if set.Train.Len() != 50000 || set.Test.Len() != 10000 {
		t.Fatalf("%d train, %d test images", set.Train.Len(), set.Test.Len())
	}
	if len(set.Train.Images) != 50000*32*32*3 || set.Train.H != 32 || set.Train.W != 32 || set.Train.C != 3 {
		t.Fatalf("train images: %d bytes of %dx%dx%d", len(set.Train.Images), set.Train.H, set.Train.W, set.Train.C)
	}
	if !slices.Equal(set.ClassNames, dataset.OfficialClassNames()) {
		t.Errorf("class names %v", set.ClassNames)
	}
	for _, c := range []struct {
		split *dataset.Split
		each  int
		first []uint8
	}{
		{set.Train, 5000, []uint8{6, 9, 9, 4, 1, 1, 2, 7, 8, 3}},
		{set.Test, 1000, []uint8{3, 8, 8, 0, 6, 6, 1, 6, 3, 1}},
	} {
		for k, n := range dataset.ClassCounts(c.split, 10) {
			if n != c.each {
				t.Errorf("class %d: %d images, want %d", k, n, c.each)
			}
		}
		if got := c.split.Labels[:len(c.first)]; !slices.Equal(got, c.first) {
			t.Errorf("first labels %v, want %v", got, c.first)
		}
	}
	want := dataset.OfficialMD5()
	for f, sum := range want {
		if set.Verified[f] != sum {
			t.Errorf("%s: verified md5 %q, want %s", f, set.Verified[f], sum)
		}
	}
	mean, std := dataset.ChannelStats(set.Train)
	wantMean, wantStd := [3]float64{0.4914, 0.4822, 0.4465}, [3]float64{0.2470, 0.2435, 0.2616}
	for c := range 3 {
		if math.Abs(mean[c]-wantMean[c]) > 0.0005 || math.Abs(std[c]-wantStd[c]) > 0.0005 {
			t.Errorf("channel %d: mean %.4f std %.4f, want %.4f %.4f", c, mean[c], std[c], wantMean[c], wantStd[c])
		}
	}
	// HWC layout: the first training image (a frog) at its top-left pixel
	// is (59, 62, 63) in the Keras/numpy arrays.
	if got := set.Train.Image(0)[:3]; !slices.Equal(got, []uint8{59, 62, 63}) {
		t.Errorf("train[0] pixel (0,0) = %v, want [59 62 63]", got)
	}
}
