// Package schedule evaluates learning-rate schedules per optimiser step with
// Keras 3 semantics, bit for bit in float32 as Keras computes them.
//
// Reference: keras/src/optimizers/schedules/learning_rate_schedule.py
// (Keras 3.15.1 in the venv). Keras converts initial_learning_rate to a
// float32 tensor, casts every other argument and the int64 step to float32,
// and evaluates each op in float32; Rate repeats those roundings op by op
// (each Go expression is wrapped in float32(), which also forbids fused
// multiply-add). Transcendentals (cos, pow) are evaluated in float64 and
// rounded once to float32; TensorFlow calls libm's cosf/powf there, which are
// within 0.82 ulp, so those two ops may differ by 1 ulp (see the test).
package schedule

import (
	"fmt"
	"math"
	"sort"

	"github.com/cifar-pipeline/cifar-pipeline/internal/confmap"
)

// Path is the config key schedules are read from; errors name keys under it.
const Path = "train.optimizer.learning_rate"

// Schedule maps the optimiser step (the number of updates already applied,
// Keras's optimizer.iterations) to the learning rate used by the next update:
// the first update uses Rate(0). Schedules hold no state; a resumed run only
// needs its step count.
//
// The learning_rate Keras writes into epoch logs (ReduceLROnPlateau,
// TensorBoard, hence history.csv) is float(optimizer.learning_rate) at epoch
// end, i.e. Rate(updates done so far): the rate of the next update, not the
// last one used (keras/src/callbacks/tensorboard.py, reduce_lr_on_plateau.py).
type Schedule interface {
	// Rate is the learning rate at step, a float32 value widened to float64.
	Rate(step int64) float64
	// Config is Keras's serialize() form: a float for a constant, else
	// {"module", "class_name", "config", "registered_name"}.
	Config() any
}

// Warmup is implemented by schedules with a warmup phase.
type Warmup interface {
	WarmupSteps() int64
}

// Constant is a fixed learning rate (a plain number in the config).
type Constant float64

// Rate returns the constant, rounded to float32 as Keras's float32
// learning-rate variable holds it.
func (c Constant) Rate(int64) float64 { return float64(float32(c)) }

// Config returns the number itself, as Keras serializes a float learning rate.
func (c Constant) Config() any { return float64(c) }

// kind is one registered schedule type.
type kind struct {
	parse func(p *confmap.Map) (Schedule, error)
}

// registry maps the config's `schedule:` name to its parser.
var registry = map[string]kind{
	"exponential_decay":        {parseExponential},
	"piecewise_constant_decay": {parsePiecewise},
	"cosine_decay":             {parseCosine},
	"polynomial_decay":         {parsePolynomial},
	"one_cycle":                {parseOneCycle},
}

// Names lists the schedule names Parse accepts.
func Names() []string {
	var ns []string
	for n := range registry {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// Parse reads the decoded YAML value of train.optimizer.learning_rate: a
// number is a Constant (> 0); a mapping {schedule: <name>, <Keras args>...}
// is that schedule. Every error is one line naming the key. Numbers are
// always taken as floats (Keras would compute in int32 for a Python-int
// initial_learning_rate such as 0).
func Parse(v any) (Schedule, error) {
	switch v.(type) {
	case map[string]any, map[any]any:
	default:
		f, err := confmap.Number(Path, v)
		if err != nil {
			return nil, fmt.Errorf("%w (a number or a mapping with schedule: %v)", err, Names())
		}
		if f <= 0 {
			return nil, fmt.Errorf("%s: %v must be > 0", Path, f)
		}
		return Constant(f), nil
	}
	p, err := confmap.New(Path, v)
	if err != nil {
		return nil, err
	}
	name, err := p.String("schedule", "")
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, fmt.Errorf("%s.schedule: missing (one of %v)", Path, Names())
	}
	k, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("%s.schedule: unknown schedule %q%s (one of %v)", Path, name, confmap.Suggest(name, Names()), Names())
	}
	s, err := k.parse(p)
	if err != nil {
		return nil, err
	}
	if err := p.Done(); err != nil {
		return nil, err
	}
	return s, nil
}

// CheckRun refuses a schedule whose warmup is longer than the run's
// totalSteps optimiser steps (epochs × steps per epoch).
func CheckRun(s Schedule, totalSteps int64) error {
	if w, ok := s.(Warmup); ok && w.WarmupSteps() > totalSteps {
		return fmt.Errorf("%s.warmup_steps: %d exceeds the run's %d optimiser steps (epochs × steps per epoch); lower warmup_steps or train longer",
			Path, w.WarmupSteps(), totalSteps)
	}
	return nil
}

func keras(class string, config map[string]any) map[string]any {
	return map[string]any{"module": "keras.optimizers.schedules", "class_name": class, "config": config, "registered_name": nil}
}

func ptr[T any](v T) *T { return &v }

// rate reads a learning-rate argument: finite and ≥ 0.
func rate(p *confmap.Map, key string, def *float64) (float64, error) {
	f, err := p.Float(key, def)
	if err != nil {
		return 0, err
	}
	if f < 0 {
		return 0, fmt.Errorf("%s: %v must be >= 0", p.Path(key), f)
	}
	return f, nil
}

func positiveSteps(p *confmap.Map, key string) (int64, error) {
	n, err := p.Int(key, nil)
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, fmt.Errorf("%s: %d must be > 0", p.Path(key), n)
	}
	return n, nil
}

// f32pow and f32cos round float64 libm results once to float32.
func f32pow(x, y float32) float32 { return float32(math.Pow(float64(x), float64(y))) }
func f32cos(x float32) float32    { return float32(math.Cos(float64(x))) }

// ExponentialDecay is Keras's ExponentialDecay:
// initial_learning_rate · decay_rate^(step / decay_steps), the exponent
// floored when Staircase.
type ExponentialDecay struct {
	InitialLearningRate float64
	DecaySteps          int64
	DecayRate           float64
	Staircase           bool
}

func parseExponential(p *confmap.Map) (Schedule, error) {
	var s ExponentialDecay
	var err error
	if s.InitialLearningRate, err = rate(p, "initial_learning_rate", nil); err != nil {
		return nil, err
	}
	if s.DecaySteps, err = positiveSteps(p, "decay_steps"); err != nil {
		return nil, err
	}
	if s.DecayRate, err = p.Float("decay_rate", nil); err != nil {
		return nil, err
	}
	if s.DecayRate <= 0 {
		return nil, fmt.Errorf("%s: %v must be > 0", p.Path("decay_rate"), s.DecayRate)
	}
	if s.Staircase, err = p.Bool("staircase", false); err != nil {
		return nil, err
	}
	return s, nil
}

// Rate follows ExponentialDecay.__call__.
func (s ExponentialDecay) Rate(step int64) float64 {
	lr := float32(s.InitialLearningRate)
	p := float32(float32(step) / float32(s.DecaySteps))
	if s.Staircase {
		p = float32(math.Floor(float64(p)))
	}
	return float64(float32(lr * f32pow(float32(s.DecayRate), p)))
}

// Config is Keras's serialize() form.
func (s ExponentialDecay) Config() any {
	return keras("ExponentialDecay", map[string]any{
		"initial_learning_rate": s.InitialLearningRate, "decay_steps": s.DecaySteps,
		"decay_rate": s.DecayRate, "staircase": s.Staircase, "name": "ExponentialDecay"})
}

// PiecewiseConstantDecay is Keras's PiecewiseConstantDecay: Values[0] while
// step <= Boundaries[0], Values[i] while Boundaries[i-1] < step <=
// Boundaries[i], Values[last] after the last boundary.
type PiecewiseConstantDecay struct {
	Boundaries []int64
	Values     []float64
}

func parsePiecewise(p *confmap.Map) (Schedule, error) {
	var s PiecewiseConstantDecay
	for _, key := range []string{"boundaries", "values"} {
		raw := p.Raw(key)
		if raw == nil {
			return nil, fmt.Errorf("%s: missing (required)", p.Path(key))
		}
		list, ok := raw.([]any)
		if !ok || len(list) == 0 {
			return nil, fmt.Errorf("%s: %v must be a non-empty list", p.Path(key), raw)
		}
		for i, x := range list {
			at := fmt.Sprintf("%s[%d]", p.Path(key), i)
			if key == "boundaries" {
				b, err := confmap.Integer(at, x)
				if err != nil {
					return nil, err
				}
				if b < 0 {
					return nil, fmt.Errorf("%s: %d must be >= 0", at, b)
				}
				if i > 0 && b <= s.Boundaries[i-1] {
					return nil, fmt.Errorf("%s: %d must be greater than the previous boundary %d (boundaries strictly increase)", at, b, s.Boundaries[i-1])
				}
				s.Boundaries = append(s.Boundaries, b)
				continue
			}
			v, err := confmap.Number(at, x)
			if err != nil {
				return nil, err
			}
			if v < 0 {
				return nil, fmt.Errorf("%s: %v must be >= 0", at, v)
			}
			s.Values = append(s.Values, v)
		}
	}
	if len(s.Values) != len(s.Boundaries)+1 {
		return nil, fmt.Errorf("%s: %d values for %d boundaries; give one more value than boundaries", p.Path("values"), len(s.Values), len(s.Boundaries))
	}
	return s, nil
}

// Rate follows PiecewiseConstantDecay.__call__ (the sum of indicator × value
// equals the selected float32 value exactly).
func (s PiecewiseConstantDecay) Rate(step int64) float64 {
	i := sort.Search(len(s.Boundaries), func(i int) bool { return step <= s.Boundaries[i] })
	return float64(float32(s.Values[i]))
}

// Config is Keras's serialize() form.
func (s PiecewiseConstantDecay) Config() any {
	b := make([]any, len(s.Boundaries))
	for i, x := range s.Boundaries {
		b[i] = x
	}
	v := make([]any, len(s.Values))
	for i, x := range s.Values {
		v[i] = x
	}
	return keras("PiecewiseConstantDecay", map[string]any{"boundaries": b, "values": v, "name": "PiecewiseConstant"})
}

// CosineDecay is Keras's CosineDecay: with WarmupTarget set, a linear warmup
// from InitialLearningRate to *WarmupTarget over WarmupSteps, then a cosine
// decay from the warmup target (or InitialLearningRate without warmup) to
// Alpha × that over DecaySteps, constant afterwards.
type CosineDecay struct {
	InitialLearningRate float64
	DecaySteps          int64
	Alpha               float64
	WarmupTarget        *float64
	Warmup              int64
}

// WarmupSteps is the warmup length (0 without a warmup target).
func (s CosineDecay) WarmupSteps() int64 {
	if s.WarmupTarget == nil {
		return 0
	}
	return s.Warmup
}

func parseCosine(p *confmap.Map) (Schedule, error) {
	var s CosineDecay
	var err error
	if s.InitialLearningRate, err = rate(p, "initial_learning_rate", nil); err != nil {
		return nil, err
	}
	if s.DecaySteps, err = positiveSteps(p, "decay_steps"); err != nil {
		return nil, err
	}
	if s.Alpha, err = p.Float("alpha", ptr(0.0)); err != nil {
		return nil, err
	}
	if s.Alpha < 0 || s.Alpha > 1 {
		return nil, fmt.Errorf("%s: %v must be in [0, 1] (a fraction of the decayed-from rate)", p.Path("alpha"), s.Alpha)
	}
	if p.Has("warmup_target") && p.Raw("warmup_target") != nil {
		wt, err := rate(p, "warmup_target", nil)
		if err != nil {
			return nil, err
		}
		s.WarmupTarget = &wt
	}
	if s.Warmup, err = p.Int("warmup_steps", ptr(int64(0))); err != nil {
		return nil, err
	}
	if s.Warmup < 0 {
		return nil, fmt.Errorf("%s: %d must be >= 0", p.Path("warmup_steps"), s.Warmup)
	}
	if s.Warmup > 0 && s.WarmupTarget == nil {
		// Keras silently ignores warmup_steps without a target.
		return nil, fmt.Errorf("%s: %d has no effect without warmup_target; set warmup_target", p.Path("warmup_steps"), s.Warmup)
	}
	return s, nil
}

// cosineDecay is CosineDecay._decay_function in float32.
func cosineDecay(step, decaySteps, from float32, alpha float64) float32 {
	fraction := float32(step / decaySteps)
	x := float32(float32(math.Pi) * fraction)
	cosDecayed := float32(0.5 * float32(1+f32cos(x)))
	decayed := float32(float32(float32(1-alpha)*cosDecayed) + float32(alpha))
	return float32(from * decayed)
}

// warmup is CosineDecay._warmup_function in float32.
func warmup(step, warmupSteps, target, initial float32) float32 {
	fraction := float32(step / warmupSteps)
	delta := float32(target - initial)
	return float32(float32(delta*fraction) + initial)
}

// Rate follows CosineDecay.__call__.
func (s CosineDecay) Rate(step int64) float64 {
	lr := float32(s.InitialLearningRate)
	ds := float32(s.DecaySteps)
	st := float32(step)
	if s.WarmupTarget == nil {
		return float64(cosineDecay(min(st, ds), ds, lr, s.Alpha))
	}
	target := float32(*s.WarmupTarget)
	ws := float32(s.Warmup)
	st = min(st, float32(ds+ws))
	if st < ws {
		return float64(warmup(st, ws, target, lr))
	}
	return float64(cosineDecay(float32(st-ws), ds, target, s.Alpha))
}

// Config is Keras's serialize() form.
func (s CosineDecay) Config() any {
	var wt any
	if s.WarmupTarget != nil {
		wt = *s.WarmupTarget
	}
	return keras("CosineDecay", map[string]any{
		"initial_learning_rate": s.InitialLearningRate, "decay_steps": s.DecaySteps, "alpha": s.Alpha,
		"name": "CosineDecay", "warmup_target": wt, "warmup_steps": s.Warmup})
}

// PolynomialDecay is Keras's PolynomialDecay: (initial − end) ·
// (1 − step/decay_steps)^power + end, step capped at DecaySteps, or with
// Cycle the decay restarting over the next multiple of DecaySteps.
type PolynomialDecay struct {
	InitialLearningRate float64
	DecaySteps          int64
	EndLearningRate     float64
	Power               float64
	Cycle               bool
}

func parsePolynomial(p *confmap.Map) (Schedule, error) {
	var s PolynomialDecay
	var err error
	if s.InitialLearningRate, err = rate(p, "initial_learning_rate", nil); err != nil {
		return nil, err
	}
	if s.DecaySteps, err = positiveSteps(p, "decay_steps"); err != nil {
		return nil, err
	}
	if s.EndLearningRate, err = rate(p, "end_learning_rate", ptr(0.0001)); err != nil {
		return nil, err
	}
	if s.Power, err = p.Float("power", ptr(1.0)); err != nil {
		return nil, err
	}
	if s.Power <= 0 {
		return nil, fmt.Errorf("%s: %v must be > 0", p.Path("power"), s.Power)
	}
	if s.Cycle, err = p.Bool("cycle", false); err != nil {
		return nil, err
	}
	return s, nil
}

// polynomial is PolynomialDecay.__call__ in float32.
func polynomial(step float32, decaySteps int64, initial, end, power float32, cycle bool) float32 {
	ds := float32(decaySteps)
	if cycle {
		mult := float32(1)
		if step != 0 {
			mult = float32(math.Ceil(float64(float32(step / ds))))
		}
		ds = float32(ds * mult)
	} else {
		step = min(step, ds)
	}
	p := float32(step / ds)
	return float32(float32(float32(initial-end)*f32pow(float32(1-p), power)) + end)
}

// Rate follows PolynomialDecay.__call__.
func (s PolynomialDecay) Rate(step int64) float64 {
	return float64(polynomial(float32(step), s.DecaySteps, float32(s.InitialLearningRate),
		float32(s.EndLearningRate), float32(s.Power), s.Cycle))
}

// Config is Keras's serialize() form.
func (s PolynomialDecay) Config() any {
	return keras("PolynomialDecay", map[string]any{
		"initial_learning_rate": s.InitialLearningRate, "decay_steps": s.DecaySteps,
		"end_learning_rate": s.EndLearningRate, "power": s.Power, "cycle": s.Cycle, "name": "PolynomialDecay"})
}

// OneCycle is not in Keras: a linear warmup from InitialLearningRate to
// WarmupTarget over WarmupSteps (CosineDecay's warmup), then a linear decay
// to EndLearningRate over the next DecaySteps (PolynomialDecay with power 1
// from WarmupTarget), constant afterwards. Argument names follow
// CosineDecay/PolynomialDecay; as in CosineDecay, DecaySteps does not
// include the warmup, so the schedule reaches its floor at step
// WarmupSteps + DecaySteps.
type OneCycle struct {
	InitialLearningRate float64
	WarmupTarget        float64
	Warmup              int64
	DecaySteps          int64
	EndLearningRate     float64
}

// WarmupSteps is the warmup length.
func (s OneCycle) WarmupSteps() int64 { return s.Warmup }

func parseOneCycle(p *confmap.Map) (Schedule, error) {
	var s OneCycle
	var err error
	if s.InitialLearningRate, err = rate(p, "initial_learning_rate", nil); err != nil {
		return nil, err
	}
	if s.WarmupTarget, err = rate(p, "warmup_target", nil); err != nil {
		return nil, err
	}
	if s.Warmup, err = p.Int("warmup_steps", nil); err != nil {
		return nil, err
	}
	if s.Warmup < 0 {
		return nil, fmt.Errorf("%s: %d must be >= 0", p.Path("warmup_steps"), s.Warmup)
	}
	if s.DecaySteps, err = positiveSteps(p, "decay_steps"); err != nil {
		return nil, err
	}
	if s.EndLearningRate, err = rate(p, "end_learning_rate", ptr(0.0)); err != nil {
		return nil, err
	}
	return s, nil
}

// Rate is CosineDecay's warmup before WarmupSteps and PolynomialDecay(power
// 1) on step − WarmupSteps after it, each in Keras's float32 order.
func (s OneCycle) Rate(step int64) float64 {
	if step < s.Warmup {
		return float64(warmup(float32(step), float32(s.Warmup), float32(s.WarmupTarget), float32(s.InitialLearningRate)))
	}
	return float64(polynomial(float32(step-s.Warmup), s.DecaySteps, float32(s.WarmupTarget),
		float32(s.EndLearningRate), 1, false))
}

// Config is the serialize() form a Keras custom object registered as
// cifar_pipeline>OneCycle would have.
func (s OneCycle) Config() any {
	return map[string]any{"module": "cifar_pipeline.schedules", "class_name": "OneCycle",
		"registered_name": "cifar_pipeline>OneCycle", "config": map[string]any{
			"initial_learning_rate": s.InitialLearningRate, "warmup_target": s.WarmupTarget,
			"warmup_steps": s.Warmup, "decay_steps": s.DecaySteps,
			"end_learning_rate": s.EndLearningRate, "name": "OneCycle"}}
}
