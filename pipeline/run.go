package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"time"

	tf "github.com/wamuir/graft/tensorflow"
	"gopkg.in/yaml.v3"

	"github.com/cifar-pipeline/cifar-pipeline/augment"
	"github.com/cifar-pipeline/cifar-pipeline/callback"
	"github.com/cifar-pipeline/cifar-pipeline/cluster"
	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/dataset"
	"github.com/cifar-pipeline/cifar-pipeline/device"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/internal/atomicfile"
	"github.com/cifar-pipeline/cifar-pipeline/report"
	"github.com/cifar-pipeline/cifar-pipeline/rundir"
	"github.com/cifar-pipeline/cifar-pipeline/schedule"
	"github.com/cifar-pipeline/cifar-pipeline/train"
)

// Job is one `pipeline run`: a resolved config and where it writes.
type Job struct {
	Cfg        config.Config
	ConfigPath string
	// Resume continues the run whose checkpoints are in output.dir;
	// Overwrite replaces it. Without either, a directory holding a run's
	// checkpoints is refused.
	Resume, Overwrite bool
	Started           time.Time // process start, for time-to-first-step
	Out               io.Writer // progress and results
	Log               io.Writer // one-line status messages
	// InitWeights, when set, replace the initial layer weights after the
	// model is compiled (run --init-from), by variable name.
	InitWeights map[string]graph.Array

	// Cluster, when set (run --cluster), trains data-parallel on the
	// cluster's workers: one tower per worker task, the variables on task
	// 0; this process feeds the data and writes every artifact.
	Cluster *cluster.Spec
	// ClusterTimeout bounds each session run of a cluster run, so a dead
	// worker is reported (0: DefaultClusterTimeout).
	ClusterTimeout time.Duration

	// afterStep, when set (tests), runs after every training step.
	afterStep func(m *graph.Model, epoch, step int)
}

// Result is what a run produced.
type Result struct {
	History  []train.EpochLogs
	TestLoss float64
	TestAcc  float64
	// TestAccTTA is the test accuracy with flip test-time augmentation
	// (evaluate.tta), nil when not measured.
	TestAccTTA *float64
	// Weights says which weights the final artifacts hold: "last", or
	// "best (epoch N)" after early_stopping's restore_best_weights.
	Weights string
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

// Run statuses, run.json's "status".
const (
	StatusCompleted   = "completed"
	StatusDiverged    = "diverged"
	StatusInterrupted = "interrupted"
)

// DivergedError is the error of a run whose training loss became
// non-finite: training stops at that step.
type DivergedError struct {
	Epoch, Step int
	Loss        float64
	Checkpoint  string // the last good checkpoint, or ""
}

func (e *DivergedError) Error() string {
	last := "no checkpoint was written before it"
	if e.Checkpoint != "" {
		last = "the last good checkpoint is " + e.Checkpoint
	}
	return fmt.Sprintf("training diverged: loss is %v at epoch %d step %d; %s: lower train.optimizer.learning_rate", e.Loss, e.Epoch, e.Step, last)
}

// jobRun is one execution of a Job, carried through its stages.
type jobRun struct {
	*Job
	cfg   config.Config
	dir   rundir.Dir
	lock  *rundir.Lock
	ckpts train.CheckpointManager
	avail float64 // bytes of memory the run may use (+Inf: unknown)

	latest    string    // checkpoint to resume from
	prev      *runState // its run state
	net       *graph.Net
	opt       graph.Optimizer
	callbacks callback.List
	placement device.Placement
	xla       string // runtime.xla as given and resolved, for the log line
	model     *graph.Model

	set      *dataset.Set
	fit, val *dataset.Split
	cfgYAML  []byte
	state    runState
	art      *artifacts
	res      *Result
}

// Run executes the job end to end, one named stage after another.
func (j *Job) Run(ctx context.Context) (*Result, error) {
	r := &jobRun{Job: j, cfg: j.Cfg, dir: rundir.New(j.Cfg.Output.Dir), res: &Result{Started: j.Started}}
	if r.res.Started.IsZero() {
		r.res.Started = time.Now()
	}
	defer r.close()
	for _, stage := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"check the device", r.checkDevice},
		{"take the output dir", r.takeOutputDir},
		{"build the model", r.buildModel},
		{"restore", r.restore},
		{"load data", r.loadData},
		{"check the schedule", r.checkSchedule},
		{"initialize from data", r.initFromData},
		{"write the config", r.writeConfig},
		{"preview", r.preview},
		{"train", r.train},
		{"evaluate", r.evaluate},
		{"write artifacts", r.writeArtifacts},
	} {
		if err := stage.run(ctx); err != nil {
			if r.art != nil && errors.Is(err, context.Canceled) && stage.name != "train" {
				// Stopped in evaluation or artifacts: run.json says so
				// (train writes its own); --resume finishes them.
				if werr := r.art.summary(r.model, r.set, r.res, StatusInterrupted); werr != nil {
					fmt.Fprintf(r.Log, "run.json: %v\n", werr)
				}
			}
			return nil, err
		}
	}
	return r.res, nil
}

func (r *jobRun) close() {
	if r.art != nil {
		r.art.close()
	}
	if r.model != nil {
		r.model.Close()
	}
	r.lock.Unlock()
}

// takeOutputDir locks output.dir, decides fresh, resume or overwrite, and
// clears this tool's stale temp files.
func (r *jobRun) takeOutputDir(context.Context) error {
	if r.Resume && r.Overwrite {
		return fmt.Errorf("--resume and --overwrite: choose one (continue the run in %s, or replace it)", r.dir.Display())
	}
	var err error
	if r.lock, err = r.dir.Lock(r.res.Started); err != nil {
		return err
	}
	r.ckpts = train.CheckpointManager{Dir: r.dir.Checkpoints(), Keep: r.cfg.Output.KeepCheckpoints}
	ns, err := r.ckpts.List()
	if err != nil {
		return err
	}
	switch {
	case r.Resume && len(ns) == 0:
		return fmt.Errorf("--resume: no checkpoint in %s: run without --resume to start fresh", r.ckpts.Dir)
	case r.Resume:
		if r.latest, err = r.ckpts.Latest(); err != nil {
			return err
		}
	case r.Overwrite && (len(ns) > 0 || exists(r.dir.ResolvedConfig()) || exists(r.dir.RunJSON())):
		// Only a directory holding a run is replaced: --overwrite with
		// output.dir=$HOME must not delete a home directory.
		nl, err := r.dir.Replace(r.lock, r.res.Started)
		if err != nil {
			return err // r.lock is still held; close releases it
		}
		r.lock = nl
		fmt.Fprintf(r.Log, "overwrite: replaced the run in %s\n", r.dir.Display())
	case len(ns) > 0:
		return fmt.Errorf("%s holds a run at step %d; use --resume to continue it, --overwrite to replace it, or another output.dir", r.dir.Display(), ns[len(ns)-1])
	}
	removed, err := r.dir.RemoveStaleTemps()
	if err != nil {
		return err
	}
	if len(removed) > 0 {
		fmt.Fprintf(r.Log, "output: removed %d stale temp files of a killed run\n", len(removed))
	}
	if err := checkOutputDir(r.dir.Root); err != nil {
		return err
	}
	r.avail = memoryOrInf()
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// checkOutputDir proves dir writable before any training, so a read-only
// location or a full disk fails in a second, not after an hour.
func checkOutputDir(dir string) error {
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

// checkDevice resolves runtime.device against what this machine has, so a
// GPU run on a machine without a usable GPU fails in a line before any
// artifact or data is touched.
func (r *jobRun) checkDevice(ctx context.Context) error {
	p, err := device.Resolve(r.cfg.Runtime, device.Probe())
	if err != nil {
		return fmt.Errorf("config %s: %w", r.ConfigPath, err)
	}
	r.placement = p
	if _, err := graph.CheckPrecision(r.cfg.Runtime.Precision, p.GPU != nil); err != nil {
		return fmt.Errorf("config %s: %w", r.ConfigPath, err)
	}
	r.resolveXLA()
	return r.checkCluster(ctx)
}

// resolveXLA turns runtime.xla auto into true or false for the placement
// (on only when a GPU runs the graph), so config.resolved.yaml, run.json
// and the runtime line say what the session did.
func (r *jobRun) resolveXLA() {
	asked, gpu := r.cfg.Runtime.XLA, r.placement.GPU != nil
	on := asked.On(gpu)
	r.cfg.Runtime.XLA = config.XLAFor(on)
	r.xla = "off"
	if on {
		r.xla = "on"
	}
	if asked == config.XLAAuto {
		dev := "CPU"
		if gpu {
			dev = "GPU"
		}
		r.xla = fmt.Sprintf("auto → %s (%s)", r.xla, dev)
	}
}

// buildModel resolves the layer stack, refuses a model that would not fit
// in memory, and compiles it.
func (r *jobRun) buildModel(context.Context) error {
	cfg := r.cfg
	sp, err := resolveSpec(cfg)
	if err != nil {
		return err
	}
	if err := checkModelFits(sp.net, sp.opt, cfg, r.avail); err != nil {
		return fmt.Errorf("config %s: %w", r.ConfigPath, err)
	}
	r.cfg, cfg = sp.cfg, sp.cfg
	r.net, r.opt, r.callbacks = sp.net, sp.opt, sp.callbacks
	r.res.Params, _, _ = sp.net.ParamCount()
	r.model, err = graph.Compile(sp.net, graph.Options{
		Seed: cfg.Seed, Normalize: cfg.Data.Normalize, Mean: cfg.Data.Mean, Std: cfg.Data.Std, Classes: cfg.Data.Classes,
		Optimizer: sp.opt, LabelSmoothing: cfg.Train.LabelSmoothing, TTATranslate: cfg.Evaluate.TTATranslate,
		IntraOpThreads: cfg.Runtime.IntraOpThreads, InterOpThreads: cfg.Runtime.InterOpThreads,
		XLA: cfg.Runtime.XLA.On(r.placement.GPU != nil), DenseUpdates: r.placement.DenseUpdates(),
		Precision:        graph.Precision(cfg.Runtime.Precision),
		Session:          r.placement.ConfigureSession,
		Target:           r.clusterTarget(),
		Towers:           r.towers(),
		OperationTimeout: r.operationTimeout(),
	})
	if err != nil {
		return err
	}
	if err := r.checkCheckpointsLocal(); err != nil {
		return err
	}
	if r.InitWeights != nil && r.latest == "" {
		if err := r.model.SetWeights(r.InitWeights); err != nil {
			return fmt.Errorf("--init-from: %w", err)
		}
	}
	if r.state.Config, err = configFingerprint(cfg); err != nil {
		return err
	}
	r.state.Version = runStateVersion
	return nil
}

// restore loads the checkpoint to resume from and checks, against the run
// state inside it, that this config continues the same run. Nothing in the
// run dir is written before it passes.
func (r *jobRun) restore(context.Context) error {
	if r.latest == "" {
		return nil
	}
	if err := r.model.Restore(r.latest); err != nil {
		return fmt.Errorf("--resume: %w", err)
	}
	b, err := r.model.RunState()
	if err != nil {
		return err
	}
	if r.prev, err = decodeRunState(b, r.latest); err != nil {
		return err
	}
	if err := compareFingerprint("config", r.prev.Config, r.state.Config); err != nil {
		return err
	}
	r.state.History, r.state.Partial = r.prev.History, r.prev.Partial
	r.state.Best, r.state.Callbacks = r.prev.Best, r.prev.Callbacks
	if len(r.prev.Callbacks) > 0 {
		if err := r.callbacks.SetState(r.prev.Callbacks); err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
	}
	return nil
}

// loadData acquires the data, checks it against the config (and, on
// resume, against the checkpoint's data fingerprint) and the size bounds.
func (r *jobRun) loadData(ctx context.Context) error {
	cfg := r.cfg
	if s := cfg.Data.Synthetic; s.Train > 0 {
		if err := checkSynthFits("data.synthetic", s.Train, s.Test, r.avail); err != nil {
			return err
		}
	}
	set, err := loadData(ctx, cfg, r.dir, r.Log)
	if err != nil {
		return err
	}
	r.set, r.res.Data = set, set
	if set.Train.H != cfg.Data.ImageShape[0] || set.Train.W != cfg.Data.ImageShape[1] || set.Train.C != cfg.Data.ImageShape[2] {
		return fmt.Errorf("data %s: images are %dx%dx%d but data.image_shape is %v", set.Dir, set.Train.H, set.Train.W, set.Train.C, cfg.Data.ImageShape)
	}
	if len(set.ClassNames) != cfg.Data.Classes {
		return fmt.Errorf("data %s: %s lists %d class names but data.classes is %d: fix the file or the key", set.Dir, dataset.MetaFile, len(set.ClassNames), cfg.Data.Classes)
	}
	r.state.Data = dataFingerprint(set)
	if r.prev != nil {
		if err := compareFingerprint("data", r.prev.Data, r.state.Data); err != nil {
			return err
		}
	}
	r.fit = set.Train
	switch cfg.Data.Validation {
	case "split":
		if cfg.Data.ValidationSplit > 0 {
			r.fit, r.val = dataset.ValidationSplit(set.Train, cfg.Data.ValidationSplit)
		}
	case "test":
		r.val = set.Test
	}
	if err := checkDataBounds(cfg, r.fit.Len(), r.fit.ImageSize(), r.avail); err != nil {
		return err
	}
	r.res.TrainN, r.res.ValN = r.fit.Len(), lenOf(r.val)
	fmt.Fprintf(r.Log, "data: %s (%s): %d train, %d validation, %d test\n", set.Source, set.Dir, r.fit.Len(), lenOf(r.val), set.Test.Len())
	return nil
}

// checkSchedule refuses a learning-rate schedule whose warmup outlasts the
// run, once the data fixes the steps per epoch and before anything is
// written to the run directory.
func (r *jobRun) checkSchedule(context.Context) error {
	cfg := r.cfg
	steps := train.StepsPerEpoch(r.fit.Len(), cfg.Train.BatchSize, cfg.Train.StepsPerEpoch)
	if err := schedule.CheckRun(graph.Schedule(r.opt), int64(steps*cfg.Train.Epochs)); err != nil {
		return cfg.Source.Wrap(keyedErr(err))
	}
	return nil
}

// initFromData computes the weights whose initializer reads the training
// images (patch_whitening) on a fresh run, from the first images of the
// training set before augmentation. A resumed run and --init-from already
// hold them.
func (r *jobRun) initFromData(context.Context) error {
	if r.latest != "" || r.InitWeights != nil || !r.model.NeedsData() {
		return nil
	}
	n := min(r.fit.Len(), graph.WhiteningImages)
	if err := r.model.InitFromData(r.fit.Images[:n*r.fit.ImageSize()], n); err != nil {
		return err
	}
	fmt.Fprintf(r.Log, "initialized from data: %d training images\n", n)
	return nil
}

// loadData acquires CIFAR-10 (or the synthetic set) as the config says.
func loadData(ctx context.Context, cfg config.Config, dir rundir.Dir, log io.Writer) (*dataset.Set, error) {
	var set *dataset.Set
	var err error
	if cfg.Data.Synthetic.Train > 0 {
		d := dir.SyntheticData()
		if err := dataset.WriteSynthetic(d, cfg.Data.Synthetic.Train, cfg.Data.Synthetic.Test, cfg.Seed); err != nil {
			return nil, err
		}
		if set, err = dataset.ReadDir(d); err != nil {
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

// writeConfig writes config.resolved.yaml: `pipeline run -c
// RUN_DIR/config.resolved.yaml` repeats the run. It is written only once the
// run is known to start (a refused resume leaves the old one).
func (r *jobRun) writeConfig(context.Context) error {
	var err error
	if r.cfgYAML, err = yaml.Marshal(r.cfg); err != nil {
		return err
	}
	return atomicfile.WriteFile(r.dir.ResolvedConfig(), r.cfgYAML)
}

func (r *jobRun) preview(context.Context) error {
	cfg := r.cfg
	if pv := cfg.Augment.Preview; cfg.Augment.Enabled && pv.Enabled && pv.Images > 0 && pv.PerImage > 0 {
		files, sheet, err := writePreviews(cfg, r.fit, r.dir.Preview(), pv.Images, pv.PerImage, r.Log)
		if err != nil {
			return err
		}
		fmt.Fprintf(r.Log, "preview: %d augmented images and %s\n", len(files), sheet)
	}
	return nil
}

func arrays(s *dataset.Split, batch int, shuffle bool, seed int64) *train.Arrays {
	return &train.Arrays{Set: s, BatchSize: batch, Shuffle: shuffle, Seed: seed}
}

// saveCheckpoint stores the run state in the model and writes a numbered
// checkpoint at the current step.
func (r *jobRun) saveCheckpoint() (string, error) {
	b, err := json.Marshal(r.state)
	if err != nil {
		return "", fmt.Errorf("encode run state: %w", err)
	}
	if err := r.model.SetRunState(b); err != nil {
		return "", fmt.Errorf("store run state: %w", err)
	}
	it, err := r.model.Steps()
	if err != nil {
		return "", err
	}
	return r.ckpts.Save(r.model, int(it))
}

// logLossScale says, for a loss-scaled run (mixed_float16), where the
// scale ended and how many steps it skipped: a few at the start are the
// scale finding its level, many later mean float16 overflows.
func (r *jobRun) logLossScale() {
	scale, _, ok, err := r.model.LossScale()
	if !ok || err != nil {
		return
	}
	steps, err := r.model.Steps()
	if err != nil {
		return
	}
	it, err := r.model.Iterations()
	if err != nil {
		return
	}
	fmt.Fprintf(r.Log, "loss scale: %g at the end; %d of %d steps skipped for non-finite gradients\n", scale, steps-it, steps)
}

// train fits the model from wherever the checkpoint left it. A Ctrl-C
// saves a checkpoint at the exact step; a non-finite loss stops at once
// and keeps the last good checkpoint.
func (r *jobRun) train(ctx context.Context) error {
	cfg := r.cfg
	fmt.Fprint(r.Out, r.net.Summary())
	fmt.Fprintf(r.Log, "runtime: TensorFlow %s on %s, %d cores, intra-op threads %d, inter-op threads %d, XLA %s, precision %s\n",
		tf.Version(), r.model.Device(), runtime.NumCPU(), cfg.Runtime.IntraOpThreads, cfg.Runtime.InterOpThreads, r.xla, r.model.Options().Precision)
	_, constant := graph.Schedule(r.opt).(schedule.Constant)
	r.art = &artifacts{dir: r.dir, cfg: cfg, cfgYAML: r.cfgYAML, learningRate: r.opt.LearningRate(),
		logsLearningRate: !constant || r.callbacks.AdjustsLearningRate()}
	if r.latest != "" {
		it, err := r.model.Steps()
		if err != nil {
			return err
		}
		fmt.Fprintf(r.Log, "resume: %s (step %d, %d epochs done)\n", r.latest, it, len(r.state.History))
	}
	var valArrays *train.Arrays
	if r.val != nil && r.val.Len() > 0 {
		valArrays = arrays(r.val, cfg.Train.BatchSize, false, 0)
	}
	var data train.TrainData = arrays(r.fit, cfg.Train.BatchSize, cfg.Train.Shuffle, cfg.Seed)
	if cfg.Augment.Enabled {
		var err error
		if data, err = augmentedData(ctx, cfg, r.fit, r.Log); err != nil {
			return err
		}
	} else if p, err := augment.FromConfig(cfg.Augment); err == nil && !p.Identity() {
		// augment.enabled gates the whole section; say so rather than
		// silently training on the plain images.
		fmt.Fprintln(r.Log, "augment: transforms are set but augment.enabled is false; training without augmentation")
	}
	steps := train.StepsPerEpoch(data.Len(), cfg.Train.BatchSize, cfg.Train.StepsPerEpoch)
	if err := r.finishEpoch(ctx, valArrays, steps); err != nil {
		return err
	}
	// history.csv and the event files are rebuilt from the checkpoint's
	// history: on resume they then hold every epoch, as an uninterrupted
	// run's do.
	if err := r.art.replay(r.state.History); err != nil {
		return err
	}

	fitCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watch := &stepWatch{Progress: newProgress(r.Out, cfg.Train.Verbose), firstStep: &r.res.FirstStep}
	if r.afterStep != nil {
		watch.afterStep = func(epoch, step int) { r.afterStep(r.model, epoch, step) }
	}
	watch.diverged = func(epoch, step int, loss float64) {
		cancel(&DivergedError{Epoch: epoch, Step: step, Loss: loss})
	}
	_, err := train.Fit(fitCtx, r.model, data, train.Options{
		BatchSize: cfg.Train.BatchSize, Epochs: cfg.Train.Epochs, StepsPerEpoch: cfg.Train.StepsPerEpoch,
		Seed: cfg.Seed, Validation: valArrays, Progress: watch,
		Callbacks: r.callbacks,
		SaveBest: func(l train.EpochLogs) error {
			if err := os.MkdirAll(filepath.Dir(r.dir.BestCheckpoint()), 0o755); err != nil {
				return err
			}
			if err := r.model.Save(r.dir.BestCheckpoint()); err != nil {
				return err
			}
			r.state.Best = l.Epoch
			fmt.Fprintf(r.Log, "best: epoch %d saved to %s\n", l.Epoch, r.dir.BestCheckpoint())
			return nil
		},
		RestoreBest: func() error {
			if r.state.Best == 0 {
				return nil
			}
			if err := r.model.RestoreWeights(r.dir.BestCheckpoint()); err != nil {
				return err
			}
			r.res.Weights = fmt.Sprintf("best (epoch %d)", r.state.Best)
			fmt.Fprintf(r.Log, "restore_best_weights: the weights of epoch %d\n", r.state.Best)
			return nil
		},
		OnEpochEnd: func(l train.EpochLogs) error {
			if cause := context.Cause(fitCtx); cause != nil {
				return cause // diverged in the epoch's last step: save nothing
			}
			cbState, err := r.callbacks.State()
			if err != nil {
				return err
			}
			r.state.Callbacks = cbState
			if l.Stopped != "" {
				fmt.Fprintf(r.Log, "stopped after epoch %d: %s\n", l.Epoch, l.Stopped)
			}
			l = mergePartial(r.state.Partial, l)
			r.state.History, r.state.Partial = append(r.state.History, l), nil
			if _, err := r.saveCheckpoint(); err != nil {
				return err
			}
			return r.art.epochEnd(r.state.History)
		},
	})
	r.res.History = r.state.History
	var div *DivergedError
	switch {
	case err == nil:
		r.logLossScale()
		return nil
	case errors.As(context.Cause(fitCtx), &div):
		// The diverged step already applied its NaN update: the weights
		// are not saved, the last checkpoint stays the newest.
		div.Checkpoint, _ = r.ckpts.Latest()
		if werr := r.art.summary(r.model, r.set, r.res, StatusDiverged); werr != nil {
			return fmt.Errorf("%v (and writing run.json failed: %v)", div, werr)
		}
		return div
	case errors.Is(err, context.Canceled):
		// Keep what the interrupted epoch learned: a checkpoint at the
		// exact step, from which --resume continues with the next batch.
		if p := watch.partial(); p != nil {
			m := mergePartial(r.state.Partial, *p)
			r.state.Partial = &m
		}
		if _, serr := r.saveCheckpoint(); serr != nil {
			return fmt.Errorf("interrupted, and saving the checkpoint failed: %w", serr)
		}
		if werr := r.art.summary(r.model, r.set, r.res, StatusInterrupted); werr != nil {
			fmt.Fprintf(r.Log, "\nrun.json: %v\n", werr)
		}
		fmt.Fprintf(r.Log, "\ninterrupted: checkpoint saved in %s; continue with --resume\n", r.ckpts.Dir)
		return err
	default:
		return r.clusterFault(ctx, err)
	}
}

// finishEpoch completes an epoch whose steps all ran but whose end
// (validation, history) was interrupted: Fit resumes from the step count,
// which already points at the next epoch, so without this the epoch would
// be missing from the history (and a run stopped after its last step
// would have nothing left to train).
func (r *jobRun) finishEpoch(ctx context.Context, val *train.Arrays, steps int) error {
	p := r.state.Partial
	if p == nil {
		return nil
	}
	it, err := r.model.Steps()
	if err != nil {
		return err
	}
	if steps == 0 || int(it)%steps != 0 || int(it)/steps != p.Epoch {
		return nil
	}
	l := *p
	t0 := time.Now()
	if val != nil {
		if l.ValLoss, l.ValAccuracy, err = train.Evaluate(ctx, r.model, val); err != nil {
			return err
		}
		l.HasVal = true
	}
	l.Seconds += time.Since(t0).Seconds()
	if err := r.model.SetEpoch(int64(p.Epoch)); err != nil {
		return err
	}
	r.state.History, r.state.Partial = append(r.state.History, l), nil
	return nil
}

// evaluate scores the test set.
func (r *jobRun) evaluate(ctx context.Context) error {
	test := arrays(r.set.Test, r.cfg.Train.BatchSize, false, 0)
	var err error
	res := r.res
	if res.TestLoss, res.TestAcc, res.TestProbs, err = train.EvaluatePredict(ctx, r.model, test); err != nil {
		return err
	}
	fmt.Fprintf(r.Out, "Test Score: %.4f\nTest Accuracy: %.4f\n", res.TestLoss, res.TestAcc)
	if r.cfg.Evaluate.TTA {
		probs, err := train.PredictTTA(ctx, r.model, r.set.Test.Images, r.set.Test.Len(), r.cfg.Train.BatchSize)
		if err != nil {
			return err
		}
		acc := accuracy(probs, r.set.Test.Labels)
		res.TestAccTTA = &acc
		what := "flip TTA"
		if t := r.cfg.Evaluate.TTATranslate; t > 0 {
			what = fmt.Sprintf("flip + %d-pixel translate TTA", t)
		}
		fmt.Fprintf(r.Out, "Test Accuracy (%s): %.4f\n", what, acc)
	}
	return nil
}

// accuracy is the fraction of rows of probs (n×classes) whose largest
// entry is at the label.
func accuracy(probs []float32, labels []uint8) float64 {
	n := len(labels)
	k := len(probs) / n
	correct := 0
	for i := range n {
		row := probs[i*k : (i+1)*k]
		best := 0
		for j, p := range row {
			if p > row[best] {
				best = j
			}
		}
		if best == int(labels[i]) {
			correct++
		}
	}
	return float64(correct) / float64(n)
}

// writeArtifacts writes the end-of-run files, run.json last.
func (r *jobRun) writeArtifacts(ctx context.Context) error {
	r.res.Duration = time.Since(r.res.Started)
	if err := r.art.final(ctx, r.model, r.set, r.res); err != nil {
		return err
	}
	fmt.Fprint(r.Out, r.res.Metrics.Table())
	fmt.Fprintf(r.Log, "artifacts: %s\n", r.dir.Root)
	return nil
}

func lenOf(s *dataset.Split) int {
	if s == nil {
		return 0
	}
	return s.Len()
}

// stepWatch wraps the progress display: it records when the first step
// finished and the running figures of the current epoch, and reports the
// first non-finite loss.
type stepWatch struct {
	train.Progress
	firstStep  *time.Time
	afterStep  func(epoch, step int)
	diverged   func(epoch, step int, loss float64)
	epoch      int
	epochStart time.Time
	last       train.EpochLogs
	stopped    bool
}

func (w *stepWatch) BeginEpoch(epoch, epochs, steps int) {
	w.epoch, w.last = epoch, train.EpochLogs{Epoch: epoch}
	if w.epochStart.IsZero() {
		w.epochStart = time.Now()
	}
	w.Progress.BeginEpoch(epoch, epochs, steps)
}

func (w *stepWatch) Step(step int, logs train.EpochLogs) {
	if w.firstStep.IsZero() {
		*w.firstStep = time.Now()
	}
	if math.IsNaN(logs.Loss) || math.IsInf(logs.Loss, 0) {
		if !w.stopped {
			w.stopped = true
			w.diverged(w.epoch, step, logs.Loss)
		}
		return
	}
	w.last = logs
	w.Progress.Step(step, logs)
	if w.afterStep != nil {
		w.afterStep(w.epoch, step)
	}
}

func (w *stepWatch) EndEpoch(logs train.EpochLogs) {
	w.epochStart = time.Time{}
	w.Progress.EndEpoch(logs)
}

// partial is the running figures of the unfinished epoch (nil at a
// boundary), with the seconds it has taken so far.
func (w *stepWatch) partial() *train.EpochLogs {
	if w.last.Images == 0 || w.epochStart.IsZero() {
		return nil
	}
	p := w.last
	p.Seconds = time.Since(w.epochStart).Seconds()
	return &p
}
