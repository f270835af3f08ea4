package dataset

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cifar-pipeline/cifar-pipeline/internal/atomicfile"
)

// Layout of the official binary version.
const (
	// BatchesDir is the directory name inside the official archive.
	BatchesDir = "cifar-10-batches-bin"
	// MetaFile lists the class names, one per line.
	MetaFile = "batches.meta.txt"
	// Height, Width and Channels of a CIFAR-10 image.
	Height, Width, Channels = 32, 32, 3
	// RecordSize is one record: a label byte and the R, G, B planes.
	RecordSize = 1 + Height*Width*Channels
	// OfficialBatchSize is the size of each official .bin file.
	OfficialBatchSize = 10000 * RecordSize
)

// TrainFiles are the training batches, in order.
var TrainFiles = []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}

// TestFile is the test batch.
const TestFile = "test_batch.bin"

// BatchFiles are the six batch files, training then test.
func BatchFiles() []string { return append(append([]string(nil), TrainFiles...), TestFile) }

// OfficialMD5 are the MD5s of the six files of the official archive.
func OfficialMD5() map[string]string {
	return map[string]string{
		"data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
		"data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
		"data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
		"data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
		"data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
		"test_batch.bin":   "803d5f7f4d78ea53de84dbe85f74fb6d",
	}
}

// OfficialClassNames are CIFAR-10's classes, label 0 to 9.
func OfficialClassNames() []string {
	return []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
}

// metaText is batches.meta.txt as the official archive has it: one name per
// line, then an empty line.
func metaText(names []string) []byte {
	return []byte(strings.Join(names, "\n") + "\n\n")
}

// ResolveDir returns the cifar-10-batches-bin directory for dir, which may
// be that directory itself or its parent.
func ResolveDir(dir string) (string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("data dir %s does not exist: point data.dir (--dir) at a directory holding %s/, or leave it empty to fetch CIFAR-10", dir, BatchesDir)
		}
		return "", fmt.Errorf("data dir %s: %w", dir, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("data dir %s is not a directory: point data.dir (--dir) at a directory holding %s/", dir, BatchesDir)
	}
	if sub := filepath.Join(dir, BatchesDir); isDir(sub) {
		return sub, nil
	}
	if _, err := os.Stat(filepath.Join(dir, TrainFiles[0])); err == nil {
		return dir, nil
	}
	return "", fmt.Errorf("data dir %s holds neither %s/ nor %s: point data.dir (--dir) at the official binary layout, or leave it empty to fetch CIFAR-10", dir, BatchesDir, TrainFiles[0])
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// ReadDir reads the official binary layout from dir (cifar-10-batches-bin
// or its parent) into memory, transposing each record's CHW planes to HWC.
// It checks record sizes and labels but not MD5s (see Verify).
func ReadDir(dir string) (*Set, error) {
	d, err := ResolveDir(dir)
	if err != nil {
		return nil, err
	}
	names, err := ReadClassNames(filepath.Join(d, MetaFile))
	if err != nil {
		return nil, err
	}
	train, err := readBatches(d, TrainFiles, len(names))
	if err != nil {
		return nil, err
	}
	test, err := readBatches(d, []string{TestFile}, len(names))
	if err != nil {
		return nil, err
	}
	return &Set{Train: train, Test: test, ClassNames: names, Dir: d, Source: "local dir"}, nil
}

// ReadClassNames reads batches.meta.txt: one class name per non-empty line.
func ReadClassNames(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w: it lists the class names, one per line; restore it from the archive (or delete the cache dir and run pipeline data fetch)", path, unwrapPath(err))
	}
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			names = append(names, l)
		}
	}
	if len(names) == 0 || len(names) > 256 {
		return nil, fmt.Errorf("%s: %d class names, want 1..256 (one per line): restore it from the archive", path, len(names))
	}
	return names, nil
}

// unwrapPath drops the *fs.PathError wrapper so messages name a file once.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func readBatches(dir string, files []string, classes int) (*Split, error) {
	sizes := make([]int64, len(files))
	var total int64
	for i, f := range files {
		p := filepath.Join(dir, f)
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w: the batch is missing; restore it (or delete the cache dir and run pipeline data fetch)", p, unwrapPath(err))
		}
		if st.Size()%RecordSize != 0 {
			return nil, fmt.Errorf("%s: %d bytes is not a whole number of %d-byte records: the file is truncated or not CIFAR-10; replace it (or delete the cache dir and run pipeline data fetch)", p, st.Size(), RecordSize)
		}
		sizes[i] = st.Size()
		total += st.Size()
	}
	n := int(total / RecordSize)
	s := &Split{Images: make([]uint8, n*Height*Width*Channels), Labels: make([]uint8, n), H: Height, W: Width, C: Channels}
	at := 0
	for i, f := range files {
		p := filepath.Join(dir, f)
		k, err := readBatch(p, sizes[i], classes, s.Labels[at:], s.Images[at*Height*Width*Channels:])
		if err != nil {
			return nil, err
		}
		at += k
	}
	return s, nil
}

// readBatch decodes one .bin file into labels and NHWC images, record by
// record through one small buffer, so loading allocates nothing beyond the
// dataset itself.
func readBatch(path string, size int64, classes int, labels, images []uint8) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	const plane = Height * Width
	n := int(size / RecordSize)
	rec := make([]byte, RecordSize)
	for i := range n {
		if _, err := io.ReadFull(br, rec); err != nil {
			return 0, fmt.Errorf("%s changed while being read (%v at record %d): run again", path, err, i)
		}
		if int(rec[0]) >= classes {
			return 0, fmt.Errorf("%s: record %d has label %d, want 0..%d: the file is corrupt or not CIFAR-10; replace it (or delete the cache dir and run pipeline data fetch)", path, i, rec[0], classes-1)
		}
		labels[i] = rec[0]
		img := images[i*plane*Channels : (i+1)*plane*Channels]
		r, g, bl := rec[1:1+plane], rec[1+plane:1+2*plane], rec[1+2*plane:1+3*plane]
		for p := range plane {
			img[3*p], img[3*p+1], img[3*p+2] = r[p], g[p], bl[p]
		}
	}
	if extra, _ := br.Peek(1); len(extra) > 0 {
		return 0, fmt.Errorf("%s grew while being read: run again", path)
	}
	return n, nil
}

// EncodeRecords encodes NHWC RGB images (32×32×3) and labels as official
// .bin records.
func EncodeRecords(images, labels []uint8) []byte {
	const plane = Height * Width
	out := make([]byte, len(labels)*RecordSize)
	for i, l := range labels {
		rec := out[i*RecordSize : (i+1)*RecordSize]
		rec[0] = l
		img := images[i*plane*Channels : (i+1)*plane*Channels]
		for p := range plane {
			rec[1+p], rec[1+plane+p], rec[1+2*plane+p] = img[3*p], img[3*p+1], img[3*p+2]
		}
	}
	return out
}

// WriteDir writes train and test (32×32×3 splits) and the class names to
// dir in the official binary layout (files directly in dir), each file
// atomically. Train is spread over the five training batches in order.
func WriteDir(dir string, train, test *Split, classNames []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	n := train.Len()
	for i, f := range TrainFiles {
		lo, hi := n*i/len(TrainFiles), n*(i+1)/len(TrainFiles)
		part := train.Slice(lo, hi)
		if err := writeFileAtomic(filepath.Join(dir, f), EncodeRecords(part.Images, part.Labels)); err != nil {
			return err
		}
	}
	if err := writeFileAtomic(filepath.Join(dir, TestFile), EncodeRecords(test.Images, test.Labels)); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, MetaFile), metaText(classNames))
}

// writeFileAtomic writes data to a temp file next to path and renames it.
func writeFileAtomic(path string, data []byte) error {
	return writeAtomic(path, nil, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeAtomic writes path through atomicfile, letting write fill it
// through wrap (nil = identity; tests inject write faults there); the error
// names path and what to do.
func writeAtomic(path string, wrap func(io.Writer) io.Writer, write func(io.Writer) error) error {
	err := atomicfile.Write(path, func(w io.Writer) error {
		if wrap != nil {
			w = wrap(w)
		}
		return write(w)
	})
	if err != nil {
		return writeError(path, errors.Unwrap(err))
	}
	return nil
}
