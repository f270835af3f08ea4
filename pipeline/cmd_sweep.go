package pipeline

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cifar-pipeline/cifar-pipeline/internal/atomicfile"
	"github.com/cifar-pipeline/cifar-pipeline/rundir"
)

// sweepRow is one combination of a sweep and what its run reached.
type sweepRow struct {
	Dir      string
	Values   []string // one per grid key
	Status   string   // completed, or why not
	BestVal  float64  // best val_accuracy over the epochs (NaN: none)
	TestAcc  float64
	Minutes  float64
	hasValue bool
}

func newSweepCommand() *cobra.Command {
	var cf configFlags
	var grids []string
	var out string
	cmd := &cobra.Command{
		Use:   "sweep -c BASE.yaml --grid key=v1,v2 [--grid key=v1,v2]...",
		Short: "Run every combination of config values, one after another, and tabulate them",
		Long: "Each combination of the --grid values (over the base config and its --set keys) runs as `pipeline run` " +
			"into its own run directory under --out (default <output.dir>/sweep). Every combination's config is checked " +
			"before anything trains. A sweep run again skips the finished combinations and resumes an interrupted one. " +
			"After each run, sweep.csv and sweep.md list the config values, the best val_accuracy, the test accuracy " +
			"and the minutes.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keys, combos, err := parseGrid(grids)
			if err != nil {
				return err
			}
			base, err := cf.load(cmd)
			if err != nil {
				return err
			}
			if out == "" {
				out = filepath.Join(base.cfg.Output.Dir, "sweep")
			}
			var rows []*sweepRow
			var specs []spec
			for i, combo := range combos {
				row := &sweepRow{Dir: filepath.Join(out, runName(i, keys, combo)), Values: combo}
				sets := append([]string(nil), cf.sets...)
				for k, key := range keys {
					sets = append(sets, key+"="+combo[k])
				}
				sets = append(sets, "output.dir="+row.Dir)
				sp, err := loadSpec(cf.path, sets)
				if err != nil {
					return fmt.Errorf("sweep: combination %s: %w", strings.Join(describe(keys, combo), " "), err)
				}
				rows, specs = append(rows, row), append(specs, sp)
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("sweep: --out %s: %w", out, err)
			}
			for i, row := range rows {
				if err := runCombination(cmd.Context(), row, specs[i], cf.path, cmd.OutOrStdout(), cmd.ErrOrStderr()); err != nil {
					row.Status = "failed: " + squash(err.Error())
					fmt.Fprintf(cmd.ErrOrStderr(), "sweep: %s: %v\n", row.Dir, err)
					if errors.Is(err, context.Canceled) {
						writeSweep(out, keys, rows)
						return err
					}
				}
				if err := writeSweep(out, keys, rows); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "sweep: %d runs; %s\n", len(rows), filepath.Join(out, "sweep.md"))
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringArrayVar(&grids, "grid", nil, "a config key and the values to try, e.g. --grid train.batch_size=64,128 (repeatable; every combination runs)")
	cmd.Flags().StringVar(&out, "out", "", "the sweep directory (default <output.dir>/sweep)")
	return cmd
}

// parseGrid reads the --grid flags into keys and every combination of
// their values, in order (the last key varies fastest).
func parseGrid(grids []string) (keys []string, combos [][]string, err error) {
	if len(grids) == 0 {
		return nil, nil, fmt.Errorf("sweep: no --grid: give at least one, e.g. --grid train.batch_size=64,128")
	}
	combos = [][]string{nil}
	for _, g := range grids {
		key, vals, ok := strings.Cut(g, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.TrimSpace(vals) == "" {
			return nil, nil, fmt.Errorf("sweep: --grid %q: want key=v1,v2,..., e.g. --grid train.batch_size=64,128", g)
		}
		for _, k := range keys {
			if k == key {
				return nil, nil, fmt.Errorf("sweep: --grid %s given twice: list all its values in one flag", key)
			}
		}
		keys = append(keys, key)
		var next [][]string
		for _, c := range combos {
			for _, v := range strings.Split(vals, ",") {
				next = append(next, append(append([]string(nil), c...), strings.TrimSpace(v)))
			}
		}
		combos = next
	}
	return keys, combos, nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._=-]+`)

// runName names a combination's run directory: its index and values.
func runName(i int, keys, combo []string) string {
	return fmt.Sprintf("%03d_%s", i+1, unsafeName.ReplaceAllString(strings.Join(describe(keys, combo), "_"), "-"))
}

func describe(keys, combo []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k[strings.LastIndexByte(k, '.')+1:] + "=" + combo[i]
	}
	return out
}

// runCombination runs one combination, or takes the result of a finished
// one, or resumes an interrupted one.
func runCombination(ctx context.Context, row *sweepRow, sp spec, cfgPath string, out, log io.Writer) error {
	rd := rundir.New(row.Dir)
	if readSweepResult(row, rd) && row.Status == StatusCompleted {
		fmt.Fprintf(log, "sweep: %s: finished before; kept\n", row.Dir)
		return nil
	}
	resume := false
	if ns, _ := os.ReadDir(rd.Checkpoints()); len(ns) > 0 {
		resume = true
		fmt.Fprintf(log, "sweep: %s: resuming\n", row.Dir)
	} else {
		fmt.Fprintf(log, "sweep: %s\n", row.Dir)
	}
	job := &Job{Cfg: sp.cfg, ConfigPath: cfgPath, Resume: resume, Overwrite: !resume, Started: time.Now(), Out: out, Log: log}
	if _, err := job.Run(ctx); err != nil {
		readSweepResult(row, rd)
		return err
	}
	readSweepResult(row, rd)
	return nil
}

// readSweepResult fills row from the run's run.json; false when there is none.
func readSweepResult(row *sweepRow, rd rundir.Dir) bool {
	b, err := os.ReadFile(rd.RunJSON())
	if err != nil {
		return false
	}
	var rs struct {
		Status       string  `json:"status"`
		TestAccuracy float64 `json:"test_accuracy"`
		Seconds      float64 `json:"seconds"`
		Epochs       []struct {
			ValAccuracy float64 `json:"val_accuracy"`
			HasVal      bool    `json:"has_val"`
		} `json:"epochs"`
	}
	if err := json.Unmarshal(b, &rs); err != nil {
		return false
	}
	row.Status, row.TestAcc, row.Minutes, row.hasValue = rs.Status, rs.TestAccuracy, rs.Seconds/60, false
	row.BestVal = 0
	for _, e := range rs.Epochs {
		if e.HasVal && (!row.hasValue || e.ValAccuracy > row.BestVal) {
			row.BestVal, row.hasValue = e.ValAccuracy, true
		}
	}
	return true
}

// writeSweep writes sweep.csv and sweep.md (atomically) for the rows so far.
func writeSweep(dir string, keys []string, rows []*sweepRow) error {
	var csvText strings.Builder
	w := csv.NewWriter(&csvText)
	head := append(append([]string{"run"}, keys...), "status", "best_val_accuracy", "test_accuracy", "minutes")
	w.Write(head)
	var md strings.Builder
	fmt.Fprintf(&md, "| run | %s | status | best val_accuracy | test accuracy | minutes |\n|%s\n",
		strings.Join(keys, " | "), strings.Repeat("---|", len(keys)+5))
	for _, r := range rows {
		status, best, test, mins := r.Status, "", "", ""
		if status == "" {
			status = "not run"
		}
		if r.hasValue {
			best = fmt.Sprintf("%.4f", r.BestVal)
		}
		if r.Status == StatusCompleted {
			test, mins = fmt.Sprintf("%.4f", r.TestAcc), fmt.Sprintf("%.1f", r.Minutes)
		}
		w.Write(append(append([]string{filepath.Base(r.Dir)}, r.Values...), status, best, test, mins))
		fmt.Fprintf(&md, "| %s | %s | %s | %s | %s | %s |\n", filepath.Base(r.Dir), strings.Join(r.Values, " | "), status, best, test, mins)
	}
	w.Flush()
	if err := atomicfile.WriteFile(filepath.Join(dir, "sweep.csv"), []byte(csvText.String())); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "sweep.md"), []byte(md.String()))
}

func squash(s string) string { return strings.Join(strings.Fields(s), " ") }
