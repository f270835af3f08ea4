package graph

import (
	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// runStateName is the checkpoint key of the run state: an opaque byte
// string (a DT_STRING scalar) that the caller keeps inside every
// checkpoint, so that what a checkpoint belongs to travels with it.
const runStateName = "train/run_state"

// addRunState adds the run-state variable; build calls it before the
// checkpoint ops, so SaveV2 writes it with every other variable.
func (m *Model) addRunState(s *op.Scope) {
	m.runState = m.newVariable(s, runStateName, nil, tf.String)
}

// SetRunState stores b in the model's run state, to be written with the
// next checkpoint.
func (m *Model) SetRunState(b []byte) error {
	t, err := tf.NewTensor(string(b))
	if err != nil {
		return err
	}
	_, err = m.sess.Run(map[tf.Output]*tf.Tensor{m.runState.assignIn: t}, nil, []*tf.Operation{m.runState.assign})
	return err
}

// RunState returns the run state: what SetRunState stored, or what the last
// Restore read (empty for a checkpoint written without one).
func (m *Model) RunState() ([]byte, error) {
	out, err := m.sess.Run(nil, []tf.Output{m.runState.read}, nil)
	if err != nil {
		return nil, err
	}
	return []byte(out[0].Value().(string)), nil
}
