package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	tf "github.com/wamuir/graft/tensorflow"
	"gopkg.in/yaml.v3"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/dataset"
	"github.com/cifar-pipeline/cifar-pipeline/device"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/internal/atomicfile"
	"github.com/cifar-pipeline/cifar-pipeline/report"
)

// Job is one `pipeline run`: a resolved config and where it writes.
type Job struct {
	Cfg        config.Config
	ConfigPath string
	Resume     bool
	Started    time.Time // process start, for time-to-first-step
	Out        io.Writer // progress and results
	Log        io.Writer // one-line status messages
}

// Result is what a run produced.
type Result struct {
	History  []graph.EpochLogs
	TestLoss float64
	TestAcc  float64
	// TestProbs is the model output on the test set (n×classes).
	TestProbs []float32
	Params    int
	TrainN    int
	ValN      int
	Metrics   report.Metrics
	Data      *dataset.Set
	// Started is when the process started; FirstStep when the first
	// training step finished.
	Started   time.Time
	FirstStep time.Time
	Duration  time.Duration
}

// checkOutputDir creates dir and proves it writable before any training,
// so a read-only or missing location fails in a second, not after an hour.
func checkOutputDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("output.dir %s: cannot create it (%v): choose a writable directory with --set output.dir=DIR", dir, errors.Unwrap(err))
	}
	f, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return fmt.Errorf("output.dir %s: not writable: choose a writable directory with --set output.dir=DIR", dir)
	}
	name := f.Name()
	_, werr := f.Write(make([]byte, 1<<20)) // also catches a full disk early
	f.Close()
	os.Remove(name)
	if werr != nil {
		return fmt.Errorf("output.dir %s: cannot write (%v): free space or choose another directory", dir, werr)
	}
	return nil
}

// loadData acquires CIFAR-10 (or the synthetic set) as the config says.
func loadData(ctx context.Context, cfg config.Config, log io.Writer) (*dataset.Set, error) {
	var set *dataset.Set
	var err error
	if cfg.Data.Synthetic.Train > 0 {
		dir := filepath.Join(cfg.Output.Dir, "synthetic-data")
		if err := dataset.WriteSynthetic(dir, cfg.Data.Synthetic.Train, cfg.Data.Synthetic.Test, cfg.Seed); err != nil {
			return nil, err
		}
		if set, err = dataset.ReadDir(dir); err != nil {
			return nil, err
		}
		set.Source = "synthetic"
	} else {
		f := &dataset.Fetcher{CacheDir: cfg.Data.CacheDir, Offline: cfg.Data.Offline, Log: log}
		if set, err = f.Fetch(ctx, cfg.Data.Dir); err != nil {
			return nil, err
		}
	}
	if n := cfg.Data.LimitTrain; n > 0 && n < set.Train.Len() {
		set.Train = set.Train.Slice(0, n)
	}
	if n := cfg.Data.LimitTest; n > 0 && n < set.Test.Len() {
		set.Test = set.Test.Slice(0, n)
	}
	return set, nil
}

func arrays(s *dataset.Split, batch int, shuffle bool, seed int64) *graph.Arrays {
	return &graph.Arrays{Images: s.Images, Labels: s.Labels, ImageSize: s.H * s.W * s.C, BatchSize: batch, Shuffle: shuffle, Seed: seed}
}

// Run executes the job end to end.
func (j *Job) Run(ctx context.Context) (*Result, error) {
	cfg := j.Cfg
	res := &Result{Started: j.Started}
	if res.Started.IsZero() {
		res.Started = time.Now()
	}
	// The device is checked first: a GPU run on a machine without a usable
	// GPU fails in a line before any artifact or data is touched.
	placement, err := device.Resolve(cfg.Runtime, device.Probe())
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", j.ConfigPath, err)
	}
	if err := checkOutputDir(cfg.Output.Dir); err != nil {
		return nil, err
	}
	seq, err := graph.NewSequential(cfg.Model.Layers, cfg.Data.ImageShape)
	if err != nil {
		return nil, fmt.Errorf("config %s: model.layers: %w", j.ConfigPath, err)
	}
	res.Params = seq.ParamCount()

	ckpts := graph.CheckpointManager{Dir: filepath.Join(cfg.Output.Dir, "checkpoints"), Keep: cfg.Output.KeepCheckpoints}
	latest := ""
	if j.Resume {
		if latest, err = ckpts.Latest(); err != nil {
			return nil, err
		}
		if latest == "" {
			return nil, fmt.Errorf("--resume: no checkpoint in %s: run without --resume to start fresh", ckpts.Dir)
		}
		if err := checkResumable(cfg); err != nil {
			return nil, err
		}
	}
	// The resolved config, written before training: `pipeline run -c
	// RUN_DIR/config.resolved.yaml` repeats the run, and --resume checks
	// that what fixes the RNG streams has not changed.
	cfgYAML, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(cfg.Output.Dir, resolvedConfig), cfgYAML); err != nil {
		return nil, err
	}

	set, err := loadData(ctx, cfg, j.Log)
	if err != nil {
		return nil, err
	}
	res.Data = set
	if set.Train.H != cfg.Data.ImageShape[0] || set.Train.W != cfg.Data.ImageShape[1] || set.Train.C != cfg.Data.ImageShape[2] {
		return nil, fmt.Errorf("data %s: images are %dx%dx%d but data.image_shape is %v", set.Dir, set.Train.H, set.Train.W, set.Train.C, cfg.Data.ImageShape)
	}
	fit, val := set.Train, (*dataset.Split)(nil)
	switch cfg.Data.Validation {
	case "split":
		if cfg.Data.ValidationSplit > 0 {
			fit, val = dataset.ValidationSplit(set.Train, cfg.Data.ValidationSplit)
		}
	case "test":
		val = set.Test
	}
	fmt.Fprintf(j.Log, "data: %s (%s): %d train, %d validation, %d test\n", set.Source, set.Dir, fit.Len(), lenOf(val), set.Test.Len())
	if pv := cfg.Augment.Preview; cfg.Augment.Enabled && pv.Enabled && pv.Images > 0 && pv.PerImage > 0 {
		files, sheet, err := writePreviews(cfg, fit, filepath.Join(cfg.Output.Dir, "preview"), pv.Images, pv.PerImage, j.Log)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(j.Log, "preview: %d augmented images and %s\n", len(files), sheet)
	}

	model, err := graph.Compile(seq, graph.Options{
		Seed: cfg.Seed, Normalize: cfg.Data.Normalize, Classes: cfg.Data.Classes, Optimizer: cfg.Train.Optimizer,
		IntraOpThreads: cfg.Runtime.IntraOpThreads, InterOpThreads: cfg.Runtime.InterOpThreads, XLA: cfg.Runtime.XLA,
	})
	if err != nil {
		return nil, err
	}
	defer model.Close()
	fmt.Fprint(j.Out, seq.Summary())
	// TODO(lead): pass placement.ConfigureSession and placement.Device()
	// into graph.Options; until then the session uses TensorFlow's default.
	fmt.Fprintf(j.Log, "runtime: device %s\n", placement)
	fmt.Fprintf(j.Log, "runtime: TensorFlow %s on %s, %d cores, intra-op threads %d, inter-op threads %d, XLA %v\n",
		tf.Version(), model.Device(), runtime.NumCPU(), cfg.Runtime.IntraOpThreads, cfg.Runtime.InterOpThreads, cfg.Runtime.XLA)

	if latest != "" {
		if err := model.Restore(latest); err != nil {
			return nil, err
		}
		it, _ := model.Iterations()
		fmt.Fprintf(j.Log, "resume: %s (step %d)\n", latest, it)
	}

	var valArrays *graph.Arrays
	if val != nil && val.Len() > 0 {
		valArrays = arrays(val, cfg.Train.BatchSize, false, 0)
	}
	var data graph.TrainData = arrays(fit, cfg.Train.BatchSize, cfg.Train.Shuffle, cfg.Seed)
	if cfg.Augment.Enabled {
		if data, err = augmentedData(ctx, cfg, fit, j.Log); err != nil {
			return nil, err
		}
	}

	res.TrainN, res.ValN = fit.Len(), lenOf(val)
	art := &artifacts{dir: cfg.Output.Dir, cfg: cfg, cfgYAML: cfgYAML}
	defer art.close()
	saveCkpt := func() error {
		it, err := model.Iterations()
		if err != nil {
			return err
		}
		_, err = ckpts.Save(model, int(it))
		return err
	}
	_, err = model.Fit(ctx, data, graph.FitOptions{
		BatchSize: cfg.Train.BatchSize, Epochs: cfg.Train.Epochs, StepsPerEpoch: cfg.Train.StepsPerEpoch,
		Seed: cfg.Seed, Validation: valArrays, Progress: &firstStep{Progress: newProgress(j.Out, cfg.Train.Verbose), at: &res.FirstStep},
		OnEpochEnd: func(l graph.EpochLogs) error {
			res.History = append(res.History, l)
			if err := saveCkpt(); err != nil {
				return err
			}
			return art.epochEnd(res.History, l)
		},
	})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			// Keep what the interrupted epoch learned: a checkpoint at the
			// exact step, from which --resume continues with the next batch.
			if serr := saveCkpt(); serr != nil {
				return nil, fmt.Errorf("interrupted, and saving the checkpoint failed: %w", serr)
			}
			fmt.Fprintf(j.Log, "\ninterrupted: checkpoint saved in %s; continue with --resume\n", ckpts.Dir)
		}
		return nil, err
	}

	test := arrays(set.Test, cfg.Train.BatchSize, false, 0)
	if res.TestLoss, res.TestAcc, res.TestProbs, err = model.EvaluatePredict(ctx, test); err != nil {
		return nil, err
	}
	fmt.Fprintf(j.Out, "Test Score: %.4f\nTest Accuracy: %.4f\n", res.TestLoss, res.TestAcc)
	res.Duration = time.Since(res.Started)
	if err := art.final(ctx, model, seq, set, res); err != nil {
		return nil, err
	}
	fmt.Fprint(j.Out, res.Metrics.Table())
	fmt.Fprintf(j.Log, "artifacts: %s\n", cfg.Output.Dir)
	return res, nil
}

func lenOf(s *dataset.Split) int {
	if s == nil {
		return 0
	}
	return s.Len()
}

// firstStep records when the first training step finished.
type firstStep struct {
	graph.Progress
	at *time.Time
}

func (f *firstStep) Step(step int, logs graph.EpochLogs) {
	if f.at.IsZero() {
		*f.at = time.Now()
	}
	f.Progress.Step(step, logs)
}

// resolvedConfig is the run dir's copy of the resolved config.
const resolvedConfig = "config.resolved.yaml"

// checkResumable compares cfg with the config the checkpointed run used:
// the shuffle order, dropout masks and augmentations are functions of
// (seed, step), so resuming under another seed, batch size, shuffle,
// model or optimiser would silently continue a different run.
func checkResumable(cfg config.Config) error {
	path := filepath.Join(cfg.Output.Dir, resolvedConfig)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil // checkpoints from elsewhere: the restore checks shapes
	}
	var prev config.Config
	if err := yaml.Unmarshal(b, &prev); err != nil {
		return fmt.Errorf("--resume: %s: %v: delete it to resume anyway", path, err)
	}
	mismatch := func(key string, was, now any) error {
		return fmt.Errorf("--resume: %s was %v for the checkpointed run but is %v now: resume with the same value (see %s)", key, was, now, path)
	}
	switch {
	case prev.Seed != cfg.Seed:
		return mismatch("seed", prev.Seed, cfg.Seed)
	case prev.Train.BatchSize != cfg.Train.BatchSize:
		return mismatch("train.batch_size", prev.Train.BatchSize, cfg.Train.BatchSize)
	case prev.Train.Shuffle != cfg.Train.Shuffle:
		return mismatch("train.shuffle", prev.Train.Shuffle, cfg.Train.Shuffle)
	case prev.Train.StepsPerEpoch != cfg.Train.StepsPerEpoch:
		return mismatch("train.steps_per_epoch", prev.Train.StepsPerEpoch, cfg.Train.StepsPerEpoch)
	case prev.Train.Optimizer.Name != cfg.Train.Optimizer.Name:
		return mismatch("train.optimizer.name", prev.Train.Optimizer.Name, cfg.Train.Optimizer.Name)
	case prev.Data.ValidationSplit != cfg.Data.ValidationSplit:
		return mismatch("data.validation_split", prev.Data.ValidationSplit, cfg.Data.ValidationSplit)
	}
	return nil
}
