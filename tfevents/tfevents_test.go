package tfevents

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	eventpb "github.com/wamuir/graft/tensorflow/core/util/event_go_proto"
	"google.golang.org/protobuf/proto"

	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
)

// readRecords parses a TFRecord file, verifying both CRCs of every record.
func readRecords(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 12 {
			return nil, errors.New("truncated header")
		}
		n := binary.LittleEndian.Uint64(b[0:8])
		if got, want := binary.LittleEndian.Uint32(b[8:12]), MaskedCRC(b[0:8]); got != want {
			return nil, fmt.Errorf("length crc %08x, want %08x", got, want)
		}
		if uint64(len(b)) < 12+n+4 {
			return nil, errors.New("truncated record")
		}
		data := b[12 : 12+n]
		if got, want := binary.LittleEndian.Uint32(b[12+n:16+n]), MaskedCRC(data); got != want {
			return nil, fmt.Errorf("data crc %08x, want %08x", got, want)
		}
		out = append(out, data)
		b = b[16+n:]
	}
	return out, nil
}

func TestMaskedCRCKnownValues(t *testing.T) {
	// CRC32C check value of "123456789" is 0xE3069283 (RFC 3720); the mask
	// is rotate-right 15 plus 0xa282ead8 (tensorflow/core/lib/hash/crc32c.h).
	c := uint32(0xE3069283)
	want := ((c >> 15) | (c << 17)) + 0xa282ead8
	if got := MaskedCRC([]byte("123456789")); got != want {
		t.Fatalf("MaskedCRC = %08x, want %08x", got, want)
	}
	if MaskedCRC(nil) == MaskedCRC([]byte{0}) {
		t.Fatal("CRC of empty and {0} collide")
	}
}

type scalar struct {
	Tag   string  `json:"tag"`
	Step  int64   `json:"step"`
	Value float64 `json:"value"`
}

var testScalars = []scalar{
	{"loss", 0, 2.302585},
	{"accuracy", 0, 0.1},
	{"loss", 1, 1.5},
	{"accuracy", 1, 0.45},
	{"learning_rate", 1, 1e-4},
	{"images_per_second", 2, 1234.5},
	{"loss", 2, -0.25},
}

func writeScalars(t *testing.T, dir string) string {
	t.Helper()
	w, err := NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range testScalars {
		if err := w.Scalar(s.Tag, s.Step, s.Value); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.Scalar("x", 0, 1); err == nil {
		t.Fatal("Scalar after Close succeeded")
	}
	return w.Path()
}

func TestWriterGoReadBack(t *testing.T) {
	dir := t.TempDir()
	path := writeScalars(t, dir)
	host, _ := os.Hostname()
	if base := filepath.Base(path); !strings.HasPrefix(base, "events.out.tfevents.") || !strings.HasSuffix(base, "."+host) {
		t.Fatalf("file name %q", base)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := readRecords(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+len(testScalars) {
		t.Fatalf("%d records, want %d", len(recs), 1+len(testScalars))
	}
	var first eventpb.Event
	if err := proto.Unmarshal(recs[0], &first); err != nil {
		t.Fatal(err)
	}
	if first.GetFileVersion() != FileVersion || first.WallTime <= 0 {
		t.Fatalf("first event %v", &first)
	}
	for i, s := range testScalars {
		var ev eventpb.Event
		if err := proto.Unmarshal(recs[i+1], &ev); err != nil {
			t.Fatal(err)
		}
		v := ev.GetSummary().GetValue()
		if len(v) != 1 || v[0].Tag != s.Tag || ev.Step != s.Step || v[0].GetSimpleValue() != float32(s.Value) {
			t.Errorf("record %d = step %d %v, want %+v", i+1, ev.Step, v, s)
		}
	}

	// A flipped byte anywhere in a record must be caught by the CRCs.
	for _, off := range []int{3, 10, 20, len(b) - 2} {
		bad := append([]byte(nil), b...)
		bad[off] ^= 0x40
		if _, err := readRecords(bad); err == nil {
			t.Errorf("corruption at byte %d not detected", off)
		}
	}
}

func TestTwoWritersSameSecondGetDistinctFiles(t *testing.T) {
	dir := t.TempDir()
	a, err := NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Path() == b.Path() {
		t.Fatalf("both writers use %s", a.Path())
	}
}

func TestNewWriterBadDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := NewWriter(filepath.Join(f, "sub"))
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), f) {
		t.Fatalf("err = %v, want one line naming %s", err, f)
	}
}

const pyRead = `
import sys, json, glob, os
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator
out = {"iterator": [], "accumulator": {}}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "**", "events.out.tfevents.*"), recursive=True)):
    rel = os.path.relpath(os.path.dirname(path), sys.argv[1])
    for e in tf.compat.v1.train.summary_iterator(path):
        if e.HasField("file_version"):
            out["iterator"].append({"dir": rel, "file_version": e.file_version})
        for v in e.summary.value:
            out["iterator"].append({"dir": rel, "tag": v.tag, "step": e.step, "value": v.simple_value})
    acc = event_accumulator.EventAccumulator(os.path.dirname(path))
    acc.Reload()
    out["accumulator"][rel] = {t: [[s.step, s.value] for s in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
print(json.dumps(out))
`

type pyOut struct {
	Iterator []struct {
		Dir         string   `json:"dir"`
		FileVersion string   `json:"file_version"`
		Tag         string   `json:"tag"`
		Step        int64    `json:"step"`
		Value       *float64 `json:"value"`
	} `json:"iterator"`
	Accumulator map[string]map[string][][2]float64 `json:"accumulator"`
}

func TestPythonReadsEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("imports TensorFlow in Python; skipped in -short")
	}
	dir := t.TempDir()
	writeScalars(t, dir)
	l, err := NewEpochLogger(filepath.Join(dir, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	for e := int64(0); e < 3; e++ {
		logs := map[string]float64{"loss": 2 - float64(e)*0.5, "accuracy": 0.2 * float64(e+1),
			"val_loss": 2.1 - float64(e)*0.4, "val_accuracy": 0.15 * float64(e+1), "learning_rate": 0.001}
		if err := l.LogEpoch(e, logs); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	var got pyOut
	if err := json.Unmarshal(testenv.RunPython(t, pyRead, dir), &got); err != nil {
		t.Fatal(err)
	}
	// Top-level file: file_version then the scalars, in order.
	var top []scalar
	versions := map[string]string{}
	for _, r := range got.Iterator {
		if r.FileVersion != "" {
			versions[r.Dir] = r.FileVersion
			continue
		}
		if r.Dir == "." {
			top = append(top, scalar{r.Tag, r.Step, *r.Value})
		}
	}
	for _, d := range []string{".", "logs/train", "logs/validation"} {
		if versions[d] != FileVersion {
			t.Errorf("%s: file_version %q", d, versions[d])
		}
	}
	if len(top) != len(testScalars) {
		t.Fatalf("python read %d scalars, want %d: %+v", len(top), len(testScalars), top)
	}
	for i, s := range testScalars {
		if top[i].Tag != s.Tag || top[i].Step != s.Step || float32(top[i].Value) != float32(s.Value) {
			t.Errorf("scalar %d = %+v, want %+v", i, top[i], s)
		}
	}
	// TensorBoard's own loader sees the Keras-style layout.
	tr, va := got.Accumulator["logs/train"], got.Accumulator["logs/validation"]
	for _, tag := range []string{"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} {
		if len(tr[tag]) != 3 {
			t.Errorf("train %s: %v", tag, tr[tag])
		}
	}
	for _, tag := range []string{"epoch_loss", "epoch_accuracy"} {
		if len(va[tag]) != 3 {
			t.Errorf("validation %s: %v", tag, va[tag])
		}
	}
	if _, ok := va["epoch_learning_rate"]; ok {
		t.Error("learning rate written to validation")
	}
	if v := va["epoch_loss"]; len(v) == 3 && (v[2][0] != 2 || math.Abs(v[2][1]-1.3) > 1e-6) {
		t.Errorf("validation epoch_loss step 2 = %v, want [2 1.3]", v[2])
	}
	if v := tr["epoch_accuracy"]; len(v) == 3 && math.Abs(v[1][1]-0.4) > 1e-6 {
		t.Errorf("train epoch_accuracy step 1 = %v, want 0.4", v[1])
	}
}
