package graph

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"github.com/cifar-pipeline/cifar-pipeline/internal/atomicfile"
)

// checkpointOps are the SaveV2/RestoreV2 ops of a model graph.
type checkpointOps struct {
	prefix tf.Output
	save   *tf.Operation
	// Single-tensor restores, one per dtype, with the name fed at run time,
	// so that a missing or mis-shaped variable is reported by name.
	restoreName                tf.Output
	restoreFloat, restoreInt64 tf.Output
	restoreString              tf.Output // the run state (runstate.go)
}

func (m *Model) buildCheckpointOps(s *op.Scope) {
	c := &m.ckpt
	c.prefix = op.Placeholder(s.SubScope("prefix"), tf.String, op.PlaceholderShape(tf.ScalarShape()))
	names := make([]string, len(m.State))
	slices := make([]string, len(m.State))
	tensors := make([]tf.Output, len(m.State))
	for i, v := range m.State {
		names[i], tensors[i] = v.Name, v.read
	}
	c.save = op.SaveV2(s.SubScope("SaveV2"), c.prefix, op.Const(s.SubScope("Const"), names), op.Const(s.SubScope("Const"), slices), tensors)
	c.restoreName = op.Placeholder(s.SubScope("name"), tf.String, op.PlaceholderShape(tf.MakeShape(1)))
	empty := op.Const(s.SubScope("Const"), []string{""})
	c.restoreFloat = op.RestoreV2(s.SubScope("float"), c.prefix, c.restoreName, empty, []tf.DataType{tf.Float})[0]
	c.restoreInt64 = op.RestoreV2(s.SubScope("int64"), c.prefix, c.restoreName, empty, []tf.DataType{tf.Int64})[0]
	c.restoreString = op.RestoreV2(s.SubScope("string"), c.prefix, c.restoreName, empty, []tf.DataType{tf.String})[0]
}

// Save writes every variable (weights, optimiser slots, counters) as a
// TensorFlow checkpoint (tensor bundle: prefix.index +
// prefix.data-00000-of-00001) with SaveV2. Files are written under a
// temporary prefix and renamed into place, data before index, so a crash
// never leaves a readable but partial checkpoint.
func (m *Model) Save(prefix string) error {
	dir, base := filepath.Split(prefix)
	tmp := filepath.Join(dir, fmt.Sprintf(".tmp-%s-%d", base, time.Now().UnixNano()))
	t, err := tf.NewTensor(tmp)
	if err != nil {
		return err
	}
	if _, err := m.sess.Run(map[tf.Output]*tf.Tensor{m.ckpt.prefix: t}, nil, []*tf.Operation{m.ckpt.save}); err != nil {
		removeBundle(tmp)
		return fmt.Errorf("save checkpoint %s: %s", prefix, firstLine(err))
	}
	data := ".data-00000-of-00001"
	if err := os.Rename(tmp+data, prefix+data); err != nil {
		removeBundle(tmp)
		return fmt.Errorf("save checkpoint %s: %w", prefix, err)
	}
	if err := os.Rename(tmp+".index", prefix+".index"); err != nil {
		removeBundle(tmp)
		return fmt.Errorf("save checkpoint %s: %w", prefix, err)
	}
	return nil
}

func removeBundle(prefix string) {
	matches, _ := filepath.Glob(prefix + ".*")
	for _, f := range matches {
		os.Remove(f)
	}
}

func firstLine(err error) string {
	s := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Restore loads every variable of the model from the checkpoint at prefix.
// A checkpoint of a different architecture fails with the first variable
// that is missing or has another shape, before anything is assigned.
func (m *Model) Restore(prefix string) error {
	if _, err := os.Stat(prefix + ".index"); err != nil {
		return fmt.Errorf("restore %s: no checkpoint there (%s.index missing)", prefix, prefix)
	}
	p, err := tf.NewTensor(prefix)
	if err != nil {
		return err
	}
	values := make([]*tf.Tensor, len(m.State))
	for i, v := range m.State {
		name, err := tf.NewTensor([]string{v.Name})
		if err != nil {
			return err
		}
		fetch := m.ckpt.restoreFloat
		switch v.DType {
		case tf.Int64:
			fetch = m.ckpt.restoreInt64
		case tf.String:
			fetch = m.ckpt.restoreString
		}
		out, err := m.sess.Run(map[tf.Output]*tf.Tensor{m.ckpt.prefix: p, m.ckpt.restoreName: name}, []tf.Output{fetch}, nil)
		if err != nil {
			msg := firstLine(err)
			if v.DType == tf.String && strings.Contains(msg, "not found in checkpoint") {
				// A checkpoint written before the run state existed.
				if values[i], err = tf.NewTensor(""); err != nil {
					return err
				}
				continue
			}
			if strings.Contains(msg, "not found in checkpoint") {
				return fmt.Errorf("restore %s: checkpoint has no variable %s %v: it was written by a different architecture or optimiser", prefix, v.Name, v.Shape)
			}
			return fmt.Errorf("restore %s: variable %s: %s", prefix, v.Name, msg)
		}
		got := make([]int, len(out[0].Shape()))
		for j, d := range out[0].Shape() {
			got[j] = int(d)
		}
		if !sameShape(got, v.Shape) {
			return fmt.Errorf("restore %s: variable %s has shape %v in the checkpoint but %v in this model: different architecture", prefix, v.Name, got, v.Shape)
		}
		values[i] = out[0]
	}
	for i, v := range m.State {
		if _, err := m.sess.Run(map[tf.Output]*tf.Tensor{v.assignIn: values[i]}, nil, []*tf.Operation{v.assign}); err != nil {
			return fmt.Errorf("restore %s: assign %s: %w", prefix, v.Name, err)
		}
	}
	return nil
}

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
func (c CheckpointManager) Save(m *Model, n int) (string, error) {
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
		removeBundle(filepath.Join(c.Dir, fmt.Sprintf("ckpt-%d", ns[0])))
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
