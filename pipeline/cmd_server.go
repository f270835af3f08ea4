package pipeline

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cifar-pipeline/cifar-pipeline/cluster"
)

func newServerCommand() *cobra.Command {
	var path, job string
	var task int
	cmd := &cobra.Command{
		Use:   "server --cluster cluster.yaml --job worker --task N",
		Short: "Serve one task of a TensorFlow cluster for `pipeline run --cluster` (runs until killed)",
		Long: `Starts the TensorFlow gRPC server of one task of cluster.yaml in this process
and serves until the process is killed. A run started with
` + "`pipeline run -c cfg.yaml --cluster cluster.yaml`" + ` places one tower of the
training step on each worker task; worker task 0 also holds the variables.

Ctrl-C or SIGTERM ends the process at once: TensorFlow cannot stop a started
server (TF_ServerStop is unimplemented and deleting a started server aborts
the process), so there is nothing to shut down cleanly. A run using this
server then stops with an error naming the task; start the server again and
continue it with ` + "`pipeline run --resume`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := cluster.Load(path)
			if err != nil {
				return err
			}
			addr, err := spec.Address(job, task)
			if err != nil {
				return err
			}
			srv, err := cluster.Start(spec, job, task)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "serving %s at %s (%s) until killed\n", cluster.Device(job, task), addr, srv.Target())
			<-cmd.Context().Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "cluster", "cluster.yaml", "cluster file: job name → list of host:port (TensorFlow's ClusterSpec)")
	cmd.Flags().StringVar(&job, "job", cluster.WorkerJob, "job of this task in the cluster file")
	cmd.Flags().IntVar(&task, "task", 0, "index of this task in its job's list")
	return cmd
}
