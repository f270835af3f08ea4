package schedule

import (
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
)

func runPythonStdin(t *testing.T, script string, stdin []byte) []byte {
	t.Helper()
	return testenv.RunPythonStdin(t, script, stdin)
}
