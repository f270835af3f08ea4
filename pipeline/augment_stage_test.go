package pipeline

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/dataset"
)

// TestAugmentStageModernOps: with augment.flip alternate the training data
// built from the config shows every image once each way over epochs 0 and
// 1 (whatever the shuffled order), logs the modern ops, and a run resumed
// mid-epoch (skip) sees the same batches as the uninterrupted epoch.
func TestAugmentStageModernOps(t *testing.T) {
	const n, h, w, c = 40, 8, 6, 3
	r := rand.New(rand.NewPCG(1, 2))
	fit := &dataset.Split{Images: make([]uint8, n*h*w*c), Labels: make([]uint8, n), H: h, W: w, C: c}
	for i := range fit.Images {
		fit.Images[i] = uint8(r.IntN(256))
	}
	cfg := config.Default()
	cfg.Data.ImageShape = []int{h, w, c}
	cfg.Train.BatchSize = 16
	cfg.Augment.Enabled = true
	cfg.Augment.Flip = "alternate"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	data, err := augmentedData(context.Background(), cfg, fit, &log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "augment: flip alternate") {
		t.Fatalf("log lacks the modern ops: %q", log.String())
	}
	drain := func(epoch, skip int) []uint8 {
		it := data.Epoch(context.Background(), epoch, skip)
		defer it.Close()
		var out []uint8
		for {
			b, ok := it.Next()
			if !ok {
				break
			}
			out = append(out, b.Images[:b.N*h*w*c]...)
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	size := h * w * c
	byIndex := func(epoch int) map[int][]uint8 {
		imgs := drain(epoch, 0)
		m := map[int][]uint8{}
		for j, idx := range dataset.EpochOrder(n, cfg.Seed, epoch, true) {
			m[idx] = imgs[j*size : (j+1)*size]
		}
		return m
	}
	e0, e1 := byIndex(0), byIndex(1)
	for i := 0; i < n; i++ {
		orig := fit.Images[i*size : (i+1)*size]
		mir := make([]uint8, size)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				copy(mir[(y*w+x)*c:(y*w+x+1)*c], orig[(y*w+w-1-x)*c:(y*w+w-x)*c])
			}
		}
		if !(slices.Equal(e0[i], orig) && slices.Equal(e1[i], mir)) && !(slices.Equal(e0[i], mir) && slices.Equal(e1[i], orig)) {
			t.Fatalf("image %d: epochs 0 and 1 are not the image and its mirror", i)
		}
	}
	if full, tail := drain(1, 0), drain(1, 1); !slices.Equal(full[16*size:], tail) {
		t.Fatal("resuming epoch 1 at batch 1 gave other bytes than the full epoch")
	}
}
