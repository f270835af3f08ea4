package pipeline

import "github.com/spf13/cobra"

func newPredictCommand() *cobra.Command {
	return pendingCommand("predict", "Classify image files with a trained run", "#7")
}
