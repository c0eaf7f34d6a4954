package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/config"
)

// certReloader serves the certificate and key of server.tls_cert_file and server.tls_key_file, and reads
// them again when either file changes, so a renewed certificate (cert-manager, certbot, a Kubernetes secret
// update) takes effect at the next handshake without a restart. A renewal that does not load (half-written,
// key and certificate from different pairs) keeps the previous certificate and is logged once.
type certReloader struct {
	certFile, keyFile string
	log               *zap.Logger

	mu         sync.Mutex
	cert       *tls.Certificate
	stamp      [2]fileStamp // of certFile, keyFile when cert was loaded
	refused    [2]fileStamp // of the last pair that failed to load, so it is reported once
	unreadable bool         // a stat failed; reported once
}

// fileStamp identifies a version of a file cheaply: a rewrite, a rename over it or a symlink swap (how
// Kubernetes updates mounted secrets) changes it.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: st.ModTime(), size: st.Size()}, nil
}

func newCertReloader(certFile, keyFile string, log *zap.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	stamps, err := r.stamps()
	if err != nil {
		return nil, err
	}
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r.cert, r.stamp = cert, stamps
	r.logLoaded("tls certificate loaded")
	return r, nil
}

func (r *certReloader) stamps() ([2]fileStamp, error) {
	c, err := stampOf(r.certFile)
	if err != nil {
		return [2]fileStamp{}, fmt.Errorf("server.tls_cert_file: %w", err)
	}
	k, err := stampOf(r.keyFile)
	if err != nil {
		return [2]fileStamp{}, fmt.Errorf("server.tls_key_file: %w", err)
	}
	return [2]fileStamp{c, k}, nil
}

// loadKeyPair reads the pair with the worker's file limits and checks that it is usable now.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := config.ReadFile("server.tls_cert_file", certFile, config.MaxCertificateBytes)
	if err != nil {
		return nil, err
	}
	keyPEM, err := config.ReadFile("server.tls_key_file", keyFile, config.MaxSecretBytes)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("server.tls_cert_file and server.tls_key_file (%s, %s): %w; give the PEM certificate (chain) and its unencrypted PEM key", certFile, keyFile, err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	return &cert, nil
}

// GetCertificate implements tls.Config.GetCertificate. Two stats per handshake are the price of picking
// up a renewal at once, without a watcher goroutine.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamps, err := r.stamps()
	switch {
	case err != nil: // between the two steps of a replacement, or removed: keep serving
		if !r.unreadable {
			r.unreadable = true
			r.log.Warn("tls certificate files unreadable; serving the certificate loaded before", zap.Error(err))
		}
		return r.cert, nil
	case stamps == r.stamp || stamps == r.refused:
		return r.cert, nil
	}
	r.unreadable = false
	cert, err := loadKeyPair(r.certFile, r.keyFile)
	if err != nil {
		r.refused = stamps
		r.log.Warn("tls certificate files changed but do not load; serving the certificate loaded before", zap.Error(err))
		return r.cert, nil
	}
	r.cert, r.stamp, r.refused = cert, stamps, [2]fileStamp{}
	r.logLoaded("tls certificate reloaded")
	return r.cert, nil
}

func (r *certReloader) logLoaded(msg string) {
	fields := []zap.Field{zap.String("cert_file", r.certFile)}
	if l := r.cert.Leaf; l != nil {
		fields = append(fields, zap.String("subject", l.Subject.String()), zap.Strings("dns_names", l.DNSNames), zap.Time("not_after", l.NotAfter))
	}
	r.log.Info(msg, fields...)
}

// ErrPlaintextNonLoopback is returned for a listen address other machines can reach without TLS.
var ErrPlaintextNonLoopback = errors.New("plaintext HTTP on a non-loopback address")

// checkPlaintext refuses to serve plain HTTP where other machines can connect, unless the operator said a
// TLS proxy sits in front: the token and the status page's names would cross the network in clear text.
func (s *Server) checkPlaintext(addr string) error {
	if s.tls != nil || s.opts.AllowPlaintextNonLoopback || isLoopbackHost(addr) {
		return nil
	}
	return fmt.Errorf("server: %w: %s is reachable from other machines and no TLS is configured; set server.tls_cert_file and server.tls_key_file, or listen on 127.0.0.1, or (with a TLS proxy in front) set server.allow_plaintext_non_loopback: true", ErrPlaintextNonLoopback, addr)
}

// isLoopbackHost reports whether the host of a host:port listen address accepts local connections only.
func isLoopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
