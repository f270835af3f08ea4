package callback

import (
	"fmt"
	"strings"

	"github.com/cifar-pipeline/cifar-pipeline/internal/confmap"
)

// Path is the config key callbacks are read from; errors name keys under it.
const Path = "train.callbacks"

// Metrics lists the epoch-log keys a callback may monitor.
func Metrics() []string {
	return []string{"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
}

// order is the fixed order a List runs its callbacks in, with each one's
// parser (a registry, not a switch).
var order = []struct {
	name  string
	parse func(p *confmap.Map, hasValidation bool) (Callback, error)
}{
	{"terminate_on_nan", nil},
	{"reduce_lr_on_plateau", parseReduceLR},
	{"early_stopping", parseEarlyStopping},
	{"best_checkpoint", parseBestCheckpoint},
}

// Parse reads the decoded YAML mapping under train.callbacks, e.g.
//
//	{reduce_lr_on_plateau: {monitor: val_loss, factor: 0.5, patience: 2},
//	 early_stopping: {monitor: val_loss, patience: 5, restore_best_weights: true},
//	 best_checkpoint: {monitor: val_accuracy}, terminate_on_nan: true}
//
// Each callback takes Keras's argument names and defaults (verbose excepted);
// an empty mapping (or null) means all defaults. hasValidation says whether
// the run has validation data (val_* metrics). Errors are one line naming
// the key. A nil or empty v gives an empty List. Keras refuses
// ReduceLROnPlateau when the learning rate is a schedule (the optimiser's
// learning_rate setter raises); the caller checks List.AdjustsLearningRate
// against its schedule.
func Parse(v any, hasValidation bool) (List, error) {
	if v == nil {
		return nil, nil
	}
	top, err := confmap.New(Path, v)
	if err != nil {
		return nil, err
	}
	var l List
	for _, o := range order {
		if !top.Has(o.name) {
			continue
		}
		raw := top.Raw(o.name)
		if o.parse == nil { // terminate_on_nan: a boolean
			on, ok := raw.(bool)
			if !ok {
				return nil, fmt.Errorf("%s.%s: %v must be true or false", Path, o.name, raw)
			}
			if on {
				l = append(l, TerminateOnNaN{})
			}
			continue
		}
		if raw == nil {
			raw = map[string]any{}
		}
		p, err := confmap.New(Path+"."+o.name, raw)
		if err != nil {
			return nil, err
		}
		c, err := o.parse(p, hasValidation)
		if err != nil {
			return nil, err
		}
		if err := p.Done(); err != nil {
			return nil, err
		}
		l = append(l, c)
	}
	if err := top.Done(); err != nil {
		return nil, err
	}
	return l, nil
}

// parseMonitor reads monitor and mode and resolves "auto" as
// MonitorCallback._set_monitor_op does: *loss → min; accuracy (whose Keras
// metric has _direction "up") → max; anything else needs an explicit mode.
func parseMonitor(p *confmap.Map, hasValidation bool) (metric string, max bool, err error) {
	metric, err = p.String("monitor", "val_loss")
	if err != nil {
		return "", false, err
	}
	metrics := Metrics()
	known := false
	for _, m := range metrics {
		known = known || m == metric
	}
	if !known {
		return "", false, fmt.Errorf("%s: unknown metric %q%s (one of %s)", p.Path("monitor"), metric, confmap.Suggest(metric, metrics), strings.Join(metrics, ", "))
	}
	if strings.HasPrefix(metric, "val_") && !hasValidation {
		return "", false, fmt.Errorf("%s: %s needs validation data, and this run has none (set data.validation, or monitor %s)", p.Path("monitor"), metric, strings.TrimPrefix(metric, "val_"))
	}
	mode, err := p.String("mode", "auto")
	if err != nil {
		return "", false, err
	}
	switch mode {
	case "min":
		return metric, false, nil
	case "max":
		return metric, true, nil
	case "auto":
		switch strings.TrimPrefix(metric, "val_") {
		case "loss":
			return metric, false, nil
		case "accuracy":
			return metric, true, nil
		}
		return "", false, fmt.Errorf("%s: auto cannot tell whether %s should go up or down; set mode: min or mode: max", p.Path("mode"), metric)
	}
	return "", false, fmt.Errorf("%s: %q is not auto, min or max", p.Path("mode"), mode)
}

func ptr[T any](v T) *T { return &v }

func nonNegInt(p *confmap.Map, key string, def int64) (int, error) {
	n, err := p.Int(key, &def)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("%s: %d must be >= 0", p.Path(key), n)
	}
	return int(n), nil
}

func nonNegFloat(p *confmap.Map, key string, def float64) (float64, error) {
	f, err := p.Float(key, &def)
	if err != nil {
		return 0, err
	}
	if f < 0 {
		return 0, fmt.Errorf("%s: %v must be >= 0", p.Path(key), f)
	}
	return f, nil
}

func parseReduceLR(p *confmap.Map, hasValidation bool) (Callback, error) {
	metric, max, err := parseMonitor(p, hasValidation)
	if err != nil {
		return nil, err
	}
	c := &ReduceLROnPlateau{}
	minDelta, err := nonNegFloat(p, "min_delta", 1e-4)
	if err != nil {
		return nil, err
	}
	c.monitor = newMonitor(metric, max, minDelta)
	if c.Factor, err = p.Float("factor", ptr(0.1)); err != nil {
		return nil, err
	}
	if c.Factor <= 0 || c.Factor >= 1 {
		return nil, fmt.Errorf("%s: %v must be in (0, 1) (the learning rate is multiplied by it)", p.Path("factor"), c.Factor)
	}
	if c.Patience, err = nonNegInt(p, "patience", 10); err != nil {
		return nil, err
	}
	if c.Cooldown, err = nonNegInt(p, "cooldown", 0); err != nil {
		return nil, err
	}
	if c.MinLR, err = nonNegFloat(p, "min_lr", 0); err != nil {
		return nil, err
	}
	return c, nil
}

func parseEarlyStopping(p *confmap.Map, hasValidation bool) (Callback, error) {
	metric, max, err := parseMonitor(p, hasValidation)
	if err != nil {
		return nil, err
	}
	c := &EarlyStopping{}
	minDelta, err := nonNegFloat(p, "min_delta", 0)
	if err != nil {
		return nil, err
	}
	c.monitor = newMonitor(metric, max, minDelta)
	if c.Patience, err = nonNegInt(p, "patience", 0); err != nil {
		return nil, err
	}
	if p.Has("baseline") && p.Raw("baseline") != nil {
		b, err := p.Float("baseline", nil)
		if err != nil {
			return nil, err
		}
		c.Baseline = &b
	}
	if c.RestoreBestWeights, err = p.Bool("restore_best_weights", false); err != nil {
		return nil, err
	}
	if c.RestoreBestWeights && !hasValidation {
		return nil, fmt.Errorf("%s: true needs validation data to pick the best weights, and this run has none (set data.validation, or drop restore_best_weights)", p.Path("restore_best_weights"))
	}
	if c.StartFromEpoch, err = nonNegInt(p, "start_from_epoch", 0); err != nil {
		return nil, err
	}
	return c, nil
}

func parseBestCheckpoint(p *confmap.Map, hasValidation bool) (Callback, error) {
	metric, max, err := parseMonitor(p, hasValidation)
	if err != nil {
		return nil, err
	}
	c := &BestCheckpoint{monitor: newMonitor(metric, max, 0)}
	if p.Has("initial_value_threshold") && p.Raw("initial_value_threshold") != nil {
		b, err := p.Float("initial_value_threshold", nil)
		if err != nil {
			return nil, err
		}
		c.best = &b
	}
	return c, nil
}
