package faults_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/internal/sim/simtest"
	"github.com/exo-worker/worker/internal/sim/tenant"
)

func TestThrottleBudgetAnswers429WithRetryAfter(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{Faults: sim.Faults{ThrottleBudget: 2, ThrottleBurst: 3}})
	c := simtest.NewCaller(t, s)
	var ok, throttled int
	for range 8 {
		r := c.Invoke("Get-AcceptedDomain", nil)
		switch r.Status {
		case 200:
			ok++
		case 429:
			throttled++
			ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
			if err != nil || ra < 1 {
				t.Errorf("Retry-After = %q, want an integer >= 1", r.Header.Get("Retry-After"))
			}
			if r.ErrorCode() != "TooManyRequests" || !strings.Contains(r.ErrorMessage(), "Retry after") {
				t.Errorf("429 body = %s", r.Raw)
			}
		default:
			t.Fatalf("unexpected status %d: %s", r.Status, r.Raw)
		}
	}
	// The burst is 3; eight quick calls can refill at most a token or two.
	if ok < 3 || ok > 5 || throttled != 8-ok {
		t.Errorf("ok=%d throttled=%d, want 3..5 accepted and the rest throttled", ok, throttled)
	}
	if got := s.FaultStats().Throttled; got != int64(throttled) {
		t.Errorf("FaultStats().Throttled = %d, want %d", got, throttled)
	}
	if n := s.Log.Count(func(e sim.Entry) bool {
		return e.Status == 429 && e.Fault == "throttle" && e.Cmdlet == "Get-AcceptedDomain"
	}); n != throttled {
		t.Errorf("log has %d throttled entries, want %d", n, throttled)
	}
	// After waiting the budget refills.
	time.Sleep(1100 * time.Millisecond)
	c.Invoke("Get-AcceptedDomain", nil).MustStatus(t, 200)
	if lim := c.Invoke("Get-AcceptedDomain", nil).Header.Get("Rate-Limit-Limit"); lim != "3" {
		t.Errorf("Rate-Limit-Limit = %q, want the burst 3", lim)
	}
}

func TestThrottleInsideBatchCountsEverySubRequest(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{Faults: sim.Faults{ThrottleBudget: 1, ThrottleBurst: 4}})
	c := simtest.NewCaller(t, s)
	var reqs []simtest.SubReq
	for i := range 8 {
		reqs = append(reqs, c.Sub(strconv.Itoa(i), "Get-AcceptedDomain", nil))
	}
	subs := simtest.BatchResponses(t, c.Batch(reqs).MustStatus(t, 200))
	var ok, throttled int
	for _, sr := range subs {
		switch sr.Status {
		case 200:
			ok++
		case 429:
			throttled++
			if ra, err := strconv.Atoi(sr.Headers["Retry-After"]); err != nil || ra < 1 {
				t.Errorf("sub-response Retry-After = %q", sr.Headers["Retry-After"])
			}
		}
	}
	if ok != 4 || throttled != 4 {
		t.Errorf("ok=%d throttled=%d, want 4 and 4 (the envelope itself costs nothing)", ok, throttled)
	}
}

func TestErrorRateAnswersTransient5xxWithoutSideEffects(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{Faults: sim.Faults{ErrorRate: 1, Seed: 7}})
	c := simtest.NewCaller(t, s)
	target := s.Tenant().InScopeMEUs()[0]
	before := target.UseMapiRichTextFormat
	names := []string{"DCOverloadedException", "SuitabilityDirectoryException", "ServerInMMException",
		"ADServerSettingsChangedException", "StorageTransientException"}
	for range 10 {
		r := c.Invoke("Set-MailUser", map[string]any{"Identity": target.ID, "UseMapiRichTextFormat": "Always"})
		if r.Status != 500 && r.Status != 503 {
			t.Fatalf("status %d, want 500 or 503", r.Status)
		}
		found := false
		for _, n := range names {
			found = found || strings.Contains(r.Detail(), n)
		}
		if !found {
			t.Errorf("detail %q names no transient exception", r.Detail())
		}
	}
	if o, _ := s.Tenant().Object(target.ID); o.UseMapiRichTextFormat != before {
		t.Error("an injected 5xx changed the object")
	}
	if s.FaultStats().Errors != 10 {
		t.Errorf("Errors = %d, want 10", s.FaultStats().Errors)
	}
	s.SetFaults(sim.Faults{})
	c.Invoke("Get-AcceptedDomain", nil).MustStatus(t, 200)
}

func rawPost(t *testing.T, c *simtest.Caller, body []byte) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest("POST", c.Base+"/InvokeCommand", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.HC.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

func TestResetDropsTheConnectionAfterTheWrite(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{Faults: sim.Faults{ResetRate: 1}})
	c := simtest.NewCaller(t, s)
	var target tenant.Object
	for _, o := range s.Tenant().InScopeMEUs() {
		if o.UseMapiRichTextFormat != tenant.RichTextNever {
			target = o
			break
		}
	}
	_, _, err := rawPost(t, c, simtest.CmdletBody("Set-MailUser", map[string]any{"Identity": target.ID, "UseMapiRichTextFormat": "Never"}))
	if err == nil {
		t.Fatal("request succeeded; want a dropped connection")
	}
	if o, _ := s.Tenant().Object(target.ID); o.UseMapiRichTextFormat != tenant.RichTextNever {
		t.Error("the write did not happen before the reset (the outcome must be unknown to the client, not absent)")
	}
	if n := s.Log.Count(func(e sim.Entry) bool { return e.Fault == "reset" && e.Status == 0 && e.Cmdlet == "Set-MailUser" }); n != 1 {
		t.Errorf("reset entries = %d, want 1", n)
	}
	if s.FaultStats().Resets != 1 {
		t.Errorf("Resets = %d", s.FaultStats().Resets)
	}
}

func TestTruncateSendsHalfABody(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{Faults: sim.Faults{TruncateRate: 1}})
	c := simtest.NewCaller(t, s)
	res, body, err := rawPost(t, c, simtest.CmdletBody("Get-MailUser", map[string]any{"ResultSize": 5}))
	// The status line and headers arrive (200, full Content-Length); the body stops half way.
	if res == nil || res.StatusCode != 200 {
		t.Fatalf("response %v, err %v: want status 200 with a cut body", res, err)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reading the body: %v, want unexpected EOF", err)
	}
	if json.Valid(body) || int64(len(body)) >= res.ContentLength {
		t.Errorf("got %d of %d bytes, valid JSON %v: want half a body", len(body), res.ContentLength, json.Valid(body))
	}
	if n := s.Log.Count(func(e sim.Entry) bool { return e.Fault == "truncate" && e.Status == 200 }); n != 1 {
		t.Errorf("truncate entries = %d, want 1", n)
	}
}

func TestRTTDelaysEveryRequest(t *testing.T) {
	// A large RTT, so that "removed" stays distinguishable from "still there" on a loaded machine.
	const rtt = time.Second
	s := simtest.NewSim(t, sim.Options{Faults: sim.Faults{RTT: rtt}})
	c := simtest.NewCaller(t, s)
	c.Invoke("Get-AcceptedDomain", nil) // warm the connection (TLS handshake)
	start := time.Now()
	c.Invoke("Get-AcceptedDomain", nil).MustStatus(t, 200)
	if el := time.Since(start); el < rtt {
		t.Errorf("call took %s, want >= %s", el, rtt)
	}
	s.SetFaults(sim.Faults{})
	start = time.Now()
	c.Invoke("Get-AcceptedDomain", nil).MustStatus(t, 200)
	if el := time.Since(start); el > rtt*8/10 {
		t.Errorf("call took %s after RTT was removed", el)
	}
}

func TestRateLimitHeadersWithoutThrottling(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := simtest.NewCaller(t, s)
	a := c.Invoke("Get-AcceptedDomain", nil)
	b := c.Invoke("Get-AcceptedDomain", nil)
	ra, _ := strconv.Atoi(a.Header.Get("Rate-Limit-Remaining"))
	rb, _ := strconv.Atoi(b.Header.Get("Rate-Limit-Remaining"))
	if a.Header.Get("Rate-Limit-Limit") != "30000" || rb >= ra {
		t.Errorf("limit %q, remaining %d then %d: want 30000 and a count-down", a.Header.Get("Rate-Limit-Limit"), ra, rb)
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z", a.Header.Get("Rate-Limit-Reset")); err != nil {
		t.Errorf("Rate-Limit-Reset = %q: %v", a.Header.Get("Rate-Limit-Reset"), err)
	}
}

// TestDropFaultsOverHTTP2: HTTP/2 connections cannot be hijacked, so the simulator resets the stream
// instead; a client must still see a failed request and the log must still record it.
func TestDropFaultsOverHTTP2(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults sim.Faults
		fault  string
	}{
		{"reset", sim.Faults{ResetRate: 1}, "reset"},
		{"truncate", sim.Faults{TruncateRate: 1}, "truncate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := simtest.NewSim(t, sim.Options{Faults: tc.faults})
			c := simtest.NewCaller(t, s)
			c.HC = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CAPool()}, ForceAttemptHTTP2: true}}
			t.Cleanup(c.HC.CloseIdleConnections) // runs before the server's Close, which would wait for them
			res, body, err := rawPost(t, c, simtest.CmdletBody("Get-MailUser", map[string]any{"ResultSize": 5}))
			if err == nil && json.Valid(body) {
				t.Fatalf("got a complete response (status %d)", res.StatusCode)
			}
			if res != nil && res.ProtoMajor != 2 {
				t.Fatalf("protocol %s, want HTTP/2", res.Proto)
			}
			if n := s.Log.Count(func(e sim.Entry) bool { return e.Fault == tc.fault }); n != 1 {
				t.Errorf("%s entries = %d, want 1", tc.fault, n)
			}
		})
	}
}
