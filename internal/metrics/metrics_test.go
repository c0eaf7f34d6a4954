package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTest(t *testing.T) *Metrics {
	t.Helper()
	return New(Options{Now: func() time.Time { return t0 }, NoProcessCollectors: true})
}

func TestObserveRun(t *testing.T) {
	m := newTest(t)
	m.ObserveRun("meu-richtext", "succeeded", 42*time.Second)
	m.ObserveRun("meu-richtext", "partial", 3*time.Second)
	m.ObserveRun("address-audit", "failed", time.Second)
	want := `
# HELP exo_worker_last_success_timestamp_seconds Unix time of the last run of the job that ended succeeded.
# TYPE exo_worker_last_success_timestamp_seconds gauge
exo_worker_last_success_timestamp_seconds{job="meu-richtext"} 1.7723664e+09
# HELP exo_worker_runs_total Runs finished, by job and final status (succeeded, partial, failed, aborted, interrupted).
# TYPE exo_worker_runs_total counter
exo_worker_runs_total{job="address-audit",status="failed"} 1
exo_worker_runs_total{job="meu-richtext",status="partial"} 1
exo_worker_runs_total{job="meu-richtext",status="succeeded"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"exo_worker_runs_total", "exo_worker_last_success_timestamp_seconds"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.runDuration); n != 2 {
		t.Fatalf("run duration series %d, want 2 (one per job)", n)
	}
	if got := testutil.ToFloat64(m.lastSuccess.WithLabelValues("meu-richtext")); got != float64(t0.Unix()) {
		t.Fatalf("last success %v, want %d", got, t0.Unix())
	}
}

func TestObserveAPI(t *testing.T) {
	m := newTest(t)
	obs := m.APIObserver() // the shape a client takes
	obs(ServiceEXO, 200, 120*time.Millisecond)
	obs(ServiceEXO, 200, 80*time.Millisecond)
	obs(ServiceEXO, 429, 10*time.Millisecond)
	obs(ServiceGraph, 0, 30*time.Second) // no response
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"exo 200", testutil.ToFloat64(m.apiRequests.WithLabelValues("exo", "200")), 2},
		{"exo 429", testutil.ToFloat64(m.apiRequests.WithLabelValues("exo", "429")), 1},
		{"graph error", testutil.ToFloat64(m.apiRequests.WithLabelValues("graph", "error")), 1},
		{"exo throttled", testutil.ToFloat64(m.apiThrottled.WithLabelValues("exo")), 1},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if n := testutil.CollectAndCount(m.apiThrottled); n != 1 {
		t.Errorf("throttled series %d, want 1 (graph had no 429)", n)
	}
}

func TestSetOpenFindingsZeroesVanishedRules(t *testing.T) {
	m := newTest(t)
	m.SetOpenFindings([]FindingCount{{Rule: "primary-not-mail", Severity: "high", Open: 2}, {Rule: "upn-unverified", Severity: "medium", Open: 5}})
	m.SetOpenFindings([]FindingCount{{Rule: "primary-not-mail", Severity: "high", Open: 1}, {Rule: "primary-not-mail", Severity: "high", Open: 1}})
	want := `
# HELP exo_worker_findings Open audit findings by rule and severity.
# TYPE exo_worker_findings gauge
exo_worker_findings{rule="primary-not-mail",severity="high"} 2
exo_worker_findings{rule="upn-unverified",severity="medium"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "exo_worker_findings"); err != nil {
		t.Fatal(err)
	}
}

func TestCountersAndLabelBounds(t *testing.T) {
	m := newTest(t)
	m.ObserveChanges("meu-richtext", "applied", 7)
	m.ObserveChanges("meu-richtext", "failed", 1)
	m.ObserveChanges("meu-richtext", "failed", 0) // nothing
	m.ObserveTrigger("meu-richtext", "coalesced")
	m.ObserveSkippedTick("meu-richtext")
	m.ObserveUnauthorized()
	m.ObserveRun(strings.Repeat("j", 500), "", time.Second)
	if got := testutil.ToFloat64(m.changes.WithLabelValues("meu-richtext", "applied")); got != 7 {
		t.Errorf("applied %v", got)
	}
	if got := testutil.ToFloat64(m.changes.WithLabelValues("meu-richtext", "failed")); got != 1 {
		t.Errorf("failed %v", got)
	}
	if got := testutil.ToFloat64(m.runs.WithLabelValues(strings.Repeat("j", maxLabelLen), "unknown")); got != 1 {
		t.Errorf("long job label not clipped to %d / empty status not 'unknown'", maxLabelLen)
	}
	// Only the bounded label names exist on the worker's metrics.
	allowed := map[string]bool{"job": true, "rule": true, "severity": true, "status": true, "service": true}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			for _, lp := range metric.GetLabel() {
				if !allowed[lp.GetName()] {
					t.Errorf("%s has label %q outside the bounded set", mf.GetName(), lp.GetName())
				}
			}
		}
	}
}

func TestNilMetricsIsNoOp(t *testing.T) {
	var m *Metrics
	m.ObserveRun("j", "succeeded", time.Second)
	m.ObserveChanges("j", "applied", 1)
	m.ObserveAPI("exo", 200, time.Second)
	m.APIObserver()("exo", 429, time.Second)
	m.ObserveTrigger("j", "started")
	m.ObserveSkippedTick("j")
	m.ObserveUnauthorized()
	m.SetOpenFindings([]FindingCount{{Rule: "r", Severity: "high", Open: 1}})
	if m.Registry() != nil {
		t.Fatal("nil metrics has a registry")
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("nil handler %d, want 404", rec.Code)
	}
}

func TestHandlerServesExposition(t *testing.T) {
	m := New(Options{}) // with Go and process collectors
	m.ObserveRun("meu-richtext", "succeeded", time.Second)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{`exo_worker_runs_total{job="meu-richtext",status="succeeded"} 1`, "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}
