package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/exo-worker/worker/config"
	"github.com/exo-worker/worker/internal/auth"
	"github.com/exo-worker/worker/internal/sim"
)

// TestReadyzAgainstEntra: 30 anonymous probes of a worker whose secret Entra refuses once made 30 token
// requests and answered with the tenant id, the client id and Entra's error text. Now: one token request
// (counted on the simulator's log), and only the reason code without the token.
func TestReadyzAgainstEntra(t *testing.T) {
	sc := sim.DefaultScenario()
	sc.DirSyncedMEUs, sc.CloudMEUs, sc.Guests, sc.Mailboxes, sc.Contacts, sc.Groups = 1, 0, 0, 0, 0, 0
	s, err := sim.Start(sim.Options{Dir: t.TempDir(), Scenario: &sc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("not-the-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf("tenant:\n  id: %s\n  endpoints: {authority: %q, exchange: %q}\n  ca_file: %s\nauth:\n  method: secret\n  client_id: %s\n  client_secret_file: %s\n",
		s.Creds.TenantID, s.URL, s.URL, s.CAFile, s.Creds.ClientID, secret)
	path := filepath.Join(dir, "worker.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil, nil)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	cred, err := auth.NewCredential(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := cfg.Tenant.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(o *Options) {
		o.Ready = Checks{"exo-token": func(ctx context.Context) error {
			_, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{ep.ExchangeScope}})
			return err
		}}
	})

	for i := range 30 {
		resp := h.do(t, request{method: "GET", path: "/readyz"}, "")
		body := compact(t, bodyOf(t, resp))
		if resp.StatusCode != 503 || !strings.Contains(body, `"reasons":["exo-token"]`) {
			t.Fatalf("probe %d: %d %s, want 503 with reason exo-token", i, resp.StatusCode, body)
		}
		for _, leak := range []string{s.Creds.TenantID, s.Creds.ClientID, "AADSTS", "secret"} {
			if strings.Contains(body, leak) {
				t.Fatalf("anonymous probe %d tells %q: %s", i, leak, body)
			}
		}
	}
	tokenRequests := 0
	for _, e := range s.Log.Entries() {
		if strings.HasSuffix(e.Path, "/oauth2/v2.0/token") {
			tokenRequests++
		}
	}
	if tokenRequests != 1 {
		t.Errorf("30 probes made %d token requests, want 1", tokenRequests)
	}
	body := bodyOf(t, h.do(t, request{method: "GET", path: "/readyz"}, bearer(testToken)))
	if !strings.Contains(body, "AADSTS") || !strings.Contains(body, s.Creds.ClientID) {
		t.Errorf("with the token the answer lacks Entra's detail: %s", body)
	}
}
