package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs/executor"
)

// HistorySchema and ShowSchema name the JSON documents of `worker history` and `worker show`.
const (
	HistorySchema = "exo-worker/history/v1"
	ShowSchema    = "exo-worker/show/v1"
)

type historyFlags struct {
	job    string
	status string
	limit  int
	output string
}

func newHistoryCmd(g *globals) *cobra.Command {
	f := &historyFlags{}
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List recorded runs, newest first",
		Long: `List the runs recorded in the store (store.path): schedule, CLI, API and alert-triggered runs and
reverts, with their status and counts. ` + "`worker show RUN`" + ` prints one run with its change journal.`,
		Example: `  worker history --config worker.yaml
  worker history --config worker.yaml --job meu-richtext --limit 5 --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(f.output); err != nil {
				return err
			}
			st, err := openStore(cmd.Context(), g)
			if err != nil {
				return err
			}
			defer func() { _ = st.Close() }()
			runs, err := st.ListRuns(cmd.Context(), store.RunFilter{Job: f.job, Status: store.RunStatus(f.status), Limit: f.limit})
			if err != nil {
				return withCode(executor.ExitFailed, err)
			}
			out := cmd.OutOrStdout()
			if f.output == "json" {
				if runs == nil {
					runs = []store.Run{}
				}
				return encodeJSON(out, map[string]any{"schema": HistorySchema, "runs": runs})
			}
			writeHistory(out, runs)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.job, "job", "", "only runs of this job")
	fl.StringVar(&f.status, "status", "", "only runs with this status (running, succeeded, partial, failed, aborted, interrupted)")
	fl.IntVar(&f.limit, "limit", 20, "at most this many runs (1..1000)")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	return cmd
}

func newShowCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show RUN",
		Short: "Show one run and its change journal",
		Long: `Show a recorded run: why and when it ran, how it ended, and every journalled change — object,
parameter, old → new value, state (pending, applied, verified, failed, skipped, reverted, reconciled) and the
request id to quote in a support case.`,
		Example: `  worker show 01JDZ3Q8V6W7X8Y9Z0A1B2C3D4 --config worker.yaml`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			st, err := openStore(cmd.Context(), g)
			if err != nil {
				return err
			}
			defer func() { _ = st.Close() }()
			run, err := st.GetRun(cmd.Context(), args[0])
			if err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return withCode(executor.ExitUsage, err)
				}
				return withCode(executor.ExitFailed, err)
			}
			entries, err := st.Journal(cmd.Context(), run.ID)
			if err != nil {
				return withCode(executor.ExitFailed, err)
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				if entries == nil {
					entries = []store.JournalEntry{}
				}
				return encodeJSON(out, map[string]any{"schema": ShowSchema, "run": run, "journal": entries})
			}
			writeShow(out, run, entries)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func checkOutput(o string) error {
	if o != "text" && o != "json" {
		return withCode(executor.ExitUsage, fmt.Errorf("--output %q: use text or json", o))
	}
	return nil
}

// openStore opens the store named by the configuration. Only store.path is needed, but the whole file is
// validated: a configuration that is wrong elsewhere is better found now than by the next run.
func openStore(ctx context.Context, g *globals) (store.Store, error) {
	path := configPath(g.configFile)
	if path == "" {
		return nil, withCode(executor.ExitUsage, errors.New("no configuration: pass --config FILE (or set WORKER_CONFIG); the store is at its store.path"))
	}
	cfg, err := loadConfig(g, path)
	if err != nil {
		return nil, err
	}
	st, err := openConfiguredStore(ctx, cfg)
	if err != nil {
		return nil, withCode(executor.ExitUsage, err)
	}
	return st, nil
}

func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeHistory(w io.Writer, runs []store.Run) {
	if len(runs) == 0 {
		fmt.Fprintln(w, "no runs recorded")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tJOB\tMODE\tTRIGGER\tSTATUS\tSTARTED\tTOOK\tSCOPE\tPLANNED\tAPPLIED\tVERIFIED\tFAILED\tSKIPPED")
	for _, r := range runs {
		c := r.Counts
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", r.ID, r.Job, r.Mode, r.Trigger, r.Status,
			r.StartedAt.Local().Format("2006-01-02 15:04:05"), took(r), c.InScope, c.Planned, c.Applied, c.Verified, c.Failed, c.Skipped)
	}
	_ = tw.Flush()
}

func took(r store.Run) string {
	if r.FinishedAt.IsZero() {
		return "running"
	}
	return r.FinishedAt.Sub(r.StartedAt).Round(10 * time.Millisecond).String()
}

func writeShow(w io.Writer, r store.Run, entries []store.JournalEntry) {
	fmt.Fprintf(w, "run %s: %s, mode %s, %s\n", r.ID, r.Job, r.Mode, r.Status)
	fmt.Fprintf(w, "  trigger  %s", r.Trigger)
	if r.Reason != "" {
		fmt.Fprintf(w, " (%s)", r.Reason)
	}
	fmt.Fprintln(w)
	if len(r.Objects) > 0 {
		fmt.Fprintf(w, "  objects  %s\n", strings.Join(r.Objects, ", "))
	}
	fmt.Fprintf(w, "  started  %s by %s\n", r.StartedAt.Local().Format(time.RFC3339), r.Owner)
	if !r.FinishedAt.IsZero() {
		fmt.Fprintf(w, "  finished %s (took %s)\n", r.FinishedAt.Local().Format(time.RFC3339), took(r))
	}
	c := r.Counts
	fmt.Fprintf(w, "  counts   in scope %d, planned %d, applied %d, verified %d, failed %d, skipped %d\n",
		c.InScope, c.Planned, c.Applied, c.Verified, c.Failed, c.Skipped)
	if r.Error != "" {
		fmt.Fprintf(w, "  note     %s\n", r.Error)
	}
	if len(entries) == 0 {
		fmt.Fprintln(w, "journal: no writes")
		return
	}
	states := map[store.ChangeState]int{}
	for _, e := range entries {
		states[e.State]++
	}
	var parts []string
	for _, s := range []store.ChangeState{store.ChangeStateVerified, store.ChangeStateApplied, store.ChangeStateFailed,
		store.ChangeStateSkipped, store.ChangeStateReverted, store.ChangeStateReconciled, store.ChangeStatePending} {
		if states[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", states[s], s))
		}
	}
	fmt.Fprintf(w, "journal: %d entries (%s)\n", len(entries), strings.Join(parts, ", "))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tOBJECT\tNAME\tCHANGE\tSTATE\tREQUEST ID\tNOTE")
	for _, e := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s %s → %s\t%s\t%s\t%s\n", e.Seq, e.ObjectID, e.DisplayName, e.Param,
			rawValue(e.Old), rawValue(e.New), e.State, e.RequestID, e.Error)
	}
	_ = tw.Flush()
}

// rawValue prints a journalled JSON value: strings bare, anything else as JSON.
func rawValue(v json.RawMessage) string {
	var s string
	if len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &s) == nil {
		return s
	}
	if len(v) == 0 {
		return "null"
	}
	return string(v)
}
