package kerasfile

import (
	"path/filepath"
	"testing"
)

// shallowWeights has the notebook's shallow net's shapes (4,200,842
// parameters) and RMSprop state (one velocity per variable).
func shallowWeights() Weights {
	shapes := map[string][][]int{"conv2d": {{3, 3, 3, 32}, {32}}, "dense": {{8192, 512}, {512}}, "dense_1": {{512, 10}, {10}}}
	w := Weights{Model: "sequential", OptimizerName: "rmsprop", Optimizer: []Tensor{{Shape: []int{}, Int64: []int64{1}}, {Shape: []int{}, Data: []float32{1e-3}}}}
	for _, k := range []string{"conv2d", "dense", "dense_1"} {
		l := LayerVars{Key: k, Name: k}
		for _, s := range shapes[k] {
			t := Tensor{Shape: s}
			t.Data = make([]float32, t.Len())
			l.Vars = append(l.Vars, t)
			w.Optimizer = append(w.Optimizer, Tensor{Shape: s, Data: make([]float32, t.Len())})
		}
		w.Layers = append(w.Layers, l)
	}
	return w
}

func BenchmarkWriteKeras(b *testing.B) {
	path := filepath.Join(b.TempDir(), "m.keras")
	w := shallowWeights()
	b.SetBytes(2 * 4 * 4200842)
	for b.Loop() {
		if err := WriteKeras(path, []byte(smallConfig), w); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadKeras(b *testing.B) {
	path := filepath.Join(b.TempDir(), "m.keras")
	if err := WriteKeras(path, []byte(smallConfig), shallowWeights()); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(2 * 4 * 4200842)
	for b.Loop() {
		if _, _, err := ReadKeras(path); err != nil {
			b.Fatal(err)
		}
	}
}
