package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	tf "github.com/wamuir/graft/tensorflow"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/dataset"
	"github.com/cifar-pipeline/cifar-pipeline/export"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/internal/atomicfile"
	"github.com/cifar-pipeline/cifar-pipeline/report"
	"github.com/cifar-pipeline/cifar-pipeline/rundir"
	"github.com/cifar-pipeline/cifar-pipeline/tfevents"
	"github.com/cifar-pipeline/cifar-pipeline/train"
)

// artifacts writes a run's files under its output dir, each atomically
// (TensorBoard event files excepted: they are appended live, as TensorBoard
// reads them).
type artifacts struct {
	dir     rundir.Dir
	cfg     config.Config
	cfgYAML []byte // cfg as written to config.resolved.yaml
	// learningRate is the optimizer's, for the history's learning_rate column.
	learningRate float64
	// logsLearningRate: the rate changes during training (a schedule or
	// ReduceLROnPlateau), so history.csv logs it, as Keras's does.
	logsLearningRate bool
	tb               *tfevents.EpochLogger
}

// reportHistory converts fit's logs to Keras's History numbering (0-based
// epochs) and float32 values, as Keras logs them.
func reportHistory(h []train.EpochLogs, lr float64, logLR bool) report.History {
	f := func(x float64) float64 { return float64(float32(x)) }
	out := make(report.History, len(h))
	for i, e := range h {
		out[i] = report.Epoch{Epoch: e.Epoch - 1, Loss: f(e.Loss), Accuracy: f(e.Accuracy), ValLoss: f(e.ValLoss),
			ValAccuracy: f(e.ValAccuracy), HasVal: e.HasVal, Seconds: e.Seconds, LearningRate: lr}
		if logLR { // the rate the fit loop logged (a schedule's, or ReduceLROnPlateau's)
			out[i].LearningRate = f(e.LearningRate)
		}
		out[i].LogsLearningRate = logLR
		if e.Seconds > 0 {
			out[i].ImagesPerSec = float64(e.Images) / e.Seconds
		}
	}
	return out
}

// epochEnd refreshes history.csv and the TensorBoard scalars after every
// epoch, so an interrupted run still leaves the history of its finished
// epochs.
func (a *artifacts) epochEnd(history []train.EpochLogs) error {
	h := reportHistory(history, a.learningRate, a.logsLearningRate)
	if err := report.WriteHistoryCSV(a.dir.History(), h); err != nil {
		return err
	}
	if !a.cfg.Output.TensorBoard {
		return nil
	}
	if a.tb == nil {
		tb, err := tfevents.NewEpochLogger(a.dir.Logs())
		if err != nil {
			return err
		}
		a.tb = tb
	}
	return a.logEpoch(h[len(h)-1])
}

func (a *artifacts) logEpoch(e report.Epoch) error {
	logs := map[string]float64{"loss": e.Loss, "accuracy": e.Accuracy, "learning_rate": e.LearningRate, "images_per_second": e.ImagesPerSec}
	if e.HasVal {
		logs["val_loss"], logs["val_accuracy"] = e.ValLoss, e.ValAccuracy
	}
	return a.tb.LogEpoch(int64(e.Epoch), logs)
}

// replay rewrites history.csv and the TensorBoard event files from the
// history a checkpoint carries, replacing what an interrupted process
// left (which may lack the epochs after its last write, or hold fewer).
func (a *artifacts) replay(history []train.EpochLogs) error {
	if len(history) == 0 {
		return nil
	}
	h := reportHistory(history, a.learningRate, a.logsLearningRate)
	if err := report.WriteHistoryCSV(a.dir.History(), h); err != nil {
		return err
	}
	if !a.cfg.Output.TensorBoard {
		return nil
	}
	for _, sub := range []string{"train", "validation"} {
		old, _ := filepath.Glob(filepath.Join(a.dir.Logs(), sub, "events.out.tfevents.*"))
		for _, f := range old {
			if err := os.Remove(f); err != nil {
				return fmt.Errorf("replace TensorBoard events: %w", err)
			}
		}
	}
	tb, err := tfevents.NewEpochLogger(a.dir.Logs())
	if err != nil {
		return err
	}
	a.tb = tb
	for _, e := range h {
		if err := a.logEpoch(e); err != nil {
			return err
		}
	}
	return nil
}

func (a *artifacts) close() {
	if a.tb != nil {
		a.tb.Close()
	}
}

// runSummary is run.json: the figures of a run that scripts (the benchmark)
// read back.
type runSummary struct {
	Name string `json:"name"`
	// Status is completed, diverged or interrupted; only a completed run
	// has test figures.
	Status string `json:"status"`
	// Weights says which weights the final artifacts hold: last, or best
	// (epoch N) after early_stopping's restore_best_weights.
	Weights            string            `json:"weights"`
	Params             int               `json:"params"`
	TensorFlow         string            `json:"tensorflow"`
	Device             string            `json:"device"`
	XLA                bool              `json:"xla"` // runtime.xla as resolved (auto: on with a GPU)
	DataSource         string            `json:"data_source"`
	Epochs             []train.EpochLogs `json:"epochs"`
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
func trainingThroughput(h []train.EpochLogs) (ips, secs float64) {
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
// (cifar10.weights.index + .data-*), the Keras architecture JSON, the Keras
// 3 files (model.keras, cifar10.weights.h5), the SavedModel, the
// evaluation files and, last, run.json.
func (a *artifacts) final(ctx context.Context, m *graph.Model, set *dataset.Set, res *Result) error {
	if err := m.Save(a.dir.Weights()); err != nil {
		return err
	}
	arch, err := export.KerasJSONPolicy(m.Net, m.Options().Precision)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(a.dir.Architecture(), arch); err != nil {
		return err
	}
	if err := export.KerasFile(m, a.dir.KerasModel()); err != nil {
		return err
	}
	if err := export.WeightsH5(m, a.dir.KerasWeights()); err != nil {
		return err
	}
	if a.cfg.Output.SavedModel {
		if err := export.SavedModel(m, a.dir.SavedModel()); err != nil {
			return err
		}
	}
	if err := a.evaluation(m.Net, set, res); err != nil {
		return err
	}
	return a.summary(m, set, res, StatusCompleted)
}

// summary writes run.json with the given status.
func (a *artifacts) summary(m *graph.Model, set *dataset.Set, res *Result, status string) error {
	ips, secs := trainingThroughput(res.History)
	s := runSummary{
		Name: a.cfg.Name, Status: status, Weights: res.weights(), Params: res.Params, TensorFlow: tf.Version(), Device: m.Device(), XLA: m.Options().XLA,
		Epochs: res.History, MedianEpochSeconds: secs, ImagesPerSecond: ips,
		TestLoss: res.TestLoss, TestAccuracy: res.TestAcc, PeakRSSMiB: peakRSSMiB(), Seconds: time.Since(res.Started).Seconds(),
	}
	if set != nil {
		s.DataSource = set.Source
	}
	if !res.FirstStep.IsZero() {
		s.TimeToFirstStep = res.FirstStep.Sub(res.Started).Seconds()
	}
	if res.Duration > 0 {
		s.Seconds = res.Duration.Seconds()
	}
	for _, e := range res.History {
		s.EpochSeconds = append(s.EpochSeconds, e.Seconds)
	}
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(a.dir.RunJSON(), b)
}

// evaluation classifies the test set and writes metrics.json, the plots,
// classes.txt and MODEL_CARD.md, and prints the per-class table.
func (a *artifacts) evaluation(net *graph.Net, set *dataset.Set, res *Result) error {
	n := set.Test.Len()
	probs := res.TestProbs
	k := len(probs) / n
	labels, preds := make([]int, n), make([]int, n)
	for i := range n {
		labels[i] = int(set.Test.Labels[i])
		best := 0
		for j, p := range probs[i*k : (i+1)*k] {
			if p > probs[i*k+best] {
				best = j
			}
		}
		preds[i] = best
	}
	names := set.ClassNames
	if len(names) != k {
		names = nil
		for j := range k {
			names = append(names, fmt.Sprintf("class_%d", j))
		}
	}
	metrics := report.Evaluate(labels, preds, names, res.TestLoss)
	metrics.AccuracyTTA = res.TestAccTTA
	res.Metrics = metrics
	if err := report.WriteMetricsJSON(a.dir.Metrics(), metrics); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(a.dir.Classes(), []byte(strings.Join(names, "\n")+"\n")); err != nil {
		return err
	}
	h := reportHistory(res.History, a.learningRate, a.logsLearningRate)
	if a.cfg.Output.Plots {
		if err := report.PlotCurves(a.dir.Curves(), h); err != nil {
			return err
		}
		if err := report.PlotConfusion(a.dir.Confusion(), metrics); err != nil {
			return err
		}
		if err := report.PlotMisclassified(a.dir.Misclassified(), set.Test.Images, set.Test.H, set.Test.W, set.Test.C, labels, preds, names, 40); err != nil {
			return err
		}
	}
	var files []report.DataFile
	for _, f := range slices.Sorted(maps.Keys(set.Verified)) {
		files = append(files, report.DataFile{Name: f, MD5: set.Verified[f], Verified: true})
	}
	train := 0.0
	for _, e := range res.History {
		train += e.Seconds
	}
	card := report.ModelCard{
		Model: a.cfg.Name, RunDir: a.dir.Root, Created: time.Now(), DataSource: set.Source + " (" + set.Dir + ")", DataFiles: files,
		TrainExamples: res.TrainN, ValExamples: res.ValN, TestExamples: n, ConfigYAML: string(a.cfgYAML),
		Architecture: net.Summary(), Params: int64(res.Params), Metrics: metrics, History: h, TrainSeconds: train,
		TFVersion: tf.Version(), Files: modelFiles(a.cfg.Output.SavedModel), Weights: res.weights(),
		Inputs: modelInputs(a.cfg.Data, a.cfg.Output.SavedModel),
	}
	return report.WriteModelCard(a.dir.ModelCard(), card)
}

// modelFiles lists a run's model files for the model card, with the line a
// notebook user types to load each.
func modelFiles(savedModel bool) []report.CardFile {
	files := []report.CardFile{
		{Name: rundir.KerasModelName, Load: fmt.Sprintf("keras.models.load_model(%q)", rundir.KerasModelName)},
		{Name: rundir.KerasWeightsName, Load: fmt.Sprintf("keras.models.model_from_json(open(%q).read()).load_weights(%q)", rundir.ArchitectureName, rundir.KerasWeightsName)},
		{Name: rundir.WeightsName + ".{index,data-*}", Load: fmt.Sprintf("tf.train.load_checkpoint(%q)", rundir.WeightsName)},
	}
	if savedModel {
		files = append(files, report.CardFile{Name: rundir.SavedModelName + "/", Load: fmt.Sprintf("tf.saved_model.load(%q)", rundir.SavedModelName)})
	}
	return files
}

// modelInputs says what pixels the model files take: the Keras files hold
// the net alone, so a Python user must scale images as training did.
func modelInputs(d config.Data, savedModel bool) string {
	var scale []string
	if d.Normalize {
		scale = append(scale, "x / 255")
	}
	if len(d.Mean) > 0 {
		scale = append(scale, fmt.Sprintf("(x − %v) / %v per channel", d.Mean, d.Std))
	}
	s := "Inputs: the Keras files take float32 RGB pixels (N, height, width, 3) "
	if len(scale) == 0 {
		s += "on the 0–255 scale, unscaled, as this run trained."
	} else {
		s += "scaled as this run trained: " + strings.Join(scale, ", then ") + "."
	}
	if savedModel {
		s += " The SavedModel takes uint8 pixels and scales them itself."
	}
	return s
}

// weights says which weights the final artifacts hold.
func (r *Result) weights() string {
	if r.Weights == "" {
		return "last"
	}
	return r.Weights
}
