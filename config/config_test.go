package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestShippedConfigs(t *testing.T) {
	for _, f := range []string{"../config.yaml", "../configs/quick.yaml", "../configs/deep.yaml", "../configs/deep-intended.yaml", "../configs/deep-augmented.yaml", "../configs/resnet20.yaml", "../configs/fast94.yaml"} {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDefaultsAreTheNotebooks(t *testing.T) {
	cfg, err := Load(writeConfig(t, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Train.Optimizer
	if cfg.Train.BatchSize != 128 || cfg.Train.Epochs != 20 || cfg.Data.Classes != 10 || cfg.Data.ValidationSplit != 0.2 ||
		o.Name != "rmsprop" || o.Args["learning_rate"] != 0.001 ||
		len(cfg.Data.ImageShape) != 3 || cfg.Data.ImageShape[0] != 32 || cfg.Output.Dir != "output" || len(cfg.Model.Layers) != 10 {
		t.Fatalf("defaults differ from the notebook: %+v", cfg)
	}
}

// TestEngineArgsKept: the optimizer's and the layers' own keys are kept
// for the engine to check (graph's registries), from the file and --set.
func TestEngineArgsKept(t *testing.T) {
	cfg, err := Load(writeConfig(t, "train:\n  optimizer: {name: adam, beta_1: 0.8}\nmodel:\n  layers:\n    - {type: dense, units: 10, name: out, inputs: [input]}\n"),
		[]string{"train.optimizer.learning_rate=0.01"})
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.Train.Optimizer; o.Name != "adam" || o.Args["beta_1"] != 0.8 || o.Args["learning_rate"] != 0.01 {
		t.Fatalf("optimizer: %+v", o)
	}
	l := cfg.Model.Layers[0]
	if l.Type != "dense" || l.Name != "out" || len(l.Inputs) != 1 || l.Inputs[0] != "input" || l.Args["units"] != 10 || len(l.Args) != 1 {
		t.Fatalf("layer: %+v", l)
	}
	if n := cfg.Source.Line("model.layers[0].units"); n != 5 {
		t.Errorf("line of model.layers[0].units = %d, want 5", n)
	}
}

// TestDecodeArgs: a component's arguments decode as strictly as the rest
// of the config, each error a KeyError naming the key.
func TestDecodeArgs(t *testing.T) {
	type args struct {
		Units   int     `mapstructure:"units"`
		Rate    float64 `mapstructure:"rate"`
		Kernel  []int   `mapstructure:"kernel_size"`
		UseBias bool    `mapstructure:"use_bias"`
	}
	good := args{}
	if err := DecodeArgs(map[string]any{"units": 3, "rate": 0.5, "kernel_size": 3, "use_bias": true}, &good, "model.layers[0]", "dense"); err != nil {
		t.Fatal(err)
	}
	if good.Units != 3 || good.Rate != 0.5 || len(good.Kernel) != 1 || good.Kernel[0] != 3 || !good.UseBias {
		t.Fatalf("decoded %+v", good)
	}
	for _, tc := range []struct {
		in   map[string]any
		want []string
	}{
		{map[string]any{"unit": 3}, []string{"model.layers[0].unit", "dense does not take unit", "did you mean units"}},
		{map[string]any{"units": 2.5}, []string{"model.layers[0].units", "whole number"}},
		{map[string]any{"units": "many"}, []string{"model.layers[0].units", "whole number"}},
		{map[string]any{"use_bias": 1}, []string{"model.layers[0].use_bias", "true or false"}},
		{map[string]any{"rate": math.NaN()}, []string{"model.layers[0].rate", "not a finite number"}},
		{map[string]any{"rate": math.Inf(1)}, []string{"model.layers[0].rate", "not a finite number"}},
	} {
		var a args
		err := DecodeArgs(tc.in, &a, "model.layers[0]", "dense")
		var ke *KeyError
		if err == nil || !errors.As(err, &ke) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: err = %v, want a one-line KeyError", tc.in, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %q lacks %q", tc.in, err, w)
			}
		}
	}
}

func TestOverrides(t *testing.T) {
	t.Setenv("PIPELINE_TRAIN_EPOCHS", "3")
	t.Setenv("PIPELINE_RUNTIME_XLA", "true")
	cfg, err := Load(writeConfig(t, "train: {epochs: 7, batch_size: 64}\n"), []string{"train.batch_size=32", "data.validation_split=0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Train.Epochs != 3 || cfg.Runtime.XLA != XLAOn || cfg.Train.BatchSize != 32 || cfg.Data.ValidationSplit != 0.1 {
		t.Fatalf("overrides not applied: epochs %d xla %v batch %d split %v", cfg.Train.Epochs, cfg.Runtime.XLA, cfg.Train.BatchSize, cfg.Data.ValidationSplit)
	}
}

func TestBadConfigs(t *testing.T) {
	cases := []struct {
		name, body string
		sets       []string
		want       []string // substrings of the one-line error
	}{
		{"misspelled top key", "trian: {epochs: 3}\n", nil, []string{"c.yaml:1", "unknown key trian", "did you mean train"}},
		{"misspelled nested key", "train:\n  batch_sizee: 3\n", nil, []string{"c.yaml:2", "unknown key train.batch_sizee", "train.batch_size"}},
		{"string for int", "train: {epochs: many}\n", nil, []string{"train.epochs"}},
		{"fraction for int", "train: {batch_size: 12.5}\n", nil, []string{"train.batch_size", "whole number"}},
		{"number for bool", "train: {shuffle: 1}\n", nil, []string{"train.shuffle", "true or false"}},
		{"section not a map", "train: 5\n", nil, []string{"train must be a mapping"}},
		{"bad yaml", "train: [1,\n", nil, []string{"not valid YAML"}},
		{"split out of range", "data: {validation_split: 1.5}\n", nil, []string{"data.validation_split"}},
		{"layer without type", "model: {layers: [{units: 3}]}\n", nil, []string{"c.yaml:1", "model.layers[0].type", "missing"}},
		{"bad fill mode", "augment: {fill_mode: mirror}\n", nil, []string{"augment.fill_mode"}},
		{"negative crop padding", "augment: {crop: {padding: -1}}\n", nil, []string{"augment.crop.padding", "-1"}},
		{"crop padding = image size", "augment: {crop: {padding: 32}}\n", nil, []string{"augment.crop.padding", "32", "below the image size"}},
		{"crop padding > non-square side", "data: {image_shape: [32, 8, 3]}\naugment: {crop: {padding: 8}}\n", nil, []string{"augment.crop.padding", "32x8"}},
		{"unknown crop mode", "augment: {crop: {padding: 4, mode: symmetric}}\n", nil, []string{"augment.crop.mode", "symmetric", "reflect, constant"}},
		{"crop value not a pixel", "augment: {crop: {padding: 4, mode: constant, value: 256}}\n", nil, []string{"augment.crop.value", "256"}},
		{"crop value fractional", "augment: {crop: {value: 0.5}}\n", nil, []string{"augment.crop.value", "whole number"}},
		{"misspelled crop key", "augment: {crop: {paddin: 4}}\n", nil, []string{"augment.crop.paddin", "did you mean augment.crop.padding"}},
		{"unknown flip", "augment: {flip: alternating}\n", nil, []string{"augment.flip", "alternating", "none, random, alternate"}},
		{"flip as bool", "augment: {flip: true}\n", nil, []string{"augment.flip"}},
		{"two flips", "augment: {flip: random, horizontal_flip: true}\n", nil, []string{"augment.flip", "horizontal_flip", "twice"}},
		{"negative cutout size", "augment: {cutout: {size: -8}}\n", nil, []string{"augment.cutout.size", "-8"}},
		{"negative cutout count", "augment: {cutout: {size: 8, count: -1}}\n", nil, []string{"augment.cutout.count", "-1"}},
		{"cutout count without size", "augment: {cutout: {count: 2}}\n", nil, []string{"augment.cutout.size", "count 2"}},
		{"cutout value not a pixel", "augment: {cutout: {size: 8, value: -3}}\n", nil, []string{"augment.cutout.value", "-3"}},
		{"bad --set crop mode", "", []string{"augment.crop.mode=wrap"}, []string{"augment.crop.mode", "wrap"}},
		{"unknown device", "runtime: {device: tpu}\n", nil, []string{"runtime.device", "tpu", "gpu:N"}},
		{"device index not a number", "", []string{"runtime.device=gpu:x"}, []string{"runtime.device", "gpu:x"}},
		{"negative device index", "", []string{"runtime.device=gpu:-1"}, []string{"runtime.device", "gpu:-1"}},
		{"empty device index", "", []string{"runtime.device=gpu:"}, []string{"runtime.device"}},
		{"upper-case device", "", []string{"runtime.device=GPU"}, []string{"runtime.device", "GPU"}},
		{"device as a number", "runtime: {device: 0}\n", nil, []string{"runtime.device"}},
		{"memory growth not a bool", "runtime: {gpu_memory_growth: maybe}\n", nil, []string{"runtime.gpu_memory_growth"}},
		{"unknown --set key", "", []string{"train.epoch=3"}, []string{"--set train.epoch", "did you mean train.epochs"}},
		{"truncated --set key", "", []string{"augment.rotation=3"}, []string{"--set augment.rotation", "did you mean augment.rotation_range"}},
		{"malformed --set", "", []string{"train.epochs"}, []string{"key=value"}},
		{"bad --set value", "", []string{"train.epochs=abc"}, []string{"train.epochs"}},
		// Issue 14 case 6: NaN compares false with every bound, so range
		// checks alone accepted these (a NaN split silently meant 0).
		{"mean without std", "data: {mean: [0.5, 0.5, 0.5]}\n", nil, []string{"data.mean and data.std", "give both"}},
		{"mean of the wrong length", "data: {mean: [0.5, 0.5], std: [0.2, 0.2]}\n", nil, []string{"data.mean", "one value per channel (3)"}},
		{"zero std", "data: {mean: [0.5, 0.5, 0.5], std: [0.2, 0, 0.2]}\n", nil, []string{"data.std", "> 0"}},
		{"label smoothing of 1", "train: {label_smoothing: 1}\n", nil, []string{"train.label_smoothing", "[0, 1)"}},
		{"nan validation split", "data: {validation_split: .nan}\n", nil, []string{"data.validation_split", "NaN"}},
		{"-inf rotation", "augment: {rotation_range: -.inf}\n", nil, []string{"augment.rotation_range", "-Inf"}},
		{"nan zoom bound", "augment: {zoom_range: [0.9, .nan]}\n", nil, []string{"augment.zoom_range[1]", "NaN"}},
		// Issue 14 case 7: a queue of a billion batches is refused before
		// anything is allocated.
		{"huge queue", "augment: {queue_batches: 1000000000}\n", nil, []string{"augment.queue_batches", "1000000000", "1024"}},
		// Issue 16: an unknown precision, in the file or by --set.
		{"negative tta_translate", "evaluate: {tta: true, tta_translate: -1}\n", nil, []string{"evaluate.tta_translate: -1 must be >= 0"}},
		{"tta_translate without tta", "evaluate: {tta_translate: 1}\n", nil, []string{"evaluate.tta_translate: 1 needs evaluate.tta: true"}},
		{"tta_translate too large", "evaluate: {tta: true, tta_translate: 16}\n", nil, []string{"evaluate.tta_translate: 16 pixels must be under half the image size 32x32"}},
		{"tta_translate not a number", "evaluate: {tta: true, tta_translate: one}\n", nil, []string{"evaluate.tta_translate"}},
		{"unknown precision", "runtime: {precision: bfloat16}\n", nil, []string{"runtime.precision", `"bfloat16"`, "mixed_bfloat16"}},
		{"empty precision", "runtime: {precision: ''}\n", nil, []string{"runtime.precision", `""`}},
		{"precision not a string", "runtime: {precision: [float32]}\n", nil, []string{"runtime.precision"}},
		{"unknown --set precision", "", []string{"runtime.precision=fp16"}, []string{"runtime.precision", `"fp16"`}},
		// Issue 16: runtime.xla is auto, true or false.
		{"unknown xla", "runtime: {xla: sometimes}\n", nil, []string{"c.yaml:1: runtime.xla", `"sometimes"`, "auto, true, false"}},
		{"xla a number", "runtime: {xla: 3}\n", nil, []string{"runtime.xla", `"3"`, "auto, true, false"}},
		{"xla a fraction", "runtime: {xla: 0.5}\n", nil, []string{"runtime.xla", "auto, true, false"}},
		{"xla empty", "runtime: {xla: ''}\n", nil, []string{"runtime.xla", `""`, "auto, true, false"}},
		{"xla yaml 1.1 on", "runtime: {xla: on}\n", nil, []string{"runtime.xla", `"on"`, "auto, true, false"}},
		{"xla upper-case auto", "", []string{"runtime.xla=AUTO"}, []string{"runtime.xla", `"AUTO"`}},
		{"xla a list", "runtime: {xla: [true]}\n", nil, []string{"runtime.xla"}},
		{"unknown --set xla", "", []string{"runtime.xla=maybe"}, []string{"runtime.xla", `"maybe"`, "auto, true, false"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tc.body), tc.sets)
			if err == nil {
				t.Fatal("loaded without error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
}

// TestModernAugmentKeys: the crop, flip and cutout keys load from YAML and
// --set, with their defaults (all off, reflect mode) when absent.
func TestModernAugmentKeys(t *testing.T) {
	cfg, err := Load(writeConfig(t, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Augment; a.Crop != (Crop{Mode: "reflect"}) || a.Flip != "none" || a.Cutout != (Cutout{Count: 1}) {
		t.Fatalf("defaults: crop %+v flip %q cutout %+v", a.Crop, a.Flip, a.Cutout)
	}
	cfg, err = Load(writeConfig(t, "augment:\n  enabled: true\n  crop: {padding: 4, mode: constant, value: 128}\n  flip: alternate\n  cutout: {size: 8, count: 2, value: 7}\n"),
		[]string{"augment.cutout.size=12"})
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Augment; a.Crop != (Crop{Padding: 4, Mode: "constant", Value: 128}) || a.Flip != "alternate" || a.Cutout != (Cutout{Size: 12, Count: 2, Value: 7}) {
		t.Fatalf("loaded: crop %+v flip %q cutout %+v", a.Crop, a.Flip, a.Cutout)
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("err = %v", err)
	}
}

// runtime.precision defaults to float32 (today's graph) and takes the
// Keras policy names, from the file or --set.
func TestPrecisionKey(t *testing.T) {
	cfg, err := Load(writeConfig(t, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Runtime.Precision != "float32" {
		t.Errorf("default precision %q, want float32", cfg.Runtime.Precision)
	}
	for _, p := range Precisions {
		cfg, err := Load(writeConfig(t, ""), []string{"runtime.precision=" + p})
		if err != nil || cfg.Runtime.Precision != p {
			t.Errorf("--set runtime.precision=%s: %q, %v", p, cfg.Runtime.Precision, err)
		}
	}
}

func TestParseDevice(t *testing.T) {
	for in, want := range map[string]DeviceSpec{
		"auto": {Kind: DeviceAuto}, "cpu": {Kind: DeviceCPU}, "gpu": {Kind: DeviceGPU},
		"gpu:0": {Kind: DeviceGPU}, "gpu:3": {Kind: DeviceGPU, Index: 3},
	} {
		got, err := ParseDevice(in)
		if err != nil || got != want {
			t.Errorf("ParseDevice(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "gpu:", "gpu:-1", "gpu:+1", "gpu:1x", "gpu:99999999999999999999", "cuda:0", "GPU", " gpu"} {
		if _, err := ParseDevice(in); err == nil {
			t.Errorf("ParseDevice(%q) accepted", in)
		}
	}
	cfg, err := Load(writeConfig(t, ""), []string{"runtime.device=gpu:2", "runtime.gpu_memory_growth=true"})
	if err != nil || cfg.Runtime.Device != "gpu:2" || !cfg.Runtime.GPUMemoryGrowth {
		t.Fatalf("overrides not applied: %+v %v", cfg.Runtime, err)
	}
}

// TestXLAModes: runtime.xla takes auto (the default), true and false — YAML
// booleans in a file or --set, strings from the environment — and writes
// true and false back as YAML booleans, so config.resolved.yaml loads again.
func TestXLAModes(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		sets       []string
		env        string
		want       XLAMode
	}{
		{"default", "", nil, "", XLAAuto},
		{"auto", "runtime: {xla: auto}\n", nil, "", XLAAuto},
		{"yaml true", "runtime: {xla: true}\n", nil, "", XLAOn},
		{"yaml false", "runtime: {xla: false}\n", nil, "", XLAOff},
		{"yaml True", "runtime: {xla: True}\n", nil, "", XLAOn},
		{"quoted false", "runtime: {xla: 'false'}\n", nil, "", XLAOff},
		{"--set true", "runtime: {xla: auto}\n", []string{"runtime.xla=true"}, "", XLAOn},
		{"--set auto", "runtime: {xla: false}\n", []string{"runtime.xla=auto"}, "", XLAAuto},
		{"env FALSE", "", nil, "FALSE", XLAOff},
		{"env auto", "runtime: {xla: true}\n", nil, "auto", XLAAuto},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("PIPELINE_RUNTIME_XLA", tc.env)
			}
			cfg, err := Load(writeConfig(t, tc.body), tc.sets)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Runtime.XLA != tc.want {
				t.Fatalf("runtime.xla = %q, want %q", cfg.Runtime.XLA, tc.want)
			}
			b, err := yaml.Marshal(cfg.Runtime)
			if err != nil {
				t.Fatal(err)
			}
			want := "xla: " + string(tc.want) + "\n"
			if !strings.Contains(string(b), want) {
				t.Fatalf("marshalled runtime lacks %q:\n%s", want, b)
			}
			again, err := Load(writeConfig(t, "runtime:\n"+indent(string(b))), nil)
			if err != nil || again.Runtime.XLA != tc.want {
				t.Fatalf("marshalled runtime loads as %q, %v; want %q", again.Runtime.XLA, err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		mode    XLAMode
		gpu, on bool
	}{
		{XLAAuto, false, false}, {XLAAuto, true, true},
		{XLAOn, false, true}, {XLAOn, true, true},
		{XLAOff, false, false}, {XLAOff, true, false},
	} {
		if got := tc.mode.On(tc.gpu); got != tc.on {
			t.Errorf("%s on a GPU %v: on = %v, want %v", tc.mode, tc.gpu, got, tc.on)
		}
	}
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString("  " + l)
		}
	}
	return b.String()
}

// TestSetInsideOptimizerMapping: --set of one key inside the optimizer's
// mapping or its schedule changes that key and keeps the file's others.
func TestSetInsideOptimizerMapping(t *testing.T) {
	p := writeConfig(t, "train:\n  optimizer:\n    name: sgd\n    momentum: 0.85\n    learning_rate: {schedule: one_cycle, initial_learning_rate: 0.3, warmup_target: 1.5, warmup_steps: 180, decay_steps: 604}\n")
	cfg, err := Load(p, []string{"train.optimizer.learning_rate.warmup_steps=2", "train.optimizer.nesterov=true", "train.optimizer.learning_rate.decay_steps=3"})
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Train.Optimizer
	lr, _ := o.Args["learning_rate"].(map[string]any)
	want := map[string]any{"schedule": "one_cycle", "initial_learning_rate": 0.3, "warmup_target": 1.5, "warmup_steps": 2, "decay_steps": 3}
	if len(lr) != len(want) {
		t.Fatalf("learning_rate = %v, want %v", lr, want)
	}
	for k, w := range want {
		if fmt.Sprint(lr[k]) != fmt.Sprint(w) {
			t.Errorf("learning_rate.%s = %v, want %v", k, lr[k], w)
		}
	}
	if o.Name != "sgd" || fmt.Sprint(o.Args["momentum"]) != "0.85" || o.Args["nesterov"] != true {
		t.Errorf("optimizer = %+v: a --set inside it lost the file's keys", o)
	}
}
