package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/internal/atomicfile"
)

// CheckpointManager keeps the last Keep numbered checkpoints
// (Dir/ckpt-N.index + .data-*) and TensorFlow's `checkpoint` state file
// naming the latest, as tf.train.CheckpointManager does, so that
// tf.train.latest_checkpoint(Dir) finds them.
type CheckpointManager struct {
	Dir  string
	Keep int
}

var ckptName = regexp.MustCompile(`^ckpt-(\d+)\.index$`)

// List returns the numbers of the complete checkpoints in Dir, ascending.
func (c CheckpointManager) List() ([]int, error) {
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list checkpoints in %s: %w", c.Dir, err)
	}
	var ns []int
	for _, e := range entries {
		if mm := ckptName.FindStringSubmatch(e.Name()); mm != nil {
			n, _ := strconv.Atoi(mm[1])
			if _, err := os.Stat(filepath.Join(c.Dir, fmt.Sprintf("ckpt-%d.data-00000-of-00001", n))); err == nil {
				ns = append(ns, n)
			}
		}
	}
	slices.Sort(ns) // ReadDir sorts by name, not number
	return ns, nil
}

// Latest returns the prefix of the newest complete checkpoint, or "".
func (c CheckpointManager) Latest() (string, error) {
	ns, err := c.List()
	if err != nil || len(ns) == 0 {
		return "", err
	}
	return filepath.Join(c.Dir, fmt.Sprintf("ckpt-%d", ns[len(ns)-1])), nil
}

// Save writes checkpoint number n, updates the state file and deletes the
// checkpoints beyond Keep. It returns the new prefix.
func (c CheckpointManager) Save(m *graph.Model, n int) (string, error) {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return "", fmt.Errorf("checkpoint dir %s: %w", c.Dir, err)
	}
	// A process killed mid-save leaves temporary files; they were never a
	// checkpoint, so they go.
	stale, _ := filepath.Glob(filepath.Join(c.Dir, ".tmp-ckpt-*"))
	for _, f := range stale {
		os.Remove(f)
	}
	prefix := filepath.Join(c.Dir, fmt.Sprintf("ckpt-%d", n))
	if err := m.Save(prefix); err != nil {
		return "", err
	}
	ns, err := c.List()
	if err != nil {
		return "", err
	}
	keep := max(c.Keep, 1)
	for len(ns) > keep {
		graph.RemoveCheckpoint(filepath.Join(c.Dir, fmt.Sprintf("ckpt-%d", ns[0])))
		ns = ns[1:]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "model_checkpoint_path: %q\n", fmt.Sprintf("ckpt-%d", n))
	for _, k := range ns {
		fmt.Fprintf(&b, "all_model_checkpoint_paths: %q\n", fmt.Sprintf("ckpt-%d", k))
	}
	if err := atomicfile.WriteFile(filepath.Join(c.Dir, "checkpoint"), []byte(b.String())); err != nil {
		return "", err
	}
	return prefix, nil
}
