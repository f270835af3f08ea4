// Command pipeline trains, evaluates and serves CIFAR-10 classifiers on the
// TensorFlow runtime. See `pipeline --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cifar-pipeline/cifar-pipeline/pipeline"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := pipeline.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func init() {
	// TensorFlow's C++ INFO lines (oneDNN, CPU feature guard) drown the
	// progress output; keep warnings and errors unless the user asked.
	if _, ok := os.LookupEnv("TF_CPP_MIN_LOG_LEVEL"); !ok {
		os.Setenv("TF_CPP_MIN_LOG_LEVEL", "1")
	}
}
