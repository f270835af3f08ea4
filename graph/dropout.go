package graph

import (
	"fmt"
	"math"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Dropout is keras.layers.Dropout: inverted dropout, units kept with
// probability 1−rate and scaled by 1/(1−rate), in training only
// (keras/src/layers/regularization/dropout.py).
type Dropout struct {
	Rate float64 `mapstructure:"rate"`
}

func init() {
	RegisterLayer(Kind{Type: "dropout", Class: "Dropout", New: func() Layer { return &Dropout{} }})
}

func (l *Dropout) Build(in []Shape) (Shape, []Param, error) {
	if l.Rate < 0 || l.Rate >= 1 {
		return nil, nil, fmt.Errorf("rate: %v must be in [0, 1)", l.Rate)
	}
	return in[0], nil, nil
}

// Call draws the mask as a stateless function of the step seed and the
// layer index, so a resumed run draws the same masks. It is drawn as random
// bytes rather than floats: each 32-bit Philox word gives four uint8 (rate
// a multiple of 1/256, as the notebook's 0.25 and 0.5) or two uint16
// draws, and a unit is kept when its draw is at least round(rate·2^bits);
// that costs a quarter (half) of the random words of
// StatelessRandomUniform. The mask, 0 or 1/(1−rate) per unit, is kept for
// the backward pass (dx = dy·mask).
func (l *Dropout) Call(c *Call) tf.Output {
	x := c.In[0]
	if !c.Training || l.Rate == 0 {
		return x
	}
	units := c.InShapes[0].Size()
	seed := op.Add(c.sub("Add"), c.Seed, op.Const(c.sub("Const"), []int64{0, int64(c.Index) * 1_000_003}))
	dt, per, levels := tf.Uint16, 2, 65536.0
	if r := l.Rate * 256; r == math.Round(r) {
		dt, per, levels = tf.Uint8, 4, 256
	}
	words := (units + per - 1) / per
	xShape := op.Shape(c.sub("Shape"), x, op.ShapeOutType(tf.Int32))
	batch := op.Slice(c.sub("Slice"), xShape, op.Const(c.sub("Const"), []int32{0}), op.Const(c.sub("Const"), []int32{1}))
	rows := batch
	if c.Shard != nil {
		// One tower: draw for the global batch, keep this tower's rows.
		rows = op.Reshape(c.sub("Reshape"), c.Shard.Global, op.Const(c.sub("Const"), []int32{1}))
	}
	shape := op.ConcatV2(c.sub("ConcatV2"), []tf.Output{rows, op.Const(c.sub("Const"), []int32{int32(words)})}, op.Const(c.sub("Const"), int32(0)))
	bits := op.StatelessRandomUniformFullInt(c.sub("StatelessRandomUniformFullInt"), shape, seed, op.StatelessRandomUniformFullIntDtype(tf.Uint32))
	if c.Shard != nil {
		begin := op.Pack(c.sub("Pack"), []tf.Output{c.Shard.Start, op.Const(c.sub("Const"), int32(0))})
		size := op.ConcatV2(c.sub("ConcatV2"), []tf.Output{batch, op.Const(c.sub("Const"), []int32{-1})}, op.Const(c.sub("Const"), int32(0)))
		bits = op.Slice(c.sub("Slice"), bits, begin, size)
	}
	draws := op.Reshape(c.sub("Reshape"), op.Bitcast(c.sub("Bitcast"), bits, dt), op.Const(c.sub("Const"), []int32{-1, int32(words * per)}))
	if words*per != units {
		draws = op.Slice(c.sub("Slice"), draws, op.Const(c.sub("Const"), []int32{0, 0}), op.Const(c.sub("Const"), []int32{-1, int32(units)}))
	}
	draws = op.Reshape(c.sub("Reshape"), draws, xShape)
	threshold := math.Min(math.Round(l.Rate*levels), levels-1)
	var t tf.Output
	if dt == tf.Uint8 {
		t = op.Const(c.sub("Const"), uint8(threshold))
	} else {
		t = op.Const(c.sub("Const"), uint16(threshold))
	}
	keep := op.GreaterEqual(c.sub("GreaterEqual"), draws, t)
	// cast(keep)·scale: exactly the 0 or 1/(1−rate) of a SelectV2 on the
	// two constants, and faster: 0.36 against 0.6 ms in float32 on a
	// 128×16×16×32 mask here, and 0.67 against 3.0 ms in bfloat16, where
	// the broadcasting SelectV2 kernel is not vectorised (mixed_bfloat16
	// rewrites the mask to bfloat16).
	mask := op.Mul(c.sub("Mul"), op.Cast(c.sub("Cast"), keep, tf.Float), op.Const(c.sub("Const"), float32(1/(1-l.Rate))))
	c.Keep("mask", mask)
	return op.Mul(c.sub("Mul"), x, mask)
}

func (l *Dropout) Backward(c *Call, dy tf.Output) (dx, dw []tf.Output) {
	if mask, ok := c.Kept("mask"); ok {
		dy = op.Mul(c.sub("Mul"), dy, mask) // y = x·mask
	}
	return []tf.Output{dy}, nil
}

func (l *Dropout) KerasConfig() map[string]any {
	return map[string]any{"rate": l.Rate, "seed": nil, "noise_shape": nil}
}
