package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/exo-worker/worker/internal/metrics"
	"github.com/exo-worker/worker/internal/store"
)

const testToken = "s3cr3t-t0ken-0123456789abcdef"

// Object ids used across the tests.
const (
	objA = "6f1c2a52-9c3b-4f7e-8d21-1a2b3c4d5e6f"
	objB = "0b7e4f2a-5d6c-4e8f-9a1b-2c3d4e5f6a7b"
	objC = "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f"
	objD = "d4e5f6a7-b8c9-4d0e-9f1a-2b3c4d5e6f70"
)

// recordingRunner implements Runner for tests: it records every trigger and
// coalesces triggers for jobs marked running, as the daemon's runner does.
type recordingRunner struct {
	mu      sync.Mutex
	jobs    []JobInfo
	calls   []Trigger
	err     error
	running map[string]bool
	n       int
}

func newRecordingRunner() *recordingRunner {
	return &recordingRunner{
		jobs: []JobInfo{
			{Name: "meu-richtext", Summary: "UseMapiRichTextFormat=Never on dir-synced mail users", Kind: "remediate", Mode: "remediate", Schedule: "*/30 * * * *"},
			{Name: "address-audit", Summary: "proxyAddresses audit", Kind: "audit", Mode: "report", Schedule: "0 6 * * *"},
		},
		running: map[string]bool{},
	}
}

func (r *recordingRunner) Trigger(ctx context.Context, t Trigger) (string, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, t)
	if r.err != nil {
		return "", false, r.err
	}
	r.n++
	return fmt.Sprintf("RUN%04d", r.n), r.running[t.Job], nil
}

// QueuedRun answers for the ids Trigger handed out for a job marked running (coalesced follow-ups), as the
// daemon does until the follow-up has a record.
func (r *recordingRunner) QueuedRun(id string) (store.Run, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, c := range r.calls {
		if fmt.Sprintf("RUN%04d", i+1) == id && r.running[c.Job] {
			return store.Run{ID: id, Job: c.Job, Status: store.RunQueued, Objects: c.Objects}, true
		}
	}
	return store.Run{}, false
}

func (r *recordingRunner) Jobs() []JobInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]JobInfo(nil), r.jobs...)
}

func (r *recordingRunner) Calls() []Trigger {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Trigger(nil), r.calls...)
}

// memRuns implements RunReader over slices, filtering like the store does.
type memRuns struct {
	runs     []store.Run // newest first
	findings []store.FindingRecord
	err      error
}

func (m *memRuns) ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	if m.err != nil {
		return nil, m.err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	var out []store.Run
	for _, r := range m.runs {
		if (f.Job != "" && r.Job != f.Job) || (f.Status != "" && r.Status != f.Status) ||
			(!f.Before.IsZero() && !r.StartedAt.Before(f.Before)) {
			continue
		}
		out = append(out, r)
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

func (m *memRuns) GetRun(ctx context.Context, id string) (store.Run, error) {
	if m.err != nil {
		return store.Run{}, m.err
	}
	for _, r := range m.runs {
		if r.ID == id {
			return r, nil
		}
	}
	return store.Run{}, fmt.Errorf("get run %s: %w", id, store.ErrNotFound)
}

func (m *memRuns) OpenFindings(ctx context.Context, f store.FindingFilter) ([]store.FindingRecord, error) {
	if m.err != nil {
		return nil, m.err
	}
	var out []store.FindingRecord
	for _, r := range m.findings {
		if (f.Job != "" && r.Job != f.Job) || (f.Rule != "" && r.Rule != f.Rule) ||
			(f.Severity != "" && r.Severity != f.Severity) || (f.ObjectID != "" && r.ObjectID != f.ObjectID) {
			continue
		}
		if k := f.After; k != nil && !findingAfter(r, *k) {
			continue
		}
		out = append(out, r)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

// fakeClock is a settable clock for rate limits.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type harness struct {
	srv     *Server
	runner  *recordingRunner
	runs    *memRuns
	metrics *metrics.Metrics
	clock   *fakeClock
	logs    *observer.ObservedLogs
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newHarness builds a server over in-test Runner and RunReader; edit tweaks
// the options before New.
func newHarness(t *testing.T, edit func(*Options)) *harness {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	h := &harness{
		runner:  newRecordingRunner(),
		runs:    sampleRuns(),
		metrics: metrics.New(metrics.Options{NoProcessCollectors: true}),
		clock:   &fakeClock{t: t0},
		logs:    logs,
	}
	opts := Options{
		Token:   []byte(testToken),
		Logger:  zap.New(core),
		Runner:  h.runner,
		Runs:    h.runs,
		Metrics: h.metrics,
		Now:     h.clock.Now,
		Triggers: []TriggerRule{
			{Source: SourceAlertmanager, Match: map[string]string{"alertname": "MEUPlainTextInvites"}, Job: "meu-richtext", ObjectLabel: "object_ids"},
			{Source: SourceAlertmanager, Match: map[string]string{"alertname": "AddressDrift"}, Job: "address-audit"},
			{Source: SourceAzureMonitor, Match: map[string]string{"alertRule": "MEU plain-text invites", "customProperties.worker_job": "meu-richtext"}, Job: "meu-richtext", ObjectLabel: "dimensions.ObjectId"},
		},
	}
	if edit != nil {
		edit(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.srv = srv
	return h
}

func sampleRuns() *memRuns {
	return &memRuns{
		runs: []store.Run{
			{ID: "01HZZZ0003", Job: "meu-richtext", Mode: "remediate", Trigger: store.TriggerAlert, Reason: "alertmanager: alertname=MEUPlainTextInvites",
				Objects: []string{objA}, Status: store.RunRunning, StartedAt: t0.Add(-1 * time.Minute)},
			{ID: "01HZZZ0002", Job: "address-audit", Mode: "report", Trigger: store.TriggerSchedule, Status: store.RunPartial,
				StartedAt: t0.Add(-2 * time.Hour), FinishedAt: t0.Add(-2*time.Hour + 90*time.Second), Error: "3 objects failed"},
			{ID: "01HZZZ0001", Job: "meu-richtext", Mode: "remediate", Trigger: store.TriggerSchedule, Status: store.RunSucceeded,
				StartedAt: t0.Add(-3 * time.Hour), FinishedAt: t0.Add(-3*time.Hour + 42*time.Second),
				Counts: store.Counts{InScope: 120, Planned: 7, Applied: 7, Verified: 7}},
		},
		findings: []store.FindingRecord{
			{Job: "address-audit", Finding: store.Finding{Rule: "primary-not-mail", ObjectID: objA, DisplayName: "Jane Doe", Severity: "high", Detail: "SMTP: differs from mail"}, FirstSeen: t0.Add(-48 * time.Hour)},
			{Job: "address-audit", Finding: store.Finding{Rule: "primary-not-mail", ObjectID: objB, DisplayName: "John Roe", Severity: "high", Detail: "SMTP: differs from mail"}, FirstSeen: t0.Add(-24 * time.Hour)},
			{Job: "address-audit", Finding: store.Finding{Rule: "onmicrosoft-primary", ObjectID: objC, DisplayName: "<script>alert(1)</script>", Severity: "medium", Detail: "primary at onmicrosoft.com"}, FirstSeen: t0.Add(-5 * time.Hour)},
		},
	}
}

// request describes one HTTP call in a table.
type request struct {
	method, path, body, contentType string
	header                          map[string]string
}

// do sends req through the handler with the given Authorization header value
// ("" = none).
func (h *harness) do(t *testing.T, req request, authz string) *http.Response {
	t.Helper()
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r := httptest.NewRequest(req.method, req.path, body)
	if req.body != "" {
		ct := req.contentType
		if ct == "" {
			ct = "application/json"
		}
		r.Header.Set("Content-Type", ct)
	}
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(w, r)
	return w.Result()
}

func bearer(tok string) string { return "Bearer " + tok }

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func bodyOf(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	_ = resp.Body.Close()
	return string(b)
}

func decode[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	var v T
	body := bodyOf(t, resp)
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, body, err)
	}
	return v
}

func testdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read testdata: %v", err)
	}
	return string(b)
}

// findingAfter reports whether r sorts after k in the store's order (job, rule, object).
func findingAfter(r store.FindingRecord, k store.FindingKey) bool {
	if r.Job != k.Job {
		return r.Job > k.Job
	}
	if r.Rule != k.Rule {
		return r.Rule > k.Rule
	}
	return r.ObjectID > k.ObjectID
}

// SummarizeOpenFindings groups m.findings as the store does.
func (m *memRuns) SummarizeOpenFindings(ctx context.Context) ([]store.FindingGroup, error) {
	if m.err != nil {
		return nil, m.err
	}
	idx := map[[3]string]int{}
	var out []store.FindingGroup
	for _, r := range m.findings {
		k := [3]string{r.Job, r.Rule, r.Severity}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, store.FindingGroup{Job: r.Job, Rule: r.Rule, Severity: r.Severity, FirstSeen: r.FirstSeen})
		}
		out[i].Open++
		if r.FirstSeen.Before(out[i].FirstSeen) {
			out[i].FirstSeen = r.FirstSeen
		}
	}
	return out, nil
}
