package graph

import (
	"errors"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"

	"github.com/cifar-pipeline/cifar-pipeline/cluster"
)

// startWorkers starts n TensorFlow servers on free loopback ports in this
// process (they serve until the test binary exits: a started server
// cannot be stopped) and returns the master's target and the towers.
func startWorkers(t *testing.T, n int) (target string, towers []string) {
	t.Helper()
	addrs := testenv.FreeAddrs(t, n)
	spec := &cluster.Spec{Path: "test cluster", Jobs: map[string][]string{cluster.WorkerJob: addrs}}
	for i := range n {
		srv, err := cluster.Start(spec, cluster.WorkerJob, i)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			target = srv.Target()
		}
		towers = append(towers, cluster.Device(cluster.WorkerJob, i))
	}
	return target, towers
}

// TestTowersSameMath: two towers, each on half the batch in its own
// TensorFlow server, train to the same weights as one process on the whole
// batch, dropout included (its masks are drawn for the global batch).
// Batches of 32 and, last, 21 rows (an uneven split: 10 and 11).
func TestTowersSameMath(t *testing.T) {
	if testing.Short() {
		t.Skip("starts TensorFlow servers")
	}
	target, towers := startWorkers(t, 2)
	images, labels := tinyData(32*19+21, 10, 3)
	compile := func(layers []config.Layer, o Options) *Model {
		o.Seed, o.Normalize, o.Classes = 7, true, 10
		o.Optimizer = optimizer(t, "rmsprop")
		return compileNet(t, layers, o)
	}
	train := func(layers []config.Layer, o Options, permute bool) map[string]Array {
		m := compile(layers, o)
		for step := range 20 {
			lo, n := step*32, 32
			if step == 19 {
				n = 21
			}
			im, lb := images[lo*3072:(lo+n)*3072], labels[lo:lo+n]
			if permute {
				im, lb = reversed(im, lb)
			}
			if _, err := m.TrainStep(im, lb, n, 11, int64(step)); err != nil {
				t.Fatal(err)
			}
		}
		w, err := m.GetWeights()
		if err != nil {
			t.Fatal(err)
		}
		return w
	}

	// One step's logits and gradients: the towers' dropout masks are the
	// global batch's rows, so they agree to float32 rounding.
	probe := func(o Options) (Array, []Array) {
		logits, _, grads, err := compile(smallNet(), o).Probe(images[:21*3072], labels[:21], 21, 11, 3)
		if err != nil {
			t.Fatal(err)
		}
		return logits, grads
	}
	l1, g1 := probe(Options{})
	l2, g2 := probe(Options{Target: target, Towers: towers})
	if d := maxAbsDiff(l1.Data, l2.Data); d > 1e-5 {
		t.Errorf("training logits differ by %.3g: the towers' dropout masks are not the global batch's", d)
	}
	for i := range g1 {
		if d := relDiff(g1[i].Data, g2[i].Data); d > 1e-5 {
			t.Errorf("gradient %d differs by %.3g", i, d)
		}
	}

	// 20 steps. The tolerance is argued from the summation order: the same
	// single process on each batch reversed (which changes only the order
	// of the per-example sums) moves the weights by sumOrder; two towers
	// group the same sums differently and may move them as far, but not
	// much further. A wrong mask, split or scale moves them by ≥ 1e-2.
	noDropout := append(smallNet()[:3:3], smallNet()[4:]...)
	want := train(noDropout, Options{}, false)
	sumOrder := 0.0
	for name, a := range train(noDropout, Options{}, true) {
		sumOrder = max(sumOrder, relDiff(want[name].Data, a.Data))
	}
	t.Logf("reversed batch order moves the weights by %.3g", sumOrder)
	tol := 5 * sumOrder
	for _, tc := range []struct {
		name   string
		layers []config.Layer
		towers []string
	}{{"no dropout, 2 towers", noDropout, towers}, {"dropout, 2 towers", smallNet(), towers}, {"dropout, 1 tower", smallNet(), towers[:1]}} {
		want := train(tc.layers, Options{}, false)
		got := train(tc.layers, Options{Target: target, Towers: tc.towers}, false)
		for name, a := range want {
			if d := relDiff(a.Data, got[name].Data); d > tol {
				t.Errorf("%s: %s: relative difference %.3g after 20 steps (> %.3g)", tc.name, name, d, tol)
			} else {
				t.Logf("%s: %s: relative difference %.3g", tc.name, name, d)
			}
		}
	}
}

// reversed returns the batch in reverse order.
func reversed(images, labels []uint8) ([]uint8, []uint8) {
	n := len(labels)
	im, lb := make([]uint8, len(images)), make([]uint8, n)
	for i := range n {
		copy(im[i*3072:(i+1)*3072], images[(n-1-i)*3072:(n-i)*3072])
		lb[i] = labels[n-1-i]
	}
	return im, lb
}

func TestFirstLineJoinsRemoteError(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a\nb\nc", "a"},
		{"one line", "one line"},
		{"train step: From /job:worker/replica:0/task:1:\nUnavailable: connection reset\n\tstack", "train step: From /job:worker/replica:0/task:1: Unavailable: connection reset"},
		{"ends with colon:", "ends with colon:"},
	} {
		if got := FirstLine(errors.New(tc.in)); got != tc.want {
			t.Errorf("FirstLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
