package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/cifar-pipeline/cifar-pipeline/export"
	"github.com/cifar-pipeline/cifar-pipeline/imagefile"
	"github.com/cifar-pipeline/cifar-pipeline/rundir"
)

func newPredictCommand() *cobra.Command {
	var runDir string
	var top, batch int
	var asJSON, tta bool
	cmd := &cobra.Command{
		Use:   "predict -m RUN_DIR|FILE.keras FILE_OR_DIR...",
		Short: "Classify image files (JPEG, PNG, GIF, BMP, WebP) with a trained run's SavedModel or a Keras 3 .keras file",
		Long: "Decodes each image, converts it to RGB, centre-crops and resizes it to the model's input with " +
			"Lanczos, and prints the top classes with probabilities. Directories are walked. A file that " +
			"cannot be classified is reported on its own line and the rest still run; the exit code is 1 " +
			"when any failed. A .keras file (Keras 3, e.g. trained by the notebook) is served directly; it is " +
			"fed pixels scaled as config.resolved.yaml beside it says (a run directory's data.normalize, mean " +
			"and std), else divided by 255 as the notebook trains, and its class names come from classes.txt beside " +
			"it, else CIFAR-10's for a 10-class model.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if runDir == "" {
				return fmt.Errorf("predict: -m RUN_DIR is required (the output.dir of a finished run, or a Keras 3 FILE.keras)")
			}
			if batch < 1 {
				return fmt.Errorf("predict: --batch %d must be at least 1", batch)
			}
			if top < 1 {
				return fmt.Errorf("predict: --top %d must be at least 1", top)
			}
			var sm classifier
			var classes []string
			if isKerasModelFile(runDir) {
				if tta {
					return fmt.Errorf("predict: --tta needs a run directory (its SavedModel's %s signature), not %s", export.SignatureTTA, runDir)
				}
				km, err := openKerasClassifier(runDir)
				if err != nil {
					return fmt.Errorf("predict: %w", err)
				}
				defer km.Close()
				if classes, err = kerasClasses(runDir, km); err != nil {
					return fmt.Errorf("predict: %w", err)
				}
				sm = km
			} else {
				rd := rundir.New(runDir)
				signature := export.SignatureDefault
				if tta {
					signature = export.SignatureTTA
				}
				s, err := export.LoadServingSignature(rd.SavedModel(), signature)
				if err != nil {
					return fmt.Errorf("predict: %w (is %s the output.dir of a finished run with output.saved_model: true?)", err, runDir)
				}
				defer s.Close()
				k, err := servingClasses(s)
				if err != nil {
					return fmt.Errorf("predict: %s: %w", rd.SavedModel(), err)
				}
				if classes, err = readClasses(rd.Classes(), k); err != nil {
					return fmt.Errorf("predict: %w", err)
				}
				sm = s
			}
			k := len(classes)
			if top > k {
				return fmt.Errorf("predict: --top %d exceeds the model's %d classes", top, k)
			}
			files, err := imagefile.Walk(args)
			if err != nil {
				return fmt.Errorf("predict: %w", err)
			}
			p := predictor{sm: sm, classes: classes, top: top, json: asJSON, out: cmd.OutOrStdout()}
			start := time.Now()
			failed, err := p.run(cmd.Context(), files, batch)
			if err != nil {
				return err
			}
			el := time.Since(start)
			fmt.Fprintf(cmd.ErrOrStderr(), "predict: %d files, %d failed, %.0f images/s\n", len(files), failed, float64(len(files)-failed)/el.Seconds())
			if failed > 0 {
				return fmt.Errorf("predict: %d of %d files could not be classified", failed, len(files))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&runDir, "model", "m", "", "run directory holding saved_model/ (a run's output.dir), or a Keras 3 .keras file")
	cmd.Flags().IntVar(&top, "top", 3, "how many classes to print per image")
	cmd.Flags().IntVar(&batch, "batch", 256, "images per TensorFlow call")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per file")
	cmd.Flags().BoolVar(&tta, "tta", false, "flip test-time augmentation: average the probabilities of each image and its mirror image")
	return cmd
}

// servingClasses is the size of the SavedModel's output: the number of
// probabilities it gives for one (blank) image.
func servingClasses(sm *export.Serving) (int, error) {
	if k := sm.Classes(); k > 0 {
		return k, nil
	}
	sh := sm.InputShape()
	probs, err := sm.Predict(make([]uint8, sh[0]*sh[1]*sh[2]), 1)
	if err != nil {
		return 0, err
	}
	if len(probs) < 1 {
		return 0, fmt.Errorf("the model outputs no classes")
	}
	return len(probs), nil
}

// readClasses reads a run's classes.txt: one class name per line (names
// may hold spaces), as many as the model has outputs.
func readClasses(path string, k int) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: a finished run writes it (one class name per line); restore it", path, errors.Unwrap(err))
	}
	var names []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if l = strings.TrimSpace(strings.TrimSuffix(l, "\r")); l == "" {
			return nil, fmt.Errorf("%s: line %d is empty: one class name per line", path, len(names)+1)
		}
		names = append(names, l)
	}
	if len(names) != k {
		return nil, fmt.Errorf("%s: %d class names but the SavedModel has %d outputs: it belongs to another model; restore this run's file", path, len(names), k)
	}
	return names, nil
}

type predictor struct {
	sm      classifier
	classes []string
	top     int
	json    bool
	out     io.Writer
}

type scored struct {
	Class       string  `json:"class"`
	Probability float64 `json:"probability"`
}

type predictLine struct {
	File  string   `json:"file"`
	Top   []scored `json:"top,omitempty"`
	Error string   `json:"error,omitempty"`
}

// run classifies files in batches, printing results in file order, and
// returns how many failed. It stops between batches when ctx is done.
func (p *predictor) run(ctx context.Context, files []string, batch int) (int, error) {
	sh := p.sm.InputShape()
	size := sh[0] * sh[1] * sh[2]
	failed := 0
	for lo := 0; lo < len(files); lo += batch {
		if err := ctx.Err(); err != nil {
			return failed, err
		}
		chunk := files[lo:min(lo+batch, len(files))]
		lines := make([]predictLine, len(chunk))
		decoded := make([][]uint8, len(chunk))
		// Decoding and resizing dominate; spread them over the cores.
		var wg sync.WaitGroup
		next := make(chan int)
		for range runtime.NumCPU() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					img, err := imagefile.Load(chunk[i], sh[0], sh[1])
					if err != nil {
						lines[i].Error = err.Error()
						continue
					}
					decoded[i] = img
				}
			}()
		}
		for i := range chunk {
			lines[i].File = chunk[i]
			next <- i
		}
		close(next)
		wg.Wait()
		var pixels []uint8
		var ok []int
		for i, img := range decoded {
			if img != nil {
				pixels = append(pixels, img...)
				ok = append(ok, i)
			}
		}
		if len(ok) > 0 {
			probs, err := p.sm.Predict(pixels[:len(ok)*size], len(ok))
			k := len(probs) / max(len(ok), 1)
			for j, i := range ok {
				if err != nil {
					lines[i].Error = err.Error()
					continue
				}
				lines[i].Top = p.topK(probs[j*k : (j+1)*k])
			}
		}
		for _, l := range lines {
			if l.Error != "" {
				failed++
			}
			p.print(l)
		}
	}
	return failed, nil
}

func (p *predictor) topK(probs []float32) []scored {
	idx := make([]int, len(probs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return probs[idx[a]] > probs[idx[b]] })
	var out []scored
	for _, i := range idx[:min(p.top, len(idx))] {
		name := fmt.Sprintf("class_%d", i)
		if i < len(p.classes) {
			name = p.classes[i]
		}
		out = append(out, scored{Class: name, Probability: float64(probs[i])})
	}
	return out
}

func (p *predictor) print(l predictLine) {
	if p.json {
		b, _ := json.Marshal(l)
		fmt.Fprintln(p.out, string(b))
		return
	}
	if l.Error != "" {
		fmt.Fprintf(p.out, "%s: error: %s\n", l.File, l.Error)
		return
	}
	parts := make([]string, len(l.Top))
	for i, s := range l.Top {
		parts[i] = fmt.Sprintf("%s %.3f", s.Class, s.Probability)
	}
	fmt.Fprintf(p.out, "%s: %s\n", l.File, strings.Join(parts, ", "))
}
