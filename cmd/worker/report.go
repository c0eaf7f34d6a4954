package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/daemon"
	"github.com/exo-worker/worker/internal/report"
	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/audit"
	"github.com/exo-worker/worker/jobs/executor"
)

type reportFlags struct {
	sim        bool
	jobs       []string
	format     string
	out        string
	dnsServer  string
	failOn     string
	noProgress bool
}

func newReportCmd(g *globals) *cobra.Command {
	f := &reportFlags{}
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Audit what directory sync got wrong and write the findings with their on-premises fixes",
		Long: `Run the audits against the tenant in the configuration (or a simulated one with --sim) and write what
they found. Audits read Microsoft Graph and Exchange Online and change nothing; each finding names the
Active Directory attribute to fix and the value to set, because synced attributes cannot be fixed in the
cloud.

Formats:
  table  for a terminal (the default)
  json   one document, schema exo-worker/findings/v1
  csv    one row per finding, for a spreadsheet
  html   one self-contained page: summary, chart, a table to filter and sort
  ps1    a PowerShell script of Set-ADUser/Set-ADGroup/Set-ADObject commands, each with -WhatIf
  ldif   the same changes for ldifde -i

MX records of the tenant's domains are looked up (an MEU forwarding to a domain whose MX already points at
Exchange Online loops); tenant.dns_server or --dns-server asks a given DNS server instead of the system resolver.`,
		Example: `  worker report --sim --format html --out audit.html
  worker report --config worker.yaml --job meu-audit --job license-audit
  worker report --config worker.yaml --format ps1 --out fixes.ps1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReport(cmd, g, f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.sim, "sim", false, "start a simulated tenant with seeded defects in-process and audit it")
	fl.StringArrayVar(&f.jobs, "job", nil, "audit to run (repeatable; default: every audit, see `worker jobs`)")
	fl.StringVar(&f.format, "format", "table", "output format: table, json, csv, html, ps1, ldif")
	fl.StringVarP(&f.out, "out", "o", "", "write to FILE instead of stdout")
	fl.StringVar(&f.dnsServer, "dns-server", "", "DNS server (host:port) for MX lookups instead of the system resolver")
	fl.StringVar(&f.failOn, "fail-on", "", "exit 2 when a finding of this severity or worse is found: high, medium, low, info")
	fl.BoolVar(&f.noProgress, "no-progress", false, "do not draw a progress line on a terminal")
	return cmd
}

func runReport(cmd *cobra.Command, g *globals, f *reportFlags) error {
	format, err := report.ParseFormat(f.format)
	if err != nil {
		return withCode(executor.ExitUsage, fmt.Errorf("--format: %w", err))
	}
	failRank := -1
	if f.failOn != "" {
		sev := jobs.Severity(strings.ToLower(f.failOn))
		if failRank = jobs.SeverityRank(sev); failRank > 3 {
			return withCode(executor.ExitUsage, fmt.Errorf("--fail-on %q: use high, medium, low or info", f.failOn))
		}
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	su, err := loadSetup(g, f.sim, simSetup{})
	if err != nil {
		return err
	}
	defer su.close()
	cfg, reg := su.cfg, su.reg
	audits, err := selectAudits(reg, f.jobs)
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	suite, err := audit.NewSuite("report", audits...)
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	if f.dnsServer != "" {
		cfg.Tenant.DNSServer = f.dnsServer
	}
	// A report is a run like any other: recorded in the store (`worker history` lists it) with its findings
	// kept in the findings history under the audit that reported each; the store also keeps the directory
	// between runs, so a report after the first reads only what changed.
	st, err := openConfiguredStore(ctx, cfg)
	if err != nil {
		return withCode(executor.ExitUsage, fmt.Errorf("%s: %w", storeField(cfg), err))
	}
	defer func() { _ = st.Close() }()
	conn, err := connect(cfg, g.log, nil)
	if err != nil {
		return err
	}
	conn.state = st
	client, err := conn.exo()
	if err != nil {
		return err
	}
	dir, err := conn.directory()
	if err != nil {
		return err
	}
	ex := &executor.Executor{Client: client, Directory: dir, Log: g.log, Exceptions: configExceptions(cfg),
		State: st, FullReadEvery: cfg.EXO.FullReadInterval()}
	if !f.noProgress && isTerminal(os.Stderr) {
		ex.Progress = newLineProgress(os.Stderr)
	}
	fleet, err := cliFleet(st, g.log)
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	d, err := daemon.New(daemon.Options{Store: st, Executor: ex, Library: reg, Log: g.log.Named("report"), River: fleet})
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	// Through the executor in report mode, so exceptions hide the findings of excepted objects as they do
	// in scheduled audits; nothing is written.
	rec, sum, err := d.RunNow(ctx, suite, executor.Options{Mode: jobs.ModeReport}, "", store.TriggerCLI)
	if sum == nil || err != nil {
		if err == nil {
			err = errors.New("the report run did not start")
		}
		return withCode(executor.ExitFailed, err)
	}
	for _, w := range sum.Warnings {
		fmt.Fprintln(cmd.ErrOrStderr(), "note:", w)
	}
	names := make([]string, len(audits))
	for i, a := range audits {
		names[i] = a.Name()
	}
	rep := &report.Report{Tenant: cfg.Tenant.ID, Generated: sum.Started, Jobs: names, Findings: sum.Findings}
	if err := writeReport(cmd.OutOrStdout(), f.out, format, rep); err != nil {
		return withCode(executor.ExitFailed, err)
	}
	g.log.Info("audited", zap.String("run", rec.ID), zap.Strings("jobs", names), zap.Int("in_scope", sum.InScope),
		zap.Int("findings", len(sum.Findings)))
	if failRank >= 0 {
		for _, fd := range sum.Findings {
			if jobs.SeverityRank(fd.Severity) <= failRank {
				return withCode(executor.ExitFailed, fmt.Errorf("%d finding(s); at least one is %s or worse (--fail-on)", len(sum.Findings), f.failOn))
			}
		}
	}
	return nil
}

// selectAudits returns the named audits, or every audit of the library when none is named.
func selectAudits(reg *jobs.Registry, names []string) ([]jobs.Job, error) {
	var all []jobs.Job
	var allNames []string
	for _, j := range reg.All() {
		if j.Describe().Kind == jobs.KindAudit {
			all = append(all, j)
			allNames = append(allNames, j.Name())
		}
	}
	if len(names) == 0 {
		return all, nil
	}
	var out []jobs.Job
	for _, n := range names {
		j, err := reg.Get(n)
		if err != nil {
			return nil, fmt.Errorf("--job: %w", err)
		}
		if j.Describe().Kind != jobs.KindAudit {
			return nil, fmt.Errorf("--job %s: it is a %s job, not an audit; audits are %s (run %s with `worker run %s`)",
				n, j.Describe().Kind, strings.Join(allNames, ", "), n, n)
		}
		out = append(out, j)
	}
	return out, nil
}

// writeReport writes to stdout, or to path through a temporary file renamed into place, so a failed write
// never leaves half a script behind. The file is owner-only: it lists directory data.
func writeReport(stdout io.Writer, path string, f report.Format, r *report.Report) error {
	if path == "" {
		return report.Write(stdout, f, r)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := report.Write(tmp, f, r); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write report to %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write report to %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write report to %s: %w", path, err)
	}
	return nil
}
