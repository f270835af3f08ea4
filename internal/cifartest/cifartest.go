// Package cifartest gives tests the real CIFAR-10, fetched once through
// the dataset chain into the default cache (~/.cache/cifar-pipeline,
// $CIFAR_PIPELINE_CACHE) and reused from there.
package cifartest

import (
	"context"
	"os"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/dataset"
)

// Real returns the real CIFAR-10. It skips under -short and fails the test
// when the data cannot be acquired (so CI never silently skips it).
func Real(t testing.TB) *dataset.Set {
	t.Helper()
	if testing.Short() {
		t.Skip("real CIFAR-10: skipped in -short mode")
	}
	f := &dataset.Fetcher{Log: os.Stderr}
	set, err := f.Fetch(context.Background(), "")
	if err != nil {
		t.Fatalf("real CIFAR-10: %v", err)
	}
	return set
}
