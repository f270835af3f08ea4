package graph

import (
	"fmt"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Regularizer is Keras's L1L2 weight penalty, added to the loss as Keras 3
// does (keras/src/regularizers/regularizers.py: l1·Σ|w| + l2·Σw²; the
// trainer sums every layer's penalty into the loss it reports and
// differentiates, keras/src/trainers/trainer.py compute_loss). Configured
// as kernel_regularizer: {l2: 1e-4} (or l1, or both).
type Regularizer struct {
	L1 float64 `mapstructure:"l1"`
	L2 float64 `mapstructure:"l2"`
}

func (r *Regularizer) check(key string) error {
	if r == nil {
		return nil
	}
	if r.L1 < 0 || r.L2 < 0 {
		return fmt.Errorf("%s: l1 and l2 must be >= 0", key)
	}
	if r.L1 == 0 && r.L2 == 0 {
		return fmt.Errorf("%s: give l1 or l2 (e.g. {l2: 0.0001})", key)
	}
	return nil
}

// keras is the regularizer's Keras serialization (L1, L2 or L1L2).
func (r *Regularizer) keras() any {
	if r == nil {
		return nil
	}
	obj := func(class string, cfg map[string]any) map[string]any {
		return map[string]any{"module": "keras.regularizers", "class_name": class, "config": cfg, "registered_name": nil}
	}
	switch {
	case r.L1 == 0:
		return obj("L2", map[string]any{"l2": r.L2})
	case r.L2 == 0:
		return obj("L1", map[string]any{"l1": r.L1})
	}
	return obj("L1L2", map[string]any{"l1": r.L1, "l2": r.L2})
}

// penalty adds the loss term for w and its gradient.
func (r *Regularizer) penalty(s *op.Scope, w tf.Output) (loss, grad tf.Output) {
	f := func(v float64) tf.Output { return op.Const(s.SubScope("Const"), float32(v)) }
	all := op.Range(s.SubScope("Range"), op.Const(s.SubScope("zero"), int32(0)), op.Rank(s.SubScope("Rank"), w), op.Const(s.SubScope("one"), int32(1)))
	var terms, grads []tf.Output
	if r.L1 != 0 {
		terms = append(terms, op.Mul(s.SubScope("Mul"), f(r.L1), op.Sum(s.SubScope("Sum"), op.Abs(s.SubScope("Abs"), w), all)))
		grads = append(grads, op.Mul(s.SubScope("Mul"), f(r.L1), op.Sign(s.SubScope("Sign"), w)))
	}
	if r.L2 != 0 {
		terms = append(terms, op.Mul(s.SubScope("Mul"), f(r.L2), op.Sum(s.SubScope("Sum"), op.Square(s.SubScope("Square"), w), all)))
		grads = append(grads, op.Mul(s.SubScope("Mul"), f(2*r.L2), w))
	}
	if len(terms) == 1 {
		return terms[0], grads[0]
	}
	return op.AddV2(s.SubScope("AddV2"), terms[0], terms[1]), op.AddV2(s.SubScope("AddV2"), grads[0], grads[1])
}
