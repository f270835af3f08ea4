// Package pipeline wires data, augmentation, graphs and reports into the
// `pipeline` command: run, train, evaluate, predict, summary, data, preview.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Main runs the command line args and returns the process exit code. ctx is
// cancelled on Ctrl-C; long stages stop cleanly at their next step.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRootCommand(stdout, stderr, time.Now())
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(stderr, "pipeline: interrupted; artifacts written so far are complete (resume with --resume)")
			return 130
		}
		fmt.Fprintln(stderr, "pipeline: "+strings.TrimSpace(err.Error()))
		return 1
	}
	return 0
}

// NewRootCommand builds the command tree.
// started is the process start, from which time-to-first-step is measured.
func NewRootCommand(stdout, stderr io.Writer, started time.Time) *cobra.Command {
	root := &cobra.Command{
		Use:           "pipeline",
		Short:         "Train and serve CIFAR-10 classifiers on TensorFlow, the Keras notebook way",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newRunCommand(started),
		newVersionCommand(),
		newSummaryCommand(),
		newDataCommand(),
		newPreviewCommand(),
		newPredictCommand(),
	)
	return root
}

// configFlags are the flags every config-driven command takes.
type configFlags struct {
	path string
	sets []string
}

func (f *configFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.path, "config", "c", "config.yaml", "YAML config file")
	cmd.Flags().StringArrayVar(&f.sets, "set", nil, "override a config key, e.g. --set train.epochs=5 (repeatable)")
}
