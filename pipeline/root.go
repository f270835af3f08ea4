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

// Process is what only the main package may do for a command (library
// code sets no environment and execs nothing).
type Process struct {
	// ShowTensorFlowLogs, when set, is called once a config asks for
	// TensorFlow's own log lines (runtime.tensorflow_logs) while --verbose
	// was not given; it makes them visible from then on.
	ShowTensorFlowLogs func()
}

type processKey struct{}

func processOf(ctx context.Context) Process {
	p, _ := ctx.Value(processKey{}).(Process)
	return p
}

// Main runs the command line args and returns the process exit code. ctx is
// cancelled on Ctrl-C or SIGTERM; long stages stop cleanly at their next step.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return MainWith(ctx, Process{}, args, stdout, stderr)
}

// MainWith is Main with the main package's process hooks.
func MainWith(ctx context.Context, p Process, args []string, stdout, stderr io.Writer) int {
	root := NewRootCommand(stdout, stderr, time.Now())
	root.SetArgs(args)
	if err := root.ExecuteContext(context.WithValue(ctx, processKey{}, p)); err != nil {
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
	// The main package reads this flag from os.Args before TensorFlow
	// loads (its load-time lines come before any Go code runs).
	root.PersistentFlags().Bool(VerboseFlag, false, "show TensorFlow's own log lines (oneDNN, absl, MLIR), hidden by default; the config key runtime.tensorflow_logs does the same")
	root.AddCommand(
		newRunCommand(started),
		newSweepCommand(),
		newVersionCommand(),
		newSummaryCommand(),
		newDataCommand(),
		newPreviewCommand(),
		newPredictCommand(),
		newServerCommand(),
	)
	return root
}

// configFlags are the flags every config-driven command takes.
type configFlags struct {
	path string
	sets []string
}

// VerboseFlag is the global flag that shows TensorFlow's log lines.
const VerboseFlag = "verbose"

// load loads the config, checked against the engine (loadSpec), and, when
// it asks for TensorFlow's log lines, has the main package show them.
func (f *configFlags) load(cmd *cobra.Command) (spec, error) {
	sp, err := loadSpec(f.path, f.sets)
	if err != nil {
		return sp, err
	}
	if verbose, _ := cmd.Flags().GetBool(VerboseFlag); sp.cfg.Runtime.TensorFlowLogs && !verbose {
		if show := processOf(cmd.Context()).ShowTensorFlowLogs; show != nil {
			show()
		}
	}
	return sp, nil
}

func (f *configFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.path, "config", "c", "config.yaml", "YAML config file")
	cmd.Flags().StringArrayVar(&f.sets, "set", nil, "override a config key, e.g. --set train.epochs=5 (repeatable)")
}
