package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"

	tf "github.com/wamuir/graft/tensorflow"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/dataset"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
)

// artifacts writes a run's files under its output dir, each atomically.
type artifacts struct {
	dir string
	cfg config.Config
}

// epochEnd refreshes the per-epoch files (history) after every epoch, so an
// interrupted run still leaves a complete history of its finished epochs.
func (a *artifacts) epochEnd(history []graph.EpochLogs, _ graph.EpochLogs) error {
	return nil
}

// runSummary is run.json: the figures of a run that scripts (the benchmark)
// read back.
type runSummary struct {
	Name               string            `json:"name"`
	Params             int               `json:"params"`
	TensorFlow         string            `json:"tensorflow"`
	Device             string            `json:"device"`
	DataSource         string            `json:"data_source"`
	Epochs             []graph.EpochLogs `json:"epochs"`
	EpochSeconds       []float64         `json:"epoch_seconds"`
	MedianEpochSeconds float64           `json:"median_epoch_seconds"`
	ImagesPerSecond    float64           `json:"images_per_second"`
	TimeToFirstStep    float64           `json:"time_to_first_step"`
	TestLoss           float64           `json:"test_loss"`
	TestAccuracy       float64           `json:"test_accuracy"`
	PeakRSSMiB         float64           `json:"peak_rss_mib"`
	Seconds            float64           `json:"seconds"`
}

// trainingThroughput is the median over epochs (after the first, which
// pays for graph optimisation, when there are more) of images/s and s/epoch.
func trainingThroughput(h []graph.EpochLogs) (ips, secs float64) {
	if len(h) == 0 {
		return 0, 0
	}
	if len(h) > 1 {
		h = h[1:]
	}
	var r, s []float64
	for _, e := range h {
		r = append(r, float64(e.Images)/e.Seconds)
		s = append(s, e.Seconds)
	}
	return median(r), median(s)
}

func median(xs []float64) float64 {
	ys := slices.Clone(xs)
	slices.Sort(ys)
	n := len(ys)
	if n%2 == 1 {
		return ys[n/2]
	}
	return (ys[n/2-1] + ys[n/2]) / 2
}

func peakRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // Linux reports KiB
}

// final writes the end-of-run artifacts: final weights as a TF checkpoint
// (cifar10.weights.index + .data-*), the Keras architecture JSON, the
// SavedModel and run.json.
func (a *artifacts) final(ctx context.Context, m *graph.Model, seq *graph.Sequential, set *dataset.Set, res *Result) error {
	if err := m.Save(filepath.Join(a.dir, "cifar10.weights")); err != nil {
		return err
	}
	arch, err := seq.KerasJSON()
	if err != nil {
		return err
	}
	if err := graph.WriteFileAtomic(filepath.Join(a.dir, "cifar10_architecture.json"), arch); err != nil {
		return err
	}
	if a.cfg.Output.SavedModel {
		if err := m.ExportSavedModel(filepath.Join(a.dir, "saved_model")); err != nil {
			return err
		}
	}
	ips, secs := trainingThroughput(res.History)
	s := runSummary{
		Name: a.cfg.Name, Params: res.Params, TensorFlow: tf.Version(), Device: m.Device(), DataSource: set.Source,
		Epochs: res.History, MedianEpochSeconds: secs, ImagesPerSecond: ips,
		TimeToFirstStep: res.FirstStep.Sub(res.Started).Seconds(), TestLoss: res.TestLoss, TestAccuracy: res.TestAcc,
		PeakRSSMiB: peakRSSMiB(), Seconds: res.Duration.Seconds(),
	}
	for _, e := range res.History {
		s.EpochSeconds = append(s.EpochSeconds, e.Seconds)
	}
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	if err := graph.WriteFileAtomic(filepath.Join(a.dir, "run.json"), b); err != nil {
		return err
	}
	fmt.Printf("artifacts: %s\n", a.dir)
	return nil
}
