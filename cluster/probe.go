package cluster

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Unreachable returns, for the first task of job that does not accept a
// TCP connection within timeout, an error naming it and its address, and
// how to start it; nil when every task answers. TensorFlow's own failure
// for a missing task is a gRPC error that names neither (or a hang), so the
// chief checks this before a run and after a failed step.
func (s *Spec) Unreachable(ctx context.Context, job string, timeout time.Duration) error {
	for i, addr := range s.Jobs[job] {
		d := net.Dialer{Timeout: timeout}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("%s: %s task %d at %s is unreachable (%v): start it with `pipeline server --cluster %s --job %s --task %d`",
				s.Path, job, i, addr, dialReason(err), s.Path, job, i)
		}
		c.Close()
	}
	return nil
}

func dialReason(err error) string {
	if op, ok := err.(*net.OpError); ok && op.Err != nil {
		return oneLine(op.Err.Error())
	}
	return oneLine(err.Error())
}
