package doctor

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/setup"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/library"
)

// setupIdentity runs worker setup's engine against the simulator (the admin signs in by device code) and
// returns the runner (for the admin's later changes) and a configuration for the identity it created.
func setupIdentity(t *testing.T, s *sim.Server) (*setup.Runner, string, setup.Desired) {
	t.Helper()
	ctx := context.Background()
	reg, err := library.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	req, err := setup.FromJobs(reg.All())
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(t.TempDir(), "exo-worker.pem")
	cert, err := setup.EnsureCertificate(pemFile, "exo-worker", time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	d, err := setup.NewDesired(s.Creds.TenantDomain, "exo-worker", req, cert.DER)
	if err != nil {
		t.Fatal(err)
	}
	cred := func(id, label string) azcore.TokenCredential {
		c, err := setup.DeviceCode(setup.SignInOptions{Tenant: s.Creds.TenantDomain, Authority: s.URL + "/", CustomAuthority: true,
			ClientID: id, HTTPClient: s.HTTPClient(), Label: label})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ec, err := exo.New(exo.Options{BaseURL: s.URL, Tenant: s.Creds.TenantDomain, Credential: cred(setup.DefaultExchangeClientID, "Exchange"),
		HTTPClient: s.HTTPClient(), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	rn := &setup.Runner{EXO: ec, Graph: &setup.Graph{BaseURL: s.URL, Scopes: setup.GraphScopes("https://graph.microsoft.com"),
		Credential: cred(setup.DefaultGraphClientID, "Graph"), HTTPClient: s.HTTPClient()}}
	o, err := rn.Apply(ctx, d)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	yaml := fmt.Sprintf(`tenant:
  id: %s
  endpoints: {authority: %s, graph: %s, exchange: %s}
  ca_file: %s
auth:
  method: certificate
  client_id: %s
  certificate_file: %s
store:
  path: %s
`, s.Creds.TenantID, s.URL, s.URL, s.URL, s.CAFile, o.AppID, pemFile, filepath.Join(s.Dir, "worker.db"))
	return rn, yaml, d
}

func admin(t *testing.T, rn *setup.Runner, name string, params map[string]any) {
	t.Helper()
	if _, err := rn.EXO.Invoke(context.Background(), exo.Command{Name: name, Params: params}); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestDoctorNamesEachSeededFailure seeds, one at a time, what goes wrong on real tenants — no consent, a
// role entry without the written parameter, a write scope too narrow, a skewed clock — on the identity
// worker setup made, and checks that doctor names each with the right check and fix.
func TestDoctorNamesEachSeededFailure(t *testing.T) {
	s := startSim(t)
	rn, yaml, d := setupIdentity(t, s)
	ctx := context.Background()
	// repair puts back what a subtest broke, with worker setup's own engine.
	repair := func(t *testing.T) {
		if _, err := rn.Apply(ctx, d); err != nil {
			t.Fatalf("repair: %v", err)
		}
	}

	healthy := Run(ctx, options(t, yaml))
	if !healthy.OK() || healthy.Count(Warn) > 0 {
		t.Fatalf("doctor on the identity setup made:\n%s", dump(healthy))
	}
	if r := statusOf(t, healthy, "exo write probe"); r.Status != Pass {
		t.Fatalf("write probe: %+v", r)
	}

	t.Run("missing role entry parameter", func(t *testing.T) {
		admin(t, rn, "Set-ManagementRoleEntry", map[string]any{"Identity": `exo-worker Mail Recipients\Set-MailUser`, "Parameters": []string{"Identity"}})
		defer repair(t)
		rep := Run(ctx, options(t, yaml))
		r := statusOf(t, rep, "exo write probe")
		if r.Status != Fail || !strings.Contains(r.Detail, "does not allow parameter UseMapiRichTextFormat") || !strings.Contains(r.Fix, "worker setup") {
			t.Errorf("%+v\n%s", r, dump(rep))
		}
	})
	t.Run("write scope too narrow", func(t *testing.T) {
		admin(t, rn, "Set-ManagementScope", map[string]any{"Identity": "exo-worker write scope", "RecipientRestrictionFilter": "RecipientTypeDetails -eq 'MailUser' -and Name -eq 'nobody'"})
		defer repair(t)
		rep := Run(ctx, options(t, yaml))
		if r := statusOf(t, rep, "exo read probe"); r.Status != Pass {
			t.Errorf("reads are not scoped: %+v", r)
		}
		r := statusOf(t, rep, "exo write probe")
		if r.Status != Fail || !strings.Contains(r.Detail, "outside the app's write scope") || !strings.Contains(r.Fix, "narrower") {
			t.Errorf("%+v", r)
		}
	})
	t.Run("cmdlet missing from the role", func(t *testing.T) {
		admin(t, rn, "Remove-ManagementRoleEntry", map[string]any{"Identity": `exo-worker Mail Recipients\Set-MailUser`})
		defer repair(t)
		rep := Run(ctx, options(t, yaml))
		r := statusOf(t, rep, "exo write probe")
		if r.Status != Fail || !strings.Contains(r.Detail, "do not include Set-MailUser") {
			t.Errorf("%+v", r)
		}
	})
	t.Run("no consent", func(t *testing.T) {
		// Take back every Graph grant, as an app registration whose consent was never given.
		rn2 := *rn
		rn2.DryRun = false
		reg, _ := library.Defaults()
		rt, _ := reg.Get("meu-richtext")
		only, _ := setup.FromJobs([]jobs.Job{rt}) // meu-richtext alone needs no Graph: setup revokes the Graph grants
		cert := mustCert(t, yaml)
		narrow, _ := setup.NewDesired(s.Creds.TenantDomain, "exo-worker", only, cert)
		if _, err := rn2.Apply(ctx, narrow); err != nil {
			t.Fatal(err)
		}
		rep := Run(ctx, options(t, yaml))
		r := statusOf(t, rep, "token graph")
		if r.Status != Fail || !strings.Contains(r.Detail, "lacks Microsoft Graph application permission") || !strings.Contains(r.Detail, "User.Read.All") ||
			!strings.Contains(r.Fix, "admin consent") {
			t.Errorf("%+v", r)
		}
		if g := statusOf(t, rep, "graph read probe"); g.Status != Fail || !strings.Contains(g.Detail, "403") {
			t.Errorf("graph probe: %+v", g)
		}
		if e := statusOf(t, rep, "token exchange"); e.Status != Pass {
			t.Errorf("exchange consent is still there: %+v", e)
		}
	})
	t.Run("skewed clock", func(t *testing.T) {
		s.SetClockOffset(-11 * time.Minute) // this host is 11 minutes ahead of Entra
		defer s.SetClockOffset(0)
		rep := Run(ctx, options(t, yaml))
		if r := statusOf(t, rep, "clock"); r.Status != Fail || !strings.Contains(r.Detail, "ahead of") {
			t.Errorf("clock: %+v", r)
		}
		r := statusOf(t, rep, "token exchange")
		if r.Status != Fail || !strings.Contains(r.Detail, "700024") || !strings.Contains(r.Fix, "clock") {
			t.Errorf("token: %+v", r)
		}
	})
}

// mustCert reads the certificate DER of the configuration's certificate_file.
func mustCert(t *testing.T, yaml string) []byte {
	t.Helper()
	for _, l := range strings.Split(yaml, "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "certificate_file: "); ok {
			c, err := setup.EnsureCertificate(p, "exo-worker", time.Now(), false)
			if err != nil {
				t.Fatal(err)
			}
			return c.DER
		}
	}
	t.Fatal("no certificate_file")
	return nil
}
