// Package report turns a finished run into files a person reads: the
// per-epoch history (history.csv, as Keras's CSVLogger writes it), the
// evaluation metrics (metrics.json and a terminal table), plots (curves.png,
// confusion.png, misclassified.png) and the model card (MODEL_CARD.md).
// Every file is written to a temporary name in its directory and renamed.
package report

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Epoch is one epoch's results.
type Epoch struct {
	// Epoch is the 0-based epoch index, as Keras passes it to callbacks
	// (history.csv and TensorBoard steps use it as is; plots show Epoch+1).
	Epoch int
	// Loss and Accuracy are the training metrics Keras reports for the
	// epoch; ValLoss and ValAccuracy are meaningful only when HasVal.
	Loss, Accuracy, ValLoss, ValAccuracy float64
	HasVal                               bool
	// Seconds is the epoch's wall time, ImagesPerSec the training throughput
	// and LearningRate the rate in effect after the epoch.
	Seconds, ImagesPerSec, LearningRate float64
	// LogsLearningRate puts LearningRate in history.csv, as Keras's logs
	// carry it when the rate changes during training.
	LogsLearningRate bool
}

// History is the per-epoch record of a training run, in epoch order.
type History []Epoch

// WriteHistoryCSV writes h in the format of keras.callbacks.CSVLogger
// (keras/src/callbacks/csv_logger.py): header "epoch" followed by the log
// keys sorted (accuracy, loss, val_accuracy, val_loss), the 0-based epoch,
// values as Python's str(float), "\r\n" line ends (csv.excel dialect). If
// no epoch has validation, CSVLogger still adds the val_ columns, filled
// with "NA"; so does this.
//
// Keras logs float32 metrics converted to Python floats, so pass
// float64(float32 value) to reproduce its digits exactly.
func WriteHistoryCSV(path string, h History) error {
	return writeAtomic(path, func(w io.Writer) error {
		_, err := io.WriteString(w, HistoryCSV(h))
		return err
	})
}

// HistoryCSV returns the history.csv text WriteHistoryCSV writes.
//
// A learning_rate column (between accuracy and loss: CSVLogger sorts the
// keys) appears when the epochs log the rate, as Keras's logs carry it
// when a callback changes it (ReduceLROnPlateau, LearningRateScheduler;
// keras/src/callbacks/reduce_lr_on_plateau.py) — here also under a
// learning-rate schedule.
func HistoryCSV(h History) string {
	var b strings.Builder
	lr := len(h) > 0 && h[0].LogsLearningRate
	if lr {
		b.WriteString("epoch,accuracy,learning_rate,loss,val_accuracy,val_loss\r\n")
	} else {
		b.WriteString("epoch,accuracy,loss,val_accuracy,val_loss\r\n")
	}
	for _, e := range h {
		va, vl := "NA", "NA"
		if e.HasVal {
			va, vl = PyFloat(e.ValAccuracy), PyFloat(e.ValLoss)
		}
		if lr {
			fmt.Fprintf(&b, "%d,%s,%s,%s,%s,%s\r\n", e.Epoch, PyFloat(e.Accuracy), PyFloat(e.LearningRate), PyFloat(e.Loss), va, vl)
			continue
		}
		fmt.Fprintf(&b, "%d,%s,%s,%s,%s\r\n", e.Epoch, PyFloat(e.Accuracy), PyFloat(e.Loss), va, vl)
	}
	return b.String()
}

// PyFloat formats v as Python's repr/str of a float: the shortest digits
// that round-trip, fixed notation for exponents in [-4, 16) with at least
// one decimal ("1.0"), otherwise "d.dde+XX"; "nan", "inf", "-inf".
func PyFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	// Shortest round-trip digits and the decimal exponent.
	e := strconv.FormatFloat(v, 'e', -1, 64) // e.g. "-1.2345e-05"
	mant, expStr, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expStr)
	neg := strings.HasPrefix(mant, "-")
	mant = strings.TrimPrefix(mant, "-")
	digits := strings.Replace(mant, ".", "", 1)
	sign := ""
	if neg {
		sign = "-"
	}
	if exp < -4 || exp >= 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		es := "+"
		if exp < 0 {
			es, exp = "-", -exp
		}
		return fmt.Sprintf("%s%se%s%02d", sign, m, es, exp)
	}
	var s string
	if exp >= 0 {
		if len(digits) <= exp+1 {
			s = digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
		} else {
			s = digits[:exp+1] + "." + digits[exp+1:]
		}
	} else {
		s = "0." + strings.Repeat("0", -exp-1) + digits
	}
	return sign + s
}
