// Package auth turns the configuration into an azidentity credential: certificate (PEM or PFX), client secret,
// workload identity or managed identity, against the tenant's cloud or an overridden authority. It is the one
// place that reads secrets, and it never logs them. Token errors come back as *Error, which says in one line
// which tenant refused which client and why (Entra's AADSTS code and text) and what to check, instead of
// azidentity's multi-line HTTP dump.
package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"go.uber.org/zap"

	"github.com/exo-worker/worker/config"
)

// HTTPClient returns the client for Entra, EXO and Graph: the system roots plus the CA certificates of
// tenant.ca_file, proxies from the environment (HTTPS_PROXY), no overall timeout (EXO cmdlets may run for
// 15 minutes; callers bound requests with their context).
func HTTPClient(cfg *config.Config) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if f := cfg.Tenant.CAFile; f != "" {
		pem, err := config.ReadFile("tenant.ca_file", f, config.MaxCertificateBytes)
		if err != nil {
			return nil, err
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tenant.ca_file: %s holds no PEM certificate; give the CA certificate(s) to trust in PEM form", f)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tr.MaxIdleConnsPerHost = 32
	return &http.Client{Transport: tr}, nil
}

// NewCredential builds the credential auth.method names. hc carries the requests (nil = HTTPClient(cfg)); log
// receives one line describing the credential (never a secret). With tenant.endpoints.authority set, instance
// discovery is off: it would ask login.microsoftonline.com about a host it does not know.
func NewCredential(cfg *config.Config, hc *http.Client, log *zap.Logger) (azcore.TokenCredential, error) {
	if log == nil {
		log = zap.NewNop()
	}
	ep, err := cfg.Tenant.Resolve()
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if hc == nil {
		if hc, err = HTTPClient(cfg); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	a := cfg.Auth
	tenant := cfg.Tenant.ID
	co := policy.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: ep.Authority},
		Transport: hc,
		Retry:     policy.RetryOptions{ShouldRetry: shouldRetry},
	}
	id := identity{tenant: tenant, clientID: a.ClientID, method: a.Method, authority: ep.Authority}
	fields := []zap.Field{zap.String("method", a.Method), zap.String("tenant", tenant), zap.String("client_id", a.ClientID),
		zap.String("authority", ep.Authority)}

	var cred azcore.TokenCredential
	switch a.Method {
	case config.MethodCertificate:
		certs, key, err := loadCertificate(a)
		if err != nil {
			return nil, err
		}
		leaf := certs[0]
		sum := sha256.Sum256(leaf.Raw)
		fields = append(fields, zap.String("certificate", leaf.Subject.String()),
			zap.String("certificate_sha256", strings.ToUpper(hex.EncodeToString(sum[:]))),
			zap.Time("certificate_not_after", leaf.NotAfter))
		if left := time.Until(leaf.NotAfter); left < 30*24*time.Hour {
			log.Warn("the client certificate expires soon: upload a new one to the app registration and set auth.certificate_file",
				zap.String("file", a.CertificateFile), zap.Time("not_after", leaf.NotAfter))
		}
		cred, err = azidentity.NewClientCertificateCredential(tenant, a.ClientID, certs, key, &azidentity.ClientCertificateCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: ep.CustomAuthority, SendCertificateChain: a.SendCertificateChain,
		})
		if err != nil {
			return nil, fmt.Errorf("auth: certificate credential: %w", err)
		}
	case config.MethodSecret:
		secret, source, err := clientSecret(a)
		if err != nil {
			return nil, err
		}
		fields = append(fields, zap.String("secret_from", source))
		cred, err = azidentity.NewClientSecretCredential(tenant, a.ClientID, secret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: ep.CustomAuthority,
		})
		if err != nil {
			return nil, fmt.Errorf("auth: client secret credential: %w", err)
		}
	case config.MethodWorkloadIdentity:
		fields = append(fields, zap.String("token_file", a.TokenFile))
		cred, err = azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: co, ClientID: a.ClientID, TenantID: tenant, TokenFilePath: a.TokenFile,
			DisableInstanceDiscovery: ep.CustomAuthority,
		})
		if err != nil {
			return nil, fmt.Errorf("auth: workload identity credential: %w", err)
		}
	case config.MethodManagedIdentity:
		// The managed identity endpoint belongs to the host (IMDS, App Service, Arc...), not to the cloud's
		// authority: only the transport applies.
		o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: policy.ClientOptions{Transport: hc}}
		if a.ClientID != "" {
			o.ID = azidentity.ClientID(a.ClientID)
		}
		cred, err = azidentity.NewManagedIdentityCredential(o)
		if err != nil {
			return nil, fmt.Errorf("auth: managed identity credential: %w", err)
		}
		id.authority = "the host's managed identity endpoint"
	default:
		return nil, fmt.Errorf("auth: auth.method %q is not one of %s", a.Method, strings.Join(config.Methods, ", "))
	}
	log.Info("credential ready", fields...)
	return &credential{inner: cred, id: id}, nil
}

// retryStatus are azcore's default retriable statuses for token requests.
var retryStatus = []int{http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
	http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}

// shouldRetry is azcore's default rule, except that a TLS verification failure is final: an untrusted or
// misnamed certificate does not fix itself in seconds, and retrying it only delays the message that says
// to set tenant.ca_file.
func shouldRetry(resp *http.Response, err error) bool {
	if err != nil {
		var uerr x509.UnknownAuthorityError
		var cerr x509.CertificateInvalidError
		var herr x509.HostnameError
		var verr *tls.CertificateVerificationError
		return !(errors.As(err, &uerr) || errors.As(err, &cerr) || errors.As(err, &herr) || errors.As(err, &verr))
	}
	return resp != nil && slices.Contains(retryStatus, resp.StatusCode)
}

// loadCertificate reads the certificate file (PEM or PFX) with its password, and checks what Entra would
// otherwise refuse with a less helpful message: an expired certificate, a key that is not the certificate's.
func loadCertificate(a config.Auth) ([]*x509.Certificate, crypto.PrivateKey, error) {
	data, err := config.ReadFile("auth.certificate_file", a.CertificateFile, config.MaxCertificateBytes)
	if err != nil {
		return nil, nil, err
	}
	var password []byte
	switch {
	case a.CertificatePasswordFile != "":
		p, err := config.ReadFile("auth.certificate_password_file", a.CertificatePasswordFile, config.MaxSecretBytes)
		if err != nil {
			return nil, nil, err
		}
		password = bytes.TrimRight(p, "\r\n") // a password file written by echo ends in a newline
	case !a.CertificatePassword.IsZero():
		password = []byte(a.CertificatePassword.Reveal())
	}
	certs, key, err := azidentity.ParseCertificates(data, password)
	if err != nil {
		hint := "give a PEM file with the certificate and its unencrypted private key, or a PFX file"
		if len(password) > 0 {
			hint = "check the password (auth.certificate_password_file or WORKER_AUTH_CERTIFICATE_PASSWORD) and that the file is a PFX (PKCS#12) with SHA-1 MAC, or a PEM file"
		} else if !bytes.Contains(data, []byte("-----BEGIN")) {
			hint = "a PFX file needs its password: set auth.certificate_password_file (or WORKER_AUTH_CERTIFICATE_PASSWORD)"
		}
		return nil, nil, fmt.Errorf("auth.certificate_file: cannot read a certificate and private key from %s: %v; %s", a.CertificateFile, err, hint)
	}
	leaf := certs[0]
	if now := time.Now(); now.After(leaf.NotAfter) {
		return nil, nil, fmt.Errorf("auth.certificate_file: the certificate in %s (%s) expired on %s; create a new one, upload its public part to the app registration and point auth.certificate_file at it",
			a.CertificateFile, leaf.Subject, leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	if pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok {
		if signer, ok := key.(crypto.Signer); ok && !pub.Equal(signer.Public()) {
			return nil, nil, fmt.Errorf("auth.certificate_file: the private key in %s does not belong to its certificate (%s); put the matching key next to the certificate", a.CertificateFile, leaf.Subject)
		}
	}
	return certs, key, nil
}

// clientSecret returns the secret and where it came from (for the log line, never the value).
func clientSecret(a config.Auth) (secret, source string, err error) {
	if a.ClientSecretFile != "" {
		b, err := config.ReadFile("auth.client_secret_file", a.ClientSecretFile, config.MaxSecretBytes)
		if err != nil {
			return "", "", err
		}
		s := strings.TrimSpace(string(b)) // files from editors and echo end in a newline
		if s == "" {
			return "", "", fmt.Errorf("auth.client_secret_file: %s is empty; it should hold the client secret's value", a.ClientSecretFile)
		}
		return s, "file " + a.ClientSecretFile, nil
	}
	if !a.ClientSecret.IsZero() {
		return a.ClientSecret.Reveal(), "environment WORKER_AUTH_CLIENT_SECRET", nil
	}
	return "", "", errors.New("auth: method secret needs auth.client_secret_file or WORKER_AUTH_CLIENT_SECRET")
}

// identity is who asks for tokens, for error messages.
type identity struct {
	tenant, clientID, method, authority string
}

// credential wraps the azidentity credential so that its errors read well.
type credential struct {
	inner azcore.TokenCredential
	id    identity
}

// GetToken implements azcore.TokenCredential.
func (c *credential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.inner.GetToken(ctx, opts)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return tok, err
		}
		return tok, newError(c.id, err)
	}
	return tok, nil
}
