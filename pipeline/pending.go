package pipeline

import (
	"fmt"

	"github.com/spf13/cobra"
)

// pendingCommand is a subcommand whose stage has not been built yet: it says
// so plainly and exits non-zero, rather than pretending to work.
func pendingCommand(use, short, issue string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short + " (not implemented yet)",
		RunE: func(*cobra.Command, []string) error {
			return fmt.Errorf("%s: not implemented yet (tracked in issue %s)", use, issue)
		},
	}
}
