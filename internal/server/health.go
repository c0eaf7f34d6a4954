package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Readiness says whether the worker can do its work: the store answers and
// tokens can be obtained. Ready returning nil → /readyz 200; an error → 503
// with the error text as the reason (so it must not carry secrets; error texts
// from the store and azidentity name paths, tenants and client ids, not
// credentials).
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

// Ready runs every check; the error names each failing check.
func (c Checks) Ready(ctx context.Context) error {
	names := make([]string, 0, len(c))
	for n := range c {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		if err := c[n](ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// readyTimeout bounds one /readyz call: a probe that hangs is worse than one
// that fails.
const readyTimeout = 5 * time.Second

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.ready == nil {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.ready.Ready(ctx); err != nil {
		s.log.Warn("not ready", zap.Error(err))
		reasons := strings.Split(err.Error(), "\n")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "reasons": reasons})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
