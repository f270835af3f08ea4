package pipeline

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newSummaryCommand() *cobra.Command {
	var cf configFlags
	var model string
	cmd := &cobra.Command{
		Use:   "summary [-c FILE | -m FILE.keras]",
		Short: "Print the model of a config or of a Keras 3 .keras file as a Keras-style summary table",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if model != "" {
				net, err := readKerasNet(model)
				if err != nil {
					return fmt.Errorf("summary: %w", err)
				}
				fmt.Fprint(cmd.OutOrStdout(), net.Summary())
				return nil
			}
			sp, err := cf.load(cmd)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), sp.net.Summary())
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVarP(&model, "model", "m", "", "a Keras 3 .keras file to summarise instead of the config's model")
	cmd.MarkFlagsMutuallyExclusive("model", "config")
	return cmd
}
