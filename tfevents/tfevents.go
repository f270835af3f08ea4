// Package tfevents writes TensorBoard scalar summaries as TensorFlow event
// files (events.out.tfevents.<unix>.<hostname>), so `tensorboard --logdir`
// shows a run's curves without Python.
//
// The file is a TFRecord stream: each record is a little-endian uint64
// length, the masked CRC32C of those 8 bytes, the serialized tensorflow.Event,
// and the masked CRC32C of the data. The first record carries
// file_version "brain.Event:2"; scalars use Summary.Value.simple_value, the
// form TensorBoard's scalar plugin reads directly.
//
// Event files are append streams (TensorBoard tails them while training
// runs), so unlike the pipeline's other artifacts they are not written to a
// temporary name and renamed: every record is written whole, and Flush makes
// the records so far visible.
package tfevents

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	summarypb "github.com/wamuir/graft/tensorflow/core/framework/summary_go_proto"
	eventpb "github.com/wamuir/graft/tensorflow/core/util/event_go_proto"
	"google.golang.org/protobuf/proto"
)

// FileVersion is the file_version string of the first event in every file.
const FileVersion = "brain.Event:2"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaskedCRC returns the TFRecord masked CRC32C of b.
func MaskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return ((c >> 15) | (c << 17)) + 0xa282ead8
}

// Writer appends events to one event file. It is safe for concurrent use.
type Writer struct {
	mu   sync.Mutex
	path string
	f    *os.File
	w    *bufio.Writer
	now  func() time.Time
}

// NewWriter creates dir (if needed) and a new event file in it named
// events.out.tfevents.<unix seconds>.<hostname>, and writes the
// file_version event. If a file of that name exists (two writers in the same
// second), a numeric suffix is added, as TensorFlow's writer does.
func NewWriter(dir string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tfevents: create %s: %w", dir, err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host = strings.ReplaceAll(host, string(filepath.Separator), "_")
	now := time.Now()
	base := filepath.Join(dir, fmt.Sprintf("events.out.tfevents.%d.%s", now.Unix(), host))
	var f *os.File
	path := base
	for i := 0; ; i++ {
		if i > 0 {
			path = fmt.Sprintf("%s.%d", base, i)
		}
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || i > 1000 {
			return nil, fmt.Errorf("tfevents: create %s: %w", path, err)
		}
	}
	wr := &Writer{path: path, f: f, w: bufio.NewWriter(f), now: time.Now}
	ev := &eventpb.Event{
		WallTime: wallTime(now),
		What:     &eventpb.Event_FileVersion{FileVersion: FileVersion},
	}
	if err := wr.write(ev); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if err := wr.Flush(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return wr, nil
}

// Path returns the event file's path.
func (w *Writer) Path() string { return w.path }

// Scalar records value for tag at step. TensorBoard stores simple_value as
// float32, so value is rounded to float32.
func (w *Writer) Scalar(tag string, step int64, value float64) error {
	if tag == "" {
		return errors.New("tfevents: scalar with empty tag")
	}
	ev := &eventpb.Event{
		WallTime: wallTime(w.now()),
		Step:     step,
		What: &eventpb.Event_Summary{Summary: &summarypb.Summary{
			Value: []*summarypb.Summary_Value{{
				Tag:   tag,
				Value: &summarypb.Summary_Value_SimpleValue{SimpleValue: float32(value)},
			}},
		}},
	}
	return w.write(ev)
}

// Flush writes buffered records to the file.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("tfevents: %s: writer closed", w.path)
	}
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("tfevents: write %s: %w", w.path, err)
	}
	return nil
}

// Close flushes, syncs and closes the file. Closing twice is a no-op.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.w.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err != nil {
		return fmt.Errorf("tfevents: close %s: %w", w.path, err)
	}
	return nil
}

func (w *Writer) write(ev *eventpb.Event) error {
	data, err := proto.Marshal(ev)
	if err != nil {
		return fmt.Errorf("tfevents: marshal event: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("tfevents: %s: writer closed", w.path)
	}
	if _, err := w.w.Write(EncodeRecord(data)); err != nil {
		return fmt.Errorf("tfevents: write %s: %w", w.path, err)
	}
	return nil
}

// EncodeRecord frames data as one TFRecord.
func EncodeRecord(data []byte) []byte {
	rec := make([]byte, 12+len(data)+4)
	binary.LittleEndian.PutUint64(rec[0:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(rec[8:12], MaskedCRC(rec[0:8]))
	copy(rec[12:], data)
	binary.LittleEndian.PutUint32(rec[12+len(data):], MaskedCRC(data))
	return rec
}

func wallTime(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}
