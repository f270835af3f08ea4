package kerasfile

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
)

// pyOptimizerVars prints, per optimizer configuration, the names of the
// model's trainable variables and of optimizer.variables once built.
const pyOptimizerVars = `
import json, keras
from keras import layers, optimizers
m = keras.Sequential([keras.Input((6, 6, 3)), layers.Conv2D(2, 3), layers.BatchNormalization(), layers.Flatten(), layers.Dense(3)])
sched = optimizers.schedules.ExponentialDecay(1e-3, 100, 0.9)
cases = {
    "rmsprop": optimizers.RMSprop(),
    "rmsprop_momentum_centered": optimizers.RMSprop(momentum=0.9, centered=True),
    "rmsprop_schedule": optimizers.RMSprop(learning_rate=sched),
    "adam": optimizers.Adam(),
    "adam_amsgrad": optimizers.Adam(amsgrad=True),
    "sgd": optimizers.SGD(),
    "sgd_momentum": optimizers.SGD(momentum=0.9),
    "adamw": optimizers.AdamW(),
    "rmsprop_ema": optimizers.RMSprop(use_ema=True, momentum=0.5),
}
out = {}
for k, o in cases.items():
    o.build(m.trainable_variables)
    out[k] = {"model": [v.path.replace("/", "_") for v in m.trainable_variables],
              "opt": [v.name for v in o.variables]}
print(json.dumps(out))
`

func TestOptimizerVarsMatchKeras(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Python reference")
	}
	var got map[string]struct{ Model, Opt []string }
	if err := json.Unmarshal(testenv.RunPython(t, pyOptimizerVars), &got); err != nil {
		t.Fatal(err)
	}
	specs := map[string]OptimizerSpec{
		"rmsprop":                   {Class: "RMSprop"},
		"rmsprop_momentum_centered": {Class: "RMSprop", Momentum: 0.9, Centered: true},
		"rmsprop_schedule":          {Class: "RMSprop", LRSchedule: true},
		"adam":                      {Class: "Adam"},
		"adam_amsgrad":              {Class: "Adam", AMSGrad: true},
		"sgd":                       {Class: "SGD"},
		"sgd_momentum":              {Class: "SGD", Momentum: 0.9},
		"adamw":                     {Class: "AdamW"},
		"rmsprop_ema":               {Class: "RMSprop", Momentum: 0.5, UseEMA: true},
	}
	for name, spec := range specs {
		k, ok := got[name]
		if !ok {
			t.Fatalf("python gave no %s", name)
		}
		vars, err := OptimizerVars(spec, len(k.Model))
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, len(vars))
		for i, v := range vars {
			names[i] = v.Slot
			if v.Var >= 0 {
				names[i] = fmt.Sprintf("%s_%s", k.Model[v.Var], v.Slot)
			}
		}
		if strings.Join(names, " ") != strings.Join(k.Opt, " ") {
			t.Errorf("%s:\n go    %v\n keras %v", name, names, k.Opt)
		}
	}
	if _, err := OptimizerVars(OptimizerSpec{Class: "Adagrad"}, 1); err == nil || !strings.Contains(err.Error(), "Adagrad") {
		t.Errorf("unknown optimizer: %v", err)
	}
}
