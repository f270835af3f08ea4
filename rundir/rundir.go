// Package rundir is the layout and ownership of a run's output directory:
// every file name that `run`, `predict` and the artifacts use, the advisory
// lock a writing run holds, and the removal of this tool's stale temp files.
//
// It is its own package, not part of pipeline, so that the one list of names
// is what both the writer (pipeline's run) and readers (predict, tests,
// scripts) import, and so that the lock has no dependency on TensorFlow.
package rundir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Dir is a run's output directory (output.dir).
type Dir struct {
	// Root is the directory as configured.
	Root string
}

// New returns the run directory at root.
func New(root string) Dir { return Dir{Root: filepath.Clean(root)} }

// Display is how messages name the directory: its path with a trailing slash.
func (d Dir) Display() string { return d.Root + string(filepath.Separator) }

func (d Dir) path(name string) string { return filepath.Join(d.Root, name) }

// File names inside a run directory.
const (
	LockName           = ".lock"
	CheckpointsName    = "checkpoints"
	ResolvedConfigName = "config.resolved.yaml"
	HistoryName        = "history.csv"
	RunJSONName        = "run.json"
	MetricsName        = "metrics.json"
	ClassesName        = "classes.txt"
	CurvesName         = "curves.png"
	ConfusionName      = "confusion.png"
	MisclassifiedName  = "misclassified.png"
	ModelCardName      = "MODEL_CARD.md"
	WeightsName        = "cifar10.weights"
	ArchitectureName   = "cifar10_architecture.json"
	SavedModelName     = "saved_model"
	KerasModelName     = "model.keras"
	KerasWeightsName   = "cifar10.weights.h5"
	LogsName           = "logs"
	PreviewName        = "preview"
	SyntheticDataName  = "synthetic-data"
)

// Checkpoints is the directory of the numbered training checkpoints.
func (d Dir) Checkpoints() string { return d.path(CheckpointsName) }

// BestCheckpoint is the prefix of the best-only checkpoint
// (train.callbacks.best_checkpoint, early_stopping's restore_best_weights),
// kept beside the rolling ones.
func (d Dir) BestCheckpoint() string { return filepath.Join(d.Checkpoints(), "best", "ckpt-best") }

// ResolvedConfig is the config the run used, as YAML.
func (d Dir) ResolvedConfig() string { return d.path(ResolvedConfigName) }

// History is the per-epoch history.csv.
func (d Dir) History() string { return d.path(HistoryName) }

// RunJSON is run.json, the run's summary figures and status.
func (d Dir) RunJSON() string { return d.path(RunJSONName) }

// Metrics is metrics.json, the test-set evaluation.
func (d Dir) Metrics() string { return d.path(MetricsName) }

// Classes is classes.txt, the class names one per line.
func (d Dir) Classes() string { return d.path(ClassesName) }

// Curves, Confusion and Misclassified are the plots.
func (d Dir) Curves() string        { return d.path(CurvesName) }
func (d Dir) Confusion() string     { return d.path(ConfusionName) }
func (d Dir) Misclassified() string { return d.path(MisclassifiedName) }

// ModelCard is MODEL_CARD.md.
func (d Dir) ModelCard() string { return d.path(ModelCardName) }

// Weights is the prefix of the final weights checkpoint.
func (d Dir) Weights() string { return d.path(WeightsName) }

// Architecture is the Keras architecture JSON.
func (d Dir) Architecture() string { return d.path(ArchitectureName) }

// SavedModel is the exported SavedModel directory.
func (d Dir) SavedModel() string { return d.path(SavedModelName) }

// KerasModel is the Keras 3 whole-model file (keras.models.load_model).
func (d Dir) KerasModel() string { return d.path(KerasModelName) }

// KerasWeights is the Keras 3 weights file (model.load_weights).
func (d Dir) KerasWeights() string { return d.path(KerasWeightsName) }

// Logs is the TensorBoard log directory.
func (d Dir) Logs() string { return d.path(LogsName) }

// Preview is the directory of augmentation previews.
func (d Dir) Preview() string { return d.path(PreviewName) }

// SyntheticData is where a run writes its generated data set.
func (d Dir) SyntheticData() string { return d.path(SyntheticDataName) }

// Lock is a held run-directory lock: an OS advisory lock (flock) on
// Root/.lock, so it dies with the process and kill -9 leaves none behind.
type Lock struct {
	f *os.File
}

// ErrInUse is Lock's error (errors.Is) when another process holds the lock.
var ErrInUse = errors.New("run directory in use")

// inUseError names the directory and the process holding it.
type inUseError struct{ dir, holder string }

func (e *inUseError) Error() string {
	return fmt.Sprintf("%s is in use by %s: wait for it to finish or choose another output.dir", e.dir, e.holder)
}

func (e *inUseError) Is(target error) bool { return target == ErrInUse }

// Lock creates the directory if needed and takes its lock without waiting:
// when another process holds it, the error is
// `DIR/ is in use by pid N (started …)`. The lock file then holds this
// process's pid and start time.
func (d Dir) Lock(started time.Time) (*Lock, error) {
	if err := os.MkdirAll(d.Root, 0o755); err != nil {
		return nil, fmt.Errorf("output.dir %s: cannot create it (%v): choose a writable directory with --set output.dir=DIR", d.Root, errors.Unwrap(err))
	}
	l, err := lockFile(d.path(LockName))
	if err != nil {
		if errors.Is(err, ErrInUse) {
			return nil, &inUseError{dir: d.Display(), holder: holder(d.path(LockName))}
		}
		return nil, fmt.Errorf("output.dir %s: cannot lock it: %w", d.Root, err)
	}
	if err := l.f.Truncate(0); err == nil {
		_, err = l.f.WriteAt([]byte(fmt.Sprintf("pid %d\nstarted %s\n", os.Getpid(), started.UTC().Format(time.RFC3339))), 0)
		if err != nil {
			l.Unlock()
			return nil, fmt.Errorf("output.dir %s: cannot write %s: %w", d.Root, LockName, err)
		}
	}
	return l, nil
}

func lockFile(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrInUse
		}
		return nil, err
	}
	return &Lock{f: f}, nil
}

// holder describes the lock's holder from the lock file: "pid N (started T)".
func holder(path string) string {
	b, _ := os.ReadFile(path)
	var pid, started string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "pid "); ok {
			pid = v
		}
		if v, ok := strings.CutPrefix(line, "started "); ok {
			started = v
		}
	}
	if _, err := strconv.Atoi(pid); err != nil {
		return "another process"
	}
	return fmt.Sprintf("pid %s (started %s)", pid, started)
}

// Unlock empties the lock file (so that a run that changed nothing leaves
// the directory's bytes as they were) and releases the lock.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Truncate(0)
	syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = nil
}

// staleTemps are the name patterns of this tool's temporary files and
// directories, by subdirectory of the run dir: graph's checkpoint temp
// bundles (.tmp-*), internal/atomicfile's temps (.NAME.tmp-*, also the
// SavedModel's assembly dir), the SavedModel's set-aside old copy, the
// output.dir write probe and a --overwrite's moved-aside run.
var staleTemps = map[string][]string{
	"":              {".tmp-*", ".*.tmp-*", SavedModelName + ".old-*", ".write-probe-*"},
	CheckpointsName: {".tmp-*", ".*.tmp-*"},
	PreviewName:     {".*.tmp-*"},
}

// RemoveStaleTemps deletes the temp files a killed run of this tool left
// (see staleTemps) and returns their names. Call it with the lock held: no
// other run of this tool can be writing them then.
func (d Dir) RemoveStaleTemps() ([]string, error) {
	var removed []string
	for sub, patterns := range staleTemps {
		for _, p := range patterns {
			matches, err := filepath.Glob(filepath.Join(d.Root, sub, p))
			if err != nil {
				return removed, err
			}
			for _, m := range matches {
				if err := os.RemoveAll(m); err != nil {
					return removed, fmt.Errorf("remove stale temp %s: %w", m, err)
				}
				removed = append(removed, m)
			}
		}
	}
	// A --overwrite killed before it deleted the old run leaves it beside
	// the directory; it is ours to delete once no process holds its lock.
	aside, _ := filepath.Glob(filepath.Join(filepath.Dir(d.Root), asidePrefix(d.Root)+"*"))
	for _, a := range aside {
		l, err := lockFile(filepath.Join(a, LockName))
		if err != nil {
			continue
		}
		err = os.RemoveAll(a)
		l.f.Close()
		if err != nil {
			return removed, fmt.Errorf("remove the replaced run %s: %w", a, err)
		}
		removed = append(removed, a)
	}
	return removed, nil
}

func asidePrefix(root string) string { return "." + filepath.Base(root) + ".replaced-" }

// Replace implements --overwrite: with the old run's lock held (l), it
// renames the whole directory aside in one rename(2), creates a fresh
// empty directory under the same name and takes its lock, then deletes the
// old run. The rename is the commit point: before it the directory is the
// old run, complete; after it, a new run's; never a mix of both. A process
// killed before the deletion leaves the old run as a hidden sibling that
// the next RemoveStaleTemps deletes. It returns the new directory's lock;
// l is released.
func (d Dir) Replace(l *Lock, started time.Time) (*Lock, error) {
	aside := filepath.Join(filepath.Dir(d.Root), fmt.Sprintf("%s%d", asidePrefix(d.Root), time.Now().UnixNano()))
	if err := os.Rename(d.Root, aside); err != nil {
		return nil, fmt.Errorf("--overwrite: cannot move the old run in %s aside (%v): remove it yourself or choose another output.dir", d.Display(), errors.Unwrap(err))
	}
	nl, err := d.Lock(started)
	if err != nil {
		// Someone took the name in between: leave the old run where it is.
		return nil, fmt.Errorf("--overwrite: %w (the old run is in %s)", err, aside)
	}
	l.Unlock()
	if err := os.RemoveAll(aside); err != nil {
		nl.Unlock()
		return nil, fmt.Errorf("--overwrite: delete the old run moved to %s: %w", aside, err)
	}
	return nl, nil
}
