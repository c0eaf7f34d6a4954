package server

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/exo-worker/worker/config"
)

// protected lists every endpoint that needs the token, with a body that
// would be accepted (so a pass through auth would show as a trigger).
var protected = []struct {
	name string
	req  request
	page bool // the status page challenges with Basic only
}{
	{"create run", request{method: "POST", path: "/api/v1/runs", body: `{"job":"meu-richtext"}`}, false},
	{"list jobs", request{method: "GET", path: "/api/v1/jobs"}, false},
	{"list runs", request{method: "GET", path: "/api/v1/runs"}, false},
	{"get run", request{method: "GET", path: "/api/v1/runs/01HZZZ0001"}, false},
	{"findings", request{method: "GET", path: "/api/v1/findings"}, false},
	{"alertmanager hook", request{method: "POST", path: "/api/v1/hooks/alertmanager", body: `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"AddressDrift"}}]}`}, false},
	{"azure monitor hook", request{method: "POST", path: "/api/v1/hooks/azure-monitor", body: `{"schemaId":"azureMonitorCommonAlertSchema","data":{"essentials":{"alertRule":"MEU plain-text invites","monitorCondition":"Fired"},"customProperties":{"worker_job":"meu-richtext"}}}`}, false},
	{"status page", request{method: "GET", path: "/"}, true},
}

func TestProtectedEndpointsRefuseWithoutToken(t *testing.T) {
	creds := []struct {
		name  string
		authz string
	}{
		{"no credentials", ""},
		{"wrong bearer", bearer("not-the-token-0123456789")},
		{"bearer prefix of token", bearer(testToken[:len(testToken)-1])},
		{"token plus suffix", bearer(testToken + "x")},
		{"wrong basic password", basic("admin", "not-the-token-0123456789")},
		{"token as basic user name", basic(testToken, "")},
		{"empty bearer", "Bearer "},
		{"unknown scheme", "Token " + testToken},
		{"basic not base64", "Basic !!!" + testToken},
	}
	h := newHarness(t, nil)
	for _, ep := range protected {
		for _, c := range creds {
			t.Run(ep.name+"/"+c.name, func(t *testing.T) {
				resp := h.do(t, ep.req, c.authz)
				body := bodyOf(t, resp)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401; body %s", resp.StatusCode, body)
				}
				chal := resp.Header.Values("WWW-Authenticate")
				if len(chal) == 0 || !strings.Contains(strings.Join(chal, ","), `Basic realm="exo-worker"`) {
					t.Errorf("WWW-Authenticate %q, want a Basic challenge so browsers and webhook senders know to authenticate", chal)
				}
				if ep.page && strings.Contains(strings.Join(chal, ","), "Bearer") {
					t.Errorf("status page challenge %q offers Bearer; a browser prompts only for Basic", chal)
				}
				if strings.Contains(body, "Jane Doe") || strings.Contains(body, objA) {
					t.Errorf("401 body leaks data: %s", body)
				}
			})
		}
	}
	if calls := h.runner.Calls(); len(calls) != 0 {
		t.Fatalf("unauthenticated requests reached the runner: %+v", calls)
	}
	if strings.Contains(logText(h), testToken[:8]) {
		t.Fatalf("the log mentions the token")
	}
}

func TestProtectedEndpointsAcceptToken(t *testing.T) {
	creds := []struct {
		name  string
		authz string
	}{
		{"bearer", bearer(testToken)},
		{"bearer lower-case scheme", "bearer " + testToken},
		{"basic with token as password", basic("anyone", testToken)},
		{"basic with empty user", basic("", testToken)},
	}
	for _, ep := range protected {
		for _, c := range creds {
			t.Run(ep.name+"/"+c.name, func(t *testing.T) {
				h := newHarness(t, nil)
				resp := h.do(t, ep.req, c.authz)
				body := bodyOf(t, resp)
				if resp.StatusCode >= 300 {
					t.Fatalf("status %d, want 2xx; body %s", resp.StatusCode, body)
				}
				if ep.req.method == "POST" && len(h.runner.Calls()) != 1 {
					t.Fatalf("runner calls %+v, want exactly one trigger", h.runner.Calls())
				}
			})
		}
	}
}

func TestOpenEndpointsNeedNoToken(t *testing.T) {
	h := newHarness(t, nil)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		t.Run(path, func(t *testing.T) {
			resp := h.do(t, request{method: "GET", path: path}, "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
		})
	}
}

func TestNoTokenClosesProtectedEndpoints(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Token = nil })
	for _, ep := range protected {
		t.Run(ep.name, func(t *testing.T) {
			// Even a request that presents some token gets nothing.
			resp := h.do(t, ep.req, bearer(testToken))
			body := bodyOf(t, resp)
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "server.token_file") {
				t.Fatalf("status %d body %s, want 503 naming server.token_file", resp.StatusCode, body)
			}
		})
	}
	if len(h.runner.Calls()) != 0 {
		t.Fatalf("runner called without a configured token: %+v", h.runner.Calls())
	}
	if resp := h.do(t, request{method: "GET", path: "/healthz"}, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz %d without token, want 200", resp.StatusCode)
	}
	if h.logs.FilterMessageSnippet("no server token configured").Len() != 1 {
		t.Fatalf("no warning logged about the missing token")
	}
}

func TestCrossSiteBrowserPostRefused(t *testing.T) {
	h := newHarness(t, nil)
	// A browser that cached the status page's basic credentials would attach
	// them to a form post from another site.
	req := request{method: "POST", path: "/api/v1/runs", body: `{"job":"meu-richtext"}`,
		header: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}}
	resp := h.do(t, req, basic("u", testToken))
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
	req = request{method: "POST", path: "/api/v1/runs", body: `{"job":"meu-richtext"}`, contentType: "text/plain"}
	resp = h.do(t, req, basic("u", testToken))
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain post: status %d, want 415", resp.StatusCode)
	}
	if len(h.runner.Calls()) != 0 {
		t.Fatalf("cross-site requests reached the runner: %+v", h.runner.Calls())
	}
}

func TestNewRefusesShortToken(t *testing.T) {
	_, err := New(Options{Token: []byte("short"), Runner: newRecordingRunner(), Runs: &memRuns{}})
	if err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("err = %v, want a refusal naming the minimum length", err)
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		want    string
		wantErr error
	}{
		{"trailing newline trimmed", write("a", testToken+"\n"), testToken, nil},
		{"surrounding space trimmed", write("b", "  "+testToken+" \r\n"), testToken, nil},
		{"empty file", write("c", "\n"), "", ErrNoToken},
		{"unset path", "", "", ErrNoToken},
		{"missing file", filepath.Join(dir, "nope"), "", os.ErrNotExist},
		{"larger than a token", write("d", strings.Repeat("t", config.MaxSecretBytes+1)), "", config.ErrTooLarge},
		{"a device that never ends", "/dev/zero", "", config.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadTokenFile(tt.path)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func logText(h *harness) string {
	var b strings.Builder
	for _, e := range h.logs.All() {
		fmt.Fprintln(&b, e.Message, e.ContextMap())
	}
	return b.String()
}
