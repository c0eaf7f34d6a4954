package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/config"
	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/auth"
	"github.com/exo-worker/worker/internal/graph"
	"github.com/exo-worker/worker/internal/mx"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/jobs"
)

// configPath picks the config file: the flag, then WORKER_CONFIG.
func configPath(flag string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv("WORKER_CONFIG")
}

// loadConfig reads and validates the configuration; every problem is a usage error (exit 1).
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		return nil, withCode(jobs.ExitUsage, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, withCode(jobs.ExitUsage, err)
	}
	return cfg, nil
}

// newRegistry builds the job library from the configuration.
func newRegistry(cfg *config.Config) (*jobs.Registry, error) {
	target := ""
	if jc, ok := cfg.Jobs[jobs.MEURichTextName]; ok {
		target = jc.Target
	}
	rt, err := jobs.NewMEURichText(target)
	if err != nil {
		return nil, withCode(jobs.ExitUsage, fmt.Errorf("jobs.%s.target: %w", jobs.MEURichTextName, err))
	}
	// The audits need no settings; they are always part of the library.
	return jobs.NewRegistry(append([]jobs.Job{rt}, jobs.Audits()...)...)
}

// newGraphClient wires credentials and the Graph client (the directory reader audits need) from the
// configuration.
func newGraphClient(cfg *config.Config, log *zap.Logger) (*graph.Client, error) {
	ep, err := cfg.Tenant.Resolve()
	if err != nil {
		return nil, withCode(jobs.ExitUsage, err)
	}
	hc, err := auth.HTTPClient(cfg)
	if err != nil {
		return nil, withCode(jobs.ExitUsage, err)
	}
	cred, err := auth.NewCredential(cfg, hc, log)
	if err != nil {
		return nil, withCode(jobs.ExitUsage, err)
	}
	c, err := graph.New(graph.Options{BaseURL: ep.GraphURL, Scopes: []string{ep.GraphScope}, Credential: cred,
		HTTPClient: hc, Logger: log.Named("graph")})
	if err != nil {
		return nil, withCode(jobs.ExitUsage, err)
	}
	return c, nil
}

// newDirectoryReader is what an executor running audits needs: Graph's view of the directory, with the MX
// records of the tenant's domains resolved through dnsServer ("" = the system resolver).
func newDirectoryReader(cfg *config.Config, log *zap.Logger, dnsServer string) (jobs.DirectoryReader, error) {
	gc, err := newGraphClient(cfg, log)
	if err != nil {
		return nil, err
	}
	return jobs.WithMX(gc, &mx.Resolver{Server: dnsServer}), nil
}

// newEXOClient wires credentials and the admin API client from the configuration.
func newEXOClient(cfg *config.Config, log *zap.Logger) (*exo.Client, error) {
	ep, err := cfg.Tenant.Resolve()
	if err != nil {
		return nil, withCode(jobs.ExitUsage, err)
	}
	hc, err := auth.HTTPClient(cfg)
	if err != nil {
		return nil, withCode(jobs.ExitUsage, err)
	}
	cred, err := auth.NewCredential(cfg, hc, log)
	if err != nil {
		return nil, withCode(jobs.ExitUsage, err)
	}
	return exo.New(exo.Options{
		BaseURL:           ep.ExchangeURL,
		Tenant:            cfg.Tenant.ID,
		Credential:        cred,
		Scope:             ep.ExchangeScope,
		HTTPClient:        hc,
		MaxConcurrency:    cfg.EXO.MaxConcurrency,
		RequestsPerSecond: cfg.EXO.RequestsPerSecond,
		MaxRetries:        cfg.EXO.MaxRetries,
		PageSize:          cfg.EXO.PageSize,
		Logger:            log.Named("exo"),
	})
}

// simConfigYAML is the configuration that points the worker at a running simulated tenant. It is written
// as YAML and read back through config.Load, so `--sim` exercises the same path as a real tenant.
func simConfigYAML(s *sim.Server) string {
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
`, s.URL, s.Creds.TenantID, s.URL, s.URL, s.URL, s.CAFile, s.Creds.ClientID, s.Creds.SecretFile,
		filepath.Join(s.Dir, "worker.db"))
	return b.String()
}

// writeSimConfig writes simConfigYAML to path with owner-only permissions.
func writeSimConfig(s *sim.Server, path string) error {
	if err := os.WriteFile(path, []byte(simConfigYAML(s)), 0o600); err != nil {
		return fmt.Errorf("write simulator config: %w", err)
	}
	return nil
}
