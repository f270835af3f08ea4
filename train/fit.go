// Package train is the training loop: Keras's fit, evaluate and predict
// over in-memory or streamed batches, driving a compiled graph.Model step
// by step, and the rolling checkpoints a run keeps.
package train

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/cifar-pipeline/cifar-pipeline/callback"
	"github.com/cifar-pipeline/cifar-pipeline/dataset"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/pixels"
)

// Batch is a uint8 NHWC batch of N images with their labels.
type Batch struct {
	Images []uint8
	Labels []uint8
	N      int
}

// BatchIterator yields the batches of one epoch in order.
type BatchIterator interface {
	// Next returns the next batch; ok is false at the end of the epoch or
	// on error (see Err). The batch is valid until the next call.
	Next() (b Batch, ok bool)
	Err() error
	Close()
}

// TrainData is what Fit trains on: a fixed number of samples split into
// batches, in a new order every epoch.
type TrainData interface {
	Len() int
	// Epoch returns the iterator over the batches of an epoch, starting at
	// batch skip (to resume mid-epoch).
	Epoch(ctx context.Context, epoch, skip int) BatchIterator
}

// Arrays is in-memory data, as given to Keras's fit(x, y).
type Arrays struct {
	*pixels.Set
	BatchSize int
	// Shuffle permutes the samples every epoch (Keras: shuffle=True), from
	// (Seed, epoch) alone (dataset.EpochOrder), so a resumed run repeats
	// the order.
	Shuffle bool
	Seed    int64
}

// Epoch implements TrainData.
func (a *Arrays) Epoch(ctx context.Context, epoch, skip int) BatchIterator {
	return &arrayIter{a: a, ctx: ctx, order: dataset.EpochOrder(a.Len(), a.Seed, epoch, a.Shuffle), pos: skip * a.BatchSize,
		buf: Batch{Images: make([]uint8, a.BatchSize*a.ImageSize()), Labels: make([]uint8, a.BatchSize)}}
}

type arrayIter struct {
	a     *Arrays
	ctx   context.Context
	order []int
	pos   int
	buf   Batch
	err   error
}

func (it *arrayIter) Next() (Batch, bool) {
	if it.pos >= len(it.order) {
		return Batch{}, false
	}
	if err := it.ctx.Err(); err != nil {
		it.err = err
		return Batch{}, false
	}
	n := min(it.a.BatchSize, len(it.order)-it.pos)
	sz := it.a.ImageSize()
	for k, idx := range it.order[it.pos : it.pos+n] {
		copy(it.buf.Images[k*sz:(k+1)*sz], it.a.Images[idx*sz:(idx+1)*sz])
		it.buf.Labels[k] = it.a.Labels[idx]
	}
	it.pos += n
	return Batch{Images: it.buf.Images[:n*sz], Labels: it.buf.Labels[:n], N: n}, true
}

func (it *arrayIter) Err() error { return it.err }
func (it *arrayIter) Close()     {}

// EpochLogs are the per-epoch figures Keras's History records.
type EpochLogs struct {
	Epoch       int     `json:"epoch"` // 1-based, as Keras prints it
	Loss        float64 `json:"loss"`
	Accuracy    float64 `json:"accuracy"`
	ValLoss     float64 `json:"val_loss,omitempty"`
	ValAccuracy float64 `json:"val_accuracy,omitempty"`
	HasVal      bool    `json:"has_val"`
	Steps       int     `json:"steps"`
	Images      int     `json:"images"`
	Seconds     float64 `json:"seconds"`
	// LearningRate is the rate of the next update at the epoch's end, as
	// Keras logs learning_rate.
	LearningRate float64 `json:"learning_rate,omitempty"`
	// Stopped says a callback ended training after this epoch.
	Stopped string `json:"stopped,omitempty"`
}

// Progress receives Fit's progress, as Keras's ProgbarLogger does.
type Progress interface {
	BeginEpoch(epoch, epochs, steps int)
	Step(step int, logs EpochLogs)
	EndEpoch(logs EpochLogs)
}

// Options are Keras fit's arguments.
type Options struct {
	BatchSize int
	Epochs    int
	// StepsPerEpoch caps an epoch's steps (0: a full pass, the last partial
	// batch kept).
	StepsPerEpoch int
	// Seed seeds the dropout masks (with the global step).
	Seed int64
	// Validation, when set, is evaluated after every epoch.
	Validation *Arrays
	Progress   Progress
	// Callbacks are the Keras callback equivalents (ReduceLROnPlateau,
	// EarlyStopping, best-only checkpoint) run after each epoch, before
	// OnEpochEnd, so a checkpoint written there holds their state.
	Callbacks callback.List
	// SaveBest writes the weights of an epoch a callback found the best so
	// far (the best-only checkpoint, which also keeps them for
	// RestoreBest).
	SaveBest func(EpochLogs) error
	// RestoreBest loads the weights SaveBest wrote, when EarlyStopping's
	// restore_best_weights asks for them as training ends.
	RestoreBest func() error
	// OnEpochEnd runs after each epoch (checkpoints, logs); an error stops
	// training.
	OnEpochEnd func(EpochLogs) error
}

// StepsPerEpoch is the number of batches an epoch of n samples takes.
func StepsPerEpoch(n, batch, capSteps int) int {
	steps := (n + batch - 1) / batch
	if capSteps > 0 && capSteps < steps {
		steps = capSteps
	}
	return steps
}

// Fit trains the model, continuing from the optimiser's iteration count:
// a model restored from a checkpoint taken mid-epoch resumes at the very
// next batch of that epoch, with the same order and dropout masks. It stops
// after the current step when ctx is cancelled and returns ctx.Err().
func Fit(ctx context.Context, m *graph.Model, data TrainData, o Options) ([]EpochLogs, error) {
	if o.BatchSize < 1 || o.Epochs < 1 {
		return nil, fmt.Errorf("fit: batch size %d and epochs %d must be positive", o.BatchSize, o.Epochs)
	}
	steps := StepsPerEpoch(data.Len(), o.BatchSize, o.StepsPerEpoch)
	if steps == 0 {
		return nil, fmt.Errorf("fit: no training samples")
	}
	it0, err := m.Steps()
	if err != nil {
		return nil, err
	}
	startEpoch, skip := int(it0)/steps, int(it0)%steps
	var history []EpochLogs
	if stoppedEarly(o.Callbacks) {
		startEpoch = o.Epochs // a resumed run a callback had already stopped
	}
	for epoch := startEpoch; epoch < o.Epochs; epoch++ {
		t0 := time.Now()
		logs, err := fitEpoch(ctx, m, data, o, epoch, steps, skip)
		skip = 0
		if err != nil {
			return history, err
		}
		if o.Validation != nil && o.Validation.Len() > 0 {
			if logs.ValLoss, logs.ValAccuracy, err = Evaluate(ctx, m, o.Validation); err != nil {
				return history, err
			}
			logs.HasVal = true
		}
		logs.Seconds = time.Since(t0).Seconds()
		if err := m.SetEpoch(int64(epoch + 1)); err != nil {
			return history, err
		}
		if logs.LearningRate, err = m.LearningRate(); err != nil {
			return history, err
		}
		if err := runCallbacks(m, o, epoch, &logs); err != nil {
			return history, err
		}
		if o.Progress != nil {
			o.Progress.EndEpoch(logs)
		}
		history = append(history, logs)
		if o.OnEpochEnd != nil {
			if err := o.OnEpochEnd(logs); err != nil {
				return history, err
			}
		}
		if logs.Stopped != "" {
			break
		}
	}
	if o.Callbacks.OnTrainEnd().RestoreBestWeights && o.RestoreBest != nil {
		if err := o.RestoreBest(); err != nil {
			return history, err
		}
	}
	// As Keras's fit ends (finalize_variable_values): with use_ema the
	// weights become their moving averages, for evaluation and export.
	if err := m.UseAverages(); err != nil {
		return history, err
	}
	return history, nil
}

// runCallbacks gives the callbacks the epoch's logs, as Keras's
// on_epoch_end sees them (float32 values), and carries out what they ask.
func runCallbacks(m *graph.Model, o Options, epoch int, logs *EpochLogs) error {
	if len(o.Callbacks) == 0 {
		return nil
	}
	f := func(x float64) float64 { return float64(float32(x)) }
	in := callback.Logs{"loss": f(logs.Loss), "accuracy": f(logs.Accuracy), "learning_rate": f(logs.LearningRate)}
	if logs.HasVal {
		in["val_loss"], in["val_accuracy"] = f(logs.ValLoss), f(logs.ValAccuracy)
	}
	a, err := o.Callbacks.OnEpochEnd(epoch, in)
	if err != nil {
		return err
	}
	if a.SaveBest || a.KeepBestWeights {
		if o.SaveBest == nil {
			return fmt.Errorf("epoch %d: a callback asks to keep the best weights, but nothing saves them", epoch+1)
		}
		if err := o.SaveBest(*logs); err != nil {
			return err
		}
	}
	if a.SetLearningRate != nil {
		if err := m.SetLearningRate(*a.SetLearningRate); err != nil {
			return err
		}
	}
	if a.Stop {
		logs.Stopped = a.Reason
		if logs.Stopped == "" {
			logs.Stopped = "stopped by a callback"
		}
	}
	return nil
}

// stoppedEarly reports whether an EarlyStopping (restored from a
// checkpoint) had already stopped training.
func stoppedEarly(l callback.List) bool {
	for _, c := range l {
		if e, ok := c.(*callback.EarlyStopping); ok && e.StoppedEpoch() > 0 {
			return true
		}
	}
	return false
}

func fitEpoch(ctx context.Context, m *graph.Model, data TrainData, o Options, epoch, steps, skip int) (EpochLogs, error) {
	logs := EpochLogs{Epoch: epoch + 1, Steps: steps}
	if o.Progress != nil {
		o.Progress.BeginEpoch(epoch+1, o.Epochs, steps)
	}
	it := data.Epoch(ctx, epoch, skip)
	defer it.Close()
	var lossSum float64
	var correct int
	for step := skip; step < steps; step++ {
		if err := ctx.Err(); err != nil {
			return logs, err
		}
		b, ok := it.Next()
		if !ok {
			if err := it.Err(); err != nil {
				return logs, err
			}
			return logs, fmt.Errorf("fit: epoch %d ended after %d of %d batches", epoch+1, step, steps)
		}
		r, err := m.TrainStep(b.Images, b.Labels, b.N, o.Seed, int64(epoch*steps+step))
		if err != nil {
			return logs, fmt.Errorf("epoch %d step %d: %w", epoch+1, step+1, err)
		}
		releaseTensors(step)
		lossSum += r.Loss * float64(r.N)
		correct += r.Correct
		logs.Images += r.N
		logs.Loss = lossSum / float64(logs.Images)
		logs.Accuracy = float64(correct) / float64(logs.Images)
		if o.Progress != nil {
			o.Progress.Step(step+1, logs)
		}
	}
	return logs, nil
}

// Evaluate returns the mean loss and accuracy over data, in batches of
// data.BatchSize, in order, without dropout (Keras's evaluate).
func Evaluate(ctx context.Context, m *graph.Model, data *Arrays) (loss, accuracy float64, err error) {
	loss, accuracy, _, err = evaluate(ctx, m, data, false)
	return loss, accuracy, err
}

// EvaluatePredict is Evaluate that also returns the model output for every
// sample (n×classes, row-major), from the same forward passes.
func EvaluatePredict(ctx context.Context, m *graph.Model, data *Arrays) (loss, accuracy float64, probs []float32, err error) {
	return evaluate(ctx, m, data, true)
}

func evaluate(ctx context.Context, m *graph.Model, data *Arrays, withProbs bool) (loss, accuracy float64, probs []float32, err error) {
	n := data.Len()
	if n == 0 {
		return 0, 0, nil, fmt.Errorf("evaluate: no samples")
	}
	sz := data.ImageSize()
	var lossSum float64
	var correct int
	for lo := 0; lo < n; lo += data.BatchSize {
		if err := ctx.Err(); err != nil {
			return 0, 0, nil, err
		}
		hi := min(lo+data.BatchSize, n)
		r, p, err := m.TestStepProbs(data.Images[lo*sz:hi*sz], data.Labels[lo:hi], hi-lo, withProbs)
		if err != nil {
			return 0, 0, nil, err
		}
		releaseTensors(lo / data.BatchSize)
		lossSum += r.Loss * float64(r.N)
		correct += r.Correct
		probs = append(probs, p...)
	}
	return lossSum / float64(n), float64(correct) / float64(n), probs, nil
}

// PredictTTA is Predict with flip test-time augmentation: for each image
// the mean of the outputs on it and on its mirror image.
func PredictTTA(ctx context.Context, m *graph.Model, images []uint8, n, batchSize int) ([]float32, error) {
	return predict(ctx, m, images, n, batchSize, m.PredictBatchTTA)
}

// Predict returns the model output for n images (n×classes, row-major), in
// batches of batchSize.
func Predict(ctx context.Context, m *graph.Model, images []uint8, n, batchSize int) ([]float32, error) {
	return predict(ctx, m, images, n, batchSize, m.PredictBatch)
}

func predict(ctx context.Context, m *graph.Model, images []uint8, n, batchSize int, batch func([]uint8, int) ([]float32, error)) ([]float32, error) {
	sz := m.Net.Input.Out.Size()
	var out []float32
	for lo := 0; lo < n; lo += batchSize {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+batchSize, n)
		p, err := batch(images[lo*sz:hi*sz], hi-lo)
		if err != nil {
			return nil, err
		}
		releaseTensors(lo / batchSize)
		out = append(out, p...)
	}
	return out, nil
}

// releaseTensors runs the Go garbage collector every few steps. Every step
// allocates its feed and fetch tensors in C memory, which graft frees in
// finalizers; the Go heap barely grows meanwhile, so without this the GC
// (and the finalizers) would run rarely and the C memory would pile up to
// gigabytes over a run. A collection of our small, pointer-free heap costs
// well under a millisecond.
func releaseTensors(step int) {
	if step%8 == 7 {
		runtime.GC()
	}
}
