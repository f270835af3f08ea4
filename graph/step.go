package graph

import (
	"fmt"

	tf "github.com/wamuir/graft/tensorflow"
)

// StepResult is what one batch yields: the mean loss and the number of
// correctly classified images.
type StepResult struct {
	Loss    float64
	Correct int
	N       int
}

func (m *Model) batchFeeds(images, labels []uint8, n int) (map[tf.Output]*tf.Tensor, error) {
	in := m.Net.Input.Out
	if len(images) != n*in.Size() {
		return nil, fmt.Errorf("batch of %d images holds %d bytes, want %d", n, len(images), n*in.Size())
	}
	it, err := Uint8Tensor(images, n, in[0], in[1], in[2])
	if err != nil {
		return nil, err
	}
	feeds := map[tf.Output]*tf.Tensor{m.images: it}
	if labels != nil {
		if len(labels) != n {
			return nil, fmt.Errorf("batch of %d images has %d labels", n, len(labels))
		}
		l := make([]int32, n)
		for i, v := range labels {
			if int(v) >= m.opts.Classes {
				return nil, fmt.Errorf("label %d at batch position %d is not below %d classes", v, i, m.opts.Classes)
			}
			l[i] = int32(v)
		}
		lt, err := tf.NewTensor(l)
		if err != nil {
			return nil, err
		}
		feeds[m.labels] = lt
	}
	return feeds, nil
}

// TrainStep runs one optimiser step on a uint8 NHWC batch of n images. The
// dropout masks are drawn from (seed, step).
func (m *Model) TrainStep(images, labels []uint8, n int, seed, step int64) (StepResult, error) {
	feeds, err := m.batchFeeds(images, labels, n)
	if err != nil {
		return StepResult{}, err
	}
	st, err := tf.NewTensor([]int64{seed, step})
	if err != nil {
		return StepResult{}, err
	}
	feeds[m.dropSeed] = st
	if err := m.feedRate(feeds, step); err != nil {
		return StepResult{}, err
	}
	out, err := m.sess.Run(feeds, []tf.Output{m.loss, m.correct}, []*tf.Operation{m.trainOp})
	if err != nil {
		return StepResult{}, fmt.Errorf("train step: %s", FirstLine(err))
	}
	return StepResult{Loss: scalarFloat(out[0]), Correct: int(TensorValue(out[1]).(int32)), N: n}, nil
}

// TestStep computes loss and correct predictions without dropout or update.
func (m *Model) TestStep(images, labels []uint8, n int) (StepResult, error) {
	r, _, err := m.TestStepProbs(images, labels, n, false)
	return r, err
}

// TestStepProbs is TestStep that also returns the model output
// (n×classes) when withProbs is set, from the same forward pass.
func (m *Model) TestStepProbs(images, labels []uint8, n int, withProbs bool) (StepResult, []float32, error) {
	feeds, err := m.batchFeeds(images, labels, n)
	if err != nil {
		return StepResult{}, nil, err
	}
	fetch := []tf.Output{m.evalLoss, m.evalCorrect}
	if withProbs {
		fetch = append(fetch, m.evalProbs)
	}
	out, err := m.sess.Run(feeds, fetch, nil)
	if err != nil {
		return StepResult{}, nil, fmt.Errorf("test step: %s", FirstLine(err))
	}
	r := StepResult{Loss: scalarFloat(out[0]), Correct: int(TensorValue(out[1]).(int32)), N: n}
	if !withProbs {
		return r, nil, nil
	}
	a, err := ToArray(out[2])
	return r, a.Data, err
}

// PredictBatchTTA is PredictBatch with flip test-time augmentation (the
// mean of the outputs on the images and their mirror images).
func (m *Model) PredictBatchTTA(images []uint8, n int) ([]float32, error) {
	feeds, err := m.batchFeeds(images, nil, n)
	if err != nil {
		return nil, err
	}
	out, err := m.sess.Run(feeds, []tf.Output{m.evalProbsTTA}, nil)
	if err != nil {
		return nil, fmt.Errorf("predict: %s", FirstLine(err))
	}
	a, err := ToArray(out[0])
	return a.Data, err
}

// PredictBatch returns the model output (class probabilities after a final
// softmax) for n images, row-major n×classes.
func (m *Model) PredictBatch(images []uint8, n int) ([]float32, error) {
	feeds, err := m.batchFeeds(images, nil, n)
	if err != nil {
		return nil, err
	}
	out, err := m.sess.Run(feeds, []tf.Output{m.evalProbs}, nil)
	if err != nil {
		return nil, fmt.Errorf("predict: %s", FirstLine(err))
	}
	a, err := ToArray(out[0])
	return a.Data, err
}

// Probe runs the training path once on a batch, without updating anything,
// and returns the logits, the loss and the gradient of every weight (in
// Weights order). Parity tests compare these with Keras.
func (m *Model) Probe(images, labels []uint8, n int, seed, step int64) (logits Array, loss float64, grads []Array, err error) {
	feeds, err := m.batchFeeds(images, labels, n)
	if err != nil {
		return Array{}, 0, nil, err
	}
	st, err := tf.NewTensor([]int64{seed, step})
	if err != nil {
		return Array{}, 0, nil, err
	}
	feeds[m.dropSeed] = st
	fetch := append([]tf.Output{m.logits, m.loss}, m.grads...)
	out, err := m.sess.Run(feeds, fetch, nil)
	if err != nil {
		return Array{}, 0, nil, fmt.Errorf("probe: %s", FirstLine(err))
	}
	if logits, err = ToArray(out[0]); err != nil {
		return Array{}, 0, nil, err
	}
	loss = scalarFloat(out[1])
	for _, t := range out[2:] {
		g, err := ToArray(t)
		if err != nil {
			return Array{}, 0, nil, err
		}
		grads = append(grads, g)
	}
	return logits, loss, grads, nil
}

// feedRate feeds the scheduled learning rate of step (the updates done
// before this one), when the optimizer follows a schedule. Under loss
// scaling the updates done are the optimizer's iterations, not step: Keras
// evaluates the schedule at iterations, which a skipped step does not
// advance (keras/src/optimizers/base_optimizer.py,
// _get_current_learning_rate; loss_scale_optimizer.py applies the inner
// optimizer on finite steps only).
func (m *Model) feedRate(feeds map[tf.Output]*tf.Tensor, step int64) error {
	if m.lrVar != nil {
		return nil
	}
	if m.lossScale != nil {
		it, err := m.Iterations()
		if err != nil {
			return err
		}
		step = it
	}
	t, err := tf.NewTensor(float32(Schedule(m.opt).Rate(step)))
	if err != nil {
		return err
	}
	feeds[m.lr] = t
	return nil
}
