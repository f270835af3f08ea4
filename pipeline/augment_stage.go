package pipeline

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/cifar-pipeline/cifar-pipeline/augment"
	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/dataset"
	"github.com/cifar-pipeline/cifar-pipeline/pixels"
	"github.com/cifar-pipeline/cifar-pipeline/train"
)

// augmentedData feeds Fit from the augmentation stream (a full pass over
// the training set per epoch, augmented by worker goroutines ahead of the
// training step), or, with augment.materialize = K, from the training set
// expanded up front with K augmented copies of every image.
func augmentedData(ctx context.Context, cfg config.Config, fit *dataset.Split, log io.Writer) (train.TrainData, error) {
	p, err := augment.FromConfig(cfg.Augment)
	if err != nil {
		return nil, err
	}
	a := cfg.Augment
	if m := p.ModernSummary(); m != "" {
		fmt.Fprintf(log, "augment: %s, after the ImageDataGenerator transform\n", m)
	}
	if a.Materialize > 0 {
		bytes := augment.MaterializeBytes(fit.Len(), fit.H, fit.W, fit.C, a.Materialize)
		fmt.Fprintf(log, "augment: materialising %d copies of %d images: %.1f MiB more memory\n", a.Materialize, fit.Len(), float64(bytes)/(1<<20))
		imgs, labels := augment.Materialize(fit.Images, fit.Labels, fit.H, fit.W, fit.C, a.Materialize, p, cfg.Seed, a.Workers)
		all := &pixels.Set{Images: slices.Concat(fit.Images, imgs), Labels: slices.Concat(fit.Labels, labels), H: fit.H, W: fit.W, C: fit.C}
		return &train.Arrays{Set: all, BatchSize: cfg.Train.BatchSize, Shuffle: cfg.Train.Shuffle, Seed: cfg.Seed}, nil
	}
	workers := a.Workers
	if workers == 0 {
		workers = augment.DefaultWorkers(cfg.Runtime.IntraOpThreads)
	}
	fmt.Fprintf(log, "augment: streaming with %d workers, %d batches ahead\n", workers, a.QueueBatches)
	return &augmentedStream{
		src: augment.Source{Images: fit.Images, Labels: fit.Labels, H: fit.H, W: fit.W, C: fit.C},
		p:   p, seed: cfg.Seed, batch: cfg.Train.BatchSize, shuffle: cfg.Train.Shuffle,
		workers: workers, queue: a.QueueBatches,
	}, nil
}

// augmentedStream is train.TrainData over augment.Stream. The transform of
// an image depends on (seed, epoch, dataset index) only, so a run resumed
// mid-epoch sees the same augmented batches.
type augmentedStream struct {
	src            augment.Source
	p              augment.Params
	seed           int64
	batch          int
	shuffle        bool
	workers, queue int
}

func (a *augmentedStream) Len() int { return a.src.Len() }

func (a *augmentedStream) Epoch(ctx context.Context, epoch, skip int) train.BatchIterator {
	order := dataset.EpochOrder(a.src.Len(), a.seed, epoch, a.shuffle)
	order = order[min(len(order), skip*a.batch):]
	s, err := augment.NewStream(ctx, a.src, order, a.batch, a.p, a.seed, epoch, a.workers, a.queue)
	return &streamIter{s: s, err: err}
}

type streamIter struct {
	s    *augment.Stream
	prev augment.Batch
	held bool
	err  error
}

func (it *streamIter) Next() (train.Batch, bool) {
	if it.err != nil {
		return train.Batch{}, false
	}
	if it.held {
		it.s.Recycle(it.prev)
		it.held = false
	}
	b, ok := it.s.Next()
	if !ok {
		it.err = it.s.Err()
		return train.Batch{}, false
	}
	it.prev, it.held = b, true
	return train.Batch{Images: b.Images, Labels: b.Labels, N: b.N}, true
}

func (it *streamIter) Err() error { return it.err }

func (it *streamIter) Close() {
	if it.s != nil {
		it.s.Close()
	}
}
