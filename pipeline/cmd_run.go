package pipeline

import (
	"time"

	"github.com/spf13/cobra"
)

func newRunCommand(started time.Time) *cobra.Command {
	var cf configFlags
	var resume bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the whole job: load CIFAR-10, (augment), build, fit, evaluate, write artifacts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sp, err := loadSpec(cf.path, cf.sets)
			if err != nil {
				return err
			}
			job := &Job{Cfg: sp.cfg, ConfigPath: cf.path, Resume: resume, Started: started, Out: cmd.OutOrStdout(), Log: cmd.ErrOrStderr()}
			_, err = job.Run(cmd.Context())
			return err
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&resume, "resume", false, "continue from the latest checkpoint in output.dir")
	return cmd
}
