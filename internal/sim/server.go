// Package sim is the simulated Microsoft 365 tenant: a real HTTPS server with its own CA that speaks the
// Entra token protocol, the Exchange Online admin API and Microsoft Graph faithfully enough that the
// unmodified production clients (azidentity, the exo client, msgraph-sdk-go) work against it. Tests and
// `worker run --sim` use it instead of mocks.
//
// This package is the facade (Start, Server, Options); each idea lives in its own sub-package:
//
//   - internal/sim/entra: the token endpoint — OIDC discovery, client-credential grants (secret,
//     certificate, federated), managed identity, and the bearer check the APIs run.
//   - internal/sim/exoapi: the Exchange Online admin API — InvokeCommand, $batch, the cmdlets, OPATH
//     filters, paging and the service's error texts (including the dir-sync write refusal).
//   - internal/sim/graphapi: Microsoft Graph v1.0 — users, groups, contacts, domains, SKUs, $filter,
//     delta rounds, $batch, Graph throttling and injectable GraphFaults.
//   - internal/sim/tenant: the tenant model and scenarios — objects, licences, Graph-side state, the
//     seeded generator and its defects (ground truth and traps for the audits).
//   - internal/sim/faults: injected faults — RTT, throttle budget, transient 5xx, connection resets,
//     truncated bodies, stale reads after a write.
//   - internal/sim/reqlog: the request log tests assert on (one Entry per request and $batch item).
//   - internal/sim/simtest: raw wire-level HTTP helpers for the sub-packages' tests.
package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/exo-worker/worker/internal/sim/entra"
	"github.com/exo-worker/worker/internal/sim/exoapi"
	"github.com/exo-worker/worker/internal/sim/faults"
	"github.com/exo-worker/worker/internal/sim/graphapi"
	"github.com/exo-worker/worker/internal/sim/reqlog"
)

// Options configure a simulated tenant.
type Options struct {
	// Listen is the address to bind; default 127.0.0.1:0 (a free loopback port).
	Listen string
	// Dir receives ca.pem (and the client certificate files); default a new temporary directory.
	Dir string
	// Scenario seeds the tenant; the zero value means DefaultScenario().
	Scenario *Scenario
	// Faults injected into the EXO admin API (RTT, throttle budget, 5xx, resets, truncation).
	Faults Faults
	// DetailEncoding selects how error details are encoded: "pipe" (default) or "json".
	DetailEncoding string
	// TokenTTL is the lifetime of issued access tokens; default 3599s like Entra. MSAL treats a token within
	// 5 minutes of expiry as expired, so a short TTL makes every GetToken call fetch a new one.
	TokenTTL time.Duration
}

// Server is a running simulated tenant.
type Server struct {
	// URL is the base URL, e.g. https://127.0.0.1:41234 (no trailing slash). It serves the authority
	// (/{tenant}/oauth2/v2.0/token), the EXO admin API (/adminapi/beta/{tenant}/...) and later Graph.
	URL string
	// CAFile is the PEM file of the CA that signed the server certificate.
	CAFile string
	// Dir is where CAFile and the credential files live.
	Dir string
	// Creds are the app registration the token endpoint accepts.
	Creds Credentials
	// Log records every request, for tests to assert on.
	Log *RequestLog

	opts   Options
	caPool *x509.CertPool
	tenant *Tenant
	faults *faults.State
	auth   *entra.Authority
	graph  *graphapi.Service
	exo    *exoapi.Service
	srv    *http.Server
	ln     net.Listener
	mu     sync.Mutex
	closed bool
}

// Start builds the tenant from the scenario, creates a CA and a server certificate for 127.0.0.1/localhost,
// writes the CA and the client credentials under Dir, and serves HTTPS until Close.
func Start(opts Options) (*Server, error) {
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "exo-sim-")
		if err != nil {
			return nil, fmt.Errorf("sim: temp dir: %w", err)
		}
		opts.Dir = d
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	sc := DefaultScenario()
	if opts.Scenario != nil {
		sc = *opts.Scenario
	}
	s := &Server{
		Dir:  opts.Dir,
		Log:  &RequestLog{},
		opts: opts,
	}
	s.tenant = NewTenant(sc)
	s.faults = faults.NewState(opts.Faults)
	auth, err := entra.New(opts.Dir, opts.TokenTTL)
	if err != nil {
		return nil, err
	}
	s.auth = auth

	caCert, caKey, err := newCA()
	if err != nil {
		return nil, err
	}
	s.caPool = x509.NewCertPool()
	s.caPool.AddCert(caCert)
	s.CAFile = filepath.Join(opts.Dir, "ca.pem")
	if err := os.WriteFile(s.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}), 0o600); err != nil {
		return nil, fmt.Errorf("sim: write CA: %w", err)
	}
	leaf, err := newLeaf(caCert, caKey)
	if err != nil {
		return nil, err
	}
	// The EXO side builds the tenant from the same defaulted scenario, so both agree on the GUID and domain.
	resolved := sc.WithDefaults()
	if err := s.auth.WriteCredentials(resolved.TenantID, resolved.TenantDomain, resolved.Seed); err != nil {
		return nil, err
	}
	s.Creds = s.auth.Creds

	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("sim: listen on %s: %w", opts.Listen, err)
	}
	s.ln = ln
	s.URL = "https://" + ln.Addr().String()
	s.auth.URL = s.URL

	mux := http.NewServeMux()
	s.auth.Register(mux)
	s.exo = exoapi.New(exoapi.Config{Tenant: s.tenant, Faults: s.faults, Auth: s.auth, Log: s.Log,
		DetailEncoding: opts.DetailEncoding})
	s.exo.Register(mux)
	s.graph = graphapi.New(graphapi.Config{Tenant: s.tenant, Faults: s.faults, Auth: s.auth, Log: s.Log})
	s.graph.Register(mux)
	s.srv = &http.Server{
		Handler:           reqlog.Middleware(s.Log, func() time.Duration { return s.faults.Get().RTT }, mux),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
	}
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()
	return s, nil
}

// Tenant returns the live tenant model (tests read ground truth and mutate it, e.g. delete an object).
func (s *Server) Tenant() *Tenant { return s.tenant }

// CAPool returns a pool holding the simulator's CA.
func (s *Server) CAPool() *x509.CertPool { return s.caPool }

// HTTPClient returns an *http.Client that trusts the simulator's CA.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: s.caPool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 32,
	}}
}

// SetFaults replaces the injected faults while the server runs.
func (s *Server) SetFaults(f Faults) { s.faults.Set(f) }

// FaultStats reports how many faults the server has injected since it started.
func (s *Server) FaultStats() FaultStats { return s.faults.Snapshot() }

// InjectGraphFault arms f: the next f.Times Graph requests (or $batch items) it matches are answered with its
// error. Faults are checked in the order they were injected.
func (s *Server) InjectGraphFault(f GraphFault) { s.graph.InjectGraphFault(f) }

// SetGraphPageSize sets the page size of Graph collections read without $top and of delta rounds (default
// 100, like the service), so tests can page through a small tenant.
func (s *Server) SetGraphPageSize(n int) { s.graph.SetGraphPageSize(n) }

// GraphFaultStats reports the faults the Graph front end injected from the server's Faults (throttling,
// errors); injected GraphFaults are not counted.
func (s *Server) GraphFaultStats() FaultStats { return s.graph.GraphFaultStats() }

// ManagedIdentityEndpoint is the URL to put in IDENTITY_ENDPOINT (with IDENTITY_HEADER = Creds.IdentityHeader)
// so azidentity's ManagedIdentityCredential takes its App Service path to the simulator.
func (s *Server) ManagedIdentityEndpoint() string { return s.auth.ManagedIdentityEndpoint() }

// Credential returns a real azidentity ClientSecretCredential for the simulated app registration: authority
// host = the simulator, its CA trusted, instance discovery off (it would call login.microsoftonline.com).
// Other packages' tests use it to get tokens the simulator accepts.
func (s *Server) Credential() (azcore.TokenCredential, error) {
	return azidentity.NewClientSecretCredential(s.Creds.TenantID, s.Creds.ClientID, s.Creds.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions: policy.ClientOptions{
				Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: s.URL + "/"},
				Transport: s.HTTPClient(),
			},
			DisableInstanceDiscovery: true,
		})
}

// FederatedToken returns a federated identity token for subject, which the token endpoint accepts as a
// client_assertion when subject is one of the app's federated credentials (see entra.Authority).
func (s *Server) FederatedToken(subject string, ttl time.Duration) string {
	return s.auth.FederatedToken(subject, ttl)
}

// AddFederatedSubject registers another federated identity credential subject on the app.
func (s *Server) AddFederatedSubject(subject string) { s.auth.AddFederatedSubject(subject) }

// ExpireTokens makes every access token issued so far fail as expired, so clients must fetch new ones.
func (s *Server) ExpireTokens() { s.auth.ExpireTokens() }

// VerifyToken checks an access token the way the simulated APIs do, for tests that obtain tokens through
// azidentity and want to know the simulator would accept them.
func (s *Server) VerifyToken(token, audience string) error {
	return s.auth.VerifyToken(token, audience)
}

// IssueToken returns an access token for audience issued to the simulated app (ttl 0: the server's token
// TTL), for wire-level tests that skip the token endpoint.
func (s *Server) IssueToken(audience string, ttl time.Duration) string {
	return s.auth.IssueToken(audience, s.Creds.ClientID, ttl)
}

// Authority is the simulated Entra ID behind the server, for tests of the token endpoint itself.
func (s *Server) Authority() *entra.Authority { return s.auth }

// Close stops the server.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	// Close, not Shutdown: a graceful HTTP/2 shutdown waits a second for its GOAWAY, once per simulator,
	// and a test bench has nothing in flight worth waiting for.
	return s.srv.Close()
}

func newCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "exo-worker simulated tenant CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("sim: create CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sim: create server certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key}, nil
}
