package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/auth"
	"github.com/exo-worker/worker/internal/daemon"
	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/executor"
)

type runFlags struct {
	sim        bool
	dryRun     bool
	maxChanges int
	force      bool
	output     string
	noProgress bool
	reason     string
}

func newRunCmd(g *globals) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run JOB",
		Short: "Run one job once (the one-shot \"fix all MEUs now\")",
		Long: `Run one job once against the tenant in the configuration, or against a simulated tenant with --sim.

The job reads the tenant, plans its changes, and the executor applies them in batches, then reads every
changed object back. Safety: --dry-run prints old → new per object and writes nothing; a run that would
change more objects than jobs.<job>.max_changes or max_change_percent stops before the first write
(exit 3) until you rerun it with --force.

A job the configuration does not name (no jobs.<job> section) runs here with its defaults — remediation
jobs remediate, audits report, at most 500 objects and 20% of the scope — because you asked for it by name.
The daemon (worker serve), its API and webhooks never start such a job. ` + "`worker jobs`" + ` shows each job's
effective mode and limits.

` + exitCodesHelp(),
		Example: `  worker run meu-richtext --sim                 # fix every MEU of a simulated tenant
  worker run meu-richtext --config worker.yaml --dry-run
  worker run meu-richtext --config worker.yaml --force --output json > run.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runJob(cmd, g, f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.sim, "sim", false, "start a simulated tenant in-process (default scenario) and run against it")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan (old → new per object) and write nothing")
	fl.IntVar(&f.maxChanges, "max-changes", -1, "stop before writing if more than N objects would change (overrides jobs.<job>.max_changes)")
	fl.BoolVar(&f.force, "force", false, "lift the blast-radius limits for this run")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	fl.BoolVar(&f.noProgress, "no-progress", false, "do not draw a progress line on a terminal")
	fl.StringVar(&f.reason, "reason", "", "why this run (recorded in the history)")
	return cmd
}

func runJob(cmd *cobra.Command, g *globals, f *runFlags, name string) error {
	if f.output != "text" && f.output != "json" {
		return withCode(executor.ExitUsage, fmt.Errorf("--output %q: use text or json", f.output))
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	su, err := loadSetup(g, f.sim, simSetup{})
	if err != nil {
		return err
	}
	defer su.close()
	cfg, reg := su.cfg, su.reg
	entry, err := reg.Entry(name)
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	job, opts := entry.Job, jobOptions(entry)
	if !entry.Configured {
		g.log.Warn("the configuration does not name this job: running it once with its defaults (configure jobs."+name+" to change them; `worker jobs` shows them)",
			zap.String("job", name), zap.String("mode", string(opts.Mode)), zap.Int("max_changes", opts.MaxChanges),
			zap.Float64("max_change_percent", opts.MaxChangePercent))
	}
	if f.dryRun {
		opts.Mode = jobs.ModeDryRun
	}
	opts.Force = f.force
	if f.maxChanges >= 0 {
		opts.MaxChanges = f.maxChanges
		opts.JobConfigPath = "--max-changes"
	}

	// A one-shot run is recorded and journalled like a scheduled one, under the job's lease, so `worker
	// history` shows it, `worker revert` can undo it and it never overlaps a daemon running the same job.
	st, err := openConfiguredStore(ctx, cfg)
	if err != nil {
		return withCode(executor.ExitUsage, fmt.Errorf("%s: %w", storeField(cfg), err))
	}
	defer func() { _ = st.Close() }()
	conn, err := connect(cfg, g.log, nil)
	if err != nil {
		return err
	}
	conn.state = st // the directory and its delta links live in the store between runs
	client, err := conn.exo()
	if err != nil {
		return err
	}
	ex := &executor.Executor{Client: client, Log: g.log, Journal: daemon.NewJournal(st), Exceptions: configExceptions(cfg),
		State: st, FullReadEvery: cfg.EXO.FullReadInterval()}
	if err := conn.graphExecutor(ex); err != nil {
		return err
	}
	if job.Describe().NeedsDirectory {
		if ex.Directory, err = conn.directory(); err != nil {
			return err
		}
	}
	if !f.noProgress && isTerminal(os.Stderr) {
		ex.Progress = newLineProgress(os.Stderr)
	}
	// With PostgreSQL, the run is exclusive the way the fleet's are (an advisory lock), not by a lease.
	fleet, err := cliFleet(st, g.log)
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	d, err := daemon.New(daemon.Options{Store: st, Executor: ex, Log: g.log.Named("run"), River: fleet})
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	rec, sum, runErr := d.RunNow(ctx, job, opts, f.reason, store.TriggerCLI)
	code := runExitCode(rec, sum, runErr)
	if sum == nil {
		if runErr == nil {
			runErr = errors.New("the run did not start")
		}
		// A credential the tenant refuses is a configuration problem (exit 1), not a failed object.
		var ae *auth.Error
		if errors.As(runErr, &ae) {
			return withCode(exitUsage, runErr)
		}
		return withCode(code, runErr)
	}
	out := cmd.OutOrStdout()
	if f.output == "json" {
		if err := writeJSON(out, sum); err != nil {
			return err
		}
	} else {
		writeText(out, sum)
	}
	if code != exitOK {
		msg := fmt.Sprintf("%s: %d failed", name, sum.Failed)
		switch {
		case code == exitInterrupted:
			msg = fmt.Sprintf("%s: interrupted before it finished (%d applied, %d not sent); what was sent is journalled, run it again to finish",
				name, sum.Applied, sum.Skipped)
			if cause, _, ok := strings.Cut(rec.Error, "; interrupted"); ok {
				msg += ": " + cause // the lease was lost
			}
		case sum.Aborted:
			msg = sum.AbortReason
		case sum.Applied > sum.Verified:
			msg = fmt.Sprintf("%s: %d failed, %d written but not verified", name, sum.Failed, sum.Applied-sum.Verified)
		}
		if f.output == "text" {
			// the text output already said it; keep stderr to one short line
			return withCode(code, errors.New(firstLine(msg)))
		}
		return withCode(code, errors.New(msg))
	}
	return nil
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}
