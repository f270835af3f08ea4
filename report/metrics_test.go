package report

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
)

func approx(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestEvaluateHandComputed(t *testing.T) {
	// 3 classes, 10 examples.
	//   true a: a a a b        (support 4, 3 right)
	//   true b: b b a c c      (support 5, 2 right)
	//   true c: c              (support 1, 1 right)
	labels := []int{0, 0, 0, 0, 1, 1, 1, 1, 1, 2}
	preds := []int{0, 0, 0, 1, 1, 1, 0, 2, 2, 2}
	m := Evaluate(labels, preds, []string{"a", "b", "c"}, 0.75)
	wantConf := [][]int{{3, 1, 0}, {1, 2, 2}, {0, 0, 1}}
	if !reflect.DeepEqual(m.Confusion, wantConf) {
		t.Fatalf("confusion %v, want %v", m.Confusion, wantConf)
	}
	if m.N != 10 || m.Correct != 6 || !approx(m.Accuracy, 0.6) || m.Loss != 0.75 {
		t.Fatalf("N %d correct %d acc %v loss %v", m.N, m.Correct, m.Accuracy, m.Loss)
	}
	// precision: a 3/4, b 2/3, c 1/3; recall: a 3/4, b 2/5, c 1/1.
	want := []ClassMetrics{
		{Class: "a", Precision: 0.75, Recall: 0.75, F1: 0.75, Support: 4, Predicted: 4, Errors: 1},
		{Class: "b", Precision: 2.0 / 3, Recall: 0.4, F1: 2 * (2.0 / 3) * 0.4 / (2.0/3 + 0.4), Support: 5, Predicted: 3, Errors: 3},
		{Class: "c", Precision: 1.0 / 3, Recall: 1, F1: 0.5, Support: 1, Predicted: 3, Errors: 0},
	}
	for i, w := range want {
		g := m.PerClass[i]
		if g.Class != w.Class || g.Support != w.Support || g.Predicted != w.Predicted || g.Errors != w.Errors ||
			!approx(g.Precision, w.Precision) || !approx(g.Recall, w.Recall) || !approx(g.F1, w.F1) {
			t.Errorf("class %d = %+v, want %+v", i, g, w)
		}
	}
	if !approx(m.Macro.Precision, (0.75+2.0/3+1.0/3)/3) || !approx(m.Macro.Recall, (0.75+0.4+1)/3) || !approx(m.Macro.F1, (0.75+want[1].F1+0.5)/3) {
		t.Errorf("macro %+v", m.Macro)
	}
	if !approx(m.Weighted.Recall, m.Accuracy) { // weighted recall == accuracy
		t.Errorf("weighted recall %v != accuracy %v", m.Weighted.Recall, m.Accuracy)
	}
	wantPairs := []ConfusedPair{
		{True: "b", Predicted: "c", TrueIndex: 1, PredIndex: 2, Count: 2, Rate: 0.4},
		{True: "a", Predicted: "b", TrueIndex: 0, PredIndex: 1, Count: 1, Rate: 0.25},
		{True: "b", Predicted: "a", TrueIndex: 1, PredIndex: 0, Count: 1, Rate: 0.2},
	}
	if !reflect.DeepEqual(m.MostConfused, wantPairs) {
		t.Errorf("most confused %+v, want %+v", m.MostConfused, wantPairs)
	}
}

func TestEvaluateEdgeCases(t *testing.T) {
	// A class never predicted and a class with no examples: zero, not NaN.
	m := Evaluate([]int{0, 0, 1}, []int{0, 0, 0}, []string{"x", "y", "z"}, math.NaN())
	y, z := m.PerClass[1], m.PerClass[2]
	if y.Precision != 0 || y.Recall != 0 || y.F1 != 0 || z.Support != 0 || z.Recall != 0 || z.F1 != 0 {
		t.Fatalf("zero-division classes: %+v %+v", y, z)
	}
	if len(m.MostConfused) != 1 || m.MostConfused[0].Count != 1 {
		t.Fatalf("most confused %+v", m.MostConfused)
	}
	// Top 5 only, largest first.
	var labels, preds []int
	for tcl := 0; tcl < 4; tcl++ {
		for p := 0; p < 4; p++ {
			for n := 0; n < tcl*4+p+1; n++ {
				labels, preds = append(labels, tcl), append(preds, p)
			}
		}
	}
	m = Evaluate(labels, preds, []string{"a", "b", "c", "d"}, 1)
	if len(m.MostConfused) != MostConfusedN {
		t.Fatalf("%d pairs, want %d", len(m.MostConfused), MostConfusedN)
	}
	counts := []int{}
	for _, p := range m.MostConfused {
		counts = append(counts, p.Count)
		if p.TrueIndex == p.PredIndex {
			t.Fatal("diagonal cell among confused pairs")
		}
	}
	if !reflect.DeepEqual(counts, []int{15, 14, 13, 12, 10}) {
		t.Fatalf("counts %v", counts)
	}
	for _, bad := range []func(){
		func() { Evaluate([]int{0}, []int{0, 1}, []string{"a", "b"}, 0) },
		func() { Evaluate([]int{2}, []int{0}, []string{"a", "b"}, 0) },
		func() { Evaluate([]int{0}, []int{-1}, []string{"a", "b"}, 0) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("bad input did not panic")
				}
			}()
			bad()
		}()
	}
}

const npMetrics = `
import sys, json, numpy as np
d = json.loads(sys.argv[1]); y = np.array(d["labels"]); p = np.array(d["preds"]); k = d["k"]
cm = np.zeros((k, k), np.int64); np.add.at(cm, (y, p), 1)
tp = np.diag(cm).astype(float); sup = cm.sum(1); pred = cm.sum(0)
with np.errstate(divide="ignore", invalid="ignore"):
    prec = np.where(pred > 0, tp / pred, 0.0); rec = np.where(sup > 0, tp / sup, 0.0)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
w = sup / sup.sum()
print(json.dumps({"confusion": cm.tolist(), "precision": prec.tolist(), "recall": rec.tolist(), "f1": f1.tolist(),
  "accuracy": float(tp.sum() / len(y)), "macro": [prec.mean(), rec.mean(), f1.mean()],
  "weighted": [float((w * prec).sum()), float((w * rec).sum()), float((w * f1).sum())]}))
`

func TestEvaluateAgainstNumpy(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	const n, k = 3000, 10
	labels, preds := make([]int, n), make([]int, n)
	for i := range labels {
		labels[i] = r.IntN(k)
		preds[i] = labels[i]
		if r.Float64() < 0.4 { // biased errors: mostly to the next class
			preds[i] = (labels[i] + 1 + r.IntN(2)*r.IntN(k-1)) % k
		}
		if labels[i] == 9 && preds[i] == 9 && r.Float64() < 0.5 {
			preds[i] = 3
		}
	}
	labels[0], preds[0] = 8, 7
	in, _ := json.Marshal(map[string]any{"labels": labels, "preds": preds, "k": k})
	var ref struct {
		Confusion             [][]int
		Precision, Recall, F1 []float64
		Accuracy              float64
		Macro, Weighted       []float64
	}
	if err := json.Unmarshal(testenv.RunPython(t, npMetrics, string(in)), &ref); err != nil {
		t.Fatal(err)
	}
	names := strings.Fields("airplane automobile bird cat deer dog frog horse ship truck")
	m := Evaluate(labels, preds, names, 1.23)
	if !reflect.DeepEqual(m.Confusion, ref.Confusion) {
		t.Fatalf("confusion differs:\n%v\n%v", m.Confusion, ref.Confusion)
	}
	close := func(what string, a, b float64) {
		if math.Abs(a-b) > 1e-12 {
			t.Errorf("%s = %v, numpy %v", what, a, b)
		}
	}
	close("accuracy", m.Accuracy, ref.Accuracy)
	for c := 0; c < k; c++ {
		close(names[c]+" precision", m.PerClass[c].Precision, ref.Precision[c])
		close(names[c]+" recall", m.PerClass[c].Recall, ref.Recall[c])
		close(names[c]+" f1", m.PerClass[c].F1, ref.F1[c])
	}
	close("macro precision", m.Macro.Precision, ref.Macro[0])
	close("macro recall", m.Macro.Recall, ref.Macro[1])
	close("macro f1", m.Macro.F1, ref.Macro[2])
	close("weighted precision", m.Weighted.Precision, ref.Weighted[0])
	close("weighted recall", m.Weighted.Recall, ref.Weighted[1])
	close("weighted f1", m.Weighted.F1, ref.Weighted[2])
	// Most confused = the largest off-diagonal cells of numpy's matrix.
	var off []int
	for i := range ref.Confusion {
		for j := range ref.Confusion[i] {
			if i != j {
				off = append(off, ref.Confusion[i][j])
			}
		}
	}
	for i := range off { // selection of the top counts
		for j := i + 1; j < len(off); j++ {
			if off[j] > off[i] {
				off[i], off[j] = off[j], off[i]
			}
		}
	}
	for i, p := range m.MostConfused {
		if p.Count != off[i] || p.Count != ref.Confusion[p.TrueIndex][p.PredIndex] {
			t.Errorf("pair %d %+v, want count %d", i, p, off[i])
		}
	}
}

func TestMetricsJSONRoundTripAndTable(t *testing.T) {
	names := []string{"cat", "dog", "ship"}
	m := Evaluate([]int{0, 0, 1, 1, 2, 2, 2}, []int{0, 1, 1, 1, 2, 0, 2}, names, float64(float32(0.8765)))
	dir := t.TempDir()
	path := filepath.Join(dir, "metrics.json")
	if err := WriteMetricsJSON(path, m); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMetricsJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip:\n%+v\n%+v", got, m)
	}
	// NaN loss (diverged training) is written as null and read back as NaN.
	m.Loss = math.NaN()
	if err := WriteMetricsJSON(path, m); err != nil {
		t.Fatal(err)
	}
	got, err = ReadMetricsJSON(path)
	if err != nil || !math.IsNaN(got.Loss) || got.Accuracy != m.Accuracy {
		t.Fatalf("NaN loss: %v %v", got.Loss, err)
	}
	var raw map[string]any
	b, _ := json.Marshal(m)
	if err := json.Unmarshal(b, &raw); err != nil || raw["loss"] != nil || raw["confusion"] == nil || raw["per_class"] == nil {
		t.Fatalf("json %s", b)
	}
	if _, err := ReadMetricsJSON(filepath.Join(dir, "nope.json")); err == nil {
		t.Fatal("missing file accepted")
	}

	m.Loss = float64(float32(0.8765))
	tab := m.Table()
	for _, want := range []string{
		"(5 of 7 test images correct)",
		"cat               0.500   0.500   0.500        2       1",
		"macro avg",
		"rows: true class, columns: predicted",
		"cat              1     1     0",
		"ship             1     0     2",
		"cat          → dog",
	} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
}
