// Command pipeline trains, evaluates and serves CIFAR-10 classifiers on the
// TensorFlow runtime. See `pipeline --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/cifar-pipeline/cifar-pipeline/pipeline"
)

func main() {
	enableCPUJIT()
	verbose := verboseArg(os.Args[1:])
	var filter *logFilter
	if !verbose {
		filter = filterTensorFlowLogs()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first Ctrl-C or SIGTERM stops training after the current step
		// and saves a checkpoint; a second one kills the process at once.
		<-ctx.Done()
		stop()
	}()
	proc := pipeline.Process{ShowTensorFlowLogs: func() { reexecVerbose(filter) }}
	code := pipeline.MainWith(ctx, proc, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	filter.close()
	os.Exit(code)
}

// verboseArg reports whether the global --verbose flag is among args (the
// C constructor in quiet.go makes the same test before TensorFlow loads).
func verboseArg(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--verbose" || a == "--verbose=true" {
			return true
		}
	}
	return false
}

// hiddenMarker is set (by quiet.go) when this program, not the user, set
// TF_CPP_MIN_LOG_LEVEL.
const hiddenMarker = "PIPELINE_TF_LOGS_HIDDEN"

// reexecVerbose runs the same command again with --verbose, for a config
// that sets runtime.tensorflow_logs: TensorFlow's load-time lines were
// already suppressed in this process, and its log level is read once.
func reexecVerbose(filter *logFilter) {
	exe, err := os.Executable()
	if err != nil {
		filter.passAll()
		return
	}
	args := slices.Insert(slices.Clone(os.Args), 1, "--verbose")
	env := os.Environ()
	if os.Getenv(hiddenMarker) != "" {
		// The level is the one quiet.go set, not the user's: drop both.
		env = slices.DeleteFunc(env, func(kv string) bool {
			return strings.HasPrefix(kv, "TF_CPP_MIN_LOG_LEVEL=") || strings.HasPrefix(kv, hiddenMarker+"=")
		})
	}
	filter.close()
	err = syscall.Exec(exe, args, env)
	// Exec failed: carry on in this process, showing what still comes.
	filter.passAll()
	_ = err
}

// enableCPUJIT lets runtime.xla: true mean what it says on a CPU: TensorFlow
// ignores the session's global JIT level on the CPU unless TF_XLA_FLAGS
// holds --tf_xla_cpu_global_jit, which it reads once per process, when the
// first session starts. The flag alone changes nothing: clustering still
// needs the session's JIT level, which only runtime.xla as resolved sets
// (auto is off on the CPU, so only an explicit true clusters there; on a
// GPU the flag does not apply). So it is set for every command, before
// the config is read, and is inert unless the config asks for XLA. (A library
// must not change the process environment; the program may.)
func enableCPUJIT() {
	const flag = "--tf_xla_cpu_global_jit"
	if f := os.Getenv("TF_XLA_FLAGS"); !strings.Contains(f, flag) {
		os.Setenv("TF_XLA_FLAGS", strings.TrimSpace(f+" "+flag))
	}
}
