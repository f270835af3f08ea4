package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cifar-pipeline/cifar-pipeline/dataset"
	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
	"github.com/cifar-pipeline/cifar-pipeline/report"
	"github.com/cifar-pipeline/cifar-pipeline/train"
)

func quickConfig(t *testing.T) string {
	return filepath.Join(testenv.RepoRoot(t), "configs", "quick.yaml")
}

// runCLI runs the command line in-process and returns exit code, stdout and
// stderr.
func runCLI(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestRunQuick runs the whole job on the quick config and reads back what
// it wrote.
func TestRunQuick(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(context.Background(), "run", "-c", quickConfig(t), "--set", "output.dir="+dir)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{"Epoch 1/2", "Epoch 2/2", "Test Score:", "Test Accuracy:", "val_accuracy:", "Total params:"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	var rs runSummary
	b, err := os.ReadFile(filepath.Join(dir, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs.Epochs) != 2 || rs.TestAccuracy < 0.5 || rs.ImagesPerSecond <= 0 || rs.DataSource != "synthetic" {
		t.Errorf("run.json: %d epochs, test accuracy %.3f, %.0f images/s, source %q", len(rs.Epochs), rs.TestAccuracy, rs.ImagesPerSecond, rs.DataSource)
	}
	for _, f := range []string{"cifar10.weights.index", "cifar10.weights.data-00000-of-00001", "cifar10_architecture.json",
		"saved_model/saved_model.pb", "checkpoints/checkpoint", "model.keras", "cifar10.weights.h5"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("artifact missing: %v", err)
		}
	}
	t.Run("metrics agree with evaluation", func(t *testing.T) {
		m, err := report.ReadMetricsJSON(filepath.Join(dir, "metrics.json"))
		if err != nil {
			t.Fatal(err)
		}
		if m.N != 500 || m.Accuracy != rs.TestAccuracy || m.Loss != rs.TestLoss || len(m.Confusion) != 10 {
			t.Fatalf("metrics.json: n %d acc %v loss %v; run: acc %v loss %v", m.N, m.Accuracy, m.Loss, rs.TestAccuracy, rs.TestLoss)
		}
		total := 0
		for _, row := range m.Confusion {
			for _, c := range row {
				total += c
			}
		}
		if total != 500 {
			t.Fatalf("confusion matrix counts %d images, want 500", total)
		}
	})
	t.Run("plots are real PNGs", func(t *testing.T) {
		for _, f := range []string{"curves.png", "confusion.png", "misclassified.png"} {
			fh, err := os.Open(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := png.DecodeConfig(fh)
			fh.Close()
			if err != nil || cfg.Width < 400 || cfg.Height < 200 {
				t.Errorf("%s: %v, %dx%d", f, err, cfg.Width, cfg.Height)
			}
		}
	})
	t.Run("history.csv and model card", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(dir, "history.csv"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 3 || strings.TrimSpace(lines[0]) != "epoch,accuracy,loss,val_accuracy,val_loss" || !strings.HasPrefix(lines[1], "0,") {
			t.Errorf("history.csv:\n%s", b)
		}
		card, err := os.ReadFile(filepath.Join(dir, "MODEL_CARD.md"))
		if err != nil || !strings.Contains(string(card), "synthetic") || !strings.Contains(string(card), "66,122") {
			t.Errorf("MODEL_CARD.md lacks provenance or parameter count (%v)", err)
		}
	})
	t.Run("tensorboard events read back", func(t *testing.T) {
		out := testenv.RunPython(t, `
import sys, glob, tensorflow as tf
tags = set()
for f in glob.glob(sys.argv[1] + "/logs/*/events.out.tfevents.*"):
    for e in tf.compat.v1.train.summary_iterator(f):
        for v in e.summary.value:
            tags.add(f"{v.tag}@{e.step}")
print(" ".join(sorted(tags)))
`, dir)
		for _, want := range []string{"epoch_loss@0", "epoch_loss@1", "epoch_accuracy@1", "epoch_learning_rate@1"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("event files lack %s: %s", want, out)
			}
		}
	})
	t.Run("predict mixed directory", func(t *testing.T) {
		imgs := t.TempDir()
		set, err := dataset.ReadDir(filepath.Join(dir, "synthetic-data"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			img := image.NewRGBA(image.Rect(0, 0, 32, 32))
			px := set.Test.Image(i)
			for p := range 1024 {
				img.Pix[4*p], img.Pix[4*p+1], img.Pix[4*p+2], img.Pix[4*p+3] = px[3*p], px[3*p+1], px[3*p+2], 255
			}
			var buf bytes.Buffer
			png.Encode(&buf, img)
			os.WriteFile(filepath.Join(imgs, fmt.Sprintf("img%d.png", i)), buf.Bytes(), 0o644)
		}
		os.WriteFile(filepath.Join(imgs, "notes.txt"), []byte("not an image"), 0o644)
		os.WriteFile(filepath.Join(imgs, "broken.png"), []byte("\x89PNG\r\n\x1a\nxx"), 0o644)
		code, out, errs := runCLI(context.Background(), "predict", "-m", dir, "--json", "--top", "2", imgs)
		if code != 1 {
			t.Fatalf("exit %d with bad files present, want 1\n%s\n%s", code, out, errs)
		}
		good, bad := 0, 0
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var l predictLine
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("not JSON: %q", line)
			}
			if l.Error != "" {
				bad++
				continue
			}
			good++
			i := int(l.File[len(l.File)-5] - '0')
			if len(l.Top) != 2 || l.Top[0].Class != set.ClassNames[set.Test.Labels[i]] {
				t.Errorf("%s: top %+v, true class %s", l.File, l.Top, set.ClassNames[set.Test.Labels[i]])
			}
		}
		if good != 3 || bad != 2 {
			t.Fatalf("%d classified, %d failed; want 3 and 2:\n%s", good, bad, out)
		}
	})
}

func TestRunResumeAfterInterrupt(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Interrupt once the first checkpoint exists (after epoch 1).
		for ctx.Err() == nil {
			if ns, _ := (train.CheckpointManager{Dir: filepath.Join(dir, "checkpoints")}).List(); len(ns) > 0 {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	args := []string{"run", "-c", quickConfig(t), "--set", "output.dir=" + dir, "--set", "train.epochs=3"}
	code, _, errs := runCLI(ctx, args...)
	cancel()
	if code != 130 || !strings.Contains(errs, "--resume") {
		t.Fatalf("interrupted run: exit %d, stderr:\n%s", code, errs)
	}
	code, _, errs = runCLI(context.Background(), append(args, "--resume", "--set", "seed=99")...)
	if code == 0 || !strings.Contains(errs, "seed was 7") || !strings.Contains(errs, "checkpointed run") {
		t.Fatalf("resume under another seed: exit %d, stderr %q", code, errs)
	}
	code, out, errs := runCLI(context.Background(), append(args, "--resume")...)
	if code != 0 {
		t.Fatalf("resumed run: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "resume: ") || !strings.Contains(out, "Epoch 3/3") {
		t.Fatalf("resumed run did not continue:\n%s\n%s", out, errs)
	}
}

func TestRunBadInput(t *testing.T) {
	roDir := filepath.Join(t.TempDir(), "ro")
	os.MkdirAll(roDir, 0o500)
	badCfg := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(badCfg, []byte("train:\n  epochz: 3\n"), 0o644)
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown key", []string{"run", "-c", badCfg}, []string{"bad.yaml:2", "train.epochz", "train.epochs"}},
		{"missing config", []string{"run", "-c", "/nonexistent.yaml"}, []string{"/nonexistent.yaml", "no such file"}},
		{"unwritable output", []string{"run", "-c", quickConfig(t), "--set", "output.dir=" + filepath.Join(roDir, "x")}, []string{"output.dir", "writable"}},
		{"resume without checkpoint", []string{"run", "-c", quickConfig(t), "--set", "output.dir=" + t.TempDir(), "--resume"}, []string{"--resume", "no checkpoint"}},
		{"bad --set", []string{"run", "-c", quickConfig(t), "--set", "train.batch_size=-1"}, []string{"train.batch_size"}},
	}
	if os.Geteuid() == 0 {
		// root writes anywhere; use a path under a regular file instead.
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, nil, 0o644)
		cases[2].args[len(cases[2].args)-1] = "output.dir=" + filepath.Join(f, "x")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCLI(context.Background(), tc.args...)
			if code == 0 {
				t.Fatal("exit 0")
			}
			line := strings.TrimSpace(errs)
			if strings.Count(line, "\n") > 0 {
				t.Errorf("error is not one line:\n%s", errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("error %q lacks %q", line, w)
				}
			}
		})
	}
}
