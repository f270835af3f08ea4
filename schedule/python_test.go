package schedule

import (
	"bytes"
	"os"
	"os/exec"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
)

// runPythonStdin runs script under the reference interpreter with stdin and
// returns its stdout.
func runPythonStdin(t *testing.T, script string, stdin []byte) []byte {
	t.Helper()
	cmd := exec.Command(testenv.Python(t), "-c", script)
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=3", "CUDA_VISIBLE_DEVICES=")
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	return out
}
