package pipeline

import "github.com/spf13/cobra"

func newSummaryCommand() *cobra.Command {
	return pendingCommand("summary", "Print a Keras-style model summary", "#4")
}
