package pipeline

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cifar-pipeline/cifar-pipeline/graph"
)

func newSummaryCommand() *cobra.Command {
	var cf configFlags
	cmd := &cobra.Command{
		Use:   "summary",
		Short: "Print the model of a config as a Keras-style summary table",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := cf.load(cmd)
			if err != nil {
				return err
			}
			seq, err := graph.NewSequential(cfg.Model.Layers, cfg.Data.ImageShape)
			if err != nil {
				return fmt.Errorf("config %s: model.layers: %w", cf.path, err)
			}
			fmt.Fprint(cmd.OutOrStdout(), seq.Summary())
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}
