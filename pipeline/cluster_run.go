package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/cifar-pipeline/cifar-pipeline/graph"

	"github.com/cifar-pipeline/cifar-pipeline/cluster"
)

// probeTimeout bounds how long the chief waits for a worker's TCP port,
// before a run and after a failed step.
const probeTimeout = 5 * time.Second

// checkCluster refuses a data-parallel run whose workers do not all
// answer, or whose batch cannot give every worker a row, before the
// output dir is touched.
func (r *jobRun) checkCluster(ctx context.Context) error {
	if r.Cluster == nil {
		return nil
	}
	if b, n := r.cfg.Train.BatchSize, len(r.Cluster.Workers()); b < n {
		return fmt.Errorf("config %s: train.batch_size: %d is smaller than the %d workers of %s: each worker takes an even share of the batch", r.ConfigPath, b, n, r.Cluster.Path)
	}
	if err := r.Cluster.Unreachable(ctx, cluster.WorkerJob, probeTimeout); err != nil {
		return err
	}
	n := len(r.Cluster.Workers())
	fmt.Fprintf(r.Log, "cluster: %d workers (%s), each a tower on %d or %d images of every batch of %d; variables on %s\n",
		n, r.Cluster.Path, r.cfg.Train.BatchSize/n, (r.cfg.Train.BatchSize+n-1)/n, r.cfg.Train.BatchSize, cluster.Device(cluster.WorkerJob, 0))
	return nil
}

// clusterTarget is the session target: worker task 0's server, or "" for
// a single-process run.
func (r *jobRun) clusterTarget() string {
	if r.Cluster == nil {
		return ""
	}
	return "grpc://" + r.Cluster.Workers()[0]
}

// DefaultClusterTimeout bounds one session run of a cluster run (a
// training step, an evaluation batch, a checkpoint) unless --cluster-timeout
// says otherwise: a killed worker otherwise hangs the step, as TensorFlow
// retries its channel for ever. It is far above a step of the largest
// config here (resnet20 at batch 128 on two loopback workers: BENCHMARKS.md,
// Scale) and short enough to report a dead worker promptly.
const DefaultClusterTimeout = 15 * time.Second

func (r *jobRun) operationTimeout() time.Duration {
	if r.Cluster == nil {
		return 0
	}
	if r.ClusterTimeout > 0 {
		return r.ClusterTimeout
	}
	return DefaultClusterTimeout
}

// towers are the devices of the data-parallel towers, one per worker task.
func (r *jobRun) towers() []string {
	if r.Cluster == nil {
		return nil
	}
	var ds []string
	for i := range r.Cluster.Workers() {
		ds = append(ds, cluster.Device(cluster.WorkerJob, i))
	}
	return ds
}

// clusterFault turns a failed step of a data-parallel run into one line
// naming the worker that went away (TensorFlow's gRPC error names the
// task at best, never the address), with the checkpoint to resume from.
// A killed worker may still hold its port for a moment after its peers see
// it fail, so the probe is repeated for a few seconds.
func (r *jobRun) clusterFault(ctx context.Context, err error) error {
	if r.Cluster == nil || ctx.Err() != nil {
		return err
	}
	resume := "no checkpoint was written yet: start the run again"
	if last, lerr := r.ckpts.Latest(); lerr == nil && last != "" {
		resume = "then continue with --resume (last checkpoint " + last + ")"
	}
	deadline := time.Now().Add(probeTimeout)
	for {
		if gone := r.Cluster.Unreachable(ctx, cluster.WorkerJob, time.Second); gone != nil {
			return fmt.Errorf("training stopped: %v, %s", gone, resume)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	where := "the cluster"
	if m := taskRE.FindStringSubmatch(err.Error()); m != nil {
		if addr, aerr := r.Cluster.Address(m[1], atoi(m[2])); aerr == nil {
			where = fmt.Sprintf("%s task %s at %s", m[1], m[2], addr)
		}
	}
	return fmt.Errorf("training stopped: a step failed on %s (%s); every worker answers now: check its log, %s", where, graph.FirstLine(err), resume)
}

// taskRE finds the task TensorFlow names in a remote error ("From
// /job:worker/replica:0/task:1: ...").
var taskRE = regexp.MustCompile(`/job:([a-z][a-z0-9_]*)/replica:\d+/task:(\d+)`)

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// checkCheckpointsLocal proves, before training, that the checkpoints of a
// cluster run land in this process's output.dir: TensorFlow's SaveV2 runs
// on worker task 0, which writes the path on its own machine.
func (r *jobRun) checkCheckpointsLocal() error {
	if r.Cluster == nil {
		return nil
	}
	prefix := filepath.Join(r.dir.Root, ".cluster-checkpoint-probe")
	defer graph.RemoveCheckpoint(prefix)
	if err := r.model.Save(prefix); err != nil {
		return fmt.Errorf("%s: worker task 0 at %s writes the checkpoints, and could not write them in %s on this machine (%v): run `pipeline run --cluster` on worker 0's machine, or put output.dir on a filesystem both share",
			r.Cluster.Path, r.Cluster.Workers()[0], r.dir.Display(), err)
	}
	return nil
}
