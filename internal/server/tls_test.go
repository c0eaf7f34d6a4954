package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCert makes a self-signed certificate for 127.0.0.1 named cn, in PEM (certificate, key).
func testCert(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
}

// writePair writes the pair and moves the files' times forward, so a rewrite within the file system's
// timestamp granularity still looks changed.
func writePair(t *testing.T, certFile, keyFile string, cert, key []byte, at time.Time) {
	t.Helper()
	for _, f := range []struct {
		path string
		data []byte
	}{{certFile, cert}, {keyFile, key}} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f.path, at, at); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTLSServesAndReloads: with server.tls_cert_file/tls_key_file the server speaks HTTPS, and a renewed
// certificate is served from the next handshake on; a renewal that does not load keeps the previous one.
func TestTLSServesAndReloads(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	certA, keyA := testCert(t, "first")
	certB, keyB := testCert(t, "renewed")
	writePair(t, certFile, keyFile, certA, keyA, time.Now().Add(-time.Minute))

	h := newHarness(t, func(o *Options) { o.TLSCertFile, o.TLSKeyFile = certFile, keyFile })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.ServeListener(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certA)
	pool.AppendCertsFromPEM(certB)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	served := func() string {
		t.Helper()
		resp, err := client.Get("https://" + ln.Addr().String() + "/healthz")
		if err != nil {
			t.Fatalf("https GET: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "first" {
		t.Fatalf("served %q, want first", cn)
	}
	// Plain HTTP on the TLS port is refused.
	if resp, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered 200 on the TLS port")
		}
	}

	writePair(t, certFile, keyFile, certB, keyB, time.Now())
	if cn := served(); cn != "renewed" {
		t.Fatalf("after renewal served %q, want renewed", cn)
	}
	// A broken renewal (key of another pair): the renewed certificate stays, and a warning says why.
	writePair(t, certFile, keyFile, certA, keyB, time.Now().Add(time.Minute))
	if cn := served(); cn != "renewed" {
		t.Fatalf("after a broken renewal served %q, want renewed", cn)
	}
	if n := h.logs.FilterMessageSnippet("do not load").Len(); n != 1 {
		t.Errorf("%d warnings about the broken pair, want 1", n)
	}
	served()
	if n := h.logs.FilterMessageSnippet("do not load").Len(); n != 1 {
		t.Errorf("the broken pair is reported %d times, want once", n)
	}
}

func TestTLSPairMustLoad(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	certA, _ := testCert(t, "a")
	_, keyB := testCert(t, "b")
	writePair(t, certFile, keyFile, certA, keyB, time.Now())
	for _, tc := range []struct {
		name       string
		cert, key  string
		wantSubstr string
	}{
		{"mismatched pair", certFile, keyFile, "server.tls_cert_file"},
		{"key missing", certFile, "", "go together"},
		{"missing file", filepath.Join(dir, "nope"), keyFile, "server.tls_cert_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{TLSCertFile: tc.cert, TLSKeyFile: tc.key, Runner: newRecordingRunner(), Runs: sampleRuns()})
			if err == nil || !strings.Contains(err.Error(), tc.wantSubstr) {
				t.Fatalf("err %v, want %q", err, tc.wantSubstr)
			}
		})
	}
}

// TestPlaintextNonLoopbackRefused: without TLS a listen address other machines reach is refused, naming the
// setting that allows it.
func TestPlaintextNonLoopbackRefused(t *testing.T) {
	for _, tc := range []struct {
		listen  string
		allow   bool
		refused bool
	}{
		{"127.0.0.1:8080", false, false},
		{"localhost:8080", false, false},
		{"[::1]:8080", false, false},
		{":8080", false, true},
		{"0.0.0.0:8080", false, true},
		{"10.1.2.3:8080", false, true},
		{"0.0.0.0:8080", true, false},
	} {
		_, err := New(Options{Listen: tc.listen, AllowPlaintextNonLoopback: tc.allow, Runner: newRecordingRunner(), Runs: sampleRuns()})
		switch {
		case tc.refused && (!errors.Is(err, ErrPlaintextNonLoopback) || !strings.Contains(err.Error(), "server.allow_plaintext_non_loopback")):
			t.Errorf("%s: err %v, want a refusal naming server.allow_plaintext_non_loopback", tc.listen, err)
		case !tc.refused && err != nil:
			t.Errorf("%s (allow %v): %v", tc.listen, tc.allow, err)
		}
	}
}
