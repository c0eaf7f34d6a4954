// Package store keeps the worker's durable state: runs, the change journal,
// findings history, Graph delta links, leases and schedule-tick claims.
//
// The worker must survive being killed at any moment during a staged migration
// that lasts weeks: the journal is written before each tenant write so a crash
// leaves a record of what may have been sent, leases keep two daemons on one
// database from running the same job at once, and findings history tells an
// admin how long a defect has been open. The embedded default is SQLite
// (sqlite.go, pure Go so CGO_ENABLED=0 builds stay static); PostgreSQL
// (postgres.go, pgx v5) serves a fleet of tenants from several replicas. One
// contract test suite (forEachDriver in the tests) holds both to one behaviour.
//
// Every record carries its tenant. A handle is bound to one tenant (WithTenant,
// ForTenant; DefaultTenant for a single-tenant configuration) and never reads
// or writes another's records, so callers need not pass the tenant around.
//
// Times are stored in UTC with microsecond precision (what PostgreSQL keeps as
// well), so a time read back equals the one written after
// t.UTC().Truncate(time.Microsecond).
package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Store is the whole durable-state API. It is deliberately plain (no SQL, no
// driver types) so that a PostgreSQL implementation can follow the SQLite one
// without its callers changing; callers that need only a few methods should
// declare their own smaller interface, as the executor does.
type Store interface {
	// Runs.
	CreateRun(ctx context.Context, r Run) (Run, error)
	FinishRun(ctx context.Context, id string, res RunResult) error
	GetRun(ctx context.Context, id string) (Run, error)
	ListRuns(ctx context.Context, f RunFilter) ([]Run, error)
	MarkInterrupted(ctx context.Context, f InterruptFilter) ([]Run, error)

	// The change journal.
	JournalBegin(ctx context.Context, runID string, changes []Change) ([]EntryID, error)
	JournalOutcomes(ctx context.Context, outcomes []Outcome) error
	JournalPending(ctx context.Context, runID string) ([]JournalEntry, error)
	Journal(ctx context.Context, runID string) ([]JournalEntry, error)

	// Findings history.
	RecordFindings(ctx context.Context, runID, job string, findings []Finding, at time.Time) (FindingsSummary, error)
	OpenFindings(ctx context.Context, f FindingFilter) ([]FindingRecord, error)
	// SummarizeOpenFindings counts open findings by job, rule and severity, without reading each one (the
	// status page and the metrics need the counts, not tens of thousands of records).
	SummarizeOpenFindings(ctx context.Context) ([]FindingGroup, error)

	// Retention: delete what is older than the cutoffs (prune.go).
	Prune(ctx context.Context, r Retention) (Pruned, error)

	// Delta links (Graph delta queries resume from these).
	GetDeltaLink(ctx context.Context, resource string) (string, error)
	SetDeltaLink(ctx context.Context, resource, link string) error
	DeleteDeltaLink(ctx context.Context, resource string) error

	// Snapshots: compact copies of what the jobs read (the Graph directory per resource, Exchange query
	// results), saved as opaque blobs so the next process resumes incrementally instead of reading the tenant
	// again. The writer owns the encoding; a blob it cannot decode is read from scratch.
	GetSnapshot(ctx context.Context, name string) ([]byte, error)
	PutSnapshot(ctx context.Context, name string, data []byte) error
	DeleteSnapshot(ctx context.Context, name string) error

	// Coordination between processes sharing one database.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	RenewLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
	ClaimTick(ctx context.Context, job string, tick time.Time, holder string) (bool, error)

	// Tenant is the tenant this handle reads and writes (see WithTenant).
	Tenant() string

	// Ping reports whether the database answers (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}

// Errors callers branch on, matched with errors.Is.
var (
	// ErrNotFound means the run, journal entry or other record asked for does
	// not exist.
	ErrNotFound = errors.New("not found")
	// ErrRunNotRunning means a run was asked to take a change (finish, journal
	// a write) but is no longer running: usually another process marked it
	// interrupted because its owner looked dead. The caller must stop writing
	// for that run.
	ErrRunNotRunning = errors.New("run is not running")
	// ErrSchemaTooNew means the database was migrated by a newer worker binary
	// than this one; using it could corrupt data the newer schema relies on.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
)

// RunStatus is where a run stands. Only RunRunning is not final.
type RunStatus string

// Run statuses.
const (
	RunRunning     RunStatus = "running"
	RunSucceeded   RunStatus = "succeeded"
	RunFailed      RunStatus = "failed"
	RunPartial     RunStatus = "partial"     // some objects failed
	RunAborted     RunStatus = "aborted"     // stopped on purpose: blast radius, circuit breaker
	RunInterrupted RunStatus = "interrupted" // the process stopped (signal, crash) before the run ended
	// RunQueued is never stored: the daemon reports it for a run it accepted (a coalesced follow-up, or a
	// run starting up) that has no record yet, so the id a trigger returned never answers "not found".
	RunQueued RunStatus = "queued"
)

// Valid reports whether s is one of the known statuses.
func (s RunStatus) Valid() bool {
	switch s {
	case RunRunning, RunSucceeded, RunFailed, RunPartial, RunAborted, RunInterrupted:
		return true
	}
	return false
}

// Trigger is what started a run; kept so history shows why a run happened.
type Trigger string

// Triggers.
const (
	TriggerSchedule Trigger = "schedule"
	TriggerCLI      Trigger = "cli"
	TriggerAPI      Trigger = "api"
	TriggerAlert    Trigger = "alert"
	TriggerSync     Trigger = "sync" // a directory sync cycle finished (jobs.<job>.on_sync)
)

// Valid reports whether t is one of the known triggers.
func (t Trigger) Valid() bool {
	switch t {
	case TriggerSchedule, TriggerCLI, TriggerAPI, TriggerAlert, TriggerSync:
		return true
	}
	return false
}

// Counts are a run's object tallies, as the run summary reports them.
type Counts struct {
	InScope  int `json:"in_scope"`
	Planned  int `json:"planned"`
	Applied  int `json:"applied"`
	Failed   int `json:"failed"`
	Verified int `json:"verified"`
	Skipped  int `json:"skipped"`
}

// Run is one execution of one job.
type Run struct {
	// Tenant is the name of the tenant the run worked on (set by the store handle, see WithTenant).
	Tenant string `json:"tenant"`
	// ID is time-sortable (see NewRunID) unless the caller supplied its own.
	ID      string  `json:"id"`
	Job     string  `json:"job"`
	Mode    string  `json:"mode"` // report | dry-run | remediate | revert, as the executor names it
	Trigger Trigger `json:"trigger"`
	Reason  string  `json:"reason,omitempty"`
	// Objects restricts a targeted rerun to these object ids; empty means the
	// whole scope of the job. RecordFindings only resolves findings on these.
	Objects    []string  `json:"objects,omitempty"`
	Status     RunStatus `json:"status"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"` // zero while running
	Counts     Counts    `json:"counts"`
	Error      string    `json:"error,omitempty"`
	// Owner names the process running it (see DefaultOwner), so that another
	// process can tell a run whose owner died from one still in progress.
	Owner string `json:"owner"`
}

// RunResult is how a run ended.
type RunResult struct {
	Status     RunStatus // any status but RunRunning
	Counts     Counts
	Error      string
	FinishedAt time.Time // zero = now
}

// RunFilter selects runs for ListRuns, newest first.
type RunFilter struct {
	Job    string    // "" = every job
	Status RunStatus // "" = every status
	// Before pages backwards: only runs started strictly before it.
	Before time.Time
	Limit  int // 0 = 50; at most 1000
}

// InterruptFilter selects the running runs MarkInterrupted gives up on.
type InterruptFilter struct {
	Job    string   // "" = every job
	Owners []string // only runs of these owners; empty = any owner
	// ExceptOwner keeps this owner's runs running: the caller's own process.
	ExceptOwner string
	// OrphansOnly keeps runs whose owner still holds an unexpired lease: a
	// daemon that renews its lease is alive and its runs are in progress.
	OrphansOnly bool
	// Reason is recorded as the run's error; "" gives a default naming the owner.
	Reason string
}

// ChangeState is where one journalled write stands.
type ChangeState string

// Journal entry states. Only ChangeStatePending is unresolved: an entry stays
// pending when the process died between journalling a write and recording
// what came back, and must be reconciled by reading the object.
const (
	ChangeStatePending    ChangeState = "pending"
	ChangeStateApplied    ChangeState = "applied"
	ChangeStateFailed     ChangeState = "failed"
	ChangeStateVerified   ChangeState = "verified"   // applied and read back with the new value
	ChangeStateSkipped    ChangeState = "skipped"    // not sent (exception, breaker, revert found it changed)
	ChangeStateReverted   ChangeState = "reverted"   // the old value was put back by a revert run
	ChangeStateReconciled ChangeState = "reconciled" // pending after a crash, resolved by reading the object
)

// Valid reports whether s is one of the known states.
func (s ChangeState) Valid() bool {
	switch s {
	case ChangeStatePending, ChangeStateApplied, ChangeStateFailed, ChangeStateVerified,
		ChangeStateSkipped, ChangeStateReverted, ChangeStateReconciled:
		return true
	}
	return false
}

// Change is one field of one object the executor is about to write.
type Change struct {
	ObjectID    string `json:"object"` // ExternalDirectoryObjectId
	DisplayName string `json:"display_name,omitempty"`
	Cmdlet      string `json:"cmdlet"` // Set-MailUser
	Param       string `json:"param"`  // UseMapiRichTextFormat
	// Old and New are the JSON encodings of the values, kept typed so a revert
	// can send the old value back exactly as it was read. nil is stored as null.
	Old json.RawMessage `json:"from"`
	New json.RawMessage `json:"to"`
}

// EntryID identifies one journal entry.
type EntryID int64

// JournalEntry is a journalled change and what became of it.
type JournalEntry struct {
	Tenant string  `json:"tenant"`
	ID     EntryID `json:"id"`
	RunID  string  `json:"run_id"`
	Seq    int     `json:"seq"` // 1, 2, ... in the order the run journalled its changes
	Change
	State     ChangeState `json:"state"`
	Error     string      `json:"error,omitempty"`
	RequestID string      `json:"request_id,omitempty"`
	CreatedAt time.Time   `json:"created_at"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// Outcome is what happened to one journalled change.
type Outcome struct {
	ID        EntryID
	State     ChangeState // anything but ChangeStatePending
	RequestID string
	Error     string
}

// OnPremFix is what to change in on-premises AD when the cloud cannot be
// fixed (a synced attribute).
type OnPremFix struct {
	Attribute string `json:"attribute"`
	Value     string `json:"value"`
	Action    string `json:"action"` // set | add | remove
}

// Finding is one audit result as a job reported it in one run.
type Finding struct {
	Rule        string     `json:"rule"`
	ObjectID    string     `json:"object"`
	DisplayName string     `json:"display_name,omitempty"`
	Severity    string     `json:"severity"`
	Detail      string     `json:"detail"`
	OnPrem      *OnPremFix `json:"on_prem,omitempty"`
}

// FindingRecord is the history of one (job, rule, object) finding.
type FindingRecord struct {
	Tenant string `json:"tenant"`
	Job    string `json:"job"`
	Finding
	// FirstSeen is when the current open episode began: a finding that was
	// resolved and comes back starts again, and Reopened counts how often.
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"` // zero while open
	LastRunID  string    `json:"last_run_id"`
	Reopened   int       `json:"reopened"`
}

// FindingFilter selects open findings.
type FindingFilter struct {
	Job, Rule, Severity, ObjectID string // "" = any
	Limit                         int    // 0 = all
	// After pages forwards: only findings ordered after this one (job, rule, object), as the last one of the
	// previous page. Pages by key, not offset, so a page stays right while findings come and go.
	After *FindingKey
}

// FindingGroup is the open findings of one (job, rule, severity).
type FindingGroup struct {
	Job, Rule, Severity string
	Open                int
	FirstSeen           time.Time // the oldest open finding's first_seen
}

// FindingKey identifies one finding: the order OpenFindings lists them in.
type FindingKey struct {
	Job, Rule, ObjectID string
}

// FindingsSummary tells what one RecordFindings call changed, for logs and
// metrics.
type FindingsSummary struct {
	New      int // never seen before
	Reopened int // seen before, had been resolved
	Open     int // still open from an earlier run
	Resolved int // open before, absent now
}

// NewRunID returns a ULID-style id: 48 bits of milliseconds then 80 random
// bits, in Crockford base32 (26 characters). Ids sort by creation time, which
// keeps history listings and file names in order without a second column.
func NewRunID() string {
	return newULID(time.Now())
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func newULID(t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (Go 1.24+)
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	// 26 characters × 5 bits = 130 bits: the top two are zero.
	out := make([]byte, 26)
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out)
}

// DefaultOwner names this process for Run.Owner and lease holders:
// host/pid/random. The random part matters in containers, where a restarted
// daemon has the same hostname and pid (1) as the one that died, and must not
// mistake the dead one's runs for its own.
var DefaultOwner = sync.OnceValue(func() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), r)
})
