package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/dataset"
	"github.com/cifar-pipeline/cifar-pipeline/train"
)

// runState is what a run keeps inside every checkpoint (graph's
// Model.SetRunState): the fingerprint of everything that fixes its data
// stream and schedule, and its history so far. --resume checks the
// fingerprint against the checkpoint itself, so a missing or edited
// config.resolved.yaml cannot make it continue another run, and rebuilds
// history.csv, run.json, the plots and the event files from the history.
type runState struct {
	Version int `json:"version"`
	// Config maps each fingerprinted config key to its value as JSON.
	Config map[string]string `json:"config"`
	// Data maps each data file (or "arrays") to its digest.
	Data map[string]string `json:"data"`
	// History is every finished epoch.
	History []train.EpochLogs `json:"history"`
	// Partial is the unfinished epoch's running figures at the checkpoint
	// (nil at an epoch boundary): a resumed epoch adds its own to them.
	Partial *train.EpochLogs `json:"partial,omitempty"`
	// Callbacks is the callbacks' state (their counters and bests).
	Callbacks json.RawMessage `json:"callbacks,omitempty"`
	// Best is the epoch (from 1) of the best-only checkpoint, 0 for none.
	Best int `json:"best,omitempty"`
}

const runStateVersion = 1

// fingerprintKeys are the config keys (or key prefixes) that fix a run's
// data stream and schedule: the shuffle order, dropout masks and
// augmentations are functions of (seed, step), and the steps per epoch of
// the training set's size. Epochs are not among them: a run may be
// extended. Augment's preview, workers and queue length do not change the
// stream.
var fingerprintKeys = []string{
	"seed", "data.synthetic", "data.limit_train", "data.limit_test", "data.validation_split", "data.validation",
	"data.normalize", "data.mean", "data.std", "data.classes", "data.image_shape", "model.layers",
	"train.batch_size", "train.shuffle", "train.steps_per_epoch", "train.loss", "train.label_smoothing", "train.optimizer", "train.callbacks", "augment",
}

var notFingerprinted = []string{"augment.preview", "augment.workers", "augment.queue_batches"}

// configFingerprint flattens cfg to dotted keys (lists stay whole) and keeps
// the fingerprinted ones, each value as JSON.
func configFingerprint(cfg config.Config) (map[string]string, error) {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var tree map[string]any
	if err := yaml.Unmarshal(b, &tree); err != nil {
		return nil, err
	}
	out := map[string]string{}
	var walk func(prefix string, v any) error
	walk = func(prefix string, v any) error {
		if m, ok := v.(map[string]any); ok {
			for k, sub := range m {
				key := k
				if prefix != "" {
					key = prefix + "." + k
				}
				if err := walk(key, sub); err != nil {
					return err
				}
			}
			return nil
		}
		if !fingerprinted(prefix) {
			return nil
		}
		j, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("fingerprint %s: %w", prefix, err)
		}
		out[prefix] = string(j)
		return nil
	}
	return out, walk("", tree)
}

func fingerprinted(key string) bool {
	under := func(list []string) bool {
		return slices.ContainsFunc(list, func(p string) bool { return key == p || strings.HasPrefix(key, p+".") })
	}
	return under(fingerprintKeys) && !under(notFingerprinted)
}

// dataFingerprint identifies the data a run trains and tests on: the
// official files' verified MD5s when the source was verified, else a
// SHA-256 of the loaded arrays (synthetic or unofficial data).
func dataFingerprint(set *dataset.Set) map[string]string {
	if len(set.Verified) > 0 {
		return maps.Clone(set.Verified)
	}
	h := sha256.New()
	for _, s := range []*dataset.Split{set.Train, set.Test} {
		h.Write(s.Labels)
		h.Write(s.Images)
	}
	h.Write([]byte(strings.Join(set.ClassNames, "\n")))
	return map[string]string{"arrays sha256": hex.EncodeToString(h.Sum(nil))}
}

// compareFingerprint returns the first difference between the checkpoint's
// values (was) and this run's (now), by key, as a refusal of --resume.
func compareFingerprint(what string, was, now map[string]string) error {
	keys := slices.Sorted(maps.Keys(was))
	for k := range now {
		if _, ok := was[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		w, okW := was[k]
		n, okN := now[k]
		if okW && okN && w == n {
			continue
		}
		if !okW {
			w = "absent"
		}
		if !okN {
			n = "absent"
		}
		return fmt.Errorf("--resume: %s %s was %s for the checkpointed run but is %s now: resume with the same value, or start a new run with --overwrite", what, k, w, n)
	}
	return nil
}

func decodeRunState(b []byte, ckpt string) (*runState, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("--resume: checkpoint %s carries no run fingerprint (written by an older version): start a new run with --overwrite", ckpt)
	}
	var s runState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("--resume: checkpoint %s: run state: %v: start a new run with --overwrite", ckpt, err)
	}
	if s.Version != runStateVersion {
		return nil, fmt.Errorf("--resume: checkpoint %s has run state version %d, this pipeline writes %d: start a new run with --overwrite", ckpt, s.Version, runStateVersion)
	}
	return &s, nil
}

// mergePartial folds the running figures an interrupted epoch had reached
// at its checkpoint into the same epoch's figures after the resume (which
// cover only the steps after it).
func mergePartial(p *train.EpochLogs, l train.EpochLogs) train.EpochLogs {
	if p == nil || p.Epoch != l.Epoch || p.Images == 0 {
		return l
	}
	n := p.Images + l.Images
	l.Loss = (p.Loss*float64(p.Images) + l.Loss*float64(l.Images)) / float64(n)
	// Accuracies are counts over images: recovered exactly.
	correct := math.Round(p.Accuracy*float64(p.Images)) + math.Round(l.Accuracy*float64(l.Images))
	l.Accuracy = correct / float64(n)
	l.Images = n
	l.Seconds += p.Seconds
	return l
}
