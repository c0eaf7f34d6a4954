package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/store"
)

func TestCreateRun(t *testing.T) {
	h := newHarness(t, nil)
	body := `{"job":"meu-richtext","objects":["` + strings.ToUpper(objA) + `","` + objB + `"," ` + objA + `"],"reason":"user reported plain-text invites"}`
	resp := h.do(t, request{method: "POST", path: "/api/v1/runs", body: body}, bearer(testToken))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d, want 202: %s", resp.StatusCode, bodyOf(t, resp))
	}
	got := decode[triggerResult](t, resp)
	if got.RunID != "RUN0001" || got.Coalesced || got.Job != "meu-richtext" {
		t.Fatalf("answer %+v, want run RUN0001 not coalesced", got)
	}
	if loc := resp.Header.Get("Location"); loc != "/api/v1/runs/RUN0001" {
		t.Errorf("Location %q", loc)
	}
	calls := h.runner.Calls()
	want := Trigger{Job: "meu-richtext", Objects: []string{objA, objB}, Reason: "user reported plain-text invites", Source: store.TriggerAPI}
	if len(calls) != 1 || !equalTrigger(calls[0], want) {
		t.Fatalf("runner saw %+v, want exactly %+v (ids lower-cased, deduplicated)", calls, want)
	}
}

func TestCreateRunWholeScopeAndDefaultReason(t *testing.T) {
	h := newHarness(t, nil)
	resp := h.do(t, request{method: "POST", path: "/api/v1/runs", body: `{"job":"address-audit"}`}, bearer(testToken))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d: %s", resp.StatusCode, bodyOf(t, resp))
	}
	calls := h.runner.Calls()
	if len(calls) != 1 || calls[0].Objects != nil || calls[0].Reason != "api" || calls[0].Source != store.TriggerAPI {
		t.Fatalf("runner saw %+v, want one whole-scope trigger with reason api", calls)
	}
}

func TestCreateRunCoalesced(t *testing.T) {
	h := newHarness(t, nil)
	h.runner.running["meu-richtext"] = true
	resp := h.do(t, request{method: "POST", path: "/api/v1/runs", body: `{"job":"meu-richtext"}`}, bearer(testToken))
	got := decode[triggerResult](t, resp)
	if resp.StatusCode != http.StatusAccepted || !got.Coalesced {
		t.Fatalf("status %d answer %+v, want 202 coalesced", resp.StatusCode, got)
	}
}

func TestCreateRunRefusals(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		ct         string
		maxBody    int64
		wantStatus int
		wantError  string
		wantDetail string
	}{
		{"syntax error", `{"job": "meu-richtext",}`, "", 0, 400, "malformed JSON", "syntax error at byte"},
		{"truncated", `{"job": "meu-`, "", 0, 400, "malformed JSON", "ends early"},
		{"unknown field", `{"job_name": "meu-richtext"}`, "", 0, 400, "malformed JSON", `unknown field "job_name"`},
		{"wrong type", `{"job": "meu-richtext", "objects": "` + objA + `"}`, "", 0, 400, "malformed JSON", "objects must be []string"},
		{"trailing data", `{"job": "meu-richtext"} {"job": "x"}`, "", 0, 400, "malformed JSON", "after the JSON value"},
		{"not an object", `["meu-richtext"]`, "", 0, 400, "malformed JSON", "must be server.createRunRequest"},
		{"empty body", ` `, "", 0, 400, "malformed JSON", "empty"},
		{"missing job", `{"reason": "x"}`, "", 0, 400, "missing job", "name the job"},
		{"object not a guid", `{"job": "meu-richtext", "objects": ["jane@contoso.com"]}`, "", 0, 400, "invalid objects", `"jane@contoso.com" is not an object id`},
		{"unknown job", `{"job": "meu-plaintext"}`, "", 0, 404, "unknown job", "known jobs: address-audit, meu-richtext"},
		{"form content type", `job=meu-richtext`, "application/x-www-form-urlencoded", 0, 415, "unsupported content type", "application/json"},
		{"oversize", `{"job": "meu-richtext", "reason": "` + strings.Repeat("x", 2048) + `"}`, "", 1024, 413, "request body too large", "1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.MaxBodyBytes = tt.maxBody })
			resp := h.do(t, request{method: "POST", path: "/api/v1/runs", body: tt.body, contentType: tt.ct}, bearer(testToken))
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, bodyOf(t, resp))
			}
			got := decode[apiError](t, resp)
			if got.Error != tt.wantError || !strings.Contains(got.Detail, tt.wantDetail) {
				t.Fatalf("answer %+v, want error %q with detail containing %q", got, tt.wantError, tt.wantDetail)
			}
			if tt.wantStatus == 404 && !slices.Equal(got.KnownJobs, []string{"address-audit", "meu-richtext"}) {
				t.Errorf("known_jobs %v", got.KnownJobs)
			}
			if calls := h.runner.Calls(); len(calls) != 0 {
				t.Fatalf("a refused request reached the runner: %+v", calls)
			}
		})
	}
}

func TestCreateRunRunnerErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantDetail string
		hidden     string
	}{
		{"shutting down", fmt.Errorf("scheduler: %w", ErrShuttingDown), 503, "shutting down", ""},
		{"invalid trigger", fmt.Errorf("%w: job address-audit cannot take objects", ErrInvalidTrigger), 400, "cannot take objects", ""},
		{"unknown job from runner", fmt.Errorf("%w: meu-richtext was removed", ErrUnknownJob), 404, "removed", ""},
		{"internal", errors.New("sqlite: disk I/O error at /var/lib/secret-path"), 500, "see the worker log", "secret-path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.runner.err = tt.err
			resp := h.do(t, request{method: "POST", path: "/api/v1/runs", body: `{"job":"meu-richtext"}`}, bearer(testToken))
			body := bodyOf(t, resp)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(body, tt.wantDetail) {
				t.Fatalf("status %d body %s, want %d with %q", resp.StatusCode, body, tt.wantStatus, tt.wantDetail)
			}
			if tt.hidden != "" && strings.Contains(body, tt.hidden) {
				t.Fatalf("internal error text leaked to the client: %s", body)
			}
		})
	}
}

func TestTriggerRateLimit(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.TriggerBurst = 2 })
	post := func(job string) *http.Response {
		return h.do(t, request{method: "POST", path: "/api/v1/runs", body: `{"job":"` + job + `"}`}, bearer(testToken))
	}
	for i := range 2 {
		if resp := post("meu-richtext"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("trigger %d: status %d, want 202", i+1, resp.StatusCode)
		}
	}
	resp := post("meu-richtext")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third trigger: status %d, want 429", resp.StatusCode)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "6" {
		t.Fatalf("Retry-After %q, want 6 (one token per 6 s)", ra)
	}
	if n := len(h.runner.Calls()); n != 2 {
		t.Fatalf("runner saw %d triggers, want 2 (the refused one must start nothing)", n)
	}
	// Limits are per job: another job is not starved by the first.
	if resp := post("address-audit"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("other job: status %d, want 202", resp.StatusCode)
	}
	h.clock.Advance(6 * time.Second)
	if resp := post("meu-richtext"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("after waiting Retry-After: status %d, want 202", resp.StatusCode)
	}
}

func TestListRuns(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		name       string
		query      string
		wantIDs    []string
		wantNext   string
		wantStatus int
	}{
		{"all", "", []string{"01HZZZ0003", "01HZZZ0002", "01HZZZ0001"}, "", 200},
		{"by job", "?job=meu-richtext", []string{"01HZZZ0003", "01HZZZ0001"}, "", 200},
		{"by status", "?status=partial", []string{"01HZZZ0002"}, "", 200},
		{"page", "?limit=1", []string{"01HZZZ0003"}, t0.Add(-time.Minute).Format(time.RFC3339Nano), 200},
		{"next page", "?limit=1&before=" + t0.Add(-time.Minute).Format(time.RFC3339Nano), []string{"01HZZZ0002"}, t0.Add(-2 * time.Hour).Format(time.RFC3339Nano), 200},
		{"bad status", "?status=done", nil, "", 400},
		{"bad limit", "?limit=0", nil, "", 400},
		{"limit too big", "?limit=5000", nil, "", 400},
		{"bad before", "?before=yesterday", nil, "", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(t, request{method: "GET", path: "/api/v1/runs" + tt.query}, bearer(testToken))
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, bodyOf(t, resp))
			}
			if tt.wantStatus != 200 {
				return
			}
			got := decode[listRunsResponse](t, resp)
			var ids []string
			for _, r := range got.Runs {
				ids = append(ids, r.ID)
			}
			if !slices.Equal(ids, tt.wantIDs) || got.NextBefore != tt.wantNext {
				t.Fatalf("ids %v next %q, want %v next %q", ids, got.NextBefore, tt.wantIDs, tt.wantNext)
			}
		})
	}
}

func TestGetRun(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		name, id   string
		wantStatus int
		wantBody   string
	}{
		{"found", "01HZZZ0001", 200, `"applied": 7`},
		{"not found", "01HZZZ9999", 404, "GET /api/v1/runs lists the runs"},
		{"invalid", "..%2f..%2fetc", 400, "invalid run id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(t, request{method: "GET", path: "/api/v1/runs/" + tt.id}, bearer(testToken))
			body := bodyOf(t, resp)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("status %d body %s, want %d containing %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestGetQueuedFollowUpRun(t *testing.T) {
	h := newHarness(t, nil)
	h.runner.mu.Lock()
	h.runner.running["meu-richtext"] = true
	h.runner.mu.Unlock()
	resp := h.do(t, request{method: "POST", path: "/api/v1/runs", body: `{"job":"meu-richtext","objects":["` + objA + `"]}`}, bearer(testToken))
	var tr struct {
		RunID     string `json:"run_id"`
		Coalesced bool   `json:"coalesced"`
	}
	if err := json.Unmarshal([]byte(bodyOf(t, resp)), &tr); err != nil || !tr.Coalesced {
		t.Fatalf("trigger: %v %+v, want a coalesced run id", err, tr)
	}
	resp = h.do(t, request{method: "GET", path: "/api/v1/runs/" + tr.RunID}, bearer(testToken))
	body := bodyOf(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(body, `"status": "queued"`) || !strings.Contains(body, objA) {
		t.Fatalf("GET queued run: %d %s, want 200 queued with the object", resp.StatusCode, body)
	}
}

func TestFindings(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		name          string
		query         string
		wantObjects   []string
		wantTruncated bool
		wantStatus    int
	}{
		{"all", "", []string{objA, objB, objC}, false, 200},
		{"by rule", "?rule=onmicrosoft-primary", []string{objC}, false, 200},
		{"by severity", "?severity=high", []string{objA, objB}, false, 200},
		{"by object", "?object=" + objB, []string{objB}, false, 200},
		{"limited", "?limit=2", []string{objA, objB}, true, 200},
		{"bad limit", "?limit=-1", nil, false, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(t, request{method: "GET", path: "/api/v1/findings" + tt.query}, bearer(testToken))
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, bodyOf(t, resp))
			}
			if tt.wantStatus != 200 {
				return
			}
			got := decode[findingsResponse](t, resp)
			var objs []string
			for _, f := range got.Findings {
				objs = append(objs, f.ObjectID)
			}
			if !slices.Equal(objs, tt.wantObjects) || got.Truncated != tt.wantTruncated || got.Count != len(tt.wantObjects) {
				t.Fatalf("objects %v truncated %v count %d, want %v %v", objs, got.Truncated, got.Count, tt.wantObjects, tt.wantTruncated)
			}
		})
	}
}

func TestStoreFailureIs503(t *testing.T) {
	h := newHarness(t, nil)
	h.runs.err = errors.New("database is locked")
	for _, path := range []string{"/api/v1/runs", "/api/v1/runs/01HZZZ0001", "/api/v1/findings"} {
		resp := h.do(t, request{method: "GET", path: path}, bearer(testToken))
		body := bodyOf(t, resp)
		if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "locked") {
			t.Fatalf("%s: status %d body %s, want 503 without the internal error", path, resp.StatusCode, body)
		}
	}
}

func equalTrigger(a, b Trigger) bool {
	return a.Job == b.Job && slices.Equal(a.Objects, b.Objects) && a.Reason == b.Reason && a.Source == b.Source
}

func TestListJobs(t *testing.T) {
	h := newHarness(t, nil)
	got := decode[map[string][]JobInfo](t, h.do(t, request{method: "GET", path: "/api/v1/jobs"}, bearer(testToken)))
	var names []string
	for _, j := range got["jobs"] {
		names = append(names, j.Name)
	}
	if !slices.Equal(names, []string{"address-audit", "meu-richtext"}) || got["jobs"][1].Schedule != "*/30 * * * *" {
		t.Fatalf("jobs %+v, want both jobs sorted with schedules", got)
	}
}
