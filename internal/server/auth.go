package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/config"
)

// MinTokenLen is the shortest token New accepts. The token guards runs that
// write to the tenant and pages that name people; anything shorter is
// guessable. `openssl rand -hex 32` gives 64 characters.
const MinTokenLen = 16

// realm names the server in WWW-Authenticate challenges.
const realm = "exo-worker"

// ErrNoToken is returned by ReadTokenFile for an empty file.
var ErrNoToken = errors.New("no server token")

// ReadTokenFile reads server.token_file. Surrounding white space (the newline
// `echo` and editors add) is trimmed, because a token that silently carries
// it never matches what clients send.
func ReadTokenFile(path string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: server.token_file is not set; create one with `openssl rand -hex 32 > token && chmod 600 token` and set server.token_file", ErrNoToken)
	}
	b, err := config.ReadFile("server.token_file", path, config.MaxSecretBytes)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: server.token_file %s is empty; put a random token in it (`openssl rand -hex 32`)", ErrNoToken, path)
	}
	return b, nil
}

// authenticator checks the token. It keeps only a SHA-256 of it so that the
// comparison is over equal-length values: subtle.ConstantTimeCompare returns
// early on a length mismatch, which would tell a guesser the token's length.
type authenticator struct {
	sum     [sha256.Size]byte
	log     *zap.Logger
	onDeny  func()
	enabled bool
}

func newAuthenticator(token []byte, log *zap.Logger, onDeny func()) *authenticator {
	a := &authenticator{log: log, onDeny: onDeny, enabled: len(token) > 0}
	if a.enabled {
		a.sum = sha256.Sum256(token)
	}
	return a
}

// credential extracts the presented secret: a bearer token or the password of
// HTTP basic auth (the user name is ignored; Alertmanager, Azure Monitor and
// browsers all have a field for it but nothing to say in it).
func credential(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return rest, rest != ""
	case strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return "", false
		}
		_, pass, ok := strings.Cut(string(raw), ":")
		return pass, ok && pass != ""
	}
	return "", false
}

func (a *authenticator) valid(r *http.Request) bool {
	got, ok := credential(r)
	if !ok {
		return false
	}
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], a.sum[:]) == 1
}

// challenge selects the 401 answer: a browser prompts for basic credentials
// only when the challenge offers Basic.
type challenge int

const (
	challengeAPI  challenge = iota // Bearer first, Basic accepted too
	challengePage                  // Basic, so a browser shows its login prompt
)

// require wraps h so it runs only with the right token. Without a configured
// token the protected endpoints are closed (503), never open.
func (a *authenticator) require(c challenge, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.enabled {
			writeError(w, http.StatusServiceUnavailable, "api disabled",
				"no server token is configured, so the API, webhooks and status page are off; "+
					"put a random token in a file (`openssl rand -hex 32`) and set server.token_file")
			return
		}
		if !a.valid(r) {
			a.onDeny()
			// Never log the header: a wrong token is often a right token
			// for something else.
			a.log.Warn("refused request without a valid token",
				zap.String("method", r.Method), zap.String("path", r.URL.Path),
				zap.String("remote", r.RemoteAddr), zap.Bool("credential_present", r.Header.Get("Authorization") != ""))
			if c == challengePage {
				w.Header().Set("WWW-Authenticate", `Basic realm="`+realm+`", charset="UTF-8"`)
			} else {
				w.Header().Add("WWW-Authenticate", `Bearer realm="`+realm+`"`)
				w.Header().Add("WWW-Authenticate", `Basic realm="`+realm+`", charset="UTF-8"`)
			}
			if c == challengePage {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Header().Set("Cache-Control", "no-store")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte("401 unauthorized: sign in with any user name and the server token as the password\n"))
				return
			}
			writeError(w, http.StatusUnauthorized, "unauthorized",
				"send Authorization: Bearer <token> (or HTTP basic with the token as password); the token is in server.token_file")
			return
		}
		h.ServeHTTP(w, r)
	})
}
