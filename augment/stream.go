package augment

import (
	"context"
	"fmt"
	"runtime"
	"sync"
)

// Source is a dataset in memory: n images of H×W×C uint8 (NHWC) and one
// label byte per image.
type Source struct {
	Images  []uint8
	Labels  []uint8
	H, W, C int
}

// Len is the number of images.
func (s Source) Len() int { return len(s.Labels) }

func (s Source) check() error {
	if s.H <= 0 || s.W <= 0 || s.C <= 0 {
		return fmt.Errorf("augment: image shape %d×%d×%d: want positive height, width and channels", s.H, s.W, s.C)
	}
	if len(s.Images) != len(s.Labels)*s.H*s.W*s.C {
		return fmt.Errorf("augment: %d image bytes for %d labels of %d×%d×%d: sizes disagree", len(s.Images), len(s.Labels), s.H, s.W, s.C)
	}
	return nil
}

// DefaultWorkers is the worker count when none is configured: the cores
// TensorFlow's intra-op pool does not take (tfThreads 0 means TF takes them
// all), at least 1.
func DefaultWorkers(tfThreads int) int {
	n := runtime.NumCPU()
	if tfThreads <= 0 {
		tfThreads = n
	}
	return max(1, n-tfThreads)
}

// Batch is one augmented batch: N images (NHWC uint8) and their labels.
type Batch struct {
	// Index is the batch's position in the epoch (0, 1, ...).
	Index int
	// Images holds N×H×W×C bytes; Labels N bytes.
	Images []uint8
	Labels []uint8
	// N is the number of images (batch size, or fewer for the last batch).
	N int
}

// Stream produces the augmented batches of one epoch, in order, from worker
// goroutines into a bounded queue. Batch k is the same whatever the worker
// count: image i is transformed by Params.At(seed, epoch, i, H, W) and then,
// if modern ops are on, by ApplyModern with Params.DrawAt(seed, epoch, i,
// H, W). Next,
// Err and Close belong to one consumer goroutine.
type Stream struct {
	src       Source
	order     []int
	batchSize int
	p         Params
	seed      int64
	epoch     int
	nBatches  int

	ctx    context.Context // internal: cancelled by Close or the parent
	parent context.Context
	cancel context.CancelFunc
	jobs   chan int
	slots  []chan Batch
	tokens chan struct{}
	pool   sync.Pool
	wg     sync.WaitGroup

	next   int
	err    error
	closed bool
}

// NewStream starts workers that augment src in the given order (dataset
// indices, one epoch) in batches of batchSize (the last partial batch kept),
// at most queue batches ahead of the consumer. workers ≤ 0 means
// DefaultWorkers(0); queue ≤ 0 means 2·workers. Cancel ctx or call Close to
// stop; Close must be called in any case to release the goroutines.
func NewStream(ctx context.Context, src Source, order []int, batchSize int, p Params, seed int64, epoch, workers, queue int) (*Stream, error) {
	if err := src.check(); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := p.checkShape(src.H, src.W); err != nil {
		return nil, err
	}
	if batchSize <= 0 {
		return nil, fmt.Errorf("augment: batch size %d: want > 0", batchSize)
	}
	for _, i := range order {
		if i < 0 || i >= src.Len() {
			return nil, fmt.Errorf("augment: index %d in the epoch order is outside the %d images", i, src.Len())
		}
	}
	if workers <= 0 {
		workers = DefaultWorkers(0)
	}
	if queue <= 0 {
		queue = 2 * workers
	}
	s := &Stream{
		src: src, order: order, batchSize: batchSize, p: p, seed: seed, epoch: epoch,
		nBatches: (len(order) + batchSize - 1) / batchSize,
		parent:   ctx,
		jobs:     make(chan int),
		slots:    make([]chan Batch, queue),
		tokens:   make(chan struct{}, queue),
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	for i := range s.slots {
		s.slots[i] = make(chan Batch, 1)
	}
	s.wg.Add(1 + workers)
	go s.dispatch()
	for w := 0; w < workers; w++ {
		go s.work()
	}
	return s, nil
}

// Batches is the number of batches in the epoch.
func (s *Stream) Batches() int { return s.nBatches }

// dispatch hands out batch numbers, never more than len(slots) ahead of the
// consumer, so slot k%len(slots) is always free when batch k is started.
func (s *Stream) dispatch() {
	defer s.wg.Done()
	defer close(s.jobs)
	for k := 0; k < s.nBatches; k++ {
		select {
		case s.tokens <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		select {
		case s.jobs <- k:
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *Stream) work() {
	defer s.wg.Done()
	iw := newImageWorker()
	size := s.src.H * s.src.W * s.src.C
	for k := range s.jobs {
		lo := k * s.batchSize
		hi := min(lo+s.batchSize, len(s.order))
		b := s.getBatch(hi - lo)
		b.Index = k
		for j, idx := range s.order[lo:hi] {
			iw.apply(s.p, b.Images[j*size:(j+1)*size], s.src.Images[idx*size:(idx+1)*size], s.seed, domainStream, s.epoch, idx, s.src.H, s.src.W, s.src.C)
			b.Labels[j] = s.src.Labels[idx]
			if j%16 == 15 && s.ctx.Err() != nil {
				break
			}
		}
		// The slot is free (see dispatch) and buffered: this never blocks.
		s.slots[k%len(s.slots)] <- b
	}
}

func (s *Stream) getBatch(n int) Batch {
	size := s.src.H * s.src.W * s.src.C
	if v, ok := s.pool.Get().(*Batch); ok && cap(v.Labels) >= n && cap(v.Images) >= n*size {
		return Batch{Images: v.Images[:n*size], Labels: v.Labels[:n], N: n}
	}
	return Batch{Images: make([]uint8, n*size, s.batchSize*size), Labels: make([]uint8, n, s.batchSize), N: n}
}

// Next returns the next batch in order; false at the end of the epoch or
// after cancellation (then Err says why).
func (s *Stream) Next() (Batch, bool) {
	if s.closed || s.next >= s.nBatches || s.err != nil {
		return Batch{}, false
	}
	select {
	case b := <-s.slots[s.next%len(s.slots)]:
		if s.ctx.Err() != nil { // the batch may be partial
			s.fail()
			return Batch{}, false
		}
		s.next++
		<-s.tokens
		return b, true
	case <-s.ctx.Done():
		s.fail()
		return Batch{}, false
	}
}

func (s *Stream) fail() {
	if err := s.parent.Err(); err != nil {
		s.err = err
	} else {
		s.err = context.Canceled
	}
}

// Recycle gives a batch's buffers back for reuse; b must not be used after.
func (s *Stream) Recycle(b Batch) {
	if b.Images == nil {
		return
	}
	s.pool.Put(&b)
}

// Err is the reason Next stopped before the end of the epoch (the context's
// error), or nil.
func (s *Stream) Err() error { return s.err }

// Close stops the workers and waits for them; it is safe to call twice.
func (s *Stream) Close() {
	if s.closed {
		return
	}
	s.closed = true
	s.cancel()
	s.wg.Wait()
}
