package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
)

func TestSummaryParamCounts(t *testing.T) {
	root := testenv.RepoRoot(t)
	for _, tc := range []struct{ file, params string }{
		{"config.yaml", "Total params: 4,200,842"},
		{"configs/deep.yaml", "Total params: 202,282"},
		{"configs/deep-intended.yaml", "Total params: 1,676,842"},
		{"configs/deep-augmented.yaml", "Total params: 202,282"},
		{"configs/resnet20.yaml", "Total params: 274,442"},
		// airbench94's net: the frozen whitening kernel (288) and the
		// BatchNormalization moving statistics (2,304) are non-trainable.
		{"configs/fast94.yaml", " Non-trainable params: 2,592 (10.12 KB)"},
		{"configs/quick.yaml", "Total params:"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			code, out, errs := runCLI(context.Background(), "summary", "-c", filepath.Join(root, tc.file))
			if code != 0 || !strings.Contains(out, tc.params) {
				t.Fatalf("exit %d, want %q in:\n%s%s", code, tc.params, out, errs)
			}
		})
	}
	code, out, _ := runCLI(context.Background(), "summary", "-c", filepath.Join(root, "configs/deep.yaml"))
	if code != 0 || !strings.Contains(out, "conv2d_3 (Conv2D)              (None, 5, 5, 64)                36,928") {
		t.Fatalf("deep summary lacks the stride-3 conv row:\n%s", out)
	}
}

func TestVersion(t *testing.T) {
	code, out, errs := runCLI(context.Background(), "version")
	if code != 0 || !strings.Contains(out, "TensorFlow 2.18.0") || !strings.Contains(out, "device:CPU:0") {
		t.Fatalf("exit %d:\n%s%s", code, out, errs)
	}
	// This process links the CPU wheel unless the tests were built with
	// env-cuda.sh (then TestCUDABuild in scripts/ checks the CUDA side).
	if os.Getenv("PIPELINE_TF_VARIANT") != "cuda" {
		for _, w := range []string{"CPU-only build", "GPUs: none: TensorFlow build is CPU-only", "TF_VARIANT=cuda"} {
			if !strings.Contains(out, w) {
				t.Errorf("version output lacks %q:\n%s", w, out)
			}
		}
	}
}

func TestUnknownCommandAndFlags(t *testing.T) {
	for _, args := range [][]string{{"trian"}, {"run", "--epochs", "3"}} {
		code, _, errs := runCLI(context.Background(), args...)
		if code == 0 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.HasPrefix(errs, "pipeline: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
}

// TestCLIBadInput feeds each command's own inputs garbage: every failure is
// one line naming the input and the fix, with a non-zero exit, and writes
// nothing.
func TestCLIBadInput(t *testing.T) {
	root := testenv.RepoRoot(t)
	quick := filepath.Join(root, "configs", "quick.yaml")
	empty := t.TempDir()
	notRun := t.TempDir()
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"predict without -m", []string{"predict", "x.png"}, []string{"-m RUN_DIR is required"}},
		{"predict on a dir that is no run", []string{"predict", "-m", notRun, "x.png"}, []string{notRun, "saved_model"}},
		{"predict without files", []string{"predict", "-m", notRun}, []string{"requires at least 1 arg"}},
		{"preview with no images", []string{"preview", "-c", quick, "--images", "0", "--out", empty}, []string{"--images 0"}},
		{"preview with a bad config key", []string{"preview", "-c", quick, "--set", "augment.rotation=3", "--out", empty}, []string{"augment.rotation", "augment.rotation_range"}},
		{"preview with crop padding past the image", []string{"preview", "-c", quick, "--set", "augment.crop.padding=32", "--out", empty}, []string{"augment.crop.padding: 32"}},
		{"preview with an unknown flip", []string{"preview", "-c", quick, "--set", "augment.flip=sideways", "--out", empty}, []string{"augment.flip", "sideways"}},
		{"preview with a negative cutout", []string{"preview", "-c", quick, "--set", "augment.cutout.size=-4", "--out", empty}, []string{"augment.cutout.size: -4"}},
		{"data synth without --out", []string{"data", "synth"}, []string{"--out is required"}},
		{"data synth with no images", []string{"data", "synth", "--out", empty, "--train", "0"}, []string{"--train 0"}},
		{"data info on a missing dir", []string{"data", "info", "--dir", filepath.Join(empty, "nope")}, []string{filepath.Join(empty, "nope")}},
		{"run on a GPU this machine lacks", []string{"run", "-c", quick, "--set", "runtime.device=gpu", "--set", "output.dir=" + filepath.Join(empty, "out")}, []string{"runtime.device: gpu", "no GPU is usable"}},
		{"run on GPU 3 this machine lacks", []string{"run", "-c", quick, "--set", "runtime.device=gpu:3", "--set", "output.dir=" + filepath.Join(empty, "out")}, []string{"runtime.device: gpu:3"}},
		{"run on an unknown device", []string{"run", "-c", quick, "--set", "runtime.device=tpu:0", "--set", "output.dir=" + filepath.Join(empty, "out")}, []string{"runtime.device", "tpu:0"}},
		{"summary of a model that does not fit", []string{"summary", "-c", quick, "--set", "data.image_shape=[1,1,3]"}, []string{"model.layers", "does not fit"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCLI(context.Background(), tc.args...)
			line := strings.TrimSpace(errs)
			if code == 0 || strings.Contains(line, "\n") || !strings.HasPrefix(line, "pipeline: ") {
				t.Fatalf("exit %d, stderr %q: want one 'pipeline: ' line and a non-zero exit", code, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("error %q lacks %q", line, w)
				}
			}
		})
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("failed commands left files in %s: %v", empty, entries)
	}
}
