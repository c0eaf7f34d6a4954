package setup

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// CertValidity is how long a certificate setup generates is valid: two years, the longest Entra's portal
// offers for uploaded certificates by default policy, and a yearly rotation fits inside it.
const CertValidity = 2 * 365 * 24 * time.Hour

// Certificate is the app's credential: the PEM file with certificate and private key (mode 0600, read by the
// worker's auth.certificate_file) and the public certificate alone (.crt, for the script and for review).
type Certificate struct {
	PEMFile    string
	PublicFile string
	DER        []byte
	NotAfter   time.Time
	// Created is true when this run generated the key; false when an existing file was reused.
	Created bool
}

// EnsureCertificate reuses the certificate in pemFile, or generates a new RSA 2048 key and a self-signed
// certificate for subject and writes them there with mode 0600 (with dryRun it writes nothing: the
// certificate a dry run shows is not the one a real run will create). The private key is created on this machine
// and never sent anywhere: only the public certificate goes to Entra. An existing file that is readable by
// others is refused rather than silently used.
func EnsureCertificate(pemFile, subject string, now time.Time, dryRun bool) (*Certificate, error) {
	pub := publicPath(pemFile)
	if data, err := os.ReadFile(pemFile); err == nil {
		st, err := os.Stat(pemFile)
		if err != nil {
			return nil, err
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%s holds a private key and is readable by others (mode %v); run chmod 600 %s", pemFile, st.Mode().Perm(), pemFile)
		}
		cert, err := parsePEMCert(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w; move it away to let setup create a new certificate", pemFile, err)
		}
		if now.After(cert.NotAfter.Add(-30 * 24 * time.Hour)) {
			return nil, fmt.Errorf("the certificate in %s expires on %s; move the file away and run worker setup again to create and upload a new one", pemFile, cert.NotAfter.Format(time.DateOnly))
		}
		if err := writePublic(pub, cert.Raw); err != nil {
			return nil, err
		}
		return &Certificate{PEMFile: pemFile, PublicFile: pub, DER: cert.Raw, NotAfter: cert.NotAfter}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: subject},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CertValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if dryRun {
		return &Certificate{PEMFile: pemFile, PublicFile: pub, DER: der, NotAfter: tmpl.NotAfter, Created: true}, nil
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})...)
	if err := os.MkdirAll(filepath.Dir(pemFile), 0o700); err != nil {
		return nil, err
	}
	// O_EXCL: never replace a key another process just wrote; 0600 from the first byte.
	f, err := os.OpenFile(pemFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := writePublic(pub, der); err != nil {
		return nil, err
	}
	return &Certificate{PEMFile: pemFile, PublicFile: pub, DER: der, NotAfter: tmpl.NotAfter, Created: true}, nil
}

func publicPath(pemFile string) string {
	ext := filepath.Ext(pemFile)
	if ext == ".crt" || ext == ".cer" {
		return pemFile + ".public.crt"
	}
	return pemFile[:len(pemFile)-len(ext)] + ".crt"
}

func writePublic(path string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func parsePEMCert(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM certificate in the file")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}
