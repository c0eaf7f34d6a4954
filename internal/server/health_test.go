package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadyz(t *testing.T) {
	tests := []struct {
		name       string
		ready      Readiness
		wantStatus int
		anonymous  []string // in the answer without a token
		hidden     []string // not in the answer without a token
		withToken  []string // in the answer with the token
	}{
		{"no checks", nil, 200, []string{`"ready"`}, nil, []string{`"ready"`}},
		{"all pass", Checks{"store": func(context.Context) error { return nil }, "exo-token": func(context.Context) error { return nil }}, 200,
			[]string{`"ready"`}, nil, []string{`"ready"`}},
		{"store down", Checks{
			"store":     func(context.Context) error { return errors.New("ping /data/worker.db: database is locked") },
			"exo-token": func(context.Context) error { return nil },
		}, 503, []string{"not ready", `"reasons":["store"]`}, []string{"/data/worker.db", "exo-token"},
			[]string{"store: ping /data/worker.db: database is locked"}},
		{"both down, both named", Checks{
			"store": func(context.Context) error { return errors.New("closed") },
			"exo-token": func(context.Context) error {
				return errors.New("tenant contoso rejected client 1111: AADSTS7000215: invalid client secret")
			},
		}, 503, []string{`"reasons":["exo-token","store"]`}, []string{"AADSTS", "contoso", "1111", "closed"},
			[]string{"exo-token: tenant contoso rejected client 1111: AADSTS7000215", "store: closed"}},
		{"func", ReadyFunc(func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("no deadline on the readiness context")
			}
			return nil
		}), 200, []string{`"ready"`}, nil, nil},
		{"func failing", ReadyFunc(func(ctx context.Context) error { return errors.New("secret detail") }), 503,
			[]string{`"reasons":["not-ready"]`}, []string{"secret detail"}, []string{"secret detail"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.Ready = tt.ready })
			resp := h.do(t, request{method: "GET", path: "/readyz"}, "")
			body := compact(t, bodyOf(t, resp))
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			for _, w := range tt.anonymous {
				if !strings.Contains(body, w) {
					t.Errorf("anonymous body %s lacks %q", body, w)
				}
			}
			for _, w := range tt.hidden {
				if strings.Contains(body, w) {
					t.Errorf("anonymous body %s tells %q", body, w)
				}
			}
			resp = h.do(t, request{method: "GET", path: "/readyz"}, bearer(testToken))
			body = bodyOf(t, resp)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("with token: status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			for _, w := range tt.withToken {
				if !strings.Contains(body, w) {
					t.Errorf("body with token %s lacks %q", body, w)
				}
			}
			// A wrong token is anonymous.
			if body := bodyOf(t, h.do(t, request{method: "GET", path: "/readyz"}, bearer("wrong-token-0123456789"))); len(tt.hidden) > 0 && strings.Contains(body, tt.hidden[0]) {
				t.Errorf("a wrong token got details: %s", body)
			}
			// healthz stays 200 while the process is up, ready or not.
			if resp := h.do(t, request{method: "GET", path: "/healthz"}, ""); resp.StatusCode != http.StatusOK {
				t.Errorf("healthz %d", resp.StatusCode)
			}
		})
	}
}

// TestReadyzCachesTheCheck: each probe once ran the checks (a token request when the credential fails).
// A success is reused for ReadyTTL, a failure for ReadyFailTTL, on the injected clock.
func TestReadyzCachesTheCheck(t *testing.T) {
	var calls atomic.Int32
	var failing atomic.Bool
	h := newHarness(t, func(o *Options) {
		o.Ready = Checks{"exo-token": func(context.Context) error {
			calls.Add(1)
			if failing.Load() {
				return errors.New("AADSTS7000215")
			}
			return nil
		}}
	})
	probe := func(want int) {
		t.Helper()
		if resp := h.do(t, request{method: "GET", path: "/readyz"}, ""); resp.StatusCode != want {
			t.Fatalf("status %d, want %d", resp.StatusCode, want)
		}
	}
	for range 10 {
		probe(200)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("10 probes ran the check %d times, want 1", n)
	}
	failing.Store(true)
	h.clock.Advance(DefaultReadyTTL - time.Second)
	probe(200) // still the cached success
	h.clock.Advance(time.Second)
	probe(503)
	if n := calls.Load(); n != 2 {
		t.Fatalf("after the TTL: %d checks, want 2", n)
	}
	for range 10 {
		probe(503)
	}
	h.clock.Advance(DefaultReadyFailTTL)
	failing.Store(false)
	probe(200)
	if n := calls.Load(); n != 3 {
		t.Fatalf("a failure is cached for %v: %d checks, want 3", DefaultReadyFailTTL, n)
	}
}

// TestReadyzConcurrentProbesShareOneCheck: probes arriving together wait for one check.
func TestReadyzConcurrentProbesShareOneCheck(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	h := newHarness(t, func(o *Options) {
		o.Ready = ReadyFunc(func(context.Context) error {
			calls.Add(1)
			<-release
			return errors.New("down")
		})
	})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { _ = bodyOf(t, h.do(t, request{method: "GET", path: "/readyz"}, "")) })
	}
	// Poll until the first check is running, then let it finish.
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("20 concurrent probes ran %d checks, want 1", n)
	}
}

// compact removes the indentation of a JSON answer, so tests can look for fragments.
func compact(t *testing.T, body string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(body)); err != nil {
		t.Fatalf("not JSON: %v: %s", err, body)
	}
	return b.String()
}
