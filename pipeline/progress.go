package pipeline

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/cifar-pipeline/cifar-pipeline/train"
)

// kerasProgress prints Keras 3's ProgbarLogger lines:
//
//	Epoch 1/20
//	313/313 ━━━━━━━━━━━━━━━━━━━━ 9s 28ms/step - accuracy: 0.4100 - loss: 1.6300 - val_accuracy: 0.5200 - val_loss: 1.3500
//
// live (redrawn with \r) on a terminal, one line per epoch otherwise.
type kerasProgress struct {
	w        io.Writer
	live     bool
	quiet    bool
	steps    int
	start    time.Time
	lastDraw time.Time
}

// newProgress picks the style from train.verbose: auto (live on a
// terminal), bar, line or none.
func newProgress(w io.Writer, verbose string) *kerasProgress {
	p := &kerasProgress{w: w}
	switch verbose {
	case "bar":
		p.live = true
	case "none":
		p.quiet = true
	case "auto":
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			p.live = true
		}
	}
	return p
}

func (p *kerasProgress) BeginEpoch(epoch, epochs, steps int) {
	p.steps, p.start = steps, time.Now()
	if !p.quiet {
		fmt.Fprintf(p.w, "Epoch %d/%d\n", epoch, epochs)
	}
}

func (p *kerasProgress) Step(step int, logs train.EpochLogs) {
	if !p.live || p.quiet || (step < p.steps && time.Since(p.lastDraw) < 100*time.Millisecond) {
		return
	}
	p.lastDraw = time.Now()
	el := time.Since(p.start)
	per := el / time.Duration(step)
	eta := per * time.Duration(p.steps-step)
	fmt.Fprintf(p.w, "\r%s %s %s - accuracy: %.4f - loss: %.4f\x1b[K",
		counter(step, p.steps), bar(step, p.steps), timing(eta, per, step < p.steps), logs.Accuracy, logs.Loss)
}

func (p *kerasProgress) EndEpoch(logs train.EpochLogs) {
	if p.quiet {
		return
	}
	el := time.Duration(logs.Seconds * float64(time.Second))
	per := el / time.Duration(max(logs.Steps, 1))
	line := fmt.Sprintf("%s %s %s - accuracy: %.4f - loss: %.4f", counter(logs.Steps, logs.Steps), bar(1, 1),
		timing(el, per, false), logs.Accuracy, logs.Loss)
	if logs.HasVal {
		line += fmt.Sprintf(" - val_accuracy: %.4f - val_loss: %.4f", logs.ValAccuracy, logs.ValLoss)
	}
	if p.live {
		fmt.Fprintf(p.w, "\r%s\x1b[K\n", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func counter(step, steps int) string {
	w := len(fmt.Sprint(steps))
	return fmt.Sprintf("%*d/%d", w, step, steps)
}

// bar is Keras 3's 20-cell bar: heavy cells done, light cells to go.
func bar(step, steps int) string {
	done := 20 * step / max(steps, 1)
	return strings.Repeat("━", done) + strings.Repeat("─", 20-done)
}

// timing is Keras's "9s 28ms/step" (elapsed when finished, ETA before).
func timing(d, per time.Duration, running bool) string {
	s := fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	if running {
		s = "ETA " + s
	}
	if per >= time.Second {
		return fmt.Sprintf("%s %ds/step", s, int(per.Round(time.Second)/time.Second))
	}
	return fmt.Sprintf("%s %dms/step", s, per.Milliseconds())
}
