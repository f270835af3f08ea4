package cluster

import (
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// exchangeFloats is the shallow net's gradient: 4,200,842 float32 (16.8 MB).
const exchangeFloats = 4_200_842

// startLoopback starts n worker servers on free loopback ports in this
// process (they serve until it exits) and returns worker 0's target.
func startLoopback(tb testing.TB, n int) string {
	tb.Helper()
	addrs := testenv.FreeAddrs(tb, n)
	s := &Spec{Path: "bench", Jobs: map[string][]string{WorkerJob: addrs}}
	var target string
	for i := range n {
		srv, err := Start(s, WorkerJob, i)
		if err != nil {
			tb.Fatal(err)
		}
		if i == 0 {
			target = srv.Target()
		}
	}
	return target
}

func exchangeSession(tb testing.TB, target string, s *op.Scope) *tf.Session {
	tb.Helper()
	g, err := s.Finalize()
	if err != nil {
		tb.Fatal(err)
	}
	sess, err := tf.NewSession(g, &tf.SessionOptions{Target: target})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sess.Close() })
	return sess
}

// BenchmarkExchange compares, on two loopback workers, the two ways a
// data-parallel step can exchange a shallow-net-sized gradient:
//
//   - ps: the variables live on worker 0; worker 1 reads the weights
//     (16.8 MB to it) and sends its gradient back (16.8 MB to worker 0),
//     which is what Options.Towers builds;
//   - allreduce: each worker holds its own gradient and CollectiveReduceV2
//     sums them (a ring: each worker sends (N−1)/N·2 of the tensor).
//
// With two workers both move 16.8 MB each way per step; the difference
// is the collective's own scheduling against two plain sends.
func BenchmarkExchange(b *testing.B) {
	target := startLoopback(b, 2)
	zeros := make([]float32, exchangeFloats)
	b.Run("ps", func(b *testing.B) {
		s := op.NewScope()
		w0, w1 := s.WithDevice(Device(WorkerJob, 0)), s.WithDevice(Device(WorkerJob, 1))
		h := op.VarHandleOp(w0.SubScope("w"), tf.Float, tf.MakeShape(exchangeFloats))
		init := op.AssignVariableOp(w0.SubScope("init"), h, op.Const(w0.SubScope("zeros"), zeros))
		read := op.ReadVariableOp(w0.SubScope("read"), h, tf.Float)
		grad := op.Mul(w1.SubScope("grad"), read, op.Const(w1.SubScope("half"), float32(0.5)))
		apply := op.AssignAddVariableOp(w0.SubScope("apply"), h, grad)
		sess := exchangeSession(b, target, s)
		if _, err := sess.Run(nil, nil, []*tf.Operation{init}); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(2 * 4 * exchangeFloats)
		b.ResetTimer()
		for range b.N {
			if _, err := sess.Run(nil, nil, []*tf.Operation{apply}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("allreduce", func(b *testing.B) {
		s := op.NewScope()
		var targets []*tf.Operation
		for i := range 2 {
			ws := s.WithDevice(Device(WorkerJob, i))
			g := op.Fill(ws.SubScope("grad"), op.Const(ws.SubScope("shape"), []int32{exchangeFloats}), op.Const(ws.SubScope("one"), float32(1)))
			sum := op.CollectiveReduceV2(ws.SubScope("allreduce"), g, op.Const(ws.SubScope("size"), int32(2)),
				op.Const(ws.SubScope("group"), int32(1)), op.Const(ws.SubScope("instance"), int32(1)), nil, "Add", "Id")
			targets = append(targets, op.NoOp(ws.SubScope("done").WithControlDependencies(sum.Op)))
		}
		sess := exchangeSession(b, target, s)
		b.SetBytes(2 * 4 * exchangeFloats)
		b.ResetTimer()
		for range b.N {
			if _, err := sess.Run(nil, nil, targets); err != nil {
				b.Fatal(err)
			}
		}
	})
}
