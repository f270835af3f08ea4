package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

// ClassMetrics are one class's one-vs-rest scores. A ratio whose
// denominator is zero (no predictions of the class, or no examples) is 0,
// as scikit-learn's zero_division default reports it.
type ClassMetrics struct {
	Class     string  `json:"class"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	// Support is the number of test examples of the class; Predicted the
	// number of examples predicted as it; Errors = Support − correct.
	Support   int `json:"support"`
	Predicted int `json:"predicted"`
	Errors    int `json:"errors"`
}

// ConfusedPair is one off-diagonal cell of the confusion matrix.
type ConfusedPair struct {
	True      string `json:"true"`
	Predicted string `json:"predicted"`
	TrueIndex int    `json:"true_index"`
	PredIndex int    `json:"predicted_index"`
	Count     int    `json:"count"`
	// Rate is Count / support of the true class.
	Rate float64 `json:"rate"`
}

// Averages are unweighted (macro) or support-weighted means of the
// per-class scores.
type Averages struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
}

// Metrics is the evaluation of a classifier on a labelled test set.
type Metrics struct {
	// Loss is the test loss as the caller computed it (Keras's evaluate
	// score[0]); NaN is written to JSON as null.
	Loss float64 `json:"loss"`
	// Accuracy is correct / N.
	Accuracy float64 `json:"accuracy"`
	// AccuracyTTA is the accuracy with flip test-time augmentation (the
	// mean of the outputs on each image and its mirror image), when
	// measured.
	AccuracyTTA *float64 `json:"accuracy_tta,omitempty"`
	N           int      `json:"n"`
	Correct     int      `json:"correct"`
	Classes     []string `json:"classes"`
	// PerClass is in class-index order.
	PerClass []ClassMetrics `json:"per_class"`
	// Confusion[i][j] counts examples of true class i predicted as j.
	Confusion [][]int  `json:"confusion"`
	Macro     Averages `json:"macro_avg"`
	Weighted  Averages `json:"weighted_avg"`
	// MostConfused are the (at most 5) largest non-zero off-diagonal cells,
	// by count, ties broken by true then predicted index.
	MostConfused []ConfusedPair `json:"most_confused"`
}

// MostConfusedN is how many pairs Evaluate keeps in Metrics.MostConfused.
const MostConfusedN = 5

// Evaluate scores predictions against labels. labels and preds are class
// indices into classNames and must have equal length; a mismatch or an
// index out of range is a programming error and panics.
func Evaluate(labels, preds []int, classNames []string, loss float64) Metrics {
	if len(labels) != len(preds) {
		panic(fmt.Sprintf("report.Evaluate: %d labels but %d predictions", len(labels), len(preds)))
	}
	k := len(classNames)
	m := Metrics{Loss: loss, N: len(labels), Classes: append([]string(nil), classNames...)}
	m.Confusion = make([][]int, k)
	for i := range m.Confusion {
		m.Confusion[i] = make([]int, k)
	}
	for i, t := range labels {
		p := preds[i]
		if t < 0 || t >= k || p < 0 || p >= k {
			panic(fmt.Sprintf("report.Evaluate: example %d: label %d / prediction %d outside [0, %d)", i, t, p, k))
		}
		m.Confusion[t][p]++
		if t == p {
			m.Correct++
		}
	}
	if m.N > 0 {
		m.Accuracy = float64(m.Correct) / float64(m.N)
	}
	m.PerClass = make([]ClassMetrics, k)
	for c := 0; c < k; c++ {
		tp := m.Confusion[c][c]
		cm := ClassMetrics{Class: classNames[c]}
		for j := 0; j < k; j++ {
			cm.Support += m.Confusion[c][j]
			cm.Predicted += m.Confusion[j][c]
		}
		cm.Errors = cm.Support - tp
		cm.Precision = ratio(tp, cm.Predicted)
		cm.Recall = ratio(tp, cm.Support)
		if cm.Precision+cm.Recall > 0 {
			cm.F1 = 2 * cm.Precision * cm.Recall / (cm.Precision + cm.Recall)
		}
		m.PerClass[c] = cm
		m.Macro.Precision += cm.Precision / float64(k)
		m.Macro.Recall += cm.Recall / float64(k)
		m.Macro.F1 += cm.F1 / float64(k)
		if m.N > 0 {
			w := float64(cm.Support) / float64(m.N)
			m.Weighted.Precision += w * cm.Precision
			m.Weighted.Recall += w * cm.Recall
			m.Weighted.F1 += w * cm.F1
		}
	}
	var pairs []ConfusedPair
	for t := 0; t < k; t++ {
		for p := 0; p < k; p++ {
			if t != p && m.Confusion[t][p] > 0 {
				pairs = append(pairs, ConfusedPair{
					True: classNames[t], Predicted: classNames[p], TrueIndex: t, PredIndex: p,
					Count: m.Confusion[t][p], Rate: ratio(m.Confusion[t][p], m.PerClass[t].Support),
				})
			}
		}
	}
	sort.SliceStable(pairs, func(i, j int) bool { return pairs[i].Count > pairs[j].Count })
	if len(pairs) > MostConfusedN {
		pairs = pairs[:MostConfusedN]
	}
	m.MostConfused = pairs
	return m
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// metricsJSON mirrors Metrics with a nullable loss (JSON has no NaN).
type metricsJSON struct {
	Loss *float64 `json:"loss"`
	*metricsAlias
}

type metricsAlias Metrics

// MarshalJSON writes Metrics, with a NaN or infinite loss as null.
func (m Metrics) MarshalJSON() ([]byte, error) {
	a := metricsAlias(m)
	out := metricsJSON{metricsAlias: &a}
	if !math.IsNaN(m.Loss) && !math.IsInf(m.Loss, 0) {
		out.Loss = &m.Loss
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes (a null loss becomes NaN).
func (m *Metrics) UnmarshalJSON(b []byte) error {
	var in metricsJSON
	in.metricsAlias = (*metricsAlias)(m)
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	m.Loss = math.NaN()
	if in.Loss != nil {
		m.Loss = *in.Loss
	}
	return nil
}

// WriteMetricsJSON writes m as indented JSON (the run's metrics.json).
func WriteMetricsJSON(path string, m Metrics) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}

// ReadMetricsJSON reads a metrics.json written by WriteMetricsJSON.
func ReadMetricsJSON(path string) (Metrics, error) {
	var m Metrics
	b, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("read metrics: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: not a metrics.json: %v", path, err)
	}
	return m, nil
}

// Table renders m for a terminal (after the notebook's "Test Score:" and
// "Test Accuracy:" lines, which the caller prints): the count correct, a
// per-class precision/recall/F1/support table with macro and weighted
// averages, the confusion matrix (rows true, columns predicted) and the
// most-confused pairs.
func (m Metrics) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "(%d of %d test images correct)\n\n", m.Correct, m.N)

	nw := len("weighted avg")
	for _, c := range m.Classes {
		nw = max(nw, len(c))
	}
	fmt.Fprintf(&b, "%-*s  %9s  %6s  %6s  %7s  %6s\n", nw, "class", "precision", "recall", "f1", "support", "errors")
	for _, c := range m.PerClass {
		fmt.Fprintf(&b, "%-*s  %9.3f  %6.3f  %6.3f  %7d  %6d\n", nw, c.Class, c.Precision, c.Recall, c.F1, c.Support, c.Errors)
	}
	fmt.Fprintf(&b, "%-*s  %9.3f  %6.3f  %6.3f  %7d\n", nw, "macro avg", m.Macro.Precision, m.Macro.Recall, m.Macro.F1, m.N)
	fmt.Fprintf(&b, "%-*s  %9.3f  %6.3f  %6.3f  %7d\n", nw, "weighted avg", m.Weighted.Precision, m.Weighted.Recall, m.Weighted.F1, m.N)

	b.WriteString("\nConfusion matrix (rows: true class, columns: predicted)\n")
	cw := 5
	for _, row := range m.Confusion {
		for _, v := range row {
			cw = max(cw, len(fmt.Sprint(v)))
		}
	}
	heads := columnHeads(m.Classes, cw)
	fmt.Fprintf(&b, "%-*s", nw, "")
	for _, h := range heads {
		fmt.Fprintf(&b, " %*s", cw, h)
	}
	b.WriteString("\n")
	for i, row := range m.Confusion {
		fmt.Fprintf(&b, "%-*s", nw, m.Classes[i])
		for _, v := range row {
			fmt.Fprintf(&b, " %*d", cw, v)
		}
		b.WriteString("\n")
	}
	if len(m.MostConfused) > 0 {
		b.WriteString("\nMost confused (true → predicted)\n")
		for _, p := range m.MostConfused {
			fmt.Fprintf(&b, "  %-*s → %-*s %5d  (%.1f%% of %s)\n", nw, p.True, nw, p.Predicted, p.Count, 100*p.Rate, p.True)
		}
	}
	return b.String()
}

// columnHeads abbreviates class names to width; if that makes two equal,
// the column indices are used instead.
func columnHeads(names []string, width int) []string {
	heads := make([]string, len(names))
	seen := map[string]bool{}
	for i, n := range names {
		r := []rune(n)
		if len(r) > width {
			r = r[:width]
		}
		heads[i] = string(r)
		if seen[heads[i]] {
			for j := range heads {
				heads[j] = fmt.Sprint(j)
			}
			return heads
		}
		seen[heads[i]] = true
	}
	return heads
}
