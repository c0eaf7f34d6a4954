package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/jobs/executor"
)

type simFlags struct {
	listen      string
	dir         string
	writeConfig string
	scenario    sim.Scenario
	faults      sim.Faults
	encoding    string
	defects     bool
	licensing   bool
}

func newSimCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "The simulated tenant: Entra, Exchange Online admin API and Graph over HTTPS",
	}
	f := &simFlags{scenario: sim.DefaultScenario()}
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve a simulated staged-migration tenant until interrupted",
		Long: `Serve a simulated tenant on loopback over HTTPS, with its own CA, seeded by a deterministic scenario:
migrated mailboxes, directory-synced mail users with a mix of UseMapiRichTextFormat values, cloud-only mail
users, guests, contacts and groups. It prints (or writes with --write-config) a worker configuration that
points at it, CA included, so other worker commands can run against it:

  worker sim serve --write-config sim.yaml &
  worker run meu-richtext --config sim.yaml --dry-run
  worker run mailbox-license --config sim.yaml --dry-run

Fault injection (--rtt, --throttle, --error-rate, ...) turns it into a test bench for throttling and retries.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sc := f.scenario
			if f.defects {
				d := sim.DefaultDefects()
				sc.Defects = &d
			}
			if f.licensing {
				l := sim.DefaultLicensing()
				sc.Licensing = &l
			}
			st, err := startSimTenant(simSetup{dir: f.dir, listen: f.listen, scenario: &sc, faults: f.faults, encoding: f.encoding})
			if err != nil {
				return err
			}
			defer st.Close()
			srv := st.srv
			yaml, err := os.ReadFile(st.config)
			if err != nil {
				return withCode(executor.ExitUsage, err)
			}
			if f.writeConfig != "" {
				if err := os.WriteFile(f.writeConfig, yaml, 0o600); err != nil {
					return withCode(executor.ExitUsage, fmt.Errorf("--write-config: %w", err))
				}
				fmt.Fprintf(cmd.OutOrStdout(), "simulated tenant at %s; configuration written to %s\n", srv.URL, f.writeConfig)
			} else {
				fmt.Fprint(cmd.OutOrStdout(), string(yaml))
			}
			g.log.Info("simulated tenant serving", zap.String("url", srv.URL), zap.String("ca_file", srv.CAFile),
				zap.String("tenant", srv.Creds.TenantDomain), zap.String("dns", st.dns.Addr()))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			g.log.Info("simulated tenant stopping", zap.Int("requests", len(srv.Log.Entries())))
			return nil
		},
	}
	fl := serve.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:0", "address to serve on (loopback; port 0 picks a free one)")
	fl.StringVar(&f.dir, "dir", "", "directory for the CA and credential files (default: a new temporary directory)")
	fl.StringVar(&f.writeConfig, "write-config", "", "write the worker configuration to FILE instead of printing it")
	fl.Int64Var(&f.scenario.Seed, "seed", f.scenario.Seed, "scenario seed (same seed, same tenant)")
	fl.IntVar(&f.scenario.DirSyncedMEUs, "meus", f.scenario.DirSyncedMEUs, "directory-synced mail users")
	fl.IntVar(&f.scenario.CloudMEUs, "cloud-meus", f.scenario.CloudMEUs, "cloud-only mail users")
	fl.IntVar(&f.scenario.Guests, "guests", f.scenario.Guests, "guest mail users")
	fl.IntVar(&f.scenario.Mailboxes, "mailboxes", f.scenario.Mailboxes, "migrated user mailboxes")
	fl.IntVar(&f.scenario.Contacts, "contacts", f.scenario.Contacts, "mail contacts")
	fl.IntVar(&f.scenario.Groups, "groups", f.scenario.Groups, "distribution groups")
	fl.DurationVar(&f.faults.RTT, "rtt", 0, "added round-trip time per request, e.g. 50ms")
	fl.Float64Var(&f.faults.ThrottleBudget, "throttle", 0, "requests per second before 429 + Retry-After (each $batch sub-request counts; 0 = off)")
	fl.Float64Var(&f.faults.ErrorRate, "error-rate", 0, "share of requests answered with a transient 5xx (0..1)")
	fl.Float64Var(&f.faults.ResetRate, "reset-rate", 0, "share of connections reset without an answer (0..1)")
	fl.Float64Var(&f.faults.TruncateRate, "truncate-rate", 0, "share of answers cut off half-way (0..1)")
	fl.DurationVar(&f.faults.StaleReads, "stale-reads", 0, "after a write, reads show the old value this long (replication lag), e.g. 2s")
	fl.StringVar(&f.encoding, "detail-encoding", "pipe", "error detail encoding: pipe, json, or auto (follow the request's X-ResponseFormat)")
	fl.BoolVar(&f.defects, "defects", false, "seed the audit defects and traps (users, licences, addresses, MX) into the scenario")
	fl.BoolVar(&f.licensing, "licensing", true, "seed a licensing group and migrated mailboxes with and without an Exchange licence (the mailbox-license job's work; its group_id goes into the configuration)")
	cmd.AddCommand(serve)
	return cmd
}
