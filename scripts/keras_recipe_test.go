package scripts

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cifar-pipeline/cifar-pipeline/augment"
	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/export"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/internal/enginetest"
	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
	"github.com/cifar-pipeline/cifar-pipeline/schedule"
)

// recipeYAML is fast94's recipe in miniature: a frozen patch-whitening
// conv, GELU, BN without scale, global max-pooling, rescaled logits; SGD
// Nesterov + weight decay + EMA, one_cycle, label smoothing; reflect crop 2
// + alternate flip; mirror+translate TTA. 96 training images in batches of
// 32: 3 steps an epoch.
const recipeYAML = `name: keras-recipe-test
seed: 7
data:
  validation: test
  normalize: true
  mean: [0.4914, 0.4822, 0.4465]
  std: [0.2470, 0.2435, 0.2616]
  limit_train: 96
  limit_test: 48
model:
  layers:
    - {type: conv2d, filters: 24, kernel_size: 2, use_bias: false, kernel_initializer: patch_whitening, trainable: false, name: whiten}
    - {type: activation, activation: gelu}
    - {type: conv2d, filters: 8, kernel_size: 3, padding: same, use_bias: false}
    - {type: max_pooling2d, pool_size: 2}
    - {type: batch_normalization, momentum: 0.6, epsilon: 0.00001, scale: false}
    - {type: activation, activation: gelu}
    - {type: global_max_pooling2d}
    - {type: dense, units: 10, use_bias: false}
    - {type: rescaling, scale: 0.1111111111111111}
    - {type: activation, activation: softmax}
train:
  batch_size: 32
  epochs: 2
  label_smoothing: 0.2
  optimizer:
    name: sgd
    momentum: 0.85
    nesterov: true
    weight_decay: 0.005
    use_ema: true
    ema_momentum: 0.9
    learning_rate: {schedule: one_cycle, initial_learning_rate: 0.03, warmup_target: 0.15, warmup_steps: 2, decay_steps: 3, end_learning_rate: 0.01}
augment:
  enabled: true
  crop: {padding: 2, mode: reflect}
  flip: alternate
evaluate:
  tta: true
  tta_translate: 1
`

// writeCIFAR writes images (NHWC) as CIFAR-10 binary batches: five
// training batches of perBatch images, then test_batch.bin of the rest.
func writeCIFAR(t *testing.T, dir string, img, labels []uint8, perBatch int) {
	t.Helper()
	d := filepath.Join(dir, "cifar-10-batches-bin")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	record := func(i int) []byte {
		r := []byte{labels[i]}
		for c := range 3 {
			for p := range 32 * 32 {
				r = append(r, img[(i*1024+p)*3+c])
			}
		}
		return r
	}
	n := len(labels)
	for b := range 6 {
		lo, hi := b*perBatch, (b+1)*perBatch
		name := "test_batch.bin"
		if b < 5 {
			name = "data_batch_" + string(rune('1'+b)) + ".bin"
		} else {
			hi = n
		}
		var out []byte
		for i := lo; i < hi; i++ {
			out = append(out, record(i)...)
		}
		if err := os.WriteFile(filepath.Join(d, name), out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// recipeRunDir writes what `pipeline run` leaves for the script:
// config.resolved.yaml (the loaded config marshalled as run.go's
// writeConfig does) and cifar10_architecture.json (export.KerasJSON).
func recipeRunDir(t *testing.T, src string) (string, config.Config, *graph.Net) {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.yaml")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	net, err := graph.NewNet(cfg.Model, []int{32, 32, 3})
	if err != nil {
		t.Fatal(err)
	}
	arch, err := export.KerasJSON(net)
	if err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, "config.resolved.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, "cifar10_architecture.json"), arch, 0o644); err != nil {
		t.Fatal(err)
	}
	return run, cfg, net
}

func runRecipe(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(testenv.Python(t), append([]string{"keras_recipe.py"}, args...)...)
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=2", "CUDA_VISIBLE_DEVICES=")
	return cmd.CombinedOutput()
}

// goSchedule is the run config's learning-rate schedule, by Go's schedule package.
func goSchedule(t *testing.T, cfg config.Config) schedule.Schedule {
	t.Helper()
	s, err := schedule.Parse(cfg.Train.Optimizer.Args["learning_rate"])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKerasRecipeSchedule: the script's learning rates (its OneCycle
// LearningRateSchedule, evaluated by TensorFlow) equal schedule.go's bit
// for bit, through the warmup, the decay and after it; with --epochs the
// step counts scale with the run.
func TestKerasRecipeSchedule(t *testing.T) {
	run, cfg, _ := recipeRunDir(t, recipeYAML)
	s := goSchedule(t, cfg)
	oc := s.(schedule.OneCycle)
	scaled := oc
	scaled.Warmup, scaled.DecaySteps = 2*oc.Warmup, 2*oc.DecaySteps
	for _, tc := range []struct {
		args []string
		want schedule.Schedule
	}{
		{nil, s},
		{[]string{"--epochs", "4"}, scaled}, // twice the config's 2 epochs
	} {
		out, err := runRecipe(t, append([]string{"--run-dir", run, "--print-schedule", "12"}, tc.args...)...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", tc.args, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var got struct {
			LearningRate []float64 `json:"learning_rate"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
			t.Fatalf("%v: %v\n%s", tc.args, err, out)
		}
		if len(got.LearningRate) != 12 {
			t.Fatalf("%v: %d rates, want 12", tc.args, len(got.LearningRate))
		}
		for step, r := range got.LearningRate {
			if want := tc.want.Rate(int64(step)); r != want {
				t.Errorf("%v: step %d: Keras %.9g, Go %.9g", tc.args, step, r, want)
			}
		}
		if len(tc.args) > 0 && !strings.Contains(string(out), "schedule step counts scaled x2") {
			t.Errorf("%v: the script does not say it scaled the schedule:\n%s", tc.args, out)
		}
	}
}

// TestKerasRecipeTrains runs the script on a tiny run directory and data
// set (2 epochs of 3 steps) and checks its JSON: the whitening kernel is
// Go's (graph.Model.InitFromData on the same first training images, up to
// each filter's sign), the per-epoch learning rates are schedule.go's, and
// the accuracies, minutes and resources are present and sane.
func TestKerasRecipeTrains(t *testing.T) {
	run, cfg, net := recipeRunDir(t, recipeYAML)
	data := t.TempDir()
	img, labels := enginetest.CorrelatedImages(5*40+60, 11)
	writeCIFAR(t, data, img, labels, 40)
	out := filepath.Join(t.TempDir(), "keras.json")
	b, err := runRecipe(t, "--run-dir", run, "--data", data, "--json", out, "--threads", "1")
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	t.Logf("%s", b)
	var r struct {
		Epochs          int    `json:"epochs"`
		StepsPerEpoch   int    `json:"steps_per_epoch"`
		TrainImages     int    `json:"train_images"`
		TestImages      int    `json:"test_images"`
		WhiteningImages int    `json:"whitening_images"`
		Augment         string `json:"augment"`
		UseEMA          bool   `json:"use_ema"`
		History         []struct {
			Epoch        int      `json:"epoch"`
			Minutes      float64  `json:"minutes"`
			TrainSeconds float64  `json:"train_seconds"`
			ValAccuracy  *float64 `json:"val_accuracy"`
			LearningRate float64  `json:"learning_rate"`
		} `json:"history"`
		Whitening       map[string][]float64 `json:"whitening"`
		TestAccuracy    float64              `json:"test_accuracy"`
		TTAAccuracy     *float64             `json:"tta_accuracy"`
		WallMinutes     float64              `json:"wall_minutes"`
		TrainMinutes    float64              `json:"train_minutes"`
		ImagesPerSecond float64              `json:"images_per_second"`
		PeakRSSMiB      float64              `json:"peak_rss_mib"`
		Threads         struct {
			IntraOp int `json:"intra_op"`
			InterOp int `json:"inter_op"`
		} `json:"threads"`
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	if r.Epochs != 2 || r.StepsPerEpoch != 3 || r.TrainImages != 96 || r.TestImages != 48 || r.WhiteningImages != 96 {
		t.Errorf("epochs %d, steps %d, train %d, test %d, whitening %d images; want 2, 3, 96, 48, 96",
			r.Epochs, r.StepsPerEpoch, r.TrainImages, r.TestImages, r.WhiteningImages)
	}
	if r.Augment != "crop 2 reflect, flip alternate" || !r.UseEMA {
		t.Errorf("augment %q, use_ema %v", r.Augment, r.UseEMA)
	}
	sched := goSchedule(t, cfg)
	if len(r.History) != 2 {
		t.Fatalf("history has %d epochs, want 2", len(r.History))
	}
	prev := 0.0
	for i, h := range r.History {
		if h.Epoch != i+1 || h.Minutes <= prev || h.TrainSeconds <= 0 || h.ValAccuracy == nil || *h.ValAccuracy < 0 || *h.ValAccuracy > 1 {
			t.Errorf("history[%d] = %+v: want epoch %d, minutes increasing, val_accuracy in [0, 1]", i, h, i+1)
		}
		prev = h.Minutes
		// Keras logs the rate of the next update (schedule.Schedule's doc).
		if want := sched.Rate(int64(3 * (i + 1))); h.LearningRate != want {
			t.Errorf("epoch %d ends at learning rate %.9g, schedule.go says %.9g", i+1, h.LearningRate, want)
		}
	}
	if r.TestAccuracy < 0 || r.TestAccuracy > 1 || r.TTAAccuracy == nil || *r.TTAAccuracy < 0 || *r.TTAAccuracy > 1 {
		t.Errorf("test accuracy %v, TTA %v: want both in [0, 1]", r.TestAccuracy, r.TTAAccuracy)
	}
	if r.TrainMinutes <= 0 || r.WallMinutes < r.TrainMinutes || r.ImagesPerSecond <= 0 || r.PeakRSSMiB < 100 {
		t.Errorf("train %v min, wall %v min, %v img/s, peak RSS %v MiB", r.TrainMinutes, r.WallMinutes, r.ImagesPerSecond, r.PeakRSSMiB)
	}
	if r.Threads.IntraOp != 1 || r.Threads.InterOp != 1 {
		t.Errorf("threads %+v, want --threads 1 for both", r.Threads)
	}

	// Go's whitening kernel from the same 96 first training images.
	opt, err := graph.NewOptimizer(cfg.Train.Optimizer)
	if err != nil {
		t.Fatal(err)
	}
	m, err := graph.Compile(net, graph.Options{Seed: cfg.Seed, Normalize: cfg.Data.Normalize, Mean: cfg.Data.Mean, Std: cfg.Data.Std,
		Classes: cfg.Data.Classes, Optimizer: opt})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.InitFromData(img[:96*32*32*3], 96); err != nil {
		t.Fatal(err)
	}
	state, err := m.GetState()
	if err != nil {
		t.Fatal(err)
	}
	goK, pyK := state["whiten/kernel"].Data, r.Whitening["whiten"]
	if len(goK) != 288 || len(pyK) != 288 {
		t.Fatalf("whitening kernels: Go %d values, script %d; want 288 (2×2×3×24)", len(goK), len(pyK))
	}
	// Columns (output filters) are the last axis; eigenvectors are fixed
	// up to sign, so align each filter's sign first.
	var diff, scale float64
	for f := range 24 {
		dot := 0.0
		for i := f; i < 288; i += 24 {
			dot += float64(goK[i]) * pyK[i]
		}
		sign := math.Copysign(1, dot)
		for i := f; i < 288; i += 24 {
			diff = max(diff, math.Abs(float64(goK[i])*sign-pyK[i]))
			scale = max(scale, math.Abs(pyK[i]))
		}
	}
	t.Logf("whitening kernel: script vs Go %.2g (relative)", diff/scale)
	if diff/scale > 1e-3 {
		t.Errorf("the script's whitening kernel differs from Go's by %.2g (relative)", diff/scale)
	}
}

// TestKerasRecipeRejectsBadInput: a bad flag, run directory or config key
// is one error line naming it, exit status 2, and no --json file; all are
// caught before TensorFlow is imported.
func TestKerasRecipeRejectsBadInput(t *testing.T) {
	good, _, _ := recipeRunDir(t, recipeYAML)
	goodCfg, err := os.ReadFile(filepath.Join(good, "config.resolved.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	goodArch, err := os.ReadFile(filepath.Join(good, "cifar10_architecture.json"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) string {
		if !strings.Contains(string(goodCfg), old) {
			t.Fatalf("config.resolved.yaml has no %q", old)
		}
		return strings.Replace(string(goodCfg), old, new, 1)
	}
	for _, tc := range []struct {
		name, cfg, arch string
		args            []string
		want            string
	}{
		{name: "no config", arch: string(goodArch), want: "config.resolved.yaml: missing; --run-dir must be a directory `bin/pipeline run` wrote"},
		{name: "no architecture", cfg: string(goodCfg), want: "cifar10_architecture.json: missing"},
		{name: "config not YAML", cfg: "train: [1, 2\n", arch: string(goodArch), want: "config.resolved.yaml: not YAML"},
		{name: "config not a config", cfg: "- 1\n- 2\n", arch: string(goodArch), want: "not a pipeline config"},
		{name: "architecture not JSON", cfg: string(goodCfg), arch: "{\"class_name\": ", want: "cifar10_architecture.json: not JSON"},
		{name: "architecture not Keras", cfg: string(goodCfg), arch: "[1, 2]", want: "not a Keras model JSON"},
		{name: "unknown schedule", cfg: edit("schedule: one_cycle", "schedule: one_cycel"), arch: string(goodArch),
			want: "train.optimizer.learning_rate.schedule: 'one_cycel' is not one of"},
		{name: "unknown optimizer", cfg: edit("name: sgd", "name: lamb"), arch: string(goodArch), want: "train.optimizer.name: 'lamb' is not one of"},
		{name: "other loss", cfg: edit("loss: categorical_crossentropy", "loss: mse"), arch: string(goodArch), want: "train.loss: 'mse': only categorical_crossentropy"},
		{name: "warp augmentation", cfg: edit("rotation_range: 0", "rotation_range: 15"), arch: string(goodArch),
			want: "augment.rotation_range: 15: the ImageDataGenerator transforms are not reproduced here"},
		{name: "bad crop mode", cfg: edit("mode: reflect", "mode: wrap"), arch: string(goodArch), want: "augment.crop.mode: 'wrap': want reflect or constant"},
		{name: "bad batch size", cfg: edit("batch_size: 32", "batch_size: 0"), arch: string(goodArch), want: "train.batch_size: 0 must be an integer > 0"},
		{name: "negative epochs", cfg: string(goodCfg), arch: string(goodArch), args: []string{"--epochs", "-1"}, want: "--epochs -1: must be >= 1"},
		{name: "no data", cfg: string(goodCfg), arch: string(goodArch), args: []string{"--data", "/nonexistent/cifar"}, want: "--data /nonexistent/cifar: not a directory"},
		{name: "json dir missing", cfg: string(goodCfg), arch: string(goodArch), args: []string{"--json", "/nonexistent/k.json"}, want: "--json /nonexistent/k.json: its directory does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range map[string]string{"config.resolved.yaml": tc.cfg, "cifar10_architecture.json": tc.arch} {
				if body != "" {
					if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			out := filepath.Join(t.TempDir(), "k.json")
			args := append([]string{"--run-dir", dir, "--json", out}, tc.args...)
			b, err := runRecipe(t, args...)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("err %v, want exit status 2\n%s", err, b)
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "keras_recipe: error: ") || !strings.Contains(lines[0], tc.want) {
				t.Errorf("output %q, want one line \"keras_recipe: error: ...%s\"", b, tc.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("wrote %s (stat: %v)", out, err)
			}
		})
	}
}

// TestKerasRecipeAugmentMatchesGo: the script's vectorised crop + flip
// (crop_flip on pad_images) writes the same pixels as augment's
// ApplyModern for the same draws, with reflect and constant padding; and
// its alternate flip mirrors every image in exactly one of two
// consecutive epochs (airbench's derandomised flip, augment.FlipAlternate).
func TestKerasRecipeAugmentMatchesGo(t *testing.T) {
	const n, pad = 40, 2
	img, _ := enginetest.CorrelatedImages(n, 11)
	rng := rand.New(rand.NewPCG(5, 9))
	draws := make([]augment.Draw, n)
	var drawBytes []byte
	for i := range draws {
		draws[i] = augment.Draw{CropY: rng.IntN(2*pad + 1), CropX: rng.IntN(2*pad + 1), Flip: rng.IntN(2) == 1}
		flip := byte(0)
		if draws[i].Flip {
			flip = 1
		}
		drawBytes = append(drawBytes, byte(draws[i].CropY), byte(draws[i].CropX), flip)
	}
	dir := t.TempDir()
	enginetest.WriteRaw(t, filepath.Join(dir, "images.u8"), img)
	enginetest.WriteRaw(t, filepath.Join(dir, "draws.u8"), drawBytes)
	for _, mode := range []augment.PadMode{augment.PadReflect, augment.PadConstant} {
		p := augment.Params{Crop: augment.Crop{Padding: pad, Mode: mode, Value: 7}}
		want := make([]uint8, len(img))
		for i := range n {
			p.ApplyModern(want[i*3072:(i+1)*3072], img[i*3072:(i+1)*3072], 32, 32, 3, &draws[i])
		}
		out := testenv.RunPython(t, `
import sys
import numpy as np
sys.path.insert(0, ".")
import keras_recipe as kr
d, n, pad, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
x = np.fromfile(d + "/images.u8", np.uint8).reshape(n, 32, 32, 3)
dr = np.fromfile(d + "/draws.u8", np.uint8).reshape(n, 3).astype(np.int64)
order = np.arange(n)[::-1]  # a visiting order that is not the identity
out = kr.crop_flip(pad, kr.pad_images(x, pad, mode, 7), x, order, dr[order, 0], dr[order, 1], dr[order, 2] == 1)
sys.stdout.buffer.write(out[::-1].tobytes())
`, dir, strconv.Itoa(n), strconv.Itoa(pad), mode.String())
		if len(out) != len(want) {
			t.Fatalf("%v: script wrote %d bytes, want %d", mode, len(out), len(want))
		}
		for i := range want {
			if out[i] != want[i] {
				t.Fatalf("%v: image %d pixel byte %d: script %d, Go %d", mode, i/3072, i%3072, out[i], want[i])
			}
		}
	}

	out := testenv.RunPython(t, `
import sys, types
import numpy as np
sys.path.insert(0, ".")
import keras_recipe as kr
x = np.fromfile(sys.argv[1] + "/images.u8", np.uint8).reshape(-1, 32, 32, 3)
n = len(x)
r = types.SimpleNamespace(crop_pad=0, flip="alternate")
rng = np.random.default_rng(1)
phase = rng.random(n) < 0.5
flipped = []
for e in range(4):
    order = rng.permutation(n)
    out = kr.epoch_images(r, None, x, e, order, rng, phase)
    f = np.zeros(n, bool)
    f[order] = np.all(out == x[order][:, :, ::-1], axis=(1, 2, 3)) & ~np.all(out == x[order], axis=(1, 2, 3))
    assert np.all(f[order] | np.all(out == x[order], axis=(1, 2, 3))), "an image neither plain nor mirrored"
    flipped.append(f)
print(int(np.sum(flipped[0] ^ flipped[1])), int(np.sum(flipped[1] ^ flipped[2])), int(np.sum(flipped[0] == flipped[2])), int(np.sum(flipped[0])))
`, dir)
	var a, b, c, first int
	if _, err := fmt.Sscan(string(out), &a, &b, &c, &first); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if a != n || b != n || c != n {
		t.Errorf("alternate flip: %d and %d of %d images change between consecutive epochs, %d keep epoch 0's flip in epoch 2; want all", a, b, n, c)
	}
	if first == 0 || first == n {
		t.Errorf("alternate flip: %d of %d images flipped in epoch 0; want a fair coin's share", first, n)
	}
}

// TestKerasRecipeTTAMatchesGo: the script's TTA (tta_predict: mirror +
// translate 1) on Go's weights, loaded into model_from_json of Go's
// architecture JSON, gives Go's PredictBatchTTA probabilities. The weights
// are a few SGD steps away from the initialisation so that the
// augmentations change the output by more than the tolerance.
func TestKerasRecipeTTAMatchesGo(t *testing.T) {
	const n = 32
	run, cfg, net := recipeRunDir(t, recipeYAML)
	img, labels := enginetest.CorrelatedImages(n, 11)
	for i := range labels {
		labels[i] %= 10
	}
	opt, err := graph.NewOptimizer(enginetest.Optimizer("sgd", "learning_rate", 0.5, "momentum", 0.9))
	if err != nil {
		t.Fatal(err)
	}
	m, err := graph.Compile(net, graph.Options{Seed: cfg.Seed, Normalize: cfg.Data.Normalize, Mean: cfg.Data.Mean, Std: cfg.Data.Std,
		Classes: cfg.Data.Classes, Optimizer: opt, TTATranslate: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.InitFromData(img, n); err != nil {
		t.Fatal(err)
	}
	for step := range 5 {
		if _, err := m.TrainStep(img, labels, n, 1, int64(step)); err != nil {
			t.Fatal(err)
		}
	}
	plain, err := m.PredictBatch(img, n)
	if err != nil {
		t.Fatal(err)
	}
	tta, err := m.PredictBatchTTA(img, n)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	weights := filepath.Join(dir, "go.weights.h5")
	if err := export.WeightsH5(m, weights); err != nil {
		t.Fatal(err)
	}
	enginetest.WriteRaw(t, filepath.Join(dir, "images.u8"), img)
	out := testenv.RunPython(t, `
import json, os, sys, types
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
sys.path.insert(0, ".")
import keras_recipe as kr
import tensorflow as tf
import keras
d, run, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = keras.models.model_from_json(open(run + "/cifar10_architecture.json").read())
model.load_weights(d + "/go.weights.h5")
r = types.SimpleNamespace(normalize=True, mean=[0.4914, 0.4822, 0.4465], std=[0.2470, 0.2435, 0.2616])
x = kr.preprocess(np.fromfile(d + "/images.u8", np.uint8).reshape(n, 32, 32, 3), r)
print(json.dumps([float(v) for v in kr.tta_predict(tf, model, x, 16, 1).ravel()]))
`, dir, run, strconv.Itoa(n))
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var got []float64
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(got) != len(tta) {
		t.Fatalf("script returned %d probabilities, Go %d", len(got), len(tta))
	}
	var diff, moved float64
	for i := range tta {
		diff = max(diff, math.Abs(got[i]-float64(tta[i])))
		moved = max(moved, math.Abs(float64(tta[i]-plain[i])))
	}
	t.Logf("TTA probabilities: script vs Go %.2g; TTA vs plain (Go) %.2g", diff, moved)
	if moved < 1e-3 {
		t.Fatalf("TTA changes Go's output by only %.2g: the comparison would be vacuous", moved)
	}
	if diff > 1e-5 {
		t.Errorf("the script's TTA differs from Go's PredictBatchTTA by %.2g", diff)
	}
}
