package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/dataset"
	"github.com/cifar-pipeline/cifar-pipeline/export"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/rundir"
)

// classifier is what predict serves: a run's SavedModel (export.Serving)
// or a compiled .keras model (kerasClassifier).
type classifier interface {
	// InputShape is (height, width, channels).
	InputShape() []int
	// Predict returns n×classes probabilities for n uint8 NHWC images.
	Predict(images []uint8, n int) ([]float32, error)
	Close() error
}

// isKerasModelFile reports whether -m names a Keras model file rather than
// a run directory: by its .keras or .h5 extension (kerasfile then refuses
// a Keras 2 .h5 or a weights file with the way to convert it).
func isKerasModelFile(path string) bool {
	return strings.HasSuffix(path, ".keras") || strings.HasSuffix(path, ".h5")
}

// kerasClassifier serves a .keras file through the engine's inference path.
type kerasClassifier struct{ m *graph.Model }

// openKerasClassifier compiles a .keras file with its weights, scaling the
// uint8 pixels as kerasPreprocess says.
func openKerasClassifier(path string) (*kerasClassifier, error) {
	if err := kerasModelPath(path); err != nil {
		return nil, err
	}
	opts, err := kerasPreprocess(path)
	if err != nil {
		return nil, err
	}
	m, err := export.OpenKeras(path, opts)
	if err != nil {
		return nil, err
	}
	if sh := m.Net.Input.Out; len(sh) != 3 {
		m.Close()
		return nil, fmt.Errorf("%s: the model's input %v is not (height, width, channels) images", path, sh)
	}
	return &kerasClassifier{m: m}, nil
}

// kerasPreprocess is how the pixels fed to a .keras file are scaled. A
// .keras file holds the net without the run's input scaling, so a run
// directory's config.resolved.yaml beside it says what training fed
// (data.normalize, data.mean, data.std: a preset with per-channel
// standardisation would be served wrong by /255 alone); without one, the
// pixels are divided by 255, as the notebook trains.
func kerasPreprocess(path string) (graph.Options, error) {
	beside := filepath.Join(filepath.Dir(path), rundir.ResolvedConfigName)
	if !exists(beside) {
		return graph.Options{Normalize: true}, nil
	}
	cfg, err := config.Load(beside, nil)
	if err != nil {
		return graph.Options{}, fmt.Errorf("%w (it says how %s's inputs are scaled; restore it, or copy %s elsewhere to serve it with /255)", err, filepath.Base(path), filepath.Base(path))
	}
	return graph.Options{Normalize: cfg.Data.Normalize, Mean: cfg.Data.Mean, Std: cfg.Data.Std}, nil
}

// kerasModelPath refuses, before any reading, what cannot be a .keras file.
func kerasModelPath(path string) error {
	if fi, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s: %v", path, errors.Unwrap(err))
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	return nil
}

func (k *kerasClassifier) InputShape() []int { return k.m.Net.Input.Out }

func (k *kerasClassifier) Predict(images []uint8, n int) ([]float32, error) {
	return k.m.PredictBatch(images, n)
}

func (k *kerasClassifier) Close() error { return k.m.Close() }

// kerasClasses names a .keras model's outputs: classes.txt beside the file
// (a run directory's), else CIFAR-10's classes for a 10-output model, else
// class_0, class_1, ….
func kerasClasses(path string, k *kerasClassifier) ([]string, error) {
	out := k.m.Net.Output().Out
	n := out[len(out)-1]
	if beside := filepath.Join(filepath.Dir(path), rundir.ClassesName); exists(beside) {
		return readClasses(beside, n)
	}
	if names := dataset.OfficialClassNames(); len(names) == n {
		return names, nil
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("class_%d", i)
	}
	return names, nil
}

// readKerasNet reads a .keras file's architecture (and checks its weights)
// for summary.
func readKerasNet(path string) (*graph.Net, error) {
	if err := kerasModelPath(path); err != nil {
		return nil, err
	}
	net, _, err := export.ReadKerasModel(path)
	return net, err
}

// initWeights reads a .keras or .weights.h5 file's layer weights for net,
// for run --init-from: the file must hold net's layers with net's shapes.
func initWeights(path string, net *graph.Net) (map[string]graph.Array, error) {
	if fi, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("--init-from %s: %v", path, errors.Unwrap(err))
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("--init-from %s: not a regular file", path)
	}
	w, err := export.ReadKerasWeights(path, net)
	if err != nil {
		return nil, fmt.Errorf("--init-from: %w", err)
	}
	return w, nil
}
