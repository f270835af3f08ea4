package pipeline

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/dataset"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
)

// Size bounds, checked before anything of that size is allocated: a value
// past them would end in a Go fatal out-of-memory or the kernel's OOM
// killer, which takes other processes with it.

// ModelMemory estimates the bytes training net with batch images a step
// takes: every weight, its gradient and the optimiser's slots in float32,
// plus the activations of every layer (kept for the backward pass, and as
// many again for their gradients) for a batch.
func ModelMemory(net *graph.Net, batch int, opt graph.Optimizer) float64 {
	total, trainable, _ := net.ParamCount()
	weights := (float64(total) + float64(trainable)*float64(1+opt.SlotsPerWeight())) * 4
	acts := float64(net.Input.Out.Size())
	for _, n := range net.Nodes {
		acts += float64(n.Out.Size())
	}
	return weights + 2*acts*float64(batch)*4
}

// availableMemory is the memory the run may use: MemAvailable from
// /proc/meminfo, lowered to a cgroup v2 memory.max when one is set. ok is
// false where neither can be read (no bound is then enforced).
func availableMemory() (bytes float64, ok bool) {
	f, err := os.Open("/proc/meminfo")
	if err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, found := strings.CutPrefix(sc.Text(), "MemAvailable:"); found {
				kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
				if err == nil {
					bytes, ok = kb*1024, true
				}
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if lim, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil && (!ok || lim < bytes) {
			bytes, ok = lim, true
		}
	}
	return bytes, ok
}

func gib(b float64) string { return fmt.Sprintf("%.1f GiB", b/(1<<30)) }

// checkModelFits refuses a model whose training memory estimate exceeds
// the available memory.
func checkModelFits(net *graph.Net, opt graph.Optimizer, cfg config.Config, avail float64) error {
	need := ModelMemory(net, cfg.Train.BatchSize, opt)
	params, _, _ := net.ParamCount()
	if need > avail {
		return fmt.Errorf("model.layers with train.batch_size %d needs about %s to train (%d params with %s slots, activations for a batch) but %s is available: use fewer units/filters or a smaller train.batch_size",
			cfg.Train.BatchSize, gib(need), params, cfg.Train.Optimizer.Name, gib(avail))
	}
	return nil
}

// checkDataBounds checks the sizes that depend on the loaded training set:
// the batch, the materialised copies and the augmentation queue.
func checkDataBounds(cfg config.Config, trainN, imageBytes int, avail float64) error {
	t, a := cfg.Train, cfg.Augment
	if t.BatchSize > trainN {
		return fmt.Errorf("train.batch_size: %d exceeds the %d training images: use at most %d", t.BatchSize, trainN, trainN)
	}
	if a.Enabled && a.Materialize > 0 {
		need := float64(trainN) * float64(imageBytes+1) * float64(a.Materialize+1)
		if need > avail/2 {
			return fmt.Errorf("augment.materialize: %d copies of %d images need %s, over half the %s available: use a smaller augment.materialize or 0 to stream", a.Materialize, trainN, gib(need), gib(avail))
		}
	}
	if a.Enabled && a.QueueBatches > config.MaxQueueBatches {
		return fmt.Errorf("augment.queue_batches: %d exceeds %d: a few batches ahead keep training fed", a.QueueBatches, config.MaxQueueBatches)
	}
	if a.Enabled {
		need := float64(a.QueueBatches+a.Workers+2) * float64(t.BatchSize) * float64(imageBytes+1)
		if need > avail/2 {
			return fmt.Errorf("augment.queue_batches: %d batches of %d images need %s, over half the %s available: lower it", a.QueueBatches, t.BatchSize, gib(need), gib(avail))
		}
	}
	return nil
}

// synthBytes is the memory generating a synthetic set takes: the images in
// memory and their encoded records.
func synthBytes(train, test int) float64 {
	return float64(train+test) * float64(2*dataset.RecordSize)
}

// checkSynthFits refuses a synthetic set whose generation would take over
// half the available memory; what names the setting (flag or key).
func checkSynthFits(what string, train, test int, avail float64) error {
	if need := synthBytes(train, test); need > avail/2 {
		return fmt.Errorf("%s: %d + %d synthetic images need about %s to generate, over half the %s available: ask for fewer", what, train, test, gib(need), gib(avail))
	}
	return nil
}

// memoryOrInf is availableMemory, or +Inf where it cannot be read.
func memoryOrInf() float64 {
	if b, ok := availableMemory(); ok {
		return b
	}
	return math.Inf(1)
}
