package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/exo-worker/worker/config"
	"github.com/exo-worker/worker/internal/sim"
)

const exoScope = "https://outlook.office365.com/.default"

func startSim(t *testing.T) *sim.Server {
	t.Helper()
	sc := sim.DefaultScenario()
	sc.DirSyncedMEUs, sc.CloudMEUs, sc.Guests, sc.Mailboxes, sc.Contacts, sc.Groups = 2, 1, 1, 1, 1, 1
	s, err := sim.Start(sim.Options{Dir: t.TempDir(), Scenario: &sc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// loadConfig writes auth YAML under a tenant section pointing at the simulator and loads it the way the
// worker does (Load, then Validate), so the tests cover the configuration path too.
func loadConfig(t *testing.T, s *sim.Server, authYAML string, env ...string) *config.Config {
	t.Helper()
	return loadYAML(t, fmt.Sprintf("tenant:\n  id: %s\n  endpoints: {authority: %q, exchange: %q}\n  ca_file: %s\nauth:\n%s",
		s.Creds.TenantDomain, s.URL, s.URL, s.CAFile, authYAML), env...)
}

func loadYAML(t *testing.T, yml string, env ...string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "worker.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// observed returns a logger that records everything, to check what the package logs.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

// assertNoSecret fails if any log entry (message or field) contains secret.
func assertNoSecret(t *testing.T, logs *observer.ObservedLogs, secrets ...string) {
	t.Helper()
	for _, e := range logs.All() {
		text := e.Message
		for k, v := range e.ContextMap() {
			text += fmt.Sprintf(" %s=%v", k, v)
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("log entry leaks a secret: %s", text)
			}
		}
	}
}

func TestCredentialsGetTokensFromTheSimulator(t *testing.T) {
	s := startSim(t)
	pfxPassword, err := os.ReadFile(s.Creds.PFXPasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		auth string
		env  []string
	}{
		{"certificate PEM", fmt.Sprintf("  method: certificate\n  client_id: %s\n  certificate_file: %s\n", s.Creds.ClientID, s.Creds.CertFile), nil},
		{"certificate PFX with password file", fmt.Sprintf("  method: certificate\n  client_id: %s\n  certificate_file: %s\n  certificate_password_file: %s\n",
			s.Creds.ClientID, s.Creds.PFXFile, s.Creds.PFXPasswordFile), nil},
		{"certificate PFX with password from env", fmt.Sprintf("  method: certificate\n  client_id: %s\n  certificate_file: %s\n", s.Creds.ClientID, s.Creds.PFXFile),
			[]string{"WORKER_AUTH_CERTIFICATE_PASSWORD=" + string(pfxPassword)}},
		{"certificate with x5c chain", fmt.Sprintf("  method: certificate\n  client_id: %s\n  certificate_file: %s\n  send_certificate_chain: true\n", s.Creds.ClientID, s.Creds.CertFile), nil},
		{"secret from file", fmt.Sprintf("  method: secret\n  client_id: %s\n  client_secret_file: %s\n", s.Creds.ClientID, s.Creds.SecretFile), nil},
		{"secret from file with trailing newline", fmt.Sprintf("  method: secret\n  client_id: %s\n  client_secret_file: %s\n", s.Creds.ClientID,
			writeFile(t, "secret", s.Creds.ClientSecret+"\n")), nil},
		{"secret from env", fmt.Sprintf("  method: secret\n  client_id: %s\n", s.Creds.ClientID), []string{"WORKER_AUTH_CLIENT_SECRET=" + s.Creds.ClientSecret}},
		{"workload identity", fmt.Sprintf("  method: workload-identity\n  client_id: %s\n  token_file: %s\n", s.Creds.ClientID, s.Creds.FederatedTokenFile), nil},
		{"workload identity from the webhook's variables", "  method: workload-identity\n",
			[]string{"AZURE_FEDERATED_TOKEN_FILE=" + s.Creds.FederatedTokenFile, "AZURE_CLIENT_ID=" + s.Creds.ClientID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadConfig(t, s, tc.auth, tc.env...)
			hc, err := HTTPClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			log, logs := observed()
			cred, err := NewCredential(cfg, hc, log)
			if err != nil {
				t.Fatalf("NewCredential: %v", err)
			}
			tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{exoScope}})
			if err != nil {
				t.Fatalf("GetToken: %v", err)
			}
			if err := s.VerifyToken(tok.Token, "https://outlook.office365.com"); err != nil {
				t.Errorf("the simulator refuses the token: %v", err)
			}
			if logs.FilterMessage("credential ready").Len() != 1 {
				t.Errorf("want one 'credential ready' log line, got %v", logs.All())
			}
			assertNoSecret(t, logs, s.Creds.ClientSecret, string(pfxPassword), tok.Token)
		})
	}
}

// TestManagedIdentity runs the unmodified ManagedIdentityCredential through its App Service path against the
// simulator's MSI endpoint. Not parallel: t.Setenv.
func TestManagedIdentity(t *testing.T) {
	s := startSim(t)
	t.Setenv("IDENTITY_ENDPOINT", s.ManagedIdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", s.Creds.IdentityHeader)
	// No authority: managed identity asks the host's endpoint (Validate refuses an authority override).
	cfg := loadYAML(t, fmt.Sprintf("tenant: {id: %s, ca_file: %s}\nauth: {method: managed-identity, client_id: %s}\n",
		s.Creds.TenantDomain, s.CAFile, s.Creds.ClientID))
	hc, err := HTTPClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := NewCredential(cfg, hc, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{exoScope}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if err := s.VerifyToken(tok.Token, "https://outlook.office365.com"); err != nil {
		t.Errorf("the simulator refuses the token: %v", err)
	}

	t.Run("unknown identity is a clean error", func(t *testing.T) {
		cfg.Auth.ClientID = "99999999-9999-4999-8999-999999999999"
		cred, err := NewCredential(cfg, hc, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}})
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("err %v, want *auth.Error", err)
		}
		if !strings.HasPrefix(e.Error(), "auth: managed identity (99999999-9999-4999-8999-999999999999) got no token: Unable to load the proper Managed Identity") {
			t.Errorf("message %q", e.Error())
		}
	})
}

func TestTokenErrorsAreClean(t *testing.T) {
	s := startSim(t)
	otherCert := writeFile(t, "other.pem", selfSigned(t, time.Now().Add(time.Hour)))
	tests := []struct {
		name     string
		auth     string
		wantCode int
		want     []string // pieces of the message, in order
	}{
		{
			name:     "wrong secret",
			auth:     fmt.Sprintf("  method: secret\n  client_id: %s\n  client_secret_file: %s\n", s.Creds.ClientID, writeFile(t, "wrong", "not-the-secret")),
			wantCode: 7000215,
			want: []string{"auth: tenant " + s.Creds.TenantDomain + " rejected client " + s.Creds.ClientID + ": AADSTS7000215: Invalid client secret provided.",
				"Check auth.client_secret_file"},
		},
		{
			name:     "unknown client",
			auth:     fmt.Sprintf("  method: secret\n  client_id: 12345678-1234-4234-8234-123456789012\n  client_secret_file: %s\n", s.Creds.SecretFile),
			wantCode: 700016,
			want:     []string{"rejected client 12345678-1234-4234-8234-123456789012: AADSTS700016: Application with identifier", "Check auth.client_id and tenant.id"},
		},
		{
			name:     "certificate not registered",
			auth:     fmt.Sprintf("  method: certificate\n  client_id: %s\n  certificate_file: %s\n", s.Creds.ClientID, otherCert),
			wantCode: 700027,
			want:     []string{"rejected client " + s.Creds.ClientID + ": AADSTS700027: The certificate with identifier used to sign the client assertion is not registered", "Upload the certificate"},
		},
		{
			name:     "federated subject not trusted",
			auth:     fmt.Sprintf("  method: workload-identity\n  client_id: %s\n  token_file: %s\n", s.Creds.ClientID, writeFile(t, "token", s.FederatedToken("system:serviceaccount:x:y", time.Hour))),
			wantCode: 700213,
			want:     []string{"AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:x:y'", "federated credential"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadConfig(t, s, tc.auth)
			log, logs := observed()
			cred, err := NewCredential(cfg, nil, log)
			if err != nil {
				t.Fatal(err)
			}
			_, err = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{exoScope}})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err %v (%T), want *auth.Error", err, err)
			}
			msg := err.Error()
			if e.Code != tc.wantCode || !e.Rejected {
				t.Errorf("code %d rejected %v, want %d true", e.Code, e.Rejected, tc.wantCode)
			}
			at := 0
			for _, w := range tc.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("message lacks %q (after position %d):\n%s", w, at, msg)
				}
				at += i + len(w)
			}
			// One line, no HTTP dump, no trace lines, no troubleshooting boilerplate.
			for _, bad := range []string{"\n", "RESPONSE", "-----", "Trace ID", "Correlation ID", "To troubleshoot"} {
				if strings.Contains(msg, bad) {
					t.Errorf("message contains %q:\n%s", bad, msg)
				}
			}
			if Describe(fmt.Errorf("run: %w", err)) != msg {
				t.Errorf("Describe does not find the auth error in the chain")
			}
			// The azidentity error (with its raw response) stays reachable for callers that need it.
			var afe *azidentity.AuthenticationFailedError
			if !errors.As(err, &afe) || afe.RawResponse == nil {
				t.Error("azidentity's AuthenticationFailedError is not in the chain")
			}
			assertNoSecret(t, logs, s.Creds.ClientSecret, "not-the-secret")
		})
	}
}

func TestUntrustedAuthority(t *testing.T) {
	s := startSim(t)
	cfg := loadConfig(t, s, fmt.Sprintf("  method: secret\n  client_id: %s\n  client_secret_file: %s\n", s.Creds.ClientID, s.Creds.SecretFile))
	cfg.Tenant.CAFile = "" // the system roots do not know the simulator's CA
	hc, err := HTTPClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := NewCredential(cfg, hc, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{exoScope}})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err %v, want *auth.Error", err)
	}
	if e.Rejected || !strings.Contains(e.Error(), "no token for client "+s.Creds.ClientID+" in tenant "+s.Creds.TenantDomain+" from "+s.URL) ||
		!strings.Contains(e.Error(), "set tenant.ca_file") {
		t.Errorf("message %q: want who, where, and the tenant.ca_file hint", e.Error())
	}
}

func TestCertificateProblemsFoundBeforeAnyRequest(t *testing.T) {
	s := startSim(t)
	pemData, err := os.ReadFile(s.Creds.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	// The simulator's certificate with a key that is not its own.
	certOnly := pemData[:strings.Index(string(pemData), "-----BEGIN PRIVATE KEY")]
	other := selfSigned(t, time.Now().Add(time.Hour))
	mismatched := string(certOnly) + other[strings.Index(other, "-----BEGIN PRIVATE KEY"):]
	tests := []struct {
		name, auth, want string
		env              []string
	}{
		{"expired certificate", fmt.Sprintf("  method: certificate\n  client_id: %s\n  certificate_file: %s\n", s.Creds.ClientID,
			writeFile(t, "expired.pem", selfSigned(t, time.Now().Add(-time.Hour)))), "expired on", nil},
		{"key of another certificate", fmt.Sprintf("  method: certificate\n  client_id: %s\n  certificate_file: %s\n", s.Creds.ClientID,
			writeFile(t, "mismatch.pem", mismatched)), "does not belong to its certificate", nil},
		{"PFX without password", fmt.Sprintf("  method: certificate\n  client_id: %s\n  certificate_file: %s\n", s.Creds.ClientID, s.Creds.PFXFile),
			"a PFX file needs its password", nil},
		{"PFX with wrong password", fmt.Sprintf("  method: certificate\n  client_id: %s\n  certificate_file: %s\n", s.Creds.ClientID, s.Creds.PFXFile),
			"check the password", []string{"WORKER_AUTH_CERTIFICATE_PASSWORD=wrong"}},
		{"not a certificate", fmt.Sprintf("  method: certificate\n  client_id: %s\n  certificate_file: %s\n", s.Creds.ClientID,
			writeFile(t, "junk.pem", "-----BEGIN NOTHING-----\n-----END NOTHING-----\n")), "cannot read a certificate and private key", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadConfig(t, s, tc.auth, tc.env...)
			_, err := NewCredential(cfg, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "auth.certificate_file: ") {
				t.Fatalf("err %v, want auth.certificate_file: ... %q", err, tc.want)
			}
			if n := len(s.Log.Entries()); n != 0 {
				t.Errorf("%d requests reached the simulator; a bad certificate must be caught locally", n)
			}
		})
	}
}

func TestHTTPClient(t *testing.T) {
	s := startSim(t)
	tests := []struct {
		name, caFile, wantErr string
	}{
		{"simulator CA", s.CAFile, ""},
		{"missing file", "/nonexistent/ca.pem", "tenant.ca_file"},
		{"not PEM", writeFile(t, "ca.txt", "hello"), "holds no PEM certificate"},
		{"a device that never ends", "/dev/zero", "larger than 1 MiB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{Tenant: config.Tenant{CAFile: tc.caFile}}
			hc, err := HTTPClient(cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp, err := hc.Get(s.URL + "/" + s.Creds.TenantID + "/v2.0/.well-known/openid-configuration")
			if err != nil {
				t.Fatalf("the client does not trust the simulator: %v", err)
			}
			resp.Body.Close()
		})
	}
}

// selfSigned returns a PEM certificate and RSA key valid until notAfter.
func selfSigned(t *testing.T, notAfter time.Time) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "someone else's app"},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) + string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}))
}

func TestCleanDescription(t *testing.T) {
	tests := []struct{ in, want string }{
		{"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x\r\nCorrelation ID: y\r\nTimestamp: z", "AADSTS7000215: Invalid client secret provided."},
		{"AADSTS90002: Tenant 'x' not found. Trace ID: a Correlation ID: b", "AADSTS90002: Tenant 'x' not found."},
		{"plain", "plain"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := cleanDescription(tc.in); got != tc.want {
			t.Errorf("cleanDescription(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
