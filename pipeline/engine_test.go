package pipeline

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/schedule"
)

// TestModelConfigErrors: every way a model or optimizer config can be
// wrong is one line naming the file, the line and the layer, with a
// non-zero exit, before any data is loaded or output written.
func TestModelConfigErrors(t *testing.T) {
	const head = "data: {synthetic: {train: 64, test: 32}}\nmodel:\n  layers:\n"
	cases := []struct {
		name, body string
		want       []string
		sets       []string
	}{
		{"unknown kind", head + "    - {type: lstm, units: 3}\n", []string{":4:", "model.layers[0].type", `"lstm" is not a layer kind`}, nil},
		{"misspelled kind", head + "    - {type: batchnormalization}\n", []string{":4:", "did you mean batch_normalization"}, nil},
		{"misspelled argument", head + "    - {type: conv2d, filters: 4, kernel_size: 3}\n    - {type: flatten}\n    - {type: dense, unit: 10}\n",
			[]string{":6:", "model.layers[2].unit", `layer "dense"`, "did you mean units"}, nil},
		{"argument of another kind", head + "    - {type: flatten, units: 3}\n", []string{":4:", "model.layers[0].units", "flatten does not take units"}, nil},
		{"merge of mismatched shapes", head +
			"    - {type: conv2d, filters: 32, kernel_size: 3, padding: same, name: a}\n" +
			"    - {type: conv2d, filters: 64, kernel_size: 3, padding: same, name: b, inputs: [input]}\n" +
			"    - {type: add, name: add_3, inputs: [a, b]}\n",
			[]string{":6:", `layer "add_3": inputs have shapes (32, 32, 32) and (32, 32, 64)`}, nil},
		{"input that does not exist", head + "    - {type: flatten, inputs: [convv]}\n", []string{":4:", `no layer "convv"`}, nil},
		{"input that comes later (a cycle)", head +
			"    - {type: add, name: x, inputs: [input, y]}\n    - {type: activation, activation: relu, name: y}\n",
			[]string{":4:", `layer "x"`, `"y" comes later`}, nil},
		{"layer feeding itself", head + "    - {type: activation, activation: relu, name: x, inputs: [x]}\n", []string{":4:", "cycle"}, nil},
		{"layer used by nothing", head +
			"    - {type: conv2d, filters: 4, kernel_size: 3, name: lost}\n    - {type: flatten, inputs: [input]}\n    - {type: dense, units: 10, activation: softmax}\n",
			[]string{":4:", `layer "lost"`, "used by no layer"}, nil},
		{"batch norm axis", head + "    - {type: batch_normalization, axis: 1}\n", []string{":4:", "axis"}, nil},
		{"regularizer on a layer without weights", head + "    - {type: max_pooling2d, kernel_regularizer: {l2: 0.01}}\n",
			[]string{":4:", "max_pooling2d does not take kernel_regularizer"}, nil},
		{"regularizer on a missing bias", head + "    - {type: conv2d, filters: 4, kernel_size: 3, use_bias: false, bias_regularizer: {l2: 0.1}}\n",
			[]string{":4:", "no bias"}, nil},
		{"merge with one input", head + "    - {type: add}\n", []string{":4:", "Add takes 2 or more inputs, got 1"}, nil},
		{"unknown activation", head + "    - {type: activation, activation: relux}\n", []string{":4:", "did you mean relu"}, nil},
		{"unknown initializer", head + "    - {type: flatten}\n    - {type: dense, units: 10, kernel_initializer: he_norml}\n", []string{":5:", "did you mean he_normal"}, nil},
		{"output not the classes", head + "    - {type: flatten}\n    - {type: dense, units: 7}\n", []string{":5:", "does not match data.classes 10"}, nil},
		{"optimizer key that does not apply", "train:\n  optimizer: {name: sgd, rho: 0.9}\n", []string{":2:", "train.optimizer.rho", "sgd does not take rho"}, nil},
		{"infinite learning rate by --set", "", []string{"train.optimizer.learning_rate", "+Inf is not a finite number"}, []string{"train.optimizer.learning_rate=inf"}},
		{"NaN epsilon by --set", "", []string{"train.optimizer.epsilon", "NaN"}, []string{"train.optimizer.epsilon=nan"}},
		{"unknown optimizer", "train:\n  optimizer: {name: adagrad}\n", []string{":2:", "train.optimizer.name", "adagrad"}, nil},
		{"non-finite learning rate", "train:\n  optimizer: {name: adam, learning_rate: .nan}\n", []string{":2:", "train.optimizer.learning_rate", "NaN is not a finite number"}, nil},
		{"infinite learning rate", "train:\n  optimizer: {name: rmsprop, learning_rate: .inf}\n", []string{":2:", "train.optimizer.learning_rate", "+Inf is not a finite number"}, nil},
		{"non-finite epsilon", "train:\n  optimizer: {name: rmsprop, epsilon: .nan}\n", []string{":2:", "train.optimizer.epsilon", "NaN"}, nil},
		{"non-finite dropout rate", head + "    - {type: dropout, rate: .nan}\n", []string{":4:", "model.layers[0].rate", "NaN"}, nil},
		{"trainable not a bool", head + "    - {type: conv2d, filters: 4, kernel_size: 3, trainable: maybe}\n", []string{":4:", "trainable"}, nil},
		{"frozen batch norm", head + "    - {type: batch_normalization, trainable: false}\n", []string{":4:", "trainable: false is not supported for BatchNormalization"}, nil},
		{"whitening filters", head + "    - {type: conv2d, filters: 12, kernel_size: 2, kernel_initializer: patch_whitening}\n",
			[]string{":4:", "kernel_initializer: patch_whitening needs filters = 2 × kernel height × kernel width × input channels = 24, not 12"}, nil},
		{"rescaling without scale", head + "    - {type: rescaling}\n", []string{":4:", "scale: missing"}, nil},
		{"rescaling scale not a number", head + "    - {type: rescaling, scale: ninth}\n", []string{":4:", "model.layers[0].scale"}, nil},
		{"ema overwrite without ema", "train:\n  optimizer: {name: sgd, ema_overwrite_frequency: 5}\n", []string{":2:", "ema_overwrite_frequency: 5 has no effect without use_ema: true"}, nil},
		{"ema overwrite negative", "train:\n  optimizer: {name: sgd, use_ema: true, ema_overwrite_frequency: -5}\n", []string{":2:", "ema_overwrite_frequency: -5 must be >= 1"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "bad.yaml")
			out := filepath.Join(dir, "out")
			if err := os.WriteFile(cfg, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range [][]string{{"summary", "-c", cfg}, {"run", "-c", cfg, "--set", "output.dir=" + out}} {
				for _, s := range tc.sets {
					cmd = append(cmd, "--set", s)
				}
				code, _, errs := runCLI(context.Background(), cmd...)
				line := strings.TrimSpace(errs)
				if code == 0 {
					t.Fatalf("%s: exit 0", cmd[0])
				}
				if strings.Contains(line, "\n") {
					t.Errorf("%s: error is not one line:\n%s", cmd[0], errs)
				}
				for _, w := range append([]string{"bad.yaml"}, tc.want...) {
					if !strings.Contains(line, w) {
						t.Errorf("%s: error %q lacks %q", cmd[0], line, w)
					}
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a refused config created %s", out)
			}
		})
	}
}

// TestRunFunctionalWithRecipe trains a residual BatchNormalization net on
// the quick data with the modern recipe keys (AdamW with EMA, label
// smoothing, per-channel standardising, flip TTA) and reads back what they
// promise: metrics.json reports the TTA accuracy beside the plain one, the
// architecture JSON is a Keras Functional model, and predict --tta serves
// the SavedModel's TTA signature.
func TestRunFunctionalWithRecipe(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "residual.yaml")
	body := `data: {synthetic: {train: 512, test: 128}, validation_split: 0.25, mean: [0.3, 0.3, 0.3], std: [0.2, 0.25, 0.3]}
model:
  layers:
    - {type: conv2d, filters: 8, kernel_size: 3, padding: same, use_bias: false}
    - {type: batch_normalization}
    - {type: activation, activation: relu, name: stem}
    - {type: conv2d, filters: 8, kernel_size: 3, padding: same}
    - {type: batch_normalization, name: bn}
    - {type: add, inputs: [stem, bn]}
    - {type: global_average_pooling2d}
    - {type: dense, units: 10, activation: softmax}
train:
  batch_size: 64
  epochs: 2
  label_smoothing: 0.1
  optimizer: {name: adamw, learning_rate: 0.003, use_ema: true, ema_momentum: 0.9}
evaluate: {tta: true}
`
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	code, stdout, errs := runCLI(context.Background(), "run", "-c", cfg, "--set", "output.dir="+out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, errs)
	}
	for _, want := range []string{"Connected to", "Non-trainable params: 32", "Test Accuracy (flip TTA): "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	var metrics struct {
		Accuracy    float64  `json:"accuracy"`
		AccuracyTTA *float64 `json:"accuracy_tta"`
	}
	readJSON(t, filepath.Join(out, "metrics.json"), &metrics)
	if metrics.AccuracyTTA == nil || *metrics.AccuracyTTA < 0.2 || metrics.Accuracy < 0.2 {
		t.Errorf("metrics.json: accuracy %v, accuracy_tta %v; want both measured and above chance", metrics.Accuracy, metrics.AccuracyTTA)
	}
	var arch struct {
		ClassName string `json:"class_name"`
	}
	readJSON(t, filepath.Join(out, "cifar10_architecture.json"), &arch)
	if arch.ClassName != "Functional" {
		t.Errorf("architecture JSON is a %s, want Functional", arch.ClassName)
	}
	resolved, err := os.ReadFile(filepath.Join(out, "config.resolved.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"weight_decay: 0.004", "use_ema: true", "beta_1: 0.9"} {
		if !strings.Contains(string(resolved), want) {
			t.Errorf("config.resolved.yaml lacks the optimizer's resolved %q", want)
		}
	}
	img := filepath.Join(dir, "img.png")
	pix := make([]uint8, 30*40*3)
	for i := range pix {
		pix[i] = uint8(i * 7)
	}
	writePNG(t, img, pix, 30, 40)
	if code, stdout, errs := runCLI(context.Background(), "predict", "-m", out, "--tta", img); code != 0 || !strings.Contains(stdout, "img.png") {
		t.Fatalf("predict --tta: exit %d\n%s\n%s", code, stdout, errs)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestSchedulesAndCallbacks: a learning-rate schedule drives the run (the
// history's learning_rate column is the schedule's rate after each
// epoch's updates), ReduceLROnPlateau changes a constant rate, and
// EarlyStopping stops the run and restores the best epoch's weights,
// which run.json and the model card name; a resumed stopped run trains no
// further.
func TestSchedulesAndCallbacks(t *testing.T) {
	run := func(t *testing.T, out string, sets ...string) (string, string) {
		t.Helper()
		args := append([]string{"run", "-c", quickConfig(t), "--set", "output.dir=" + out, "--set", "train.epochs=4"}, sets...)
		code, stdout, errs := runCLI(context.Background(), args...)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, errs)
		}
		return stdout, errs
	}
	history := func(t *testing.T, out string) (lrs []float64) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(out, "history.csv"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		col := slices.Index(strings.Split(lines[0], ","), "learning_rate")
		if col < 0 {
			t.Fatalf("history.csv has no learning_rate column: %s", lines[0])
		}
		for _, l := range lines[1:] {
			v, err := strconv.ParseFloat(strings.Split(l, ",")[col], 64)
			if err != nil {
				t.Fatal(err)
			}
			lrs = append(lrs, v)
		}
		return lrs
	}

	t.Run("cosine schedule", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "o")
		run(t, out, "--set", "train.optimizer.learning_rate={schedule: cosine_decay, initial_learning_rate: 0.002, decay_steps: 100}")
		sched, err := schedule.Parse(map[string]any{"schedule": "cosine_decay", "initial_learning_rate": 0.002, "decay_steps": 100})
		if err != nil {
			t.Fatal(err)
		}
		lrs := history(t, out)
		// quick: 1600 training images, batch 64 → 25 updates an epoch.
		for i, got := range lrs {
			if want := float64(float32(sched.Rate(int64(25 * (i + 1))))); math.Abs(got-want) > 1e-9 {
				t.Errorf("epoch %d: learning_rate %v, the schedule gives %v", i+1, got, want)
			}
		}
		if len(lrs) != 4 || lrs[3] >= lrs[0] {
			t.Errorf("learning rates %v do not decay over 4 epochs", lrs)
		}
	})
	t.Run("reduce on plateau", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "o")
		run(t, out, "--set", "train.callbacks={reduce_lr_on_plateau: {monitor: val_loss, factor: 0.5, patience: 0, min_delta: 10, min_lr: 0.0002}}")
		lrs := history(t, out)
		// Keras logs the rate an epoch trained with, before the callback
		// lowers it: the first epoch improves (on infinity), every later one
		// does not by 10, so each lowers the next epoch's rate.
		want := []float64{0.001, 0.001, 0.0005, 0.00025}
		for i := range want {
			if i >= len(lrs) || math.Abs(lrs[i]-want[i]) > 1e-9 {
				t.Fatalf("learning rates %v, want %v (halved after every epoch without a 10 improvement)", lrs, want)
			}
		}
	})
	t.Run("early stopping restores the best weights", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "o")
		_, errs := run(t, out, "--set", "train.callbacks={early_stopping: {monitor: val_loss, patience: 1, min_delta: 10, restore_best_weights: true}}")
		if !strings.Contains(errs, "stopped after epoch 2") || !strings.Contains(errs, "the weights of epoch 1") {
			t.Errorf("log does not say the run stopped after epoch 2 and restored epoch 1:\n%s", errs)
		}
		var rs struct {
			Weights string `json:"weights"`
			Epochs  []any  `json:"epochs"`
		}
		readJSON(t, filepath.Join(out, "run.json"), &rs)
		if rs.Weights != "best (epoch 1)" || len(rs.Epochs) != 2 {
			t.Errorf("run.json: weights %q after %d epochs, want best (epoch 1) after 2", rs.Weights, len(rs.Epochs))
		}
		card, _ := os.ReadFile(filepath.Join(out, "MODEL_CARD.md"))
		if !strings.Contains(string(card), "| Weights | best (epoch 1) |") {
			t.Error("MODEL_CARD.md does not say which weights it holds")
		}
		if _, err := os.Stat(filepath.Join(out, "checkpoints", "best", "ckpt-best.index")); err != nil {
			t.Errorf("no best-only checkpoint: %v", err)
		}
		// Resumed, the stopped run trains no further.
		stdout, _ := run(t, out, "--resume", "--set", "train.callbacks={early_stopping: {monitor: val_loss, patience: 1, min_delta: 10, restore_best_weights: true}}")
		if strings.Contains(stdout, "Epoch 3/4") {
			t.Error("a resumed early-stopped run trained another epoch")
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			sets []string
			want string
		}{
			{[]string{"train.optimizer.learning_rate={schedule: cosine_decay, initial_learning_rate: 0.0, decay_steps: 10, warmup_target: 0.01, warmup_steps: 500}"}, "warmup_steps: 500 exceeds"},
			{[]string{"train.optimizer.learning_rate={schedule: exponential_decay, initial_learning_rate: 0.01, decay_steps: 10, decay_rate: -0.5}"}, "decay_rate"},
			{[]string{"train.optimizer.learning_rate={schedule: cosine_decay, initial_learning_rate: 0.01, decay_steps: 10}",
				"train.callbacks={reduce_lr_on_plateau: {}}"}, "cannot change a learning-rate schedule"},
			{[]string{"train.callbacks={early_stopping: {patience: -1}}"}, "patience"},
			{[]string{"train.callbacks={early_stopping: {monitor: val_acc}}"}, "did you mean val_accuracy"},
			{[]string{"data.validation=none", "train.callbacks={early_stopping: {restore_best_weights: true}}"}, "validation"},
		} {
			out := filepath.Join(t.TempDir(), "o")
			args := []string{"run", "-c", quickConfig(t), "--set", "output.dir=" + out}
			for _, s := range tc.sets {
				args = append(args, "--set", s)
			}
			code, _, errs := runCLI(context.Background(), args...)
			lines := strings.Split(strings.TrimSpace(errs), "\n")
			line := lines[len(lines)-1] // after the data and runtime lines, for a check that needs the run's length
			if code == 0 || !strings.Contains(line, tc.want) {
				t.Errorf("%v: exit %d, error %q, want one line with %q", tc.sets, code, line, tc.want)
			}
			for _, f := range []string{"checkpoints", "config.resolved.yaml", "run.json"} {
				if _, err := os.Stat(filepath.Join(out, f)); err == nil {
					t.Errorf("%v: a refused run wrote %s", tc.sets, f)
				}
			}
		}
	})
}
