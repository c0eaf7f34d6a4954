// Package sim is the simulated Microsoft 365 tenant: a real HTTPS server with its own CA that speaks the
// Entra token protocol and the Exchange Online admin API faithfully enough that the unmodified production
// clients (azidentity, the exo client) work against it. Tests and `worker run --sim` use it instead of mocks.
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

	opts     Options
	caPool   *x509.CertPool
	tenant   *Tenant
	faults   *faultState
	stale    staleReads
	exo      *exoState // EXO admin API paging state (exo.go)
	tokenKey []byte
	entra    entraState // registered client certificate, federated subjects, token epoch (entra.go)
	srv      *http.Server
	ln       net.Listener
	mu       sync.Mutex
	closed   bool
}

// Credentials are the values a worker needs to authenticate to the simulated tenant.
type Credentials struct {
	TenantID     string // a GUID
	TenantDomain string // e.g. contoso.onmicrosoft.com
	ClientID     string
	ClientSecret string
	// CertFile holds the client certificate and its unencrypted private key (PEM).
	CertFile string
	// PFXFile holds the same certificate and key as PKCS#12, protected by PFXPassword (written to PFXPasswordFile).
	PFXFile         string
	PFXPasswordFile string
	// SecretFile holds ClientSecret, for configs that read secrets from files.
	SecretFile string
	// FederatedTokenFile holds a federated token (valid 24h) for FederatedSubject, the workload identity the
	// app registration trusts; point WorkloadIdentityCredential's TokenFilePath at it.
	FederatedTokenFile string
	FederatedSubject   string
	// IdentityHeader is the X-IDENTITY-HEADER value the App Service–style managed identity endpoint
	// (ManagedIdentityEndpoint) requires: set IDENTITY_ENDPOINT and IDENTITY_HEADER to use it.
	IdentityHeader string
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
	s.faults = newFaultState(opts.Faults)
	s.tokenKey = make([]byte, 32)
	if _, err := rand.Read(s.tokenKey); err != nil {
		return nil, err
	}

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
	if err := s.writeCredentials(sc); err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("sim: listen on %s: %w", opts.Listen, err)
	}
	s.ln = ln
	s.URL = "https://" + ln.Addr().String()

	mux := http.NewServeMux()
	s.registerEntra(mux)
	s.registerEXO(mux)
	s.registerGraph(mux)
	s.srv = &http.Server{
		Handler:           s.logged(mux),
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
func (s *Server) SetFaults(f Faults) { s.faults.set(f) }

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
