package pipeline

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newSummaryCommand() *cobra.Command {
	var cf configFlags
	cmd := &cobra.Command{
		Use:   "summary",
		Short: "Print the model of a config as a Keras-style summary table",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sp, err := cf.load(cmd)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), sp.net.Summary())
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}
