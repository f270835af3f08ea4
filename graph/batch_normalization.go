package graph

import (
	"fmt"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// BatchNormalization is keras.layers.BatchNormalization over the channel
// axis (keras/src/layers/normalization/batch_normalization.py): in training
// it normalises with the batch's mean and (biased) variance and moves the
// moving statistics by moving·momentum + batch·(1 − momentum); in inference
// it normalises with the moving statistics. Keras's TensorFlow backend
// builds this from tf.nn.moments and tf.nn.batch_normalization; here it is
// TensorFlow's fused kernel (FusedBatchNormV3, oneDNN on the CPU) and its
// registered gradient FusedBatchNormGradV3, the same function of the
// inputs (the parity test holds them to Keras).
type BatchNormalization struct {
	Axis                      int          `mapstructure:"axis"`
	Momentum                  float64      `mapstructure:"momentum"`
	Epsilon                   float64      `mapstructure:"epsilon"`
	Center                    bool         `mapstructure:"center"`
	Scale                     bool         `mapstructure:"scale"`
	BetaInitializer           string       `mapstructure:"beta_initializer"`
	GammaInitializer          string       `mapstructure:"gamma_initializer"`
	MovingMeanInitializer     string       `mapstructure:"moving_mean_initializer"`
	MovingVarianceInitializer string       `mapstructure:"moving_variance_initializer"`
	BetaRegularizer           *Regularizer `mapstructure:"beta_regularizer"`
	GammaRegularizer          *Regularizer `mapstructure:"gamma_regularizer"`

	rank int
}

func init() {
	RegisterLayer(Kind{Type: "batch_normalization", Class: "BatchNormalization", New: func() Layer {
		return &BatchNormalization{Axis: -1, Momentum: 0.99, Epsilon: 1e-3, Center: true, Scale: true,
			BetaInitializer: "zeros", GammaInitializer: "ones", MovingMeanInitializer: "zeros", MovingVarianceInitializer: "ones"}
	}})
}

func (l *BatchNormalization) Build(in []Shape) (Shape, []Param, error) {
	l.rank = len(in[0])
	if l.rank != 1 && l.rank != 3 {
		return nil, nil, fmt.Errorf("BatchNormalization normalises a (channels) or (height, width, channels) input, got %v", in[0])
	}
	if l.Axis != -1 && l.Axis != l.rank {
		return nil, nil, fmt.Errorf("axis: %d: only the channel axis (-1, channels_last) is supported", l.Axis)
	}
	l.Axis = -1
	if l.Momentum < 0 || l.Momentum >= 1 {
		return nil, nil, fmt.Errorf("momentum: %v must be in [0, 1)", l.Momentum)
	}
	if l.Epsilon <= 0 {
		return nil, nil, fmt.Errorf("epsilon: %v must be > 0", l.Epsilon)
	}
	for key, name := range map[string]string{"beta_initializer": l.BetaInitializer, "gamma_initializer": l.GammaInitializer,
		"moving_mean_initializer": l.MovingMeanInitializer, "moving_variance_initializer": l.MovingVarianceInitializer} {
		if err := checkInitializer(key, name); err != nil {
			return nil, nil, err
		}
	}
	if err := l.BetaRegularizer.check("beta_regularizer"); err != nil {
		return nil, nil, err
	}
	if err := l.GammaRegularizer.check("gamma_regularizer"); err != nil {
		return nil, nil, err
	}
	if !l.Center && l.BetaRegularizer != nil {
		return nil, nil, fmt.Errorf("beta_regularizer: the layer has no beta (center: false)")
	}
	if !l.Scale && l.GammaRegularizer != nil {
		return nil, nil, fmt.Errorf("gamma_regularizer: the layer has no gamma (scale: false)")
	}
	ch := []int{in[0][l.rank-1]}
	var params []Param
	if l.Scale {
		params = append(params, Param{Name: "gamma", Shape: ch, Init: l.GammaInitializer, Trainable: true, Regularizer: l.GammaRegularizer})
	}
	if l.Center {
		params = append(params, Param{Name: "beta", Shape: ch, Init: l.BetaInitializer, Trainable: true, Regularizer: l.BetaRegularizer})
	}
	params = append(params,
		Param{Name: "moving_mean", Shape: ch, Init: l.MovingMeanInitializer},
		Param{Name: "moving_variance", Shape: ch, Init: l.MovingVarianceInitializer})
	return in[0], params, nil
}

// operands returns the input as NHWC (a flat input as N×1×1×C), gamma,
// beta (ones and zeros for an absent scale or center) and the moving
// statistics.
func (l *BatchNormalization) operands(c *Call) (x, gamma, beta, mean, variance tf.Output) {
	x = c.In[0]
	if l.rank == 1 {
		x = op.Reshape(c.sub("Reshape"), x, op.Const(c.sub("Const"), []int32{-1, 1, 1, int32(c.InShapes[0][0])}))
	}
	ch := c.InShapes[0][l.rank-1]
	k := 0
	fill := func(v float32) tf.Output {
		return op.Fill(c.sub("Fill"), op.Const(c.sub("Const"), []int32{int32(ch)}), op.Const(c.sub("Const"), v))
	}
	if gamma = fill(1); l.Scale {
		gamma, k = c.Params[k], k+1
	}
	if beta = fill(0); l.Center {
		beta, k = c.Params[k], k+1
	}
	return x, gamma, beta, c.Params[k], c.Params[k+1]
}

func (l *BatchNormalization) Call(c *Call) tf.Output {
	x, gamma, beta, mean, variance := l.operands(c)
	var y tf.Output
	if c.Training {
		empty := op.Const(c.sub("empty"), []float32{})
		var batchMean, batchVar, r1, r2, r3 tf.Output
		y, batchMean, batchVar, r1, r2, r3 = op.FusedBatchNormV3(c.sub("FusedBatchNormV3"), x, gamma, beta, empty, empty,
			op.FusedBatchNormV3Epsilon(float32(l.Epsilon)), op.FusedBatchNormV3IsTraining(true))
		c.Keep("x", x)
		c.Keep("gamma", gamma)
		c.Keep("r1", r1)
		c.Keep("r2", r2)
		c.Keep("r3", r3)
		// FusedBatchNormV3 reports the batch variance with Bessel's
		// correction (n/(n−1)); Keras moves the moving variance by the
		// biased batch variance of tf.nn.moments, so undo it.
		n := op.Cast(c.sub("Cast"), op.Prod(c.sub("Prod"), op.Slice(c.sub("Slice"), op.Shape(c.sub("Shape"), x, op.ShapeOutType(tf.Int32)),
			op.Const(c.sub("Const"), []int32{0}), op.Const(c.sub("Const"), []int32{3})), op.Const(c.sub("Const"), int32(0))), tf.Float)
		one := op.Const(c.sub("one"), float32(1))
		biased := op.Mul(c.sub("Mul"), batchVar, op.RealDiv(c.sub("RealDiv"), op.Sub(c.sub("Sub"), n, one), n))
		// moving·momentum + batch·(1 − momentum), with Keras's constants:
		// Python floats rounded once to float32.
		m, m1 := op.Const(c.sub("momentum"), float32(l.Momentum)), op.Const(c.sub("one_minus_momentum"), float32(1-l.Momentum))
		move := func(moving, batch tf.Output) tf.Output {
			return op.AddV2(c.sub("AddV2"), op.Mul(c.sub("Mul"), moving, m), op.Mul(c.sub("Mul"), batch, m1))
		}
		k := len(c.Params) - 2
		c.Update(k, move(mean, batchMean))
		c.Update(k+1, move(variance, biased))
	} else {
		y, _, _, _, _, _ = op.FusedBatchNormV3(c.sub("FusedBatchNormV3"), x, gamma, beta, mean, variance,
			op.FusedBatchNormV3Epsilon(float32(l.Epsilon)), op.FusedBatchNormV3IsTraining(false))
	}
	if l.rank == 1 {
		y = op.Reshape(c.sub("Reshape"), y, op.Const(c.sub("Const"), []int32{-1, int32(c.InShapes[0][0])}))
	}
	return y
}

// Backward is TensorFlow's registered FusedBatchNormV3 gradient.
func (l *BatchNormalization) Backward(c *Call, dy tf.Output) (dx, dw []tf.Output) {
	x, _ := c.Kept("x")
	gamma, _ := c.Kept("gamma")
	r1, _ := c.Kept("r1")
	r2, _ := c.Kept("r2")
	r3, _ := c.Kept("r3")
	if l.rank == 1 {
		dy = op.Reshape(c.sub("Reshape"), dy, op.Const(c.sub("Const"), []int32{-1, 1, 1, int32(c.InShapes[0][0])}))
	}
	d, dGamma, dBeta, _, _ := op.FusedBatchNormGradV3(c.sub("FusedBatchNormGradV3"), dy, x, gamma, r1, r2, r3,
		op.FusedBatchNormGradV3Epsilon(float32(l.Epsilon)), op.FusedBatchNormGradV3IsTraining(true))
	if l.rank == 1 {
		d = op.Reshape(c.sub("Reshape"), d, op.Const(c.sub("Const"), []int32{-1, int32(c.InShapes[0][0])}))
	}
	if l.Scale {
		dw = append(dw, dGamma)
	}
	if l.Center {
		dw = append(dw, dBeta)
	}
	return []tf.Output{d}, dw
}

func (l *BatchNormalization) KerasConfig() map[string]any {
	return map[string]any{
		"axis": l.Axis, "momentum": l.Momentum, "epsilon": l.Epsilon, "center": l.Center, "scale": l.Scale,
		"beta_initializer": kerasInitializer(l.BetaInitializer), "gamma_initializer": kerasInitializer(l.GammaInitializer),
		"moving_mean_initializer":     kerasInitializer(l.MovingMeanInitializer),
		"moving_variance_initializer": kerasInitializer(l.MovingVarianceInitializer),
		"beta_regularizer":            l.BetaRegularizer.keras(), "gamma_regularizer": l.GammaRegularizer.keras(),
		"beta_constraint": nil, "gamma_constraint": nil, "synchronized": false,
		"renorm": false, "renorm_clipping": nil, "renorm_momentum": 0.99,
	}
}
