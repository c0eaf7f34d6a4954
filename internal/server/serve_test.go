package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/store"
)

// TestServeRealListener runs the server on 127.0.0.1 and goes through the
// flow a daemon sees: unauthenticated trigger refused, webhook accepted,
// metrics showing both, clean shutdown on context end.
func TestServeRealListener(t *testing.T) {
	h := newHarness(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ServeListener: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("ServeListener did not return after cancel")
		}
	})
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 5 * time.Second}
	send := func(method, path, authz, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, _ := send("GET", "/healthz", "", ""); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, _ := send("POST", "/api/v1/runs", "", `{"job":"meu-richtext"}`); code != 401 {
		t.Fatalf("unauthenticated POST %d, want 401", code)
	}
	if code, _ := send("GET", "/api/v1/findings", "", ""); code != 401 {
		t.Fatalf("unauthenticated findings %d, want 401", code)
	}
	if code, body := send("POST", "/api/v1/hooks/alertmanager", basic("am", testToken), testdata(t, "alertmanager-firing.json")); code != 202 {
		t.Fatalf("webhook %d: %s", code, body)
	}
	h.metrics.ObserveRun("meu-richtext", "succeeded", 3*time.Second)
	h.metrics.ObserveAPI("exo", 429, time.Second)
	h.metrics.SetOpenFindings(FindingCounts(h.runs.findings))

	code, body := send("GET", "/metrics", "", "")
	if code != 200 {
		t.Fatalf("metrics %d", code)
	}
	for _, want := range []string{
		`exo_worker_triggers_total{job="meu-richtext",status="started"} 1`,
		`exo_worker_http_unauthorized_total 2`,
		`exo_worker_runs_total{job="meu-richtext",status="succeeded"} 1`,
		`exo_worker_api_throttled_total{service="exo"} 1`,
		`exo_worker_findings{rule="primary-not-mail",severity="high"} 2`,
		`exo_worker_findings{rule="onmicrosoft-primary",severity="medium"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// No object id or name reaches a label.
	for _, leak := range []string{objA, objB, objC, "Jane Doe", "MEUPlainTextInvites"} {
		if strings.Contains(body, leak) {
			t.Errorf("/metrics carries %q", leak)
		}
	}
	if calls := h.runner.Calls(); len(calls) != 1 {
		t.Fatalf("runner saw %d triggers, want 1 (the webhook only)", len(calls))
	}
}

func TestServeFailsOnBusyAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	h := newHarness(t, func(o *Options) { o.Listen = ln.Addr().String() })
	err = h.srv.Serve(context.Background())
	if err == nil || !strings.Contains(err.Error(), "server.listen") {
		t.Fatalf("Serve on a busy port: %v, want an error naming server.listen", err)
	}
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8080}, true},
		{&net.TCPAddr{IP: net.ParseIP("127.8.9.1"), Port: 8080}, true},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 8080}, true},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, false},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, false},
		{&net.TCPAddr{IP: net.ParseIP("10.0.0.5"), Port: 8080}, false},
		{&net.UnixAddr{Name: "/run/worker.sock", Net: "unix"}, true},
	}
	for _, tt := range tests {
		if got := isLoopback(tt.addr); got != tt.want {
			t.Errorf("isLoopback(%v) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

// TestRealStoreSatisfiesRunReader wires the real SQLite store in: the status
// page and the API show what the store holds, and an unknown run id maps
// through store.ErrNotFound to 404.
func TestRealStoreSatisfiesRunReader(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir()+"/worker.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	run, err := st.CreateRun(ctx, store.Run{Job: "address-audit", Mode: "report", Trigger: store.TriggerSchedule})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordFindings(ctx, run.ID, "address-audit", []store.Finding{
		{Rule: "primary-not-mail", ObjectID: objA, Severity: "high", Detail: "SMTP: differs from mail"},
		{Rule: "primary-not-mail", ObjectID: objB, Severity: "high", Detail: "SMTP: differs from mail"},
	}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishRun(ctx, run.ID, store.RunResult{Status: store.RunSucceeded}); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(o *Options) { o.Runs = st; o.Ready = Checks{"store": st.Ping} })

	page := bodyOf(t, h.do(t, request{method: "GET", path: "/"}, basic("", testToken)))
	for _, want := range []string{run.ID, "primary-not-mail", "2 open findings"} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	if resp := h.do(t, request{method: "GET", path: "/api/v1/runs/" + run.ID}, bearer(testToken)); resp.StatusCode != 200 {
		t.Fatalf("get run %d", resp.StatusCode)
	}
	if resp := h.do(t, request{method: "GET", path: "/api/v1/runs/01J0000000000000000000000X"}, bearer(testToken)); resp.StatusCode != 404 {
		t.Fatalf("get unknown run %d, want 404", resp.StatusCode)
	}
	got := decode[findingsResponse](t, h.do(t, request{method: "GET", path: "/api/v1/findings?limit=1"}, bearer(testToken)))
	if got.Count != 1 || !got.Truncated || got.NextCursor == "" {
		t.Fatalf("findings limit=1: %+v, want 1, truncated, with a cursor", got)
	}
	// The cursor pages through the real store: the second page is the other finding, and the last.
	next := decode[findingsResponse](t, h.do(t, request{method: "GET", path: "/api/v1/findings?limit=1&cursor=" + got.NextCursor}, bearer(testToken)))
	if next.Count != 1 || next.Truncated || next.NextCursor != "" || next.Findings[0].ObjectID == got.Findings[0].ObjectID {
		t.Fatalf("second page %+v after %s", next, got.Findings[0].ObjectID)
	}
	if resp := h.do(t, request{method: "GET", path: "/api/v1/findings?cursor=not-a-cursor!"}, bearer(testToken)); resp.StatusCode != 400 {
		t.Fatalf("a bad cursor: %d, want 400", resp.StatusCode)
	}
	if resp := h.do(t, request{method: "GET", path: "/readyz"}, ""); resp.StatusCode != 200 {
		t.Fatalf("readyz with a live store %d", resp.StatusCode)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(DefaultReadyTTL) // the live store's answer is cached that long
	resp := h.do(t, request{method: "GET", path: "/readyz"}, bearer(testToken))
	if body := bodyOf(t, resp); resp.StatusCode != 503 || !strings.Contains(body, "store: ") {
		t.Fatalf("readyz with a closed store: %d %s", resp.StatusCode, body)
	}
}

// wildcardListener is a loopback listener that reports the unspecified
// address, to see the warning a 0.0.0.0 bind gets without leaving 127.0.0.1.
type wildcardListener struct{ net.Listener }

func (wildcardListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4zero, Port: 8080} }

func TestNonLoopbackBindWarns(t *testing.T) {
	for _, tc := range []struct {
		name     string
		wildcard bool
		want     int
	}{{"loopback", false, 0}, {"wildcard", true, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.AllowPlaintextNonLoopback = true })
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var l net.Listener = ln
			if tc.wildcard {
				l = wildcardListener{ln}
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // serve and stop at once: only the start-up log matters
			if err := h.srv.ServeListener(ctx, l); err != nil {
				t.Fatal(err)
			}
			if n := h.logs.FilterMessageSnippet("non-loopback").Len(); n != tc.want {
				t.Fatalf("%d non-loopback warnings, want %d", n, tc.want)
			}
		})
	}
	// Without the permission, a listener that turns out to accept every interface is refused.
	h := newHarness(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.ServeListener(context.Background(), wildcardListener{ln}); !errors.Is(err, ErrPlaintextNonLoopback) {
		t.Fatalf("err %v, want ErrPlaintextNonLoopback", err)
	}
}
