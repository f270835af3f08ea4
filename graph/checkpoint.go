package graph

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// checkpointOps are the SaveV2/RestoreV2 ops of a model graph.
type checkpointOps struct {
	prefix tf.Output
	save   *tf.Operation
	// Single-tensor restores, one per dtype, with the name fed at run time,
	// so that a missing or mis-shaped variable is reported by name.
	restoreName tf.Output
	restore     map[tf.DataType]tf.Output
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
	c.restore = map[tf.DataType]tf.Output{}
	for _, dt := range []tf.DataType{tf.Float, tf.Int64, tf.String} {
		c.restore[dt] = op.RestoreV2(s.SubScope("restore"), c.prefix, c.restoreName, empty, []tf.DataType{dt})[0]
	}
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
		RemoveCheckpoint(tmp)
		return fmt.Errorf("save checkpoint %s: %s", prefix, FirstLine(err))
	}
	data := ".data-00000-of-00001"
	if err := os.Rename(tmp+data, prefix+data); err != nil {
		RemoveCheckpoint(tmp)
		return fmt.Errorf("save checkpoint %s: %w", prefix, err)
	}
	if err := os.Rename(tmp+".index", prefix+".index"); err != nil {
		RemoveCheckpoint(tmp)
		return fmt.Errorf("save checkpoint %s: %w", prefix, err)
	}
	return nil
}

// RemoveCheckpoint deletes the files of the checkpoint at prefix.
func RemoveCheckpoint(prefix string) {
	matches, _ := filepath.Glob(prefix + ".*")
	for _, f := range matches {
		os.Remove(f)
	}
}

// FirstLine is the first line of an error's text (TensorFlow's errors carry
// stack traces). A remote error's first line only names the task ("From
// /job:worker/replica:0/task:1:"); the next line, the error itself, is
// joined to it.
func FirstLine(err error) string {
	s := strings.TrimSpace(err.Error())
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return s
	}
	first, rest := s[:i], s[i+1:]
	if strings.HasSuffix(first, ":") {
		if j := strings.IndexByte(rest, '\n'); j >= 0 {
			rest = rest[:j]
		}
		return first + " " + strings.TrimSpace(rest)
	}
	return first
}

// Restore loads every variable of the model from the checkpoint at prefix.
// A checkpoint of a different architecture fails with the first variable
// that is missing or has another shape, before anything is assigned.
func (m *Model) Restore(prefix string) error { return m.restore(prefix, m.State) }

// RestoreWeights loads only the layers' variables (weights and their
// state, such as moving statistics) from the checkpoint at prefix, leaving
// the optimizer and the counters as they are: Keras's
// restore_best_weights.
func (m *Model) RestoreWeights(prefix string) error {
	return m.restore(prefix, append(append([]*Variable(nil), m.Weights...), m.NonTrainable...))
}

// mayLack reports whether a checkpoint may lack v: the run state and the
// learning-rate variable (checkpoints from before they existed) and the
// loss scale's state (a checkpoint of another precision).
func (m *Model) mayLack(v *Variable) bool {
	if v == m.runState || v == m.lrVar {
		return true
	}
	ls := m.lossScale
	return ls != nil && (v == ls.scale || v == ls.counter || v == ls.skipped)
}

func (m *Model) restore(prefix string, vars []*Variable) error {
	if _, err := os.Stat(prefix + ".index"); err != nil {
		return fmt.Errorf("restore %s: no checkpoint there (%s.index missing)", prefix, prefix)
	}
	p, err := tf.NewTensor(prefix)
	if err != nil {
		return err
	}
	values := make([]*tf.Tensor, len(vars))
	for i, v := range vars {
		name, err := tf.NewTensor([]string{v.Name})
		if err != nil {
			return err
		}
		out, err := m.sess.Run(map[tf.Output]*tf.Tensor{m.ckpt.prefix: p, m.ckpt.restoreName: name}, []tf.Output{m.ckpt.restore[v.DType]}, nil)
		if err != nil {
			msg := FirstLine(err)
			notFound := strings.Contains(msg, "not found in checkpoint")
			if notFound && m.mayLack(v) {
				continue // it keeps its initial value
			}
			if notFound {
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
	for i, v := range vars {
		if values[i] == nil {
			continue
		}
		if _, err := m.sess.Run(map[tf.Output]*tf.Tensor{v.assignIn: values[i]}, nil, []*tf.Operation{v.assign}); err != nil {
			return fmt.Errorf("restore %s: assign %s: %w", prefix, v.Name, err)
		}
	}
	return nil
}
