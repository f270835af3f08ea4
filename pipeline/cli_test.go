package pipeline

import (
	"context"
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
}

func TestUnknownCommandAndFlags(t *testing.T) {
	for _, args := range [][]string{{"trian"}, {"run", "--epochs", "3"}} {
		code, _, errs := runCLI(context.Background(), args...)
		if code == 0 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.HasPrefix(errs, "pipeline: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
}
