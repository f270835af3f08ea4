package report

import (
	"io"

	"github.com/cifar-pipeline/cifar-pipeline/internal/atomicfile"
)

// writeAtomic writes path through atomicfile, so readers never see a
// half-written artifact.
func writeAtomic(path string, fill func(w io.Writer) error) error {
	return atomicfile.Write(path, fill)
}
