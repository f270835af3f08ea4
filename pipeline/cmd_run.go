package pipeline

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cifar-pipeline/cifar-pipeline/cluster"
)

func newRunCommand(started time.Time) *cobra.Command {
	var cf configFlags
	var resume, overwrite bool
	var initFrom, clusterPath string
	var clusterTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the whole job: load CIFAR-10, (augment), build, fit, evaluate, write artifacts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sp, err := cf.load(cmd)
			if err != nil {
				return err
			}
			cfg := sp.cfg
			job := &Job{Cfg: cfg, ConfigPath: cf.path, Resume: resume, Overwrite: overwrite, Started: started, Out: cmd.OutOrStdout(), Log: cmd.ErrOrStderr()}
			if clusterPath != "" {
				if job.Cluster, err = cluster.Load(clusterPath); err != nil {
					return err
				}
				if clusterTimeout <= 0 {
					return fmt.Errorf("--cluster-timeout %v: give a positive duration, e.g. 30s", clusterTimeout)
				}
				job.ClusterTimeout = clusterTimeout
			}
			if initFrom != "" {
				// Read and checked before the run takes its directory, so a
				// bad file leaves everything as it was.
				if resume {
					return fmt.Errorf("--init-from with --resume: the checkpoint already holds the weights; choose one")
				}
				if job.InitWeights, err = initWeights(initFrom, sp.net); err != nil {
					return err
				}
			}
			_, err = job.Run(cmd.Context())
			return err
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&resume, "resume", false, "continue the run in output.dir from its latest checkpoint")
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "replace the run in output.dir with a new one (the old one is deleted)")
	cmd.Flags().StringVar(&initFrom, "init-from", "", "start training from the layer weights of a Keras 3 FILE.keras or FILE.weights.h5 (the config's model must match it)")
	cmd.Flags().StringVar(&clusterPath, "cluster", "", "train data-parallel on the workers of this cluster file (job worker: list of host:port, each running `pipeline server`)")
	cmd.Flags().DurationVar(&clusterTimeout, "cluster-timeout", DefaultClusterTimeout, "with --cluster: a training step (or any other session run) taking longer fails, and the run names the worker that went away; raise it for very slow steps")
	return cmd
}
