package server

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestStatusPage(t *testing.T) {
	h := newHarness(t, nil)
	h.runner.jobs[0].Running, h.runner.jobs[0].Queued = true, true
	h.runs.runs[1].Reason = `<img src=x onerror="alert(1)">`
	resp := h.do(t, request{method: "GET", path: "/"}, basic("admin", testToken))
	body := bodyOf(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, want := range []string{
		// jobs with schedules, state and last run
		"meu-richtext", "<code>*/30 * * * *</code>", "<code>0 6 * * *</code>", "running</span> + 1 queued",
		`<span class="s-running">running</span> 2026-03-01 11:59:00 UTC`, // meu-richtext's last run
		`<span class="s-partial">partial</span> 2026-03-01 10:00:00 UTC`, // address-audit's last run
		// recent runs with counts and duration
		"01HZZZ0001", "120 / 7 / 7 / 0 / 7", "42s", "alert (1 object)", "3 objects failed",
		// findings by rule: two high, one medium, oldest first-seen
		`<td class="sev-high">high</td>`, "primary-not-mail", "<td>2</td>", "2026-02-27 12:00:00 UTC",
		"onmicrosoft-primary", "3 open findings",
		`href="/api/v1/findings?job=address-audit&amp;rule=primary-not-mail"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Text from runs is escaped, never markup.
	if strings.Contains(body, `<img src=x`) || !strings.Contains(body, "&lt;img src=x") {
		t.Errorf("run reason not escaped")
	}
	// The high-severity rule comes before the medium one.
	if strings.Index(body, "primary-not-mail") > strings.Index(body, "onmicrosoft-primary") {
		t.Errorf("rules not ordered by severity")
	}
	// The page names no object and no person: those stay behind the JSON API.
	for _, leak := range []string{objA, "Jane Doe"} {
		if strings.Contains(body, leak) {
			t.Errorf("page shows %q; it should show counts by rule only", leak)
		}
	}
	// No script, no external resource, and the CSP admits exactly the inline style.
	if regexp.MustCompile(`(?i)<script|src=|https?://`).MatchString(stripEscaped(body)) {
		t.Errorf("page loads scripts or external resources")
	}
	m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no inline style")
	}
	sum := sha256.Sum256([]byte(m[1]))
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
		t.Errorf("CSP %q does not admit the rendered style by hash", csp)
	}
	for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "X-Frame-Options": "DENY"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

// stripEscaped drops the escaped test payload so the resource check looks at
// markup only.
func stripEscaped(s string) string { return strings.ReplaceAll(s, "&lt;img src=x", "") }

func TestStatusPageStoreDown(t *testing.T) {
	h := newHarness(t, nil)
	h.runs.err = errors.New("database is locked")
	resp := h.do(t, request{method: "GET", path: "/"}, basic("", testToken))
	body := bodyOf(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	if !strings.Contains(body, "Could not read recent runs") || !strings.Contains(body, "meu-richtext") {
		t.Fatalf("page should name the failure and still list the jobs: %s", body)
	}
	if strings.Contains(body, "locked") {
		t.Fatalf("internal error text on the page")
	}
}

func TestStatusPageEmpty(t *testing.T) {
	h := newHarness(t, nil)
	h.runs.runs, h.runs.findings = nil, nil
	body := bodyOf(t, h.do(t, request{method: "GET", path: "/"}, bearer(testToken)))
	for _, want := range []string{"No open findings.", "No runs yet.", "never"} {
		if !strings.Contains(body, want) {
			t.Errorf("empty page lacks %q", want)
		}
	}
}

func TestUnknownPathIs404(t *testing.T) {
	h := newHarness(t, nil)
	if resp := h.do(t, request{method: "GET", path: "/index.php"}, bearer(testToken)); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want 404", resp.StatusCode)
	}
}
