package tfevents

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// EpochLogger lays out scalars the way Keras's TensorBoard callback does, so
// TensorBoard overlays training and validation on one chart per metric:
// logDir/train and logDir/validation each hold an event file, and a log key
// k is written as tag "epoch_k" at step = epoch (0-based); "val_k" keys go to
// the validation writer as "epoch_k".
type EpochLogger struct {
	Train, Validation *Writer
}

// NewEpochLogger creates logDir/train and logDir/validation event files.
func NewEpochLogger(logDir string) (*EpochLogger, error) {
	tr, err := NewWriter(filepath.Join(logDir, "train"))
	if err != nil {
		return nil, err
	}
	va, err := NewWriter(filepath.Join(logDir, "validation"))
	if err != nil {
		tr.Close()
		return nil, err
	}
	return &EpochLogger{Train: tr, Validation: va}, nil
}

// LogEpoch writes one epoch's logs (e.g. loss, accuracy, val_loss,
// val_accuracy, learning_rate, images_per_second) and flushes both files.
// Keys are written in sorted order.
func (l *EpochLogger) LogEpoch(epoch int64, logs map[string]float64) error {
	keys := make([]string, 0, len(logs))
	for k := range logs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w, name := l.Train, k
		if strings.HasPrefix(k, "val_") {
			w, name = l.Validation, strings.TrimPrefix(k, "val_")
		}
		if err := w.Scalar("epoch_"+name, epoch, logs[k]); err != nil {
			return fmt.Errorf("log epoch %d %s: %w", epoch, k, err)
		}
	}
	if err := l.Train.Flush(); err != nil {
		return err
	}
	return l.Validation.Flush()
}

// Close closes both writers.
func (l *EpochLogger) Close() error {
	err := l.Train.Close()
	if verr := l.Validation.Close(); err == nil {
		err = verr
	}
	return err
}
