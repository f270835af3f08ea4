package pipeline

import "github.com/spf13/cobra"

func newDataCommand() *cobra.Command {
	return pendingCommand("data", "Fetch, inspect or synthesise CIFAR-10", "#3")
}
