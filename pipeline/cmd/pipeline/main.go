// Command pipeline trains, evaluates and serves CIFAR-10 classifiers on the
// TensorFlow runtime. See `pipeline --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cifar-pipeline/cifar-pipeline/pipeline"
)

func main() {
	enableCPUJIT()
	quietTensorFlow()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first Ctrl-C stops training after the current step and saves a
		// checkpoint; a second one kills the process at once.
		<-ctx.Done()
		stop()
	}()
	code := pipeline.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// quietTensorFlow keeps TensorFlow's C++ INFO lines (oneDNN, CPU feature
// guard), which libtensorflow prints while it loads, out of the progress
// output unless the user set TF_CPP_MIN_LOG_LEVEL. The library reads the
// variable before Go code runs, so the process re-executes itself once with
// it set.
func quietTensorFlow() {
	if _, ok := os.LookupEnv("TF_CPP_MIN_LOG_LEVEL"); ok {
		return
	}
	env := append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=2")
	if exe, err := os.Executable(); err == nil {
		_ = syscall.Exec(exe, os.Args, env) // on failure, carry on with the logs
	}
}

// enableCPUJIT lets runtime.xla: true mean what it says on a CPU: TensorFlow
// ignores the session's global JIT level on the CPU unless
// TF_XLA_FLAGS holds --tf_xla_cpu_global_jit, which it reads once per
// process. The flag alone changes nothing: clustering still needs the
// session's JIT level, which only runtime.xla sets.
func enableCPUJIT() {
	const flag = "--tf_xla_cpu_global_jit"
	if f := os.Getenv("TF_XLA_FLAGS"); !strings.Contains(f, flag) {
		os.Setenv("TF_XLA_FLAGS", strings.TrimSpace(f+" "+flag))
	}
}
