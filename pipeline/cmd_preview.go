package pipeline

import "github.com/spf13/cobra"

func newPreviewCommand() *cobra.Command {
	return pendingCommand("preview", "Write augmentation preview JPEGs and a contact sheet", "#6")
}
