package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	for _, f := range []string{"../config.yaml", "../configs/quick.yaml", "../configs/deep.yaml", "../configs/deep-intended.yaml", "../configs/deep-augmented.yaml"} {
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
		o.Name != "rmsprop" || o.LearningRate != 0.001 || o.Rho != 0.9 || o.Epsilon != 1e-7 || o.Momentum != 0 || o.Centered ||
		len(cfg.Data.ImageShape) != 3 || cfg.Data.ImageShape[0] != 32 || cfg.Output.Dir != "output" || len(cfg.Model.Layers) != 10 {
		t.Fatalf("defaults differ from the notebook: %+v", cfg)
	}
}

func TestOptimizerDefaultsFollowName(t *testing.T) {
	cfg, err := Load(writeConfig(t, "train:\n  optimizer: {name: adam}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.Train.Optimizer; o.Beta1 != 0.9 || o.Beta2 != 0.999 || o.Epsilon != 1e-7 || o.LearningRate != 0.001 {
		t.Fatalf("adam defaults: %+v", o)
	}
	cfg, err = Load(writeConfig(t, ""), []string{"train.optimizer.name=sgd"})
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.Train.Optimizer; o.LearningRate != 0.01 || o.Momentum != 0 || o.Nesterov {
		t.Fatalf("sgd defaults: %+v", o)
	}
}

func TestOverrides(t *testing.T) {
	t.Setenv("PIPELINE_TRAIN_EPOCHS", "3")
	t.Setenv("PIPELINE_RUNTIME_XLA", "true")
	cfg, err := Load(writeConfig(t, "train: {epochs: 7, batch_size: 64}\n"), []string{"train.batch_size=32", "data.validation_split=0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Train.Epochs != 3 || !cfg.Runtime.XLA || cfg.Train.BatchSize != 32 || cfg.Data.ValidationSplit != 0.1 {
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
		{"misspelled layer key", "model:\n  layers:\n    - {type: dense, unit: 3}\n", nil, []string{"c.yaml:3", "model.layers[0].unit", "units"}},
		{"string for int", "train: {epochs: many}\n", nil, []string{"train.epochs"}},
		{"fraction for int", "train: {batch_size: 12.5}\n", nil, []string{"train.batch_size", "whole number"}},
		{"number for bool", "train: {shuffle: 1}\n", nil, []string{"train.shuffle", "true or false"}},
		{"section not a map", "train: 5\n", nil, []string{"train must be a mapping"}},
		{"bad yaml", "train: [1,\n", nil, []string{"not valid YAML"}},
		{"split out of range", "data: {validation_split: 1.5}\n", nil, []string{"data.validation_split"}},
		{"unknown optimizer", "train: {optimizer: {name: adagrad}}\n", nil, []string{"train.optimizer.name", "adagrad"}},
		{"unknown layer", "model: {layers: [{type: lstm}]}\n", nil, []string{"model.layers[0]", "lstm"}},
		{"layer arg that does not apply", "model: {layers: [{type: flatten, units: 3}]}\n", nil, []string{"model.layers[0]", "units does not apply"}},
		{"bad fill mode", "augment: {fill_mode: mirror}\n", nil, []string{"augment.fill_mode"}},
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

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("err = %v", err)
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
