package setup

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/sim"
)

// adminRunner signs in to the simulator as its admin through the real device-code flow (azidentity) and
// returns a Runner on Graph and Exchange with those delegated tokens.
func adminRunner(t *testing.T, s *sim.Server) *Runner {
	t.Helper()
	var prompts []string
	cred := func(clientID, label string) azcore.TokenCredential {
		c, err := DeviceCode(SignInOptions{Tenant: s.Creds.TenantDomain, Authority: s.URL + "/", CustomAuthority: true,
			ClientID: clientID, HTTPClient: s.HTTPClient(), Prompt: promptRecorder(func(p string) { prompts = append(prompts, p) }), Label: label})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ec, err := exo.New(exo.Options{BaseURL: s.URL, Tenant: s.Creds.TenantDomain, Credential: cred(DefaultExchangeClientID, "Exchange Online"),
		HTTPClient: s.HTTPClient(), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if len(prompts) == 0 {
			t.Error("the device-code prompt was never shown")
		}
	})
	return &Runner{Graph: &Graph{BaseURL: s.URL, Scopes: GraphScopes("https://graph.microsoft.com"),
		Credential: cred(DefaultGraphClientID, "Microsoft Graph"), HTTPClient: s.HTTPClient()}, EXO: ec}
}

type promptRecorder func(string)

func (p promptRecorder) Write(b []byte) (int, error) { p(string(b)); return len(b), nil }

func ops(o *Outcome) [][2]string {
	out := make([][2]string, len(o.Steps))
	for i, s := range o.Steps {
		out[i] = [2]string{s.Op, s.Subject}
	}
	return out
}

func startSim(t *testing.T) *sim.Server {
	t.Helper()
	s, err := sim.Start(sim.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// appCredential is the created app's certificate credential, as the worker builds it from worker.yaml.
func appCredential(t *testing.T, s *sim.Server, appID, pemFile string) azcore.TokenCredential {
	t.Helper()
	data, err := os.ReadFile(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	certs, key, err := azidentity.ParseCertificates(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azidentity.NewClientCertificateCredential(s.Creds.TenantID, appID, certs, key, &azidentity.ClientCertificateCredentialOptions{
		ClientOptions:            policy.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: s.URL + "/"}, Transport: s.HTTPClient()},
		DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSetupAgainstTheSimulator runs setup on an empty tenant, checks it did exactly the steps the script
// shows, that a second run changes nothing, that it repairs what was broken, that the identity it made can
// run job 1 and nothing else, and that --remove deletes it all.
func TestSetupAgainstTheSimulator(t *testing.T) {
	s := startSim(t)
	ctx := context.Background()
	req, err := FromJobs(library(t))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := EnsureCertificate(filepath.Join(t.TempDir(), "exo-worker.pem"), "exo-worker", time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDesired(s.Creds.TenantDomain, "exo-worker", req, cert.DER)
	if err != nil {
		t.Fatal(err)
	}
	rn := adminRunner(t, s)

	// A dry run on an empty tenant plans exactly the first run's steps and writes nothing.
	rn.DryRun = true
	plan, err := rn.Apply(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	rn.DryRun = false
	first, err := rn.Apply(ctx, d)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	script := ScriptSteps(Script(d, cert.PublicFile))
	if !slices.Equal(ops(first), script) {
		t.Errorf("setup's steps and the script's differ:\napi:    %v\nscript: %v", ops(first), script)
	}
	if !slices.Equal(ops(plan), ops(first)) {
		t.Errorf("the dry run planned %v, the run did %v", ops(plan), ops(first))
	}
	if first.AppID == "" || first.SPObjectID == "" {
		t.Fatalf("no ids reported: %+v", first)
	}

	again, err := rn.Apply(ctx, d)
	if err != nil || len(again.Steps) != 0 {
		t.Fatalf("second run must change nothing: %v %v", err, ops(again))
	}

	// The created identity: its token carries exactly the declared roles.
	appCred := appCredential(t, s, first.AppID, cert.PEMFile)
	tok, err := appCred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := tokenRoles(t, tok.Token); !slices.Equal(got, req.GraphRoles) {
		t.Errorf("graph roles %v, want %v", got, req.GraphRoles)
	}
	app, err := exo.New(exo.Options{BaseURL: s.URL, Tenant: s.Creds.TenantID, Credential: appCred, HTTPClient: s.HTTPClient(), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	// Job 1's write works on an in-scope MEU...
	meus := s.Tenant().InScopeMEUs()
	if _, err := app.Invoke(ctx, exo.Command{Name: "Set-MailUser", Params: map[string]any{"Identity": meus[0].ID, "UseMapiRichTextFormat": "Never"}}); err != nil {
		t.Fatalf("in-scope write refused: %v", err)
	}
	// ...and nothing else: a mailbox (cmdlet not in the role), a guest (out of the write scope), another
	// parameter (not in the entry).
	refusals(t, ctx, s, app)

	// Break three things; a run repairs exactly those.
	admin := rn.EXO
	mustInvoke(t, admin, "Set-ManagementRoleEntry", map[string]any{"Identity": `exo-worker Mail Recipients\Set-MailUser`, "Parameters": []string{"Identity", "UseMapiRichTextFormat", "DisplayName"}})
	mustInvoke(t, admin, "Set-ManagementScope", map[string]any{"Identity": "exo-worker write scope", "RecipientRestrictionFilter": "RecipientTypeDetails -eq 'MailUser'"})
	mustInvoke(t, admin, "Remove-ManagementRoleEntry", map[string]any{"Identity": `exo-worker Mail Recipients\Get-Mailbox`})
	repair, err := rn.Apply(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{OpRoleAdd, `exo-worker Mail Recipients\Get-Mailbox`}, {OpRoleParams, `exo-worker Mail Recipients\Set-MailUser`}, {OpScopeFilter, "exo-worker write scope"}}
	if !slices.Equal(ops(repair), want) {
		t.Errorf("repair did %v, want %v", ops(repair), want)
	}

	// --remove deletes all of it; a second --remove finds nothing.
	removed, err := rn.Remove(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	wantRemove := [][2]string{{OpGroupRemove, "exo-worker"}, {OpRoleRemove, "exo-worker Mail Recipients"},
		{OpRoleRemove, "exo-worker View-Only Configuration"}, {OpScopeRemove, "exo-worker write scope"}, {OpEXOSPRemove, "exo-worker"}, {OpAppRemove, "exo-worker"}}
	if !slices.Equal(ops(removed), wantRemove) {
		t.Errorf("remove did %v, want %v", ops(removed), wantRemove)
	}
	if again, err := rn.Remove(ctx, d); err != nil || len(again.Steps) != 0 {
		t.Errorf("second remove: %v %v", err, ops(again))
	}
	if _, err := appCred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://outlook.office365.com/.default"}, EnableCAE: false}); err == nil {
		// MSAL may still hold a cached token; a fresh credential must be refused.
		if _, err := appCredential(t, s, first.AppID, cert.PEMFile).GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://outlook.office365.com/.default"}}); err == nil {
			t.Error("the deleted app still gets tokens")
		}
	}
}

func refusals(t *testing.T, ctx context.Context, s *sim.Server, app *exo.Client) {
	t.Helper()
	var mailbox, guest string
	for _, o := range s.Tenant().Objects() {
		switch {
		case o.RecipientType == "UserMailbox" && mailbox == "":
			mailbox = o.ID
		case o.RecipientTypeDetails == "GuestMailUser" && guest == "":
			guest = o.ID
		}
	}
	if mailbox == "" || guest == "" {
		t.Fatal("the default scenario has no mailbox or guest")
	}
	for _, tc := range []struct {
		name   string
		cmd    exo.Command
		expect string
	}{
		{"mailbox", exo.Command{Name: "Set-Mailbox", Params: map[string]any{"Identity": mailbox, "UseMapiRichTextFormat": "Never"}}, "is not recognized as the name of a cmdlet"},
		{"guest", exo.Command{Name: "Set-MailUser", Params: map[string]any{"Identity": guest, "UseMapiRichTextFormat": "Never"}}, "out of the current user's write scope"},
		{"other parameter", exo.Command{Name: "Set-MailUser", Params: map[string]any{"Identity": s.Tenant().InScopeMEUs()[0].ID, "DisplayName": "x"}}, "A parameter cannot be found that matches parameter name 'DisplayName'"},
		{"rbac cmdlet", exo.Command{Name: "New-ManagementScope", Params: map[string]any{"Name": "x", "RecipientRestrictionFilter": "Name -eq 'x'"}}, "is not recognized"},
	} {
		_, err := app.Invoke(ctx, tc.cmd)
		var e *exo.Error
		if !errors.As(err, &e) || !strings.Contains(e.Message, tc.expect) {
			t.Errorf("%s: want a refusal saying %q, got %v", tc.name, tc.expect, err)
		}
		if tc.name == "guest" && (e == nil || e.Kind != exo.KindOutOfWriteScope) {
			t.Errorf("guest write: kind %v, want OutOfWriteScope", e)
		}
	}
	if o, ok := s.Tenant().Object(guest); !ok || o.UseMapiRichTextFormat == "Never" && false {
		t.Error("guest vanished")
	}
}

func mustInvoke(t *testing.T, c Invoker, name string, params map[string]any) {
	t.Helper()
	if _, err := c.Invoke(context.Background(), exo.Command{Name: name, Params: params}); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func tokenRoles(t *testing.T, tok string) []string {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := b64url(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Roles []string }
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	slices.Sort(c.Roles)
	return c.Roles
}

func b64url(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
