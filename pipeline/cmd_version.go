package pipeline

import (
	"fmt"

	"github.com/spf13/cobra"
	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"github.com/cifar-pipeline/cifar-pipeline/device"
)

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the TensorFlow version, the GPUs (or why none are usable) and the devices the runtime sees",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			inv := device.Probe()
			build := "CPU-only build"
			if inv.Build.CUDA {
				build = "CUDA build"
			}
			fmt.Fprintf(out, "TensorFlow %s (%s: %s)\n", tf.Version(), build, inv.Build.Library)
			if len(inv.GPUs) == 0 {
				fmt.Fprintf(out, "GPUs: none: %s\n", inv.NoGPU)
			}
			for _, g := range inv.GPUs {
				fmt.Fprintf(out, "GPU %s\n", g)
			}
			s := op.NewScope()
			op.Const(s, int32(0))
			g, err := s.Finalize()
			if err != nil {
				return fmt.Errorf("build probe graph: %w", err)
			}
			sess, err := tf.NewSession(g, nil)
			if err != nil {
				return fmt.Errorf("start TensorFlow session: %w", err)
			}
			defer sess.Close()
			devs, err := sess.ListDevices()
			if err != nil {
				return fmt.Errorf("list devices: %w", err)
			}
			for _, d := range devs {
				fmt.Fprintf(out, "device %s (%s, %d MiB)\n", d.Name, d.Type, d.MemoryLimitBytes>>20)
			}
			return nil
		},
	}
}
