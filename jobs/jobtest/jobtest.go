// Package jobtest helps test a job the way the worker runs it: against the simulated tenant (internal/sim)
// over HTTPS on 127.0.0.1, through the real exo client and a real azidentity credential. Nothing a job
// depends on is faked, so a test that passes here exercises the same requests a real tenant would get.
package jobtest

import (
	"testing"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/sim"
)

// StartSim starts a simulated tenant for the test (sc nil: the default scenario; f: the faults to inject)
// and returns it with an exo client pointed at it. Both are closed when the test ends. Assert on
// srv.Log (every request, one entry per $batch sub-request) and srv.Tenant() (the tenant's state).
func StartSim(t testing.TB, sc *sim.Scenario, f sim.Faults) (*sim.Server, *exo.Client) {
	t.Helper()
	srv, err := sim.Start(sim.Options{Dir: t.TempDir(), Scenario: sc, Faults: f})
	if err != nil {
		t.Fatalf("start sim: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cred, err := srv.Credential()
	if err != nil {
		t.Fatalf("sim credential: %v", err)
	}
	c, err := exo.New(exo.Options{
		BaseURL:    srv.URL,
		Tenant:     srv.Creds.TenantID,
		Credential: cred,
		Scope:      "https://outlook.office365.com/.default",
		HTTPClient: srv.HTTPClient(),
	})
	if err != nil {
		t.Fatalf("exo client: %v", err)
	}
	return srv, c
}
