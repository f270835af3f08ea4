package pipeline

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cifar-pipeline/cifar-pipeline/config"
)

func newRunCommand() *cobra.Command {
	var cf configFlags
	var resume bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the whole job: load CIFAR-10, (augment), build, fit, evaluate, write artifacts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cf.path, cf.sets)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "config %s: valid (%d layers, optimizer %s, %d epochs, batch %d)\n",
				cf.path, len(cfg.Model.Layers), cfg.Train.Optimizer.Name, cfg.Train.Epochs, cfg.Train.BatchSize)
			return fmt.Errorf("run: stages load/fit/evaluate are not implemented yet (issues #3, #4)")
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&resume, "resume", false, "continue from the latest checkpoint in output.dir")
	return cmd
}
