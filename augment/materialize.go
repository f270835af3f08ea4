package augment

import (
	"sync"
	"sync/atomic"
)

// MaterializeBytes is the memory Materialize allocates for n images of
// h×w×c with copies augmented copies each (images and labels).
func MaterializeBytes(n, h, w, c, copies int) int64 {
	return int64(n) * int64(copies) * (int64(h)*int64(w)*int64(c) + 1)
}

// Materialize is the notebook's xtas/ytas lists: copies augmented versions
// of every image, image-major (copy j of image i at i·copies+j), without the
// originals. Copy j of image i depends only on (seed, j, i); j plays the
// epoch for the alternate flip, so copies 2k and 2k+1 are mirrored. workers ≤ 0
// means DefaultWorkers(0). It panics if the slice sizes disagree with
// h×w×c (a programming error; Source-checked callers never do).
func Materialize(images, labels []uint8, h, w, c, copies int, p Params, seed int64, workers int) ([]uint8, []uint8) {
	n := len(labels)
	size := h * w * c
	if len(images) != n*size {
		panic("augment: Materialize: images and labels sizes disagree")
	}
	if err := p.checkShape(h, w); err != nil {
		panic("augment: Materialize: " + err.Error())
	}
	if copies <= 0 || n == 0 {
		return nil, nil
	}
	if workers <= 0 {
		workers = DefaultWorkers(0)
	}
	outX := make([]uint8, n*copies*size)
	outY := make([]uint8, n*copies)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			iw := newImageWorker()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				src := images[i*size : (i+1)*size]
				for j := 0; j < copies; j++ {
					o := i*copies + j
					iw.apply(p, outX[o*size:(o+1)*size], src, seed, domainMaterialize, j, i, h, w, c)
					outY[o] = labels[i]
				}
			}
		}()
	}
	wg.Wait()
	return outX, outY
}
