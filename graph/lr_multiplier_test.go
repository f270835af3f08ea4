package graph

import (
	"math"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/internal/enginetest"
)

// TestLearningRateMultipliers: a weight matching a pattern moves by
// exactly its multiple of the plain update (plain SGD, one step, from the
// same weights on the same batch), others as before; the weight decay
// keeps the optimizer's own rate.
func TestLearningRateMultipliers(t *testing.T) {
	const n = 32
	images, labels := tinyData(n, 10, 4)
	step := func(kv ...any) (w0, w1 map[string]Array) {
		m := compileNet(t, enginetest.SmallResNet(), Options{Seed: 3, Normalize: true, Classes: 10, Optimizer: optimizer(t, "sgd", kv...)})
		w0, _ = m.GetWeights()
		if _, err := m.TrainStep(images, labels, n, 1, 0); err != nil {
			t.Fatal(err)
		}
		w1, _ = m.GetWeights()
		return w0, w1
	}
	base0, base1 := step("learning_rate", 0.01)
	x0, x1 := step("learning_rate", 0.01, "learning_rate_multipliers", map[string]any{"*/beta": 64.0})
	for name := range base0 {
		if maxAbsDiff(base0[name].Data, x0[name].Data) != 0 {
			t.Fatalf("%s: the two models start from different weights", name)
		}
		mult := 1.0
		if strings.HasSuffix(name, "/beta") {
			mult = 64
		}
		worst, moved := 0.0, 0.0
		for i := range base0[name].Data {
			want := mult * float64(base1[name].Data[i]-base0[name].Data[i])
			got := float64(x1[name].Data[i] - x0[name].Data[i])
			worst = math.Max(worst, math.Abs(got-want))
			moved = math.Max(moved, math.Abs(want))
		}
		if moved == 0 {
			t.Fatalf("%s did not move: the test is vacuous", name)
		}
		if worst > 1e-5*moved {
			t.Errorf("%s: update differs from %g× the plain one by %.3g (largest %.3g)", name, mult, worst, moved)
		}
	}

	// Decoupled decay at the optimizer's rate: with a zero gradient's worth
	// of difference, the decay part is the same with and without the
	// multiplier, so the multiplied update is 64·(plain − decay) + decay.
	_, d1 := step("learning_rate", 0.01, "weight_decay", 0.5)
	_, dx1 := step("learning_rate", 0.01, "weight_decay", 0.5, "learning_rate_multipliers", map[string]any{"*/beta": 64.0})
	for name := range base0 {
		if !strings.HasSuffix(name, "/beta") {
			continue
		}
		for i, w := range base0[name].Data {
			decay := -0.01 * 0.5 * float64(w)
			want := float64(w) + decay + 64*(float64(d1[name].Data[i])-float64(w)-decay)
			if d := math.Abs(float64(dx1[name].Data[i]) - want); d > 1e-5*math.Max(1, math.Abs(want)) {
				t.Fatalf("%s[%d]: %g, want %g (decay at the optimizer's rate)", name, i, dx1[name].Data[i], want)
			}
		}
	}
}

func TestLearningRateMultiplierErrors(t *testing.T) {
	for _, tc := range []struct {
		mults map[string]any
		want  string
	}{
		{map[string]any{"*/gama": 2.0}, `learning_rate_multipliers.*/gama: matches no trainable weight (they are named layer/param: stem/kernel`},
		{map[string]any{"*/beta": 2.0, "bn_b/*": 3.0}, `weight bn_b/beta matches both "*/beta" and "bn_b/*"`},
		{map[string]any{"[": 2.0}, "learning_rate_multipliers.[: not a pattern"},
		{map[string]any{"*/beta": 0.0}, "learning_rate_multipliers.*/beta"},
		{map[string]any{"*/beta": math.Inf(1)}, "learning_rate_multipliers[*/beta]: wrong type: +Inf is not a finite number"},
	} {
		o, err := NewOptimizer(enginetest.Optimizer("sgd", "learning_rate_multipliers", tc.mults))
		if err == nil {
			_, err = Compile(newNet(t, enginetest.SmallResNet()), Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: o})
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.mults, err, tc.want)
		}
	}
}
