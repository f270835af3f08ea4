package graph

import (
	"os"
	"strconv"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
)

// BenchmarkTrainStep measures one RMSprop step of the notebook's shallow
// net on a batch of 128 (images/s = 128 / (ns/op) · 1e9).
func BenchmarkTrainStep(b *testing.B) {
	for _, tc := range []struct {
		name string
		net  []config.Layer
	}{{"shallow", config.ShallowLayers()}} {
		b.Run(tc.name, func(b *testing.B) {
			seq, err := NewSequential(tc.net, []int{32, 32, 3})
			if err != nil {
				b.Fatal(err)
			}
			m, err := Compile(seq, Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: config.DefaultOptimizer("rmsprop"), XLA: os.Getenv("BENCH_XLA") == "1", IntraOpThreads: envInt("BENCH_INTRA"), InterOpThreads: envInt("BENCH_INTER")})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			images, labels := tinyData(128, 10, 1)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := m.TrainStep(images, labels, 128, 1, int64(i)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(128*b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

func envInt(k string) int {
	n, _ := strconv.Atoi(os.Getenv(k))
	return n
}
