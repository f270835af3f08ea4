package graph

import (
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/internal/enginetest"
)

var (
	lay            = enginetest.Layer
	tinyData       = enginetest.TinyData
	maxAbsDiff     = enginetest.MaxAbsDiff
	relDiff        = enginetest.RelDiff
	parityBatchesN = enginetest.ParityBatches
)

func parityBatches(_ testing.TB, n int) (images, labels []uint8) { return parityBatchesN(n) }

// optimizer is a registered optimizer with Keras's defaults overridden by
// key, value pairs.
func optimizer(t testing.TB, name string, kv ...any) Optimizer {
	t.Helper()
	o, err := NewOptimizer(enginetest.Optimizer(name, kv...))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// newNet resolves layers on a 32×32×3 input.
func newNet(t testing.TB, layers []config.Layer) *Net {
	t.Helper()
	net, err := NewNet(config.Model{Layers: layers}, []int{32, 32, 3})
	if err != nil {
		t.Fatal(err)
	}
	return net
}

// compileNet compiles layers on a 32×32×3 input and closes the model when
// the test ends.
func compileNet(t testing.TB, layers []config.Layer, o Options) *Model {
	t.Helper()
	m, err := Compile(newNet(t, layers), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}
