package server

import (
	"context"
	"errors"
	"time"

	"github.com/exo-worker/worker/internal/store"
)

// Runner is what the server needs from the scheduler: start (or queue) a run
// and list the jobs. The daemon's scheduler implements it; the server never
// runs a job itself.
//
// Trigger must return quickly: it queues the run and hands back its id, it
// does not wait for the run. When the job is already running, the Runner
// coalesces: it keeps at most one follow-up run per job, merges later
// triggers into it (a whole-scope trigger widens a targeted follow-up to the
// whole scope; targeted ones union their objects), and returns the follow-up's
// id with coalesced = true. Allocating that id up front with store.NewRunID
// and passing it as store.Run.ID when the follow-up starts keeps the id the
// caller got valid for GET /api/v1/runs/{id}.
//
// Errors the server maps to statuses (match with errors.Is, wrap freely):
// ErrUnknownJob → 404, ErrInvalidTrigger → 400, ErrShuttingDown → 503; any
// other error → 500 and is logged.
type Runner interface {
	Trigger(ctx context.Context, t Trigger) (runID string, coalesced bool, err error)
	Jobs() []JobInfo
}

// Trigger asks for one run of one job.
type Trigger struct {
	Job string
	// Objects restricts the run to these ExternalDirectoryObjectIds (validated
	// GUIDs, deduplicated, in lower case); empty means the job's whole scope.
	Objects []string
	// Reason says why, for the run history: the API caller's text, or
	// "alertmanager: alertname=..." for a webhook.
	Reason string
	// Source is store.TriggerAPI or store.TriggerAlert.
	Source store.Trigger
}

// JobInfo is what the status page and the unknown-job answer show of a job.
type JobInfo struct {
	Name    string `json:"name"`
	Summary string `json:"summary,omitempty"`
	Kind    string `json:"kind,omitempty"` // remediate | audit
	Mode    string `json:"mode,omitempty"` // report | dry-run | remediate
	// Schedule is the cron spec; "" = runs only when triggered.
	Schedule string `json:"schedule,omitempty"`
	Running  bool   `json:"running"`
	// Queued reports a coalesced follow-up run waiting for the current one.
	Queued  bool      `json:"queued"`
	NextRun time.Time `json:"next_run,omitzero"` // zero = none scheduled
}

// Errors a Runner returns for the server to map onto HTTP statuses.
var (
	// ErrUnknownJob: no job of that name is configured (404).
	ErrUnknownJob = errors.New("unknown job")
	// ErrInvalidTrigger: the job cannot take this trigger, e.g. objects for a
	// job that has no per-object scope (400). Wrap it with the reason.
	ErrInvalidTrigger = errors.New("invalid trigger")
	// ErrShuttingDown: the daemon is stopping and takes no new runs (503).
	ErrShuttingDown = errors.New("shutting down")
)

// QueuedRuns is optionally implemented by the Runner: a run it accepted but has not recorded yet (a coalesced
// follow-up), so GET /api/v1/runs/{id} answers "queued" for the id a trigger returned instead of 404.
type QueuedRuns interface {
	QueuedRun(id string) (store.Run, bool)
}

// RunReader is the read side of the store the server shows. *store.SQLite
// satisfies it as is; GetRun must return an error matching store.ErrNotFound
// for an unknown id.
type RunReader interface {
	ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error)
	GetRun(ctx context.Context, id string) (store.Run, error)
	OpenFindings(ctx context.Context, f store.FindingFilter) ([]store.FindingRecord, error)
	SummarizeOpenFindings(ctx context.Context) ([]store.FindingGroup, error)
}
