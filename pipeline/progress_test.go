package pipeline

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/train"
)

func TestProgressLines(t *testing.T) {
	logs := train.EpochLogs{Epoch: 1, Loss: 1.63, Accuracy: 0.41, ValLoss: 1.35, ValAccuracy: 0.52, HasVal: true, Steps: 313, Images: 40000, Seconds: 8.764}
	cases := []struct {
		verbose string
		want    string
	}{
		{"line", "Epoch 1/20\n313/313 ━━━━━━━━━━━━━━━━━━━━ 9s 28ms/step - accuracy: 0.4100 - loss: 1.6300 - val_accuracy: 0.5200 - val_loss: 1.3500\n"},
		{"auto", "Epoch 1/20\n313/313 ━━━━━━━━━━━━━━━━━━━━ 9s 28ms/step - accuracy: 0.4100 - loss: 1.6300 - val_accuracy: 0.5200 - val_loss: 1.3500\n"},
		{"none", ""},
	}
	for _, tc := range cases {
		t.Run(tc.verbose, func(t *testing.T) {
			var b bytes.Buffer // not a terminal: "auto" degrades to one line per epoch
			p := newProgress(&b, tc.verbose)
			p.BeginEpoch(1, 20, 313)
			for s := 1; s <= 313; s++ {
				p.Step(s, logs)
			}
			p.EndEpoch(logs)
			if b.String() != tc.want {
				t.Fatalf("got\n%q\nwant\n%q", b.String(), tc.want)
			}
		})
	}
	var b bytes.Buffer
	p := newProgress(&b, "bar")
	p.BeginEpoch(1, 20, 313)
	p.Step(313, logs)
	p.EndEpoch(logs)
	if !strings.Contains(b.String(), "\r313/313") || !strings.HasSuffix(b.String(), "val_loss: 1.3500\x1b[K\n") {
		t.Fatalf("live bar output %q", b.String())
	}
}
