package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestReadyz(t *testing.T) {
	tests := []struct {
		name       string
		ready      Readiness
		wantStatus int
		want       []string
	}{
		{"no checks", nil, 200, []string{`"ready"`}},
		{"all pass", Checks{"store": func(context.Context) error { return nil }, "exo-token": func(context.Context) error { return nil }}, 200, []string{`"ready"`}},
		{"store down", Checks{
			"store":     func(context.Context) error { return errors.New("ping /data/worker.db: database is locked") },
			"exo-token": func(context.Context) error { return nil },
		}, 503, []string{"not ready", "store: ping /data/worker.db: database is locked"}},
		{"both down, both named", Checks{
			"store":     func(context.Context) error { return errors.New("closed") },
			"exo-token": func(context.Context) error { return errors.New("AADSTS7000215: invalid client secret") },
		}, 503, []string{"exo-token: AADSTS7000215", "store: closed"}},
		{"func", ReadyFunc(func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("no deadline on the readiness context")
			}
			return nil
		}), 200, []string{`"ready"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.Ready = tt.ready })
			resp := h.do(t, request{method: "GET", path: "/readyz"}, "")
			body := bodyOf(t, resp)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("body %s lacks %q", body, w)
				}
			}
			// healthz stays 200 while the process is up, ready or not.
			if resp := h.do(t, request{method: "GET", path: "/healthz"}, ""); resp.StatusCode != http.StatusOK {
				t.Errorf("healthz %d", resp.StatusCode)
			}
		})
	}
}
