// Package modeltest compiles small models for the tests of the packages
// built on graph (train, export, the parity tests).
package modeltest

import (
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/internal/enginetest"
)

// Compile compiles layers on 32×32×3 images, 10 classes, seed 1, with the
// named optimizer at Keras's defaults, and closes the model when the test
// ends.
func Compile(t testing.TB, layers []config.Layer, opt string) *graph.Model {
	t.Helper()
	return CompileWith(t, layers, opt, nil)
}

// CompileWith is Compile with the options adjusted by adjust (nil: none).
func CompileWith(t testing.TB, layers []config.Layer, opt string, adjust func(*graph.Options)) *graph.Model {
	t.Helper()
	net, err := graph.NewNet(config.Model{Layers: layers}, []int{32, 32, 3})
	if err != nil {
		t.Fatal(err)
	}
	o, err := graph.NewOptimizer(enginetest.Optimizer(opt))
	if err != nil {
		t.Fatal(err)
	}
	opts := graph.Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: o}
	if adjust != nil {
		adjust(&opts)
	}
	m, err := graph.Compile(net, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}
