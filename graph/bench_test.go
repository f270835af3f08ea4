package graph

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
)

// BenchmarkTrainStep measures one RMSprop step of the notebook's shallow
// and deep nets on a batch of 128 (images/s = 128 / (ns/op) · 1e9), the Go
// side of scripts/keras_step_bench.py. Environment: BENCH_XLA=1 turns XLA
// on, BENCH_INTRA/BENCH_INTER size the thread pools, BENCH_AUTOGRAD=1
// builds the backward pass with Graph.AddGradients, BENCH_GRAPHDEF=DIR
// writes each model's GraphDef to DIR/<net>.pb for profiling.
func BenchmarkTrainStep(b *testing.B) {
	for _, tc := range []struct{ name, file string }{
		{"shallow", "config.yaml"}, {"deep", "configs/deep.yaml"}, {"deep-intended", "configs/deep-intended.yaml"}, {"resnet20", "configs/resnet20.yaml"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg, err := config.Load(filepath.Join("..", tc.file), nil)
			if err != nil {
				b.Fatal(err)
			}
			m, err := Compile(newNet(b, cfg.Model.Layers), Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: optimizer(b, "rmsprop"),
				XLA: os.Getenv("BENCH_XLA") == "1", IntraOpThreads: envInt("BENCH_INTRA"), InterOpThreads: envInt("BENCH_INTER"),
				AutoGradients: os.Getenv("BENCH_AUTOGRAD") == "1", Precision: Precision(os.Getenv("BENCH_PRECISION"))})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			if dir := os.Getenv("BENCH_GRAPHDEF"); dir != "" {
				if err := m.WriteGraphDef(filepath.Join(dir, tc.name+".pb")); err != nil {
					b.Fatal(err)
				}
			}
			images, labels := tinyData(128, 10, 1)
			// Warm up: the first runs optimise the graph and build kernels.
			for i := 0; i < 3; i++ {
				if _, err := m.TrainStep(images, labels, 128, 1, int64(-1-i)); err != nil {
					b.Fatal(err)
				}
			}
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
