package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/store"
)

// triggerTimeout bounds a Runner.Trigger call: it only queues a run.
const triggerTimeout = 10 * time.Second

// createRunRequest is the body of POST /api/v1/runs.
type createRunRequest struct {
	Job     string   `json:"job"`
	Objects []string `json:"objects"`
	Reason  string   `json:"reason"`
}

// triggerResult is one started (or coalesced) run in an answer.
type triggerResult struct {
	Job       string   `json:"job"`
	RunID     string   `json:"run_id,omitempty"`
	Coalesced bool     `json:"coalesced"`
	Objects   []string `json:"objects,omitempty"`
	Error     string   `json:"error,omitempty"`
}

func (s *Server) handleCreateRun(w http.ResponseWriter, r *http.Request) {
	if !requireJSON(w, r) {
		return
	}
	var req createRunRequest
	if err := decodeJSON(w, r, s.opts.MaxBodyBytes, &req, true); err != nil {
		writeDecodeError(w, err)
		return
	}
	req.Job = strings.TrimSpace(req.Job)
	if req.Job == "" {
		writeError(w, http.StatusBadRequest, "missing job", `name the job to run: {"job": "meu-richtext"}; GET / lists the jobs`)
		return
	}
	objects, err := parseObjectIDs(req.Objects)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid objects", err.Error())
		return
	}
	if !s.knownJob(w, req.Job) {
		return
	}
	reason := clipReason(strings.TrimSpace(req.Reason))
	if reason == "" {
		reason = "api"
	}
	if ok, wait := s.reserve([]string{req.Job}); !ok {
		s.metrics.ObserveTrigger(req.Job, "rate_limited")
		writeRateLimited(w, wait, req.Job)
		return
	}
	res, status := s.trigger(r.Context(), Trigger{Job: req.Job, Objects: objects, Reason: reason, Source: store.TriggerAPI})
	if res.Error != "" {
		writeJSON(w, status, apiError{Error: "trigger failed", Detail: res.Error})
		return
	}
	w.Header().Set("Location", "/api/v1/runs/"+url.PathEscape(res.RunID))
	writeJSON(w, http.StatusAccepted, res)
}

func (s *Server) handleJobs(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string][]JobInfo{"jobs": sortedJobs(s.runner.Jobs())})
}

// knownJob answers 404 with the job list when job is not configured.
func (s *Server) knownJob(w http.ResponseWriter, job string) bool {
	names := jobNames(s.runner.Jobs())
	if slices.Contains(names, job) {
		return true
	}
	writeJSON(w, http.StatusNotFound, apiError{
		Error:     "unknown job",
		Detail:    fmt.Sprintf("no job %q; known jobs: %s", clip(printable(job), 80), strings.Join(names, ", ")),
		KnownJobs: names,
	})
	return false
}

// trigger calls the Runner and maps its error to an HTTP status.
func (s *Server) trigger(ctx context.Context, t Trigger) (triggerResult, int) {
	ctx, cancel := context.WithTimeout(ctx, triggerTimeout)
	defer cancel()
	res := triggerResult{Job: t.Job, Objects: t.Objects}
	id, coalesced, err := s.runner.Trigger(ctx, t)
	if err != nil {
		status := http.StatusInternalServerError
		detail := "the run could not be queued; see the worker log"
		switch {
		case errors.Is(err, ErrUnknownJob):
			status, detail = http.StatusNotFound, err.Error()
		case errors.Is(err, ErrInvalidTrigger):
			status, detail = http.StatusBadRequest, err.Error()
		case errors.Is(err, ErrShuttingDown):
			status, detail = http.StatusServiceUnavailable, "the worker is shutting down; retry against the next instance"
		}
		s.log.Error("trigger failed", zap.String("job", t.Job), zap.String("source", string(t.Source)), zap.Error(err))
		s.metrics.ObserveTrigger(t.Job, "failed")
		res.Error = detail
		return res, status
	}
	res.RunID, res.Coalesced = id, coalesced
	state := "started"
	if coalesced {
		state = "coalesced"
	}
	s.metrics.ObserveTrigger(t.Job, state)
	s.log.Info("run triggered", zap.String("job", t.Job), zap.String("run_id", id), zap.Bool("coalesced", coalesced),
		zap.String("source", string(t.Source)), zap.Int("objects", len(t.Objects)), zap.String("reason", t.Reason))
	return res, 0
}

func writeRateLimited(w http.ResponseWriter, wait time.Duration, job string) {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, "too many triggers",
		fmt.Sprintf("job %s was triggered too often; retry after %d s (a run already queued covers this trigger only if it is whole-scope)", job, secs))
}

// runIDRE bounds what a run id in a path may be, so the store never sees junk.
var runIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (s *Server) handleGetRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !runIDRE.MatchString(id) {
		writeError(w, http.StatusBadRequest, "invalid run id", "a run id is 1-64 letters, digits, '-' or '_' (as GET /api/v1/runs lists them)")
		return
	}
	run, err := s.runs.GetRun(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		if q, ok := s.runner.(QueuedRuns); ok {
			if run, ok := q.QueuedRun(id); ok {
				writeJSON(w, http.StatusOK, run)
				return
			}
		}
		writeError(w, http.StatusNotFound, "run not found", fmt.Sprintf("no run %s; GET /api/v1/runs lists the runs", id))
		return
	}
	if err != nil {
		s.storeError(w, "get run", err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}

// listRunsResponse pages backwards: pass next_before as ?before= for more.
type listRunsResponse struct {
	Runs       []store.Run `json:"runs"`
	NextBefore string      `json:"next_before,omitempty"`
}

func (s *Server) handleListRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.RunFilter{Job: q.Get("job"), Status: store.RunStatus(q.Get("status")), Limit: 50}
	if f.Status != "" && !f.Status.Valid() {
		writeError(w, http.StatusBadRequest, "invalid status", "status is one of running, succeeded, failed, partial, aborted, interrupted")
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "invalid limit", "limit is a whole number from 1 to 1000")
			return
		}
		f.Limit = n
	}
	if v := q.Get("before"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid before", "before is an RFC 3339 time such as 2026-01-31T12:00:00Z (next_before of the previous page)")
			return
		}
		f.Before = t
	}
	runs, err := s.runs.ListRuns(r.Context(), f)
	if err != nil {
		s.storeError(w, "list runs", err)
		return
	}
	resp := listRunsResponse{Runs: runs}
	if resp.Runs == nil {
		resp.Runs = []store.Run{}
	}
	if len(runs) == f.Limit {
		resp.NextBefore = runs[len(runs)-1].StartedAt.UTC().Format(time.RFC3339Nano)
	}
	writeJSON(w, http.StatusOK, resp)
}

// Findings answers are capped: an audit of a large tenant can hold tens of
// thousands; a caller that needs them all filters by job or rule.
const (
	defaultFindingsLimit = 1000
	maxFindingsLimit     = 10000
)

type findingsResponse struct {
	Findings  []store.FindingRecord `json:"findings"`
	Count     int                   `json:"count"`
	Truncated bool                  `json:"truncated"`
	// NextCursor, when truncated, fetches the next page: ?cursor=<it> with the same filters.
	NextCursor string `json:"next_cursor,omitempty"`
}

// findingCursor encodes the key of the last finding of a page; opaque to callers.
func findingCursor(r store.FindingRecord) string {
	return base64.RawURLEncoding.EncodeToString([]byte(r.Job + "\x00" + r.Rule + "\x00" + r.ObjectID))
}

func parseFindingCursor(c string) (*store.FindingKey, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, false
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 {
		return nil, false
	}
	return &store.FindingKey{Job: parts[0], Rule: parts[1], ObjectID: parts[2]}, true
}

func (s *Server) handleFindings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.FindingFilter{Job: q.Get("job"), Rule: q.Get("rule"), Severity: q.Get("severity"), ObjectID: q.Get("object")}
	limit := defaultFindingsLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxFindingsLimit {
			writeError(w, http.StatusBadRequest, "invalid limit", fmt.Sprintf("limit is a whole number from 1 to %d", maxFindingsLimit))
			return
		}
		limit = n
	}
	if c := q.Get("cursor"); c != "" {
		k, ok := parseFindingCursor(c)
		if !ok {
			writeError(w, http.StatusBadRequest, "invalid cursor", "cursor is the next_cursor of the previous page, as it was returned")
			return
		}
		f.After = k
	}
	// One more than asked tells whether there are more.
	f.Limit = limit + 1
	recs, err := s.runs.OpenFindings(r.Context(), f)
	if err != nil {
		s.storeError(w, "open findings", err)
		return
	}
	resp := findingsResponse{Findings: recs}
	if len(recs) > limit {
		resp.Findings, resp.Truncated = recs[:limit], true
		resp.NextCursor = findingCursor(recs[limit-1])
	}
	if resp.Findings == nil {
		resp.Findings = []store.FindingRecord{}
	}
	resp.Count = len(resp.Findings)
	writeJSON(w, http.StatusOK, resp)
}

// storeError logs a store failure and answers 503: the store being
// unreachable is an outage to retry, not a bad request.
func (s *Server) storeError(w http.ResponseWriter, what string, err error) {
	s.log.Error("store read failed", zap.String("op", what), zap.Error(err))
	writeError(w, http.StatusServiceUnavailable, "store unavailable", what+" failed; see the worker log and /readyz")
}
