package pipeline

import (
	"strings"

	"github.com/cifar-pipeline/cifar-pipeline/callback"
	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/schedule"
)

// spec is a loaded config checked against the engine: the model resolved
// by graph's layer registry and the optimizer by its optimizer registry.
type spec struct {
	cfg       config.Config
	net       *graph.Net
	opt       graph.Optimizer
	callbacks callback.List
}

// loadSpec reads a config file and resolves its model and optimizer, so
// that every error, from a YAML typo to a merge of mismatched shapes, is
// one line naming the file and line, before any data is loaded. The
// optimizer's arguments are written back with their defaults, so the
// resolved config says every value the run used.
func loadSpec(path string, sets []string) (spec, error) {
	cfg, err := config.Load(path, sets)
	if err != nil {
		return spec{}, err
	}
	return resolveSpec(cfg)
}

func resolveSpec(cfg config.Config) (spec, error) {
	net, err := graph.NewNet(cfg.Model, cfg.Data.ImageShape)
	if err != nil {
		return spec{}, cfg.Source.Wrap(err)
	}
	if out := net.Output(); len(out.Out) != 1 || out.Out[0] != cfg.Data.Classes {
		return spec{}, cfg.Source.Wrap(config.KeyErrorf(out.Key, "layer %q: model output %v does not match data.classes %d: end with dense(%d) + softmax",
			out.Name, out.Out, cfg.Data.Classes, cfg.Data.Classes))
	}
	opt, err := graph.NewOptimizer(cfg.Train.Optimizer)
	if err != nil {
		return spec{}, cfg.Source.Wrap(err)
	}
	cfg.Train.Optimizer.Args = graph.OptimizerArgs(opt)
	d := cfg.Data
	hasVal := d.Validation == "test" || (d.Validation == "split" && d.ValidationSplit > 0)
	cbs, err := callback.Parse(anyOrNil(cfg.Train.Callbacks), hasVal)
	if err != nil {
		return spec{}, cfg.Source.Wrap(keyedErr(err))
	}
	if _, constant := graph.Schedule(opt).(schedule.Constant); !constant && cbs.AdjustsLearningRate() {
		return spec{}, cfg.Source.Wrap(config.KeyErrorf("train.callbacks.reduce_lr_on_plateau",
			"cannot change a learning-rate schedule (Keras refuses it too): use a number for train.optimizer.learning_rate, or drop reduce_lr_on_plateau"))
	}
	return spec{cfg: cfg, net: net, opt: opt, callbacks: cbs}, nil
}

// anyOrNil keeps a nil map nil as an interface (no callbacks configured).
func anyOrNil(m map[string]any) any {
	if m == nil {
		return nil
	}
	return m
}

// keyedErr turns a package's "dotted.key: message" error into a
// config.KeyError, so that it names the key's line.
func keyedErr(err error) error {
	if k, rest, ok := strings.Cut(err.Error(), ": "); ok && strings.Contains(k, ".") && !strings.Contains(k, " ") {
		return config.KeyErrorf(k, "%s", rest)
	}
	return err
}
