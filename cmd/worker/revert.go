package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/daemon"
	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs/executor"
)

// RevertSchema names the JSON document `worker revert --output json` prints.
const RevertSchema = "exo-worker/revert/v1"

type revertFlags struct {
	dryRun bool
	reason string
	output string
}

func newRevertCmd(g *globals) *cobra.Command {
	f := &revertFlags{}
	cmd := &cobra.Command{
		Use:   "revert RUN",
		Short: "Put back the old values a run wrote, where nobody changed them since",
		Long: `Revert a run: for every change its journal records, read the object; where it still holds the value the
run wrote, put the old value back. An object changed since (by a person, another tool, a later run) is left
as it is and reported. The revert is a run of its own (mode "revert"): journalled, read back, subject to
exceptions, and listed by ` + "`worker history`" + `. --dry-run reads the objects and prints what would be put back.

The revert holds the job's lease from its first read to its last write; stopped (SIGINT, SIGTERM, a lost
lease), it says so and exits 4 — rerun it to finish. Reverting a dry-run run has nothing to do (exit 0).

` + exitCodesHelp(),
		Example: `  worker revert 01JDZ3Q8V6W7X8Y9Z0A1B2C3D4 --config worker.yaml --dry-run
  worker revert 01JDZ3Q8V6W7X8Y9Z0A1B2C3D4 --config worker.yaml --reason "pilot rolled back"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return revertRun(cmd, g, f, args[0]) },
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.dryRun, "dry-run", false, "read the objects and print what would be put back; write nothing")
	fl.StringVar(&f.reason, "reason", "", "why, for the run history")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	return cmd
}

func revertRun(cmd *cobra.Command, g *globals, f *revertFlags, runID string) error {
	if err := checkOutput(f.output); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	path := configPath(g.configFile)
	if path == "" {
		return withCode(executor.ExitUsage, errors.New("no configuration: pass --config FILE (or set WORKER_CONFIG)"))
	}
	cfg, err := loadConfig(g, path)
	if err != nil {
		return err
	}
	st, err := openConfiguredStore(ctx, cfg)
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	defer func() { _ = st.Close() }()
	conn, err := connect(cfg, g.log, nil)
	if err != nil {
		return err
	}
	client, err := conn.exo()
	if err != nil {
		return err
	}
	ex := &executor.Executor{Client: client, Log: g.log.Named("executor"), Journal: daemon.NewJournal(st),
		Exceptions: configExceptions(cfg)}
	// A revert of a Graph-writing job (mailbox-license) reads and writes group memberships.
	if err := conn.graphExecutor(ex); err != nil {
		return err
	}
	reg, err := newRegistry(cfg)
	if err != nil {
		return err
	}
	// With PostgreSQL, the run is exclusive the way the fleet's are (an advisory lock), not by a lease.
	fleet, err := cliFleet(st, g.log)
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	d, err := daemon.New(daemon.Options{Store: st, Executor: ex, Library: reg, Log: g.log.Named("revert"), River: fleet})
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	rep, err := d.Revert(ctx, runID, f.reason, f.dryRun)
	if rep == nil {
		switch {
		case errors.Is(err, store.ErrNotFound):
			return withCode(exitUsage, err)
		case errors.Is(err, daemon.ErrBusy):
			return withCode(exitBusy, err)
		case ctx.Err() != nil:
			return withCode(exitInterrupted, fmt.Errorf("revert of %s interrupted before it started: %w", runID, err))
		}
		return withCode(exitFailed, err)
	}
	out := cmd.OutOrStdout()
	if f.output == "json" {
		if jerr := encodeJSON(out, revertDoc(rep)); jerr != nil {
			return jerr
		}
	} else {
		writeRevert(out, rep)
	}
	if rep.Status == store.RunInterrupted || errors.Is(err, daemon.ErrInterrupted) {
		return withCode(exitInterrupted, err)
	}
	if err != nil {
		g.log.Error("revert stopped", zap.Error(err))
		return withCode(exitFailed, err)
	}
	if rep.Summary != nil {
		if code := rep.Summary.ExitCode(); code != exitOK {
			return withCode(code, fmt.Errorf("revert of %s: %d changes failed or were not verified (see above)", rep.Of, rep.Summary.Failed+rep.Summary.Applied-rep.Summary.Verified))
		}
	}
	return nil
}

type revertChangeDoc struct {
	Object      string `json:"object"`
	DisplayName string `json:"display_name,omitempty"`
	Param       string `json:"param"`
	From        string `json:"from"`
	To          string `json:"to"`
	Status      string `json:"status"`
	Error       string `json:"error,omitempty"`
	RequestID   string `json:"request_id,omitempty"`
}

type revertSkipDoc struct {
	Object      string `json:"object"`
	DisplayName string `json:"display_name,omitempty"`
	Param       string `json:"param"`
	State       string `json:"journal_state"`
	Reason      string `json:"reason"`
}

func revertDoc(r *daemon.RevertReport) map[string]any {
	changes := []revertChangeDoc{}
	if r.Summary != nil {
		for _, c := range r.Summary.Changes {
			param, from, to, _ := changeColumns(c.Change)
			changes = append(changes, revertChangeDoc{Object: c.Object.ID, DisplayName: c.Object.DisplayName, Param: param,
				From: from, To: to, Status: string(c.Status), Error: c.Error, RequestID: c.RequestID})
		}
	}
	skipped := []revertSkipDoc{}
	for _, s := range r.Skipped {
		skipped = append(skipped, revertSkipDoc{Object: s.Entry.ObjectID, DisplayName: s.Entry.DisplayName, Param: s.Entry.Param,
			State: string(s.Entry.State), Reason: s.Reason})
	}
	return map[string]any{"schema": RevertSchema, "reverted_run": r.Of, "run_id": r.RunID, "job": r.Job,
		"dry_run": r.DryRun, "status": r.Status, "changes": changes, "skipped": skipped, "nothing_to_revert": r.Nothing}
}

func writeRevert(w io.Writer, r *daemon.RevertReport) {
	n := 0
	if r.Summary != nil {
		n = len(r.Summary.Changes)
	}
	if r.Nothing != "" {
		fmt.Fprintf(w, "nothing to revert: %s\n", r.Nothing)
		return
	}
	if r.DryRun {
		fmt.Fprintf(w, "revert of run %s (%s), dry run: %d changes would be put back, %d entries left alone\n", r.Of, r.Job, n, len(r.Skipped))
	} else {
		fmt.Fprintf(w, "revert of run %s (%s): run %s, %s\n", r.Of, r.Job, r.RunID, r.Status)
	}
	if n > 0 {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "OBJECT\tNAME\tCHANGE\tSTATUS\tNOTE")
		for _, c := range r.Summary.Changes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Object.ID, c.Object.DisplayName, changeText(c.Change), c.Status, c.Error)
		}
		_ = tw.Flush()
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(w, "left alone (%d):\n", len(r.Skipped))
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		for _, s := range r.Skipped {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.Entry.ObjectID, s.Entry.DisplayName, s.Entry.Param, s.Reason)
		}
		_ = tw.Flush()
	}
	if r.Summary != nil {
		s := r.Summary
		if r.DryRun {
			fmt.Fprintf(w, "planned %d, skipped %d (nothing written)\n", s.Planned, s.Skipped)
		} else {
			fmt.Fprintf(w, "planned %d, applied %d, verified %d, failed %d, skipped %d\n", s.Planned, s.Applied, s.Verified, s.Failed, s.Skipped)
		}
		for _, wn := range s.Warnings {
			fmt.Fprintln(w, "warning:", wn)
		}
	}
}
