package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/jobs"
)

type runFlags struct {
	sim        bool
	dryRun     bool
	maxChanges int
	force      bool
	output     string
	noProgress bool
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
(exit 3) until you rerun it with --force.`,
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
	return cmd
}

func runJob(cmd *cobra.Command, g *globals, f *runFlags, name string) error {
	if f.output != "text" && f.output != "json" {
		return withCode(jobs.ExitUsage, fmt.Errorf("--output %q: use text or json", f.output))
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	path := configPath(g.configFile)
	if f.sim {
		if path != "" {
			return withCode(jobs.ExitUsage, errors.New("--sim and --config exclude each other: --sim writes its own configuration"))
		}
		srv, err := sim.Start(sim.Options{})
		if err != nil {
			return withCode(jobs.ExitUsage, fmt.Errorf("start simulated tenant: %w", err))
		}
		defer func() { _ = srv.Close(); _ = os.RemoveAll(srv.Dir) }()
		path = filepath.Join(srv.Dir, "worker.yaml")
		if err := writeSimConfig(srv, path); err != nil {
			return withCode(jobs.ExitUsage, err)
		}
		g.log.Info("simulated tenant started", zap.String("url", srv.URL), zap.String("tenant", srv.Creds.TenantDomain))
	}
	if path == "" {
		return withCode(jobs.ExitUsage, errors.New("no configuration: pass --config FILE (or set WORKER_CONFIG), or try --sim"))
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	reg, err := newRegistry(cfg)
	if err != nil {
		return err
	}
	job, err := reg.Get(name)
	if err != nil {
		return withCode(jobs.ExitUsage, err)
	}
	jc := cfg.Jobs[name]
	mode := jobs.ModeRemediate
	if jc.Mode != "" {
		if mode, err = jobs.ParseMode(jc.Mode); err != nil {
			return withCode(jobs.ExitUsage, fmt.Errorf("jobs.%s.mode: %w", name, err))
		}
	}
	if f.dryRun {
		mode = jobs.ModeDryRun
	}
	opts := jobs.Options{Mode: mode, Force: f.force, JobConfigPath: "jobs." + name}
	if jc.MaxChanges != nil {
		opts.MaxChanges = *jc.MaxChanges
	}
	if jc.MaxChangePercent != nil {
		opts.MaxChangePercent = *jc.MaxChangePercent
	}
	if f.maxChanges >= 0 {
		opts.MaxChanges = f.maxChanges
		opts.JobConfigPath = "--max-changes"
	}

	client, err := newEXOClient(cfg, g.log)
	if err != nil {
		return err
	}
	ex := &jobs.Executor{Client: client, Log: g.log, Exceptions: configExceptions(cfg)} // exceptions bind one-shot runs too
	if !f.noProgress && isTerminal(os.Stderr) {
		ex.Progress = newLineProgress(os.Stderr)
	}
	sum, runErr := ex.Run(ctx, job, opts)
	if sum == nil {
		return withCode(jobs.ExitUsage, runErr)
	}
	out := cmd.OutOrStdout()
	if f.output == "json" {
		if err := writeJSON(out, sum); err != nil {
			return err
		}
	} else {
		writeText(out, sum)
	}
	code := sum.ExitCode()
	if runErr != nil && code == jobs.ExitOK {
		code = jobs.ExitFailed
	}
	if code != jobs.ExitOK {
		msg := fmt.Sprintf("%s: %d failed", name, sum.Failed)
		if sum.Aborted {
			msg = sum.AbortReason
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
