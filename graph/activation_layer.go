package graph

import (
	"fmt"

	tf "github.com/wamuir/graft/tensorflow"
)

// Activation is keras.layers.Activation: keras/src/layers/activations/activation.py.
// The layer itself is the identity; the model applies its activation (see
// Activated), as it does for Conv2D's and Dense's.
type Activation struct {
	Activation string `mapstructure:"activation"`
}

func init() {
	RegisterLayer(Kind{Type: "activation", Class: "Activation", New: func() Layer { return &Activation{} }})
}

func (l *Activation) Build(in []Shape) (Shape, []Param, error) {
	if l.Activation == "" {
		return nil, nil, fmt.Errorf("activation: missing (one of %v)", ActivationNames())
	}
	var err error
	l.Activation, err = checkActivation(l.Activation)
	return in[0], nil, err
}

func (l *Activation) ActivationName() string { return l.Activation }

func (l *Activation) Call(c *Call) tf.Output { return c.In[0] }

func (l *Activation) Backward(c *Call, dy tf.Output) (dx, dw []tf.Output) {
	return []tf.Output{dy}, nil
}

// preservesChannelSums: Backward passes dy through (the model takes the
// activation's own gradient before it).
func (l *Activation) preservesChannelSums() bool { return true }

func (l *Activation) KerasConfig() map[string]any { return map[string]any{"activation": l.Activation} }
