package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.uber.org/zap"

	"github.com/exo-worker/worker/config"
	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/auth"
	"github.com/exo-worker/worker/internal/graph"
	"github.com/exo-worker/worker/internal/metrics"
	"github.com/exo-worker/worker/internal/mx"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/audit"
	"github.com/exo-worker/worker/jobs/executor"
	"github.com/exo-worker/worker/jobs/library"
)

// configPath picks the config file: the flag, then WORKER_CONFIG.
func configPath(flag string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv("WORKER_CONFIG")
}

// loadConfig reads and validates the configuration; every problem is a usage error (exit 1). The logger
// takes log.level from it from then on.
func loadConfig(g *globals, path string) (*config.Config, error) {
	lib, err := jobLibrary()
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(path, os.Environ(), lib)
	if err != nil {
		return nil, withCode(executor.ExitUsage, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, withCode(executor.ExitUsage, err)
	}
	g.applyConfigLevel(cfg)
	return cfg, nil
}

// jobLibrary is every job the worker knows (jobs/library), registered: a job whose declaration the executor
// could not run stops the worker at start, naming the job and why.
func jobLibrary() (*jobs.Library, error) {
	lib, err := library.New()
	if err != nil {
		return nil, withCode(executor.ExitUsage, err)
	}
	return lib, nil
}

// newRegistry builds every job of the library: the ones the configuration names from their configuration,
// the others from their defaults (only a person running them once may use those).
func newRegistry(cfg *config.Config) (*jobs.Registry, error) {
	lib, err := jobLibrary()
	if err != nil {
		return nil, err
	}
	reg, err := lib.Registry(cfg.Jobs)
	if err != nil {
		return nil, withCode(executor.ExitUsage, err)
	}
	return reg, nil
}

// tenantConn is what every command needs to talk to one tenant: the resolved endpoints, an HTTP client that
// trusts tenant.ca_file (and counts requests in the metrics when there are any), and one credential that
// both the EXO and the Graph client use, so a token is fetched once per resource.
type tenantConn struct {
	cfg  *config.Config
	ep   config.Endpoints
	hc   *http.Client
	cred azcore.TokenCredential
	log  *zap.Logger
	gc   *graph.Client // built on first use
	// state, when set before the Graph client is built, keeps the directory and its delta links (the
	// worker's store), so every process after the first reads only what changed; nil lists it each time.
	state graph.StateStore
}

// connect builds the tenant connection from the configuration; m may be nil (no metrics).
func connect(cfg *config.Config, log *zap.Logger, m *metrics.Metrics) (*tenantConn, error) {
	ep, err := cfg.Tenant.Resolve()
	if err != nil {
		return nil, withCode(executor.ExitUsage, err)
	}
	hc, err := auth.HTTPClient(cfg)
	if err != nil {
		return nil, withCode(executor.ExitUsage, err)
	}
	if m != nil {
		hc = observed(hc, ep, m)
	}
	cred, err := auth.NewCredential(cfg, hc, log)
	if err != nil {
		return nil, withCode(executor.ExitUsage, err)
	}
	return &tenantConn{cfg: cfg, ep: ep, hc: hc, cred: cred, log: log}, nil
}

// exo returns the Exchange Online admin API client.
func (t *tenantConn) exo() (*exo.Client, error) {
	c, err := exo.New(exo.Options{
		BaseURL:           t.ep.ExchangeURL,
		Tenant:            t.cfg.Tenant.ID,
		Credential:        t.cred,
		Scope:             t.ep.ExchangeScope,
		HTTPClient:        t.hc,
		MaxConcurrency:    t.cfg.EXO.MaxConcurrency,
		RequestsPerSecond: t.cfg.EXO.RequestsPerSecond,
		MaxRetries:        t.cfg.EXO.MaxRetries,
		PageSize:          t.cfg.EXO.PageSize,
		Logger:            t.log.Named("exo"),
	})
	if err != nil {
		return nil, withCode(executor.ExitUsage, err)
	}
	return c, nil
}

// graph returns the tenant's one Graph client (built on first use; building it sends no request): the
// directory reads of audits and the Graph writes of remediation jobs share its token and throttle state.
func (t *tenantConn) graph() (*graph.Client, error) {
	if t.gc != nil {
		return t.gc, nil
	}
	gc, err := graph.New(graph.Options{BaseURL: t.ep.GraphURL, Scopes: []string{t.ep.GraphScope}, Credential: t.cred,
		HTTPClient: t.hc, Logger: t.log.Named("graph"), State: t.state})
	if err != nil {
		return nil, withCode(executor.ExitUsage, err)
	}
	t.gc = gc
	return gc, nil
}

// directory is what an executor running audits needs: Graph's view of the directory, with the MX records of
// the tenant's domains resolved through tenant.dns_server (empty: the system resolver). Building it sends
// no request.
func (t *tenantConn) directory() (jobs.DirectoryReader, error) {
	gc, err := t.graph()
	if err != nil {
		return nil, err
	}
	return audit.WithMX(gc, &mx.Resolver{Server: t.cfg.Tenant.DNSServer}), nil
}

// graphExecutor gives ex what Graph-writing jobs (mailbox-license) need: the Graph client as its writer.
func (t *tenantConn) graphExecutor(ex *executor.Executor) error {
	gc, err := t.graph()
	if err != nil {
		return err
	}
	ex.Graph = gc
	return nil
}

// tokenCheck asks for an EXO token: the readiness probe of the daemon.
func (t *tenantConn) tokenCheck(ctx context.Context) error {
	_, err := t.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{t.ep.ExchangeScope}})
	return err
}

// newEXOClient is connect + exo for callers that need nothing else.
func newEXOClient(cfg *config.Config, log *zap.Logger) (*exo.Client, error) {
	t, err := connect(cfg, log, nil)
	if err != nil {
		return nil, err
	}
	return t.exo()
}

// jobOptions are a job's mode and blast radius: its effective settings (jobs.<job>, or the job's defaults).
func jobOptions(e *jobs.Entry) executor.Options {
	st := e.Settings()
	return executor.Options{Mode: st.Mode, MaxChanges: st.MaxChanges, MaxChangePercent: st.MaxChangePercent,
		JobConfigPath: "jobs." + e.Job.Name()}
}

// configExceptions converts the exceptions: section for the executor.
func configExceptions(cfg *config.Config) []executor.Exception {
	out := make([]executor.Exception, len(cfg.Exceptions))
	for i, x := range cfg.Exceptions {
		out[i] = executor.Exception{Object: x.Object, Jobs: x.Jobs, Owner: x.Owner, Reason: x.Reason,
			Expires: x.Expires.Time, ConfigPath: fmt.Sprintf("exceptions[%d]", i)}
	}
	return out
}

// simTenant is a simulated tenant with its own DNS server (for the audits' MX lookups), and the worker
// configuration that points at both. `run --sim`, `report --sim` and `serve --sim` all start one.
type simTenant struct {
	srv    *sim.Server
	dns    *mx.Server
	config string // path of the written worker.yaml
	ownDir bool   // remove the directory on Close
}

// simSetup says how to start a simTenant. The zero value is the embedded default: the default scenario with
// its seeded audit defects, in a temporary directory removed on Close.
type simSetup struct {
	dir      string
	listen   string
	scenario *sim.Scenario
	faults   sim.Faults
	encoding string
	// extra, if set, returns YAML appended to the configuration (serve adds its server section).
	extra func(*sim.Server) (string, error)
}

func startSimTenant(o simSetup) (*simTenant, error) {
	st := &simTenant{}
	if o.dir == "" {
		d, err := os.MkdirTemp("", "exo-sim-")
		if err != nil {
			return nil, withCode(executor.ExitUsage, err)
		}
		o.dir, st.ownDir = d, true
	}
	sc := o.scenario
	if sc == nil {
		d := sim.DefaultScenario()
		defects := sim.DefaultDefects()
		d.Defects = &defects
		licensing := sim.DefaultLicensing()
		d.Licensing = &licensing
		sc = &d
	}
	srv, err := sim.Start(sim.Options{Dir: o.dir, Listen: o.listen, Scenario: sc, Faults: o.faults, DetailEncoding: o.encoding})
	if err != nil {
		st.Close()
		return nil, withCode(executor.ExitUsage, fmt.Errorf("start simulated tenant: %w", err))
	}
	st.srv = srv
	// The simulated domains resolve through a DNS server of their own on loopback, so the MX checks run the
	// same code as against a real tenant without touching the network.
	if st.dns, err = mx.Serve(mx.Zone{MX: srv.Tenant().MXRecords()}); err != nil {
		st.Close()
		return nil, withCode(executor.ExitUsage, fmt.Errorf("start the simulated DNS server: %w", err))
	}
	yaml := simConfigYAML(srv, st.dns.Addr())
	if o.extra != nil {
		more, err := o.extra(srv)
		if err != nil {
			st.Close()
			return nil, withCode(executor.ExitUsage, err)
		}
		yaml += more
	}
	st.config = filepath.Join(srv.Dir, "worker.yaml")
	if err := os.WriteFile(st.config, []byte(yaml), 0o600); err != nil {
		st.Close()
		return nil, withCode(executor.ExitUsage, fmt.Errorf("write simulator config: %w", err))
	}
	return st, nil
}

// Close stops the simulator and its DNS server, and removes a temporary directory.
func (t *simTenant) Close() {
	if t.dns != nil {
		_ = t.dns.Close()
	}
	if t.srv != nil {
		_ = t.srv.Close()
		if t.ownDir {
			_ = os.RemoveAll(t.srv.Dir)
		}
	}
}

// setup is what a command that runs jobs starts from: the validated configuration, the job library built
// from it, and with --sim the simulated tenant it points at (closed by close).
type setup struct {
	cfg *config.Config
	reg *jobs.Registry
	sim *simTenant // nil without --sim
}

func (s *setup) close() {
	if s.sim != nil {
		s.sim.Close()
	}
}

// loadSetup reads --config (or WORKER_CONFIG), or with --sim starts a simulated tenant and reads the
// configuration written for it; then validates it and builds the job library.
func loadSetup(g *globals, useSim bool, o simSetup) (*setup, error) {
	path := configPath(g.configFile)
	s := &setup{}
	switch {
	case useSim && path != "":
		return nil, withCode(executor.ExitUsage, errors.New("--sim and --config exclude each other: --sim writes its own configuration"))
	case useSim:
		st, err := startSimTenant(o)
		if err != nil {
			return nil, err
		}
		s.sim, path = st, st.config
		g.log.Info("simulated tenant started", zap.String("url", st.srv.URL), zap.String("tenant", st.srv.Creds.TenantDomain),
			zap.String("dns", st.dns.Addr()), zap.Int("seeded_defects", len(st.srv.Tenant().GroundTruth())))
	case path == "":
		return nil, withCode(executor.ExitUsage, errors.New("no configuration: pass --config FILE (or set WORKER_CONFIG), or try --sim"))
	}
	var err error
	if s.cfg, err = loadConfig(g, path); err == nil {
		s.reg, err = newRegistry(s.cfg)
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// simConfigYAML is the configuration that points the worker at a running simulated tenant. It is written
// as YAML and read back through config.Load, so `--sim` exercises the same path as a real tenant.
func simConfigYAML(s *sim.Server, dnsServer string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by "worker sim serve": points the worker at the simulated tenant at %s.
# Nothing here reaches Microsoft: authority, Graph and Exchange endpoints are all the simulator.
tenant:
  id: %s
  cloud: global
  endpoints:
    authority: %s
    graph: %s
    exchange: %s
  ca_file: %s
  dns_server: %s
auth:
  method: secret
  client_id: %s
  client_secret_file: %s
store:
  path: %s
jobs:
  meu-richtext:
    mode: remediate
    target: Never
    # The simulated tenant is a playground: its first run changes most mail users, as a real first run does.
    # On a real tenant keep the defaults, review with --dry-run and lift the limit with --force once.
    max_changes: 100000
    max_change_percent: 100
`, s.URL, s.Creds.TenantID, s.URL, s.URL, s.URL, s.CAFile, dnsServer, s.Creds.ClientID, s.Creds.SecretFile,
		filepath.Join(s.Dir, "worker.db"))
	if g, ok := s.Tenant().LicensingGroup(); ok {
		fmt.Fprintf(&b, `  mailbox-license:
    mode: remediate
    group_id: %s   # %s: group-based licensing with Exchange Online (Plan 1)
    max_changes: 100000
    max_change_percent: 100
`, g.ID, g.DisplayName)
	}
	return b.String()
}
