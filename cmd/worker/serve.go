package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/exo-worker/worker/config"
	"github.com/exo-worker/worker/internal/daemon"
	"github.com/exo-worker/worker/internal/metrics"
	"github.com/exo-worker/worker/internal/server"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/executor"
)

type serveFlags struct {
	sim        bool
	simDir     string
	schedules  []string
	runAtStart bool
	grace      time.Duration
	leaseTTL   time.Duration
	listen     string
	chunkSize  int
	onSync     []string
	syncPoll   time.Duration
}

func newServeCmd(g *globals) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run as a daemon: jobs on their schedules, alert-triggered reruns, HTTP API, status page and metrics",
		Long: `Run the worker as a daemon. Every job with jobs.<job>.schedule (cron: 5 fields, or 6 with seconds first,
an optional CRON_TZ= prefix, or @hourly / @every 30m) runs on it; the HTTP server (server.listen, loopback by
default) answers /healthz, /readyz and /metrics, and, with the token in server.token_file, the run API, the
alert webhooks (triggers: in the config) and a status page at /.

Every write is journalled before it is sent. Several daemons may share one database (store.path): a job runs
once per schedule tick, never twice at once. On SIGTERM or SIGINT the daemon stops scheduling, lets writes in
flight finish (at most --grace), records unfinished runs as interrupted and exits 0. After a crash the next
start marks the dead process's runs interrupted and reconciles their pending writes by reading the objects.

With --sim a simulated tenant starts in-process; its configuration, CA and a generated server token are
written to the simulator's directory (the paths are printed, never the token).`,
		Example: `  worker serve --config /etc/exo-worker/worker.yaml
  worker serve --sim --schedule 'meu-richtext=*/30 * * * * *' --run-at-start --listen 127.0.0.1:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return serve(cmd, g, f) },
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.sim, "sim", false, "start a simulated tenant in-process and serve against it")
	fl.StringVar(&f.simDir, "sim-dir", "", "with --sim: directory for the simulator's CA, credentials, configuration, token and database (default: a temporary directory, removed at exit)")
	fl.StringArrayVar(&f.schedules, "schedule", nil, "JOB=SPEC: run JOB on this cron schedule, overriding jobs.JOB.schedule (repeatable; an empty SPEC unschedules)")
	fl.BoolVar(&f.runAtStart, "run-at-start", false, "run every scheduled job once at start instead of waiting for its first tick")
	fl.DurationVar(&f.grace, "grace", 30*time.Second, "on SIGTERM/SIGINT, how long writes in flight may take before runs are recorded as interrupted")
	fl.DurationVar(&f.leaseTTL, "lease-ttl", 30*time.Second, "how long a job lease outlives a crashed daemon before another daemon takes the job over")
	fl.StringVar(&f.listen, "listen", "", "HTTP listen address, overriding server.listen (port 0 picks a free port; the address is printed)")
	fl.IntVar(&f.chunkSize, "chunk-size", 100, "changes journalled and sent together before the circuit breaker looks again")
	fl.StringArrayVar(&f.onSync, "on-sync", nil, "JOB: run JOB as soon as a directory sync cycle finishes, like jobs.JOB.on_sync (repeatable)")
	fl.DurationVar(&f.syncPoll, "sync-poll", daemon.DefaultSyncPoll, "how often on-sync jobs ask Graph whether a sync cycle finished")
	return cmd
}

func serve(cmd *cobra.Command, g *globals, f *serveFlags) error {
	ctx, stopSignals := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	out := cmd.OutOrStdout()

	if f.simDir != "" && !f.sim {
		return withCode(executor.ExitUsage, errors.New("--sim-dir needs --sim"))
	}
	su, err := loadSetup(g, f.sim, simSetup{dir: f.simDir, extra: serveSimSection})
	if err != nil {
		return err
	}
	defer su.close()
	if su.sim != nil {
		fmt.Fprintf(out, "simulated tenant at %s\nconfiguration: %s\nserver token file: %s\n", su.sim.srv.URL, su.sim.config, filepath.Join(su.sim.srv.Dir, "server-token"))
	}
	cfg, reg := su.cfg, su.reg
	if err := applyScheduleFlags(cfg, reg, f.schedules); err != nil {
		return withCode(executor.ExitUsage, err)
	}
	for _, name := range f.onSync {
		e, err := reg.Entry(name)
		if err != nil {
			return withCode(executor.ExitUsage, fmt.Errorf("--on-sync %s: %w", name, err))
		}
		if !e.Configured {
			return withCode(executor.ExitUsage, fmt.Errorf("--on-sync %s: job %s is not configured; add jobs.%s to the configuration (its mode and blast radius) to let the daemon run it", name, name, name))
		}
		e.Config.Common().OnSync = true
	}
	if f.syncPoll <= 0 {
		return withCode(executor.ExitUsage, errors.New("--sync-poll must be positive, e.g. 1m"))
	}
	if f.listen != "" {
		cfg.Server.Listen = f.listen
	}
	specs := jobSpecs(reg)

	st, err := openConfiguredStore(ctx, cfg)
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	defer func() { _ = st.Close() }()
	m := metrics.New(metrics.Options{})
	conn, err := connect(cfg, g.log, m)
	if err != nil {
		return err
	}
	conn.state = st // the directory and its delta links live in the store between runs
	client, err := conn.exo()
	if err != nil {
		return err
	}
	ex := &executor.Executor{Client: client, Log: g.log.Named("executor"), ChunkSize: f.chunkSize,
		Journal: daemon.NewJournal(st), Exceptions: configExceptions(cfg), State: st, FullReadEvery: cfg.EXO.FullReadInterval()}
	// Audits read Graph; building the reader makes no request, so it is wired whether or not one is scheduled
	// (any job can be triggered through the API).
	if ex.Directory, err = conn.directory(); err != nil {
		return err
	}
	if err := conn.graphExecutor(ex); err != nil {
		return err
	}
	// With PostgreSQL, runs are River jobs shared by every replica; with SQLite they are dispatched here.
	var fleet *daemon.RiverFleet
	if pg, ok := st.(*store.Postgres); ok {
		if fleet, err = daemon.NewRiverFleet(pg, daemon.RiverOptions{Owner: store.DefaultOwner(),
			Heartbeat: f.leaseTTL, Log: g.log}); err != nil {
			return withCode(executor.ExitUsage, err)
		}
	}
	gc, err := conn.graph() // the on-sync trigger's sync clock
	if err != nil {
		return err
	}
	d, err := daemon.New(daemon.Options{Store: st, Executor: ex, Jobs: specs, Library: reg, Metrics: m, Log: g.log.Named("daemon"),
		LeaseTTL: f.leaseTTL, Grace: f.grace, RunAtStart: f.runAtStart, River: fleet, SyncClock: gc, SyncPoll: f.syncPoll,
		Retention: retention(cfg.Retention)})
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}

	var token []byte
	if cfg.Server.TokenFile != "" {
		if token, err = server.ReadTokenFile(cfg.Server.TokenFile); err != nil {
			return withCode(executor.ExitUsage, err)
		}
	}
	httpSrv, err := server.New(server.Options{
		Listen:                    cfg.Server.Listen,
		TLSCertFile:               cfg.Server.TLSCertFile,
		TLSKeyFile:                cfg.Server.TLSKeyFile,
		AllowPlaintextNonLoopback: cfg.Server.AllowPlaintextNonLoopback,
		Token:                     token,
		Triggers:                  configTriggers(cfg),
		Logger:                    g.log,
		Runner:                    d,
		Runs:                      st,
		Ready: server.Checks{
			"store":     st.Ping,
			"exo-token": conn.tokenCheck,
		},
		Metrics:       m,
		ShutdownGrace: 2 * time.Second,
	})
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Server.Listen)
	if err != nil {
		return withCode(executor.ExitUsage, fmt.Errorf("listen on %s (server.listen): %w", cfg.Server.Listen, err))
	}
	if err := d.Start(ctx); err != nil {
		_ = ln.Close()
		return withCode(executor.ExitFailed, err)
	}
	if fleet != nil {
		if err := fleet.Start(ctx); err != nil {
			_ = ln.Close()
			d.Stop()
			if errors.Is(err, store.ErrSchemaTooOld) || errors.Is(err, store.ErrSchemaTooNew) {
				return withCode(executor.ExitUsage, err)
			}
			return withCode(executor.ExitFailed, err)
		}
	}
	srvCtx, stopServer := context.WithCancel(context.Background())
	defer stopServer()
	srvErr := make(chan error, 1)
	go func() { srvErr <- httpSrv.ServeListener(srvCtx, ln) }()
	scheme := "http"
	if cfg.Server.TLSCertFile != "" {
		scheme = "https"
	}
	fmt.Fprintf(out, "serving %s://%s (status page, API, /metrics); owner %s\n", scheme, ln.Addr(), d.Owner())

	var failed error
	select {
	case <-ctx.Done():
		g.log.Info("signal received: stopping", zap.Duration("grace", f.grace))
	case err := <-srvErr:
		failed = err
		g.log.Error("http server stopped; stopping the daemon", zap.Error(err))
	}
	stopSignals() // a second Ctrl-C kills at once
	if fleet != nil {
		// Hand runs back to the fleet: in-flight writes finish and are journalled, then the jobs return to
		// the queue for another replica.
		sctx, cancel := context.WithTimeout(context.Background(), f.grace)
		fleet.Stop(sctx)
		cancel()
	}
	d.Stop()
	stopServer()
	if failed == nil {
		if err := <-srvErr; err != nil {
			g.log.Warn("http server shutdown", zap.Error(err))
		}
		return nil
	}
	return withCode(executor.ExitFailed, failed)
}

// serveSimSection is the part of the simulator's configuration only the daemon needs: a server token and a
// sample alert trigger, so the API, webhooks and status page work against the simulator out of the box.
func serveSimSection(s *sim.Server) (string, error) {
	tokenFile := filepath.Join(s.Dir, "server-token")
	if _, err := os.Stat(tokenFile); errors.Is(err, os.ErrNotExist) {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		if err := os.WriteFile(tokenFile, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write server token: %w", err)
		}
	}
	return fmt.Sprintf(`server:
  token_file: %s
triggers:
  # An Alertmanager alert named MEURichTextDrift reruns meu-richtext on the object ids in its object_ids label
  # (comma-separated); without the label, on the job's whole scope.
  - source: alertmanager
    match: {alertname: MEURichTextDrift}
    job: meu-richtext
    object_label: object_ids
`, tokenFile), nil
}

func applyScheduleFlags(cfg *config.Config, reg *jobs.Registry, flags []string) error {
	for _, fl := range flags {
		name, spec, ok := strings.Cut(fl, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return fmt.Errorf("--schedule %q: write JOB=SPEC, e.g. --schedule 'meu-richtext=*/30 * * * *'", fl)
		}
		e, err := reg.Entry(name)
		if err != nil {
			return fmt.Errorf("--schedule %q: %w", fl, err)
		}
		if !e.Configured {
			return fmt.Errorf("--schedule %q: job %s is not configured; add jobs.%s to the configuration (its mode and blast radius) to let the daemon run it", fl, name, name)
		}
		if spec = strings.TrimSpace(spec); spec != "" {
			if _, err := daemon.ParseSchedule(name, spec); err != nil {
				return fmt.Errorf("--schedule: %w", err)
			}
		}
		e.Config.Common().Schedule = spec
	}
	return nil
}

// jobSpecs are the jobs the configuration names, with their schedules and safety settings: the daemon
// schedules them and lets its API and webhooks start them, and no other job.
func jobSpecs(reg *jobs.Registry) []daemon.JobSpec {
	var specs []daemon.JobSpec
	for _, e := range reg.Configured() {
		specs = append(specs, daemon.JobSpec{Job: e.Job, Schedule: e.Settings().Schedule, OnSync: e.Settings().OnSync, Options: jobOptions(e)})
	}
	return specs
}

// configTriggers converts the triggers: section for the HTTP server.
func configTriggers(cfg *config.Config) []server.TriggerRule {
	out := make([]server.TriggerRule, len(cfg.Triggers))
	for i, t := range cfg.Triggers {
		out[i] = server.TriggerRule{Source: t.Source, Match: t.Match, Job: t.Job, ObjectLabel: t.ObjectLabel}
	}
	return out
}

// observed wraps hc's transport so that each request is counted by service: exo for the admin API, graph,
// token for everything else (the authority). Only the service and status become labels.
func observed(hc *http.Client, ep config.Endpoints, m *metrics.Metrics) *http.Client {
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c := *hc
	c.Transport = observingTransport{next: rt, m: m, exoHost: hostOf(ep.ExchangeURL), graphHost: hostOf(ep.GraphURL)}
	return &c
}

type observingTransport struct {
	next               http.RoundTripper
	m                  *metrics.Metrics
	exoHost, graphHost string
}

func (t observingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	service := metrics.ServiceToken
	switch {
	case strings.Contains(r.URL.Path, "/adminapi/") && strings.EqualFold(r.URL.Host, t.exoHost):
		service = metrics.ServiceEXO
	case strings.EqualFold(r.URL.Host, t.graphHost) && !strings.Contains(r.URL.Path, "/oauth2/"):
		service = metrics.ServiceGraph
	}
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	t.m.ObserveAPI(service, status, time.Since(start))
	return resp, err
}

func hostOf(u string) string {
	u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	host, _, _ := strings.Cut(u, "/")
	return host
}

// retention converts retention: (days) for the daemon.
func retention(r config.Retention) daemon.Retention {
	day := 24 * time.Hour
	return daemon.Retention{Runs: time.Duration(r.RunsDays) * day, Journal: time.Duration(r.JournalDays) * day,
		ResolvedFindings: time.Duration(r.ResolvedFindingsDays) * day}
}
