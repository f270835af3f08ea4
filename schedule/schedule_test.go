package schedule

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// kerasScript evaluates each case's Keras schedule (keras/src/optimizers/
// schedules/learning_rate_schedule.py) at every step given, with the step an
// int64 tensor as optimizer.iterations is, and prints the float32 bit
// patterns plus keras.optimizers.schedules.serialize(). one_cycle has no
// Keras class: it is CosineDecay's warmup before warmup_steps and
// PolynomialDecay(power=1) on step - warmup_steps after it.
const kerasScript = `
import json, sys
import numpy as np
import keras
import tensorflow as tf
S = keras.optimizers.schedules
cases = json.loads(sys.stdin.read())
out = []
for c in cases:
    kw = c["kwargs"]
    # Keras computes in the dtype of initial_learning_rate: a Python int would
    # make it int32, so floats are passed as the YAML means them.
    for k in ("initial_learning_rate", "warmup_target", "alpha", "decay_rate", "end_learning_rate", "power"):
        if kw.get(k) is not None:
            kw[k] = float(kw[k])
    if "values" in kw:
        kw["values"] = [float(v) for v in kw["values"]]
    if c["class"] == "OneCycle":
        warm = S.CosineDecay(kw["initial_learning_rate"], 1, warmup_target=kw["warmup_target"], warmup_steps=kw["warmup_steps"])
        decay = S.PolynomialDecay(kw["warmup_target"], kw["decay_steps"], kw["end_learning_rate"], power=1.0)
        f = lambda s: warm(tf.constant(s, tf.int64)) if s < kw["warmup_steps"] else decay(tf.constant(s - kw["warmup_steps"], tf.int64))
        cfg = None
    else:
        sch = getattr(S, c["class"])(**kw)
        f = lambda s: sch(tf.constant(s, tf.int64))
        cfg = S.serialize(sch)
    bits = []
    for s in c["steps"]:
        v = f(s)
        assert v.dtype == tf.float32, v.dtype
        bits.append(int(np.array(v, np.float32).view(np.uint32)))
    out.append({"bits": bits, "config": cfg})
print(json.dumps(out))
`

type kerasCase struct {
	yaml   string // train.optimizer.learning_rate as written in a config
	class  string
	kwargs map[string]any // the same schedule as Keras constructor arguments
	total  int64          // steps 0..total+3 are compared, plus far steps
}

var kerasCases = []kerasCase{
	{"{schedule: exponential_decay, initial_learning_rate: 0.1, decay_steps: 7, decay_rate: 0.96}",
		"ExponentialDecay", map[string]any{"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.96}, 60},
	{"{schedule: exponential_decay, initial_learning_rate: 0.001, decay_steps: 10, decay_rate: 0.5, staircase: true}",
		"ExponentialDecay", map[string]any{"initial_learning_rate": 0.001, "decay_steps": 10, "decay_rate": 0.5, "staircase": true}, 45},
	{"{schedule: exponential_decay, initial_learning_rate: 0.05, decay_steps: 3, decay_rate: 1.3}",
		"ExponentialDecay", map[string]any{"initial_learning_rate": 0.05, "decay_steps": 3, "decay_rate": 1.3}, 30},
	{"{schedule: piecewise_constant_decay, boundaries: [5, 12, 13], values: [0.1, 0.03, 0.007, 0.0001]}",
		"PiecewiseConstantDecay", map[string]any{"boundaries": []int{5, 12, 13}, "values": []float64{0.1, 0.03, 0.007, 0.0001}}, 20},
	{"{schedule: cosine_decay, initial_learning_rate: 0.1, decay_steps: 40}",
		"CosineDecay", map[string]any{"initial_learning_rate": 0.1, "decay_steps": 40}, 45},
	{"{schedule: cosine_decay, initial_learning_rate: 0.3, decay_steps: 37, alpha: 0.05}",
		"CosineDecay", map[string]any{"initial_learning_rate": 0.3, "decay_steps": 37, "alpha": 0.05}, 40},
	{"{schedule: cosine_decay, initial_learning_rate: 0.0, decay_steps: 50, warmup_target: 0.2, warmup_steps: 13}",
		"CosineDecay", map[string]any{"initial_learning_rate": 0.0, "decay_steps": 50, "warmup_target": 0.2, "warmup_steps": 13}, 66},
	{"{schedule: cosine_decay, initial_learning_rate: 0.01, decay_steps: 23, alpha: 0.1, warmup_target: 0.4, warmup_steps: 9}",
		"CosineDecay", map[string]any{"initial_learning_rate": 0.01, "decay_steps": 23, "alpha": 0.1, "warmup_target": 0.4, "warmup_steps": 9}, 35},
	{"{schedule: polynomial_decay, initial_learning_rate: 0.1, decay_steps: 30}",
		"PolynomialDecay", map[string]any{"initial_learning_rate": 0.1, "decay_steps": 30}, 35},
	{"{schedule: polynomial_decay, initial_learning_rate: 0.1, decay_steps: 11, end_learning_rate: 0.01, power: 0.5, cycle: true}",
		"PolynomialDecay", map[string]any{"initial_learning_rate": 0.1, "decay_steps": 11, "end_learning_rate": 0.01, "power": 0.5, "cycle": true}, 40},
	{"{schedule: one_cycle, initial_learning_rate: 0.008, warmup_target: 0.4, warmup_steps: 11, decay_steps: 29, end_learning_rate: 0.0004}",
		"OneCycle", map[string]any{"initial_learning_rate": 0.008, "warmup_target": 0.4, "warmup_steps": 11, "decay_steps": 29, "end_learning_rate": 0.0004}, 45},
	{"{schedule: one_cycle, initial_learning_rate: 0, warmup_target: 0.2, warmup_steps: 0, decay_steps: 17}",
		"OneCycle", map[string]any{"initial_learning_rate": 0.0, "warmup_target": 0.2, "warmup_steps": 0, "decay_steps": 17, "end_learning_rate": 0.0}, 20},
}

// farSteps probe steps past any decay and where float32 can no longer hold
// every integer (2^24 + 1 rounds to 2^24).
var farSteps = []int64{1000, 12345, 1 << 24, 1<<24 + 1, 1<<24 + 3, 987654321}

func parseYAML(t *testing.T, src string) Schedule {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatal(err)
	}
	s, err := Parse(v)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return s
}

func ulps(a, b float32) int64 {
	ia, ib := int64(math.Float32bits(a)), int64(math.Float32bits(b))
	if ia > ib {
		return ia - ib
	}
	return ib - ia
}

// TestRatesMatchKeras compares Rate at every step against Keras. The float32
// arithmetic (+ − × ÷ floor ceil min) is IEEE-exact on both sides, so the
// only possible difference is in cos and pow: TensorFlow calls glibc's
// cosf/powf (documented error up to 0.56 / 0.82 ulp), Go rounds a float64
// result once. Where the two round cos/pow differently the result moves by
// about 1 ulp (more only where 1 + cos cancels at the very end of a cosine
// decay), so 1 ulp is allowed for those classes and logged; on this machine
// every rate is bit-identical (601/601), which the log line reports.
func TestRatesMatchKeras(t *testing.T) {
	type pyCase struct {
		Class  string         `json:"class"`
		Kwargs map[string]any `json:"kwargs"`
		Steps  []int64        `json:"steps"`
	}
	var in []pyCase
	for _, c := range kerasCases {
		var steps []int64
		for s := int64(0); s <= c.total+3; s++ {
			steps = append(steps, s)
		}
		in = append(in, pyCase{c.class, c.kwargs, append(steps, farSteps...)})
	}
	body, _ := json.Marshal(in)
	out := runPythonStdin(t, kerasScript, body)
	var got []struct {
		Bits   []uint32       `json:"bits"`
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python output: %v\n%s", err, out)
	}
	exact, oneULP := 0, 0
	for i, c := range kerasCases {
		s := parseYAML(t, c.yaml)
		for j, step := range in[i].Steps {
			want := math.Float32frombits(got[i].Bits[j])
			have := float32(s.Rate(step))
			if float64(have) != s.Rate(step) {
				t.Fatalf("%s: Rate(%d) = %v is not a float32 value", c.yaml, step, s.Rate(step))
			}
			switch d := ulps(have, want); {
			case d == 0:
				exact++
			case d == 1 && strings.Contains("CosineDecay ExponentialDecay PolynomialDecay", c.class):
				oneULP++
				t.Logf("%s: step %d: Go %v, Keras %v (1 ulp)", c.yaml, step, have, want)
			default:
				t.Errorf("%s: step %d: Go %v (%#x), Keras %v (%#x), %d ulp", c.yaml, step, have, math.Float32bits(have), want, got[i].Bits[j], d)
			}
		}
		if got[i].Config != nil {
			// Keras's serialize() of the same schedule, compared as JSON.
			mine, _ := json.Marshal(s.Config())
			var m map[string]any
			_ = json.Unmarshal(mine, &m)
			if !reflect.DeepEqual(m, got[i].Config) {
				t.Errorf("%s: Config()\n %v\nKeras serialize()\n %v", c.yaml, m, got[i].Config)
			}
		}
	}
	t.Logf("%d rates bit-identical to Keras, %d within 1 ulp", exact, oneULP)
}

func TestConstant(t *testing.T) {
	for _, src := range []string{"0.001", "1", "0.1"} {
		s := parseYAML(t, src)
		var f float64
		_ = yaml.Unmarshal([]byte(src), &f)
		if s.Rate(0) != float64(float32(f)) || s.Rate(1e9) != float64(float32(f)) {
			t.Errorf("%s: Rate = %v", src, s.Rate(0))
		}
		if s.Config() != f {
			t.Errorf("%s: Config = %v", src, s.Config())
		}
	}
}

func TestCheckRun(t *testing.T) {
	s := parseYAML(t, "{schedule: cosine_decay, initial_learning_rate: 0, decay_steps: 100, warmup_target: 0.1, warmup_steps: 500}")
	err := CheckRun(s, 390)
	if err == nil || err.Error() != "train.optimizer.learning_rate.warmup_steps: 500 exceeds the run's 390 optimiser steps (epochs × steps per epoch); lower warmup_steps or train longer" {
		t.Errorf("CheckRun: %v", err)
	}
	if err := CheckRun(s, 500); err != nil {
		t.Errorf("warmup == run: %v", err)
	}
	oc := parseYAML(t, "{schedule: one_cycle, initial_learning_rate: 0, warmup_target: 0.1, warmup_steps: 50, decay_steps: 10}")
	if CheckRun(oc, 49) == nil || CheckRun(oc, 50) != nil || CheckRun(Constant(0.1), 0) != nil {
		t.Error("CheckRun on one_cycle/constant")
	}
}

func TestBadInput(t *testing.T) {
	const p = "train.optimizer.learning_rate"
	for _, c := range []struct{ yaml, want string }{
		{"-0.1", p + ": -0.1 must be > 0"},
		{"0", p + ": 0 must be > 0"},
		{".nan", p + ": NaN must be a finite number"},
		{".inf", p + ": +Inf must be a finite number"},
		{"fast", p + ": fast must be a number"},
		{"[0.1]", p + ": [0.1] must be a number"},
		{"{initial_learning_rate: 0.1}", p + ".schedule: missing"},
		{"{schedule: cosine}", p + `.schedule: unknown schedule "cosine" (did you mean cosine_decay?)`},
		{"{schedule: 3}", p + ".schedule: 3 must be a string"},
		{"{schedule: exponential_decay, initial_learning_rate: 0.1, decay_steps: 10, decay_rate: -0.5}", p + ".decay_rate: -0.5 must be > 0"},
		{"{schedule: exponential_decay, initial_learning_rate: 0.1, decay_steps: 10, decay_rate: 0}", p + ".decay_rate: 0 must be > 0"},
		{"{schedule: exponential_decay, initial_learning_rate: 0.1, decay_steps: 10}", p + ".decay_rate: missing (required)"},
		{"{schedule: exponential_decay, initial_learning_rate: 0.1, decay_steps: 0, decay_rate: 0.9}", p + ".decay_steps: 0 must be > 0"},
		{"{schedule: exponential_decay, initial_learning_rate: 0.1, decay_steps: 2.5, decay_rate: 0.9}", p + ".decay_steps: 2.5 must be an integer"},
		{"{schedule: exponential_decay, initial_learning_rate: .nan, decay_steps: 2, decay_rate: 0.9}", p + ".initial_learning_rate: NaN must be a finite number"},
		{"{schedule: exponential_decay, initial_learning_rate: 0.1, decay_steps: 2, decay_rate: .inf}", p + ".decay_rate: +Inf must be a finite number"},
		{"{schedule: exponential_decay, initial_learning_rate: 0.1, decay_steps: 2, decay_rate: 0.9, staircase: yes please}", p + ".staircase: yes please must be true or false"},
		{"{schedule: exponential_decay, initial_learning_rate: 0.1, decay_steps: 2, decay_rate: 0.9, decay: 3}", p + ".decay: unknown key (did you mean decay_rate?)"},
		{"{schedule: piecewise_constant_decay, boundaries: [10, 10], values: [1, 0.5, 0.1]}", p + ".boundaries[1]: 10 must be greater than the previous boundary 10 (boundaries strictly increase)"},
		{"{schedule: piecewise_constant_decay, boundaries: [10, 5], values: [1, 0.5, 0.1]}", p + ".boundaries[1]: 5 must be greater than the previous boundary 10 (boundaries strictly increase)"},
		{"{schedule: piecewise_constant_decay, boundaries: [10, 20], values: [1, 0.5]}", p + ".values: 2 values for 2 boundaries; give one more value than boundaries"},
		{"{schedule: piecewise_constant_decay, boundaries: [10], values: [1, 0.5, 0.1]}", p + ".values: 3 values for 1 boundaries; give one more value than boundaries"},
		{"{schedule: piecewise_constant_decay, boundaries: 10, values: [1, 0.5]}", p + ".boundaries: 10 must be a non-empty list"},
		{"{schedule: piecewise_constant_decay, boundaries: [10], values: [1, -0.5]}", p + ".values[1]: -0.5 must be >= 0"},
		{"{schedule: piecewise_constant_decay, values: [1, 0.5]}", p + ".boundaries: missing (required)"},
		{"{schedule: cosine_decay, initial_learning_rate: 0.1}", p + ".decay_steps: missing (required)"},
		{"{schedule: cosine_decay, initial_learning_rate: 0.1, decay_steps: 10, alpha: 2}", p + ".alpha: 2 must be in [0, 1] (a fraction of the decayed-from rate)"},
		{"{schedule: cosine_decay, initial_learning_rate: 0.1, decay_steps: 10, warmup_steps: 5}", p + ".warmup_steps: 5 has no effect without warmup_target; set warmup_target"},
		{"{schedule: cosine_decay, initial_learning_rate: 0.1, decay_steps: 10, warmup_target: 1, warmup_steps: -5}", p + ".warmup_steps: -5 must be >= 0"},
		{"{schedule: cosine_decay, initial_learning_rate: -0.1, decay_steps: 10}", p + ".initial_learning_rate: -0.1 must be >= 0"},
		{"{schedule: polynomial_decay, initial_learning_rate: 0.1, decay_steps: 10, power: -1}", p + ".power: -1 must be > 0"},
		{"{schedule: one_cycle, initial_learning_rate: 0.1, warmup_target: 1, decay_steps: 10}", p + ".warmup_steps: missing (required)"},
		{"{schedule: one_cycle, initial_learning_rate: 0.1, warmup_target: 1, warmup_steps: 3, decay_steps: 10, final_learning_rate: 0}", p + ".final_learning_rate: unknown key (known keys: decay_steps, end_learning_rate, initial_learning_rate, schedule, warmup_steps, warmup_target)"},
	} {
		var v any
		if err := yaml.Unmarshal([]byte(c.yaml), &v); err != nil {
			t.Fatal(err)
		}
		s, err := Parse(v)
		if err == nil {
			t.Errorf("%s: accepted as %#v", c.yaml, s)
			continue
		}
		if !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s:\n got %q\nwant %q", c.yaml, err, c.want)
		}
	}
}
