package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteModelCard(t *testing.T) {
	// cat is the weakest class (2 of 5 right), mostly taken for dog.
	labels := []int{0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2}
	preds := []int{0, 0, 1, 1, 2, 1, 1, 1, 1, 1, 2, 2, 2, 2, 0}
	names := []string{"cat", "dog", "ship"}
	m := Evaluate(labels, preds, names, 0.6543)
	card := ModelCard{
		Model:         "deep",
		RunDir:        "output/run-1",
		Created:       time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
		DataSource:    "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
		DataFiles:     []DataFile{{"data_batch_1.bin", "c99cafc152244af753f735de768cd75f", true}, {"test_batch.bin", "40351d587109b95175f43aff81a1287e", false}},
		TrainExamples: 45000, ValExamples: 5000, TestExamples: 15,
		ConfigYAML:   "model: deep\ntrain:\n  epochs: 20\n",
		Architecture: "conv2d_1 (Conv2D)  (None, 32, 32, 32)  896",
		Params:       202282,
		History:      sampleHistory(3, true),
		Metrics:      m,
		TrainSeconds: 125,
		TFVersion:    "2.18.0",
		Notes:        []string{"4th conv has stride 3 as in Keras 3"},
	}
	path := filepath.Join(t.TempDir(), "MODEL_CARD.md")
	if err := WriteModelCard(path, card); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{
		"# Model card: deep",
		"2026-01-02 03:04 UTC", "`output/run-1`",
		"## Data provenance", "Source used: https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
		"1 of 2 files verified", "| `data_batch_1.bin` | `c99cafc152244af753f735de768cd75f` | yes |", "| `test_batch.bin` | `40351d587109b95175f43aff81a1287e` | no |",
		"45000 training, 5000 validation, 15 test",
		"## Configuration", "```yaml\nmodel: deep\ntrain:\n  epochs: 20\n```",
		"## Architecture", "conv2d_1 (Conv2D)", "202,282",
		"## Training", "TensorFlow 2.18.0", "Training time: 125.0 s", "| 3 | 0.6667 | 0.4000 | 0.8462 | 0.3700 | 0.001 | 30.0 |",
		"## Evaluation", "| Test accuracy | 73.33% (11 of 15) |", "loss 0.6543",
		"| cat | 0.667 | 0.400 | 0.500 | 5 | 3 | 60.0% |",
		"| **cat** | **2** | 2 | 1 |",
		"- cat → dog: 2 images (40.0% of cat)",
		"## Intended use and limits", "3 classes (cat, dog, ship)",
		"## Privacy and fairness",
		"misses 60.0% of **cat** images (recall 0.400) but only 0.0% of **dog** images",
		"members of the \"cat\" group are misidentified 60.0% of the time",
		"taking cat for dog (2 images, 40.0% of all cat)",
		"## Notes", "stride 3",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("model card lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
	// Hardware is detected when not given.
	hw := DetectHardware()
	if hw.LogicalCPUs < 1 || hw.OS == "" {
		t.Fatalf("DetectHardware = %+v", hw)
	}
	if hw.CPUModel != "" && !strings.Contains(md, hw.CPUModel) {
		t.Errorf("card lacks CPU model %q", hw.CPUModel)
	}
}

func TestParseCPUInfo(t *testing.T) {
	const info = `processor	: 0
model name	: Intel(R) Xeon(R) CPU @ 2.20GHz
physical id	: 0
core id	: 0

processor	: 1
model name	: Intel(R) Xeon(R) CPU @ 2.20GHz
physical id	: 0
core id	: 0

processor	: 2
model name	: Intel(R) Xeon(R) CPU @ 2.20GHz
physical id	: 0
core id	: 1

processor	: 3
model name	: Intel(R) Xeon(R) CPU @ 2.20GHz
physical id	: 0
core id	: 1
`
	model, logical, phys := parseCPUInfo(info)
	if model != "Intel(R) Xeon(R) CPU @ 2.20GHz" || logical != 4 || phys != 2 {
		t.Fatalf("parseCPUInfo = %q, %d, %d", model, logical, phys)
	}
	if got := parseMemTotal("MemTotal:       16303360 kB\nMemFree: 1 kB\n"); got != 16303360*1024 {
		t.Fatalf("parseMemTotal = %d", got)
	}
	if got := thousands(1676842); got != "1,676,842" {
		t.Fatalf("thousands = %q", got)
	}
}
