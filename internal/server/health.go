package server

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Readiness says whether the worker can do its work: the store answers and
// tokens can be obtained. Ready returning nil → /readyz 200; an error → 503.
// Anonymous callers see only reason codes: the name of each failing check
// (a *CheckFailed in the error, as Checks returns) or "not-ready"; callers
// with the server token also see the error texts, which name the tenant,
// the client id and Entra's answer (never a credential).
type Readiness interface {
	Ready(ctx context.Context) error
}

// ReadyFunc adapts a function to Readiness.
type ReadyFunc func(ctx context.Context) error

// Ready calls f.
func (f ReadyFunc) Ready(ctx context.Context) error { return f(ctx) }

// Checks is a Readiness made of named checks, all run on every call so the
// answer lists every failing one, e.g.
//
//	server.Checks{"store": st.Ping, "exo-token": func(ctx context.Context) error {
//		_, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{exoScope}})
//		return err
//	}}
//
// azidentity caches tokens, so a token check costs a network call only when
// the cached token is close to expiry.
type Checks map[string]func(ctx context.Context) error

// Ready runs every check; the error joins a *CheckFailed for each failing one.
func (c Checks) Ready(ctx context.Context) error {
	names := make([]string, 0, len(c))
	for n := range c {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		if err := c[n](ctx); err != nil {
			errs = append(errs, &CheckFailed{Name: n, Err: err})
		}
	}
	return errors.Join(errs...)
}

// CheckFailed is one failing readiness check. Name is its reason code: what
// an anonymous caller of /readyz learns.
type CheckFailed struct {
	Name string
	Err  error
}

func (e *CheckFailed) Error() string { return e.Name + ": " + e.Err.Error() }
func (e *CheckFailed) Unwrap() error { return e.Err }

// reasonCodes lists the names of the failed checks in err ("not-ready" for
// an error that names none).
func reasonCodes(err error) []string {
	var codes []string
	var walk func(error)
	walk = func(e error) {
		var cf *CheckFailed
		switch j := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range j.Unwrap() {
				walk(x)
			}
		default:
			if errors.As(e, &cf) {
				codes = append(codes, cf.Name)
			} else {
				codes = append(codes, "not-ready")
			}
		}
	}
	walk(err)
	return codes
}

// readyTimeout bounds one readiness check: a probe that hangs is worse than
// one that fails.
const readyTimeout = 5 * time.Second

// Default cache lifetimes of the readiness answer. A probe every few seconds
// from each kubelet and load balancer must not become a token request each:
// a failing credential is not cached by azidentity, and Entra throttles a
// client that asks too often.
const (
	DefaultReadyTTL     = 30 * time.Second
	DefaultReadyFailTTL = 5 * time.Second
)

// readyCache holds the last readiness answer. Its mutex is held while a
// check runs, so concurrent probes wait for one check instead of each
// running their own.
type readyCache struct {
	mu      sync.Mutex
	checked bool
	at      time.Time
	err     error
}

// readiness returns the cached answer while it is fresh, else checks again.
func (s *Server) readiness(ctx context.Context) error {
	c := &s.readyCache
	c.mu.Lock()
	defer c.mu.Unlock()
	now := s.now()
	ttl := s.opts.ReadyTTL
	if c.err != nil {
		ttl = s.opts.ReadyFailTTL
	}
	if c.checked && now.Sub(c.at) < ttl && !now.Before(c.at) {
		return c.err
	}
	// A caller hanging up must not cache "context canceled" for everyone.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
	defer cancel()
	c.err = s.ready.Ready(cctx)
	c.checked, c.at = true, s.now()
	if c.err != nil {
		s.log.Warn("not ready", zap.Error(c.err))
	}
	return c.err
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.ready == nil {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return
	}
	err := s.readiness(r.Context())
	if err == nil {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return
	}
	body := map[string]any{"status": "not ready", "reasons": reasonCodes(err)}
	if s.auth.enabled && s.auth.valid(r) {
		body["details"] = strings.Split(err.Error(), "\n")
	}
	writeJSON(w, http.StatusServiceUnavailable, body)
}
