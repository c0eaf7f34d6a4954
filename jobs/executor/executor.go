// Package executor is the one place where a job's plan meets the tenant. It loads the reads a job declares,
// asks the job for its plan, then enforces the safety model: the mode (report, dry-run, remediate), the
// exceptions, the blast radius, the journal before every write, batched writes with a circuit breaker, and a
// read-back of every changed object. Jobs never see any of it (package jobs says why).
package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/directory"
	"github.com/exo-worker/worker/jobs"
)

// Status is the outcome of one change.
type Status string

// Change outcomes.
const (
	StatusPlanned    Status = "planned"    // report or dry-run: not applied
	StatusApplied    Status = "applied"    // written, not (yet) read back
	StatusVerified   Status = "verified"   // written and read back holding the new value
	StatusFailed     Status = "failed"     // the write was refused or the read-back disagreed
	StatusSkipped    Status = "skipped"    // not attempted: the run stopped (breaker, cancellation)
	StatusUnverified Status = "unverified" // written, but the read-back itself failed
	// StatusUnchanged: sent, and the service answered that its effect was already in place (a member added
	// twice). Nothing was written, so a revert leaves it alone.
	StatusUnchanged Status = "unchanged"
	// StatusUnknown: sent, but no complete answer came back (exo.KindOutcomeUnknown) and the read-back could
	// not tell either. The journal keeps it pending; reconciliation reads the object later.
	StatusUnknown Status = "unknown"
)

// Client is what the executor needs from the EXO client: paged reads and batched writes.
type Client interface {
	jobs.Reader
	Batch(ctx context.Context, cmds []exo.Command) []exo.BatchResult
}

// Progress is told how a long run advances; the CLI draws it on a TTY.
type Progress interface {
	Phase(name string, total int) // total < 0 when unknown
	Add(n int)
	Done()
}

// Options are the per-run safety settings.
type Options struct {
	Mode jobs.Mode
	// MaxChanges stops a run that would change more objects than this (0 = no limit).
	MaxChanges int
	// MaxChangePercent stops a run that would change more than this share of the objects in scope (0 = no limit).
	MaxChangePercent float64
	// Force lifts the blast-radius limits (one-shot runs only).
	Force bool
	// JobConfigPath is the config path of the job's settings, used in messages ("jobs.meu-richtext").
	JobConfigPath string
	// Objects restricts the run to these object ids (a targeted rerun, e.g. from an alert); matched on
	// ObjectRef.ID case-insensitively. Empty means the job's whole scope. The blast radius still measures
	// against the whole scope, so a targeted rerun of three objects is not "100% of scope".
	Objects []string
}

// Executor is the one place where changes are applied. It plans through a job, enforces the mode and the
// blast radius, applies changes in batches with bounded concurrency, reads every changed object back and
// summarises. Per-object failures never abort a run; a high failure rate does (circuit breaker).
type Executor struct {
	Client Client
	// SyncOwned is the table of Exchange parameters directory sync owns (exo.SyncOwned): a job whose
	// declared writes set one on objects that may be dir-synced is refused before any write. Nil: not
	// checked here (the library checks at registration).
	SyncOwned jobs.SyncOwnedFunc
	// Graph makes Graph changes (jobs.GraphGroupMember); nil when no job writes through Graph. A plan with
	// a Graph change is refused when it is nil.
	Graph GraphWriter
	// Directory reads Graph for jobs that need it (audits); nil when no such job runs.
	Directory jobs.DirectoryReader
	Log       *zap.Logger
	Progress  Progress
	// ChunkSize is how many changes are sent between breaker checks (default 100).
	ChunkSize int
	// BreakerMinAttempts and BreakerFailureRate: once at least MinAttempts changes were tried and the share
	// that failed reaches FailureRate, the rest of the run is skipped (defaults 20 and 0.5).
	BreakerMinAttempts int
	BreakerFailureRate float64
	// Now is the clock (tests may replace it).
	Now func() time.Time

	// Journal, when set, records every change before it is sent and its outcome after (journal.go).
	// The daemon and the one-shot CLI set it; tests of planning may leave it nil.
	Journal Journal
	// Exceptions keep objects out of reach of jobs (exceptions.go); enforced in every mode.
	Exceptions []Exception
	// ReadBackRetries and ReadBackDelay: a read-back that still shows the old value, or misses the object, is
	// repeated up to ReadBackRetries times (default 3; negative: never), waiting ReadBackDelay (default 2 s),
	// doubled each time, before the change is called failed. Exchange Online may answer a read from a domain
	// controller the write has not replicated to yet.
	ReadBackRetries int
	ReadBackDelay   time.Duration
	// State, when set, keeps Exchange query results between runs so that each run reads only what changed
	// since the last (incremental.go); SafetyMargin and FullReadEvery tune it (defaults 15 minutes, daily).
	State         SnapshotStore
	SafetyMargin  time.Duration
	FullReadEvery time.Duration
	// StopGrace bounds how long writes already sent, their journal outcomes and the read-back may go on
	// after the run's context is cancelled (default 30s). Cancelling stops the next chunk from being sent;
	// a $batch in flight is allowed to finish so that its outcome is known rather than left to reconcile.
	StopGrace time.Duration
}

// Run is a planned run: what a job wants, before any write.
type Run struct {
	ID      string
	Job     string
	Started time.Time
	Plan    jobs.Plan
	// Declared is the job's description: the writes its plan may hold (checked before any write) and its
	// reads (re-run for the read-back).
	Declared jobs.Description
}

// Summary is the result of a run, printed by the CLI and recorded by the store.
type Summary struct {
	RunID    string
	Job      string
	Mode     jobs.Mode
	InScope  int
	Planned  int
	Applied  int
	Failed   int
	Verified int
	Skipped  int
	// Unknown counts the changes whose write got no complete answer (a reset, a cut-off body, a timeout
	// after sending): they were read back before anything was decided. UnknownLanded of them held the new
	// value (counted in Applied and Verified), UnknownNotApplied still held the old one (counted in Failed;
	// the next run sends them again); Unresolved could not be read and stay pending in the journal until
	// reconciliation reads them.
	Unknown           int
	UnknownLanded     int
	UnknownNotApplied int
	Unresolved        int
	Changes           []ChangeResult
	Findings          []jobs.Finding
	Started           time.Time
	Finished          time.Time
	// Aborted is set when the run stopped before finishing its changes; AbortReason says why and what to do.
	Aborted     bool
	AbortReason string
	// Warnings are things a person should know that did not stop the run: expired exceptions, objects of a
	// targeted rerun with nothing planned, journal outcomes that could not be recorded.
	Warnings []string
}

// ChangeResult is one change and what happened to it.
type ChangeResult struct {
	jobs.Change
	Status    Status
	Error     string
	RequestID string
	// Note is what a person should know about a change that did not fail it: a group membership verified
	// whose licences have not reached the member yet.
	Note string `json:",omitempty"`
	// Err is the typed error behind Error, for callers that branch (not serialised).
	Err error `json:"-"`
	// OutcomeWasUnknown: the write got no complete answer; Status is what the read-back found.
	OutcomeWasUnknown bool

	entry int64 // journal entry id, 0 when not journalled
	// lagging marks a read-back that disagreed in a way replication lag could explain: read again.
	lagging bool
	// notApplied: a write of unknown outcome whose read-back shows the old value.
	notApplied bool
}

// Exit codes of a run, shared by the CLI and the daemon's status.
const (
	ExitOK      = 0
	ExitUsage   = 1
	ExitFailed  = 2
	ExitAborted = 3
)

// ExitCode maps a summary to the CLI exit code: 3 aborted, 2 some objects failed, 0 all done.
func (s *Summary) ExitCode() int {
	switch {
	case s.Aborted:
		return ExitAborted
	case s.Failed > 0 || s.Applied > s.Verified || s.Unresolved > 0:
		// a change that was written but could not be read back is not "all done" either
		return ExitFailed
	}
	return ExitOK
}

// BlastRadiusError stops a run before its first write.
type BlastRadiusError struct {
	Job, ConfigPath          string
	Changes, InScope         int
	MaxChanges               int
	MaxChangePercent, Actual float64
}

func (e *BlastRadiusError) Error() string {
	var limit string
	if e.MaxChanges > 0 && e.Changes > e.MaxChanges {
		limit = fmt.Sprintf("more than %s.max_changes = %d", e.ConfigPath, e.MaxChanges)
	} else {
		limit = fmt.Sprintf("%.1f%% of the %d objects in scope, more than %s.max_change_percent = %g", e.Actual, e.InScope, e.ConfigPath, e.MaxChangePercent)
	}
	return fmt.Sprintf("%s would change %d objects: %s. Nothing was written. Review the plan with --dry-run, then rerun with --force (or raise the limit) to proceed",
		e.Job, e.Changes, limit)
}

func (e *Executor) log() *zap.Logger {
	if e.Log == nil {
		return zap.NewNop()
	}
	return e.Log
}

func (e *Executor) stopGrace() time.Duration {
	if e.StopGrace <= 0 {
		return 30 * time.Second
	}
	return e.StopGrace
}

// graceful returns a context for work already under way: it outlives ctx's cancellation by up to grace, so
// an interrupted run still learns (and journals) the outcome of the writes it sent.
func graceful(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-wctx.Done():
		}
	})
	return wctx, func() { stop(); cancel() }
}

func (e *Executor) now() time.Time {
	if e.Now == nil {
		return time.Now()
	}
	return e.Now()
}

// Plan reads what the job needs and asks it for its plan. Nothing is written. runID is the caller's id of
// the run (the daemon's store record, the CLI's): the executor never mints or rewrites one, so the journal,
// the logs and the store all speak of the same run.
func (e *Executor) Plan(ctx context.Context, runID string, job jobs.Job) (*Run, error) {
	if strings.TrimSpace(runID) == "" {
		return nil, fmt.Errorf("%s: no run id: the caller names the run (store.NewRunID)", job.Name())
	}
	run := &Run{ID: runID, Job: job.Name(), Started: e.now()}
	d := job.Describe()
	if d.NeedsDirectory && e.Directory == nil {
		return nil, fmt.Errorf("%s needs the directory (Microsoft Graph) but no Graph reader is configured", job.Name())
	}
	if e.Progress != nil {
		e.Progress.Phase("reading tenant", -1)
	}
	// Exchange and Graph are read at once: a run costs the longer of the two reads, not their sum.
	var (
		t        *jobs.Tenant
		dir      *directory.Snapshot
		progress sync.Mutex
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		onPage := func(n int) {
			if e.Progress != nil {
				progress.Lock()
				e.Progress.Add(n)
				progress.Unlock()
			}
		}
		if e.State != nil {
			t, _, err = e.loadTenantState(gctx, d.Reads, onPage)
		} else {
			t, err = jobs.LoadTenant(gctx, e.Client, d.Reads, onPage)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", job.Name(), err)
		}
		return nil
	})
	if d.NeedsDirectory {
		g.Go(func() error {
			var err error
			if dir, err = e.Directory.Snapshot(gctx); err != nil {
				return fmt.Errorf("%s: read directory: %w", job.Name(), err)
			}
			return nil
		})
	}
	err := g.Wait()
	if e.Progress != nil {
		e.Progress.Done()
	}
	if err != nil {
		return nil, err
	}
	// Group memberships are read after the recipients: they are listed for the recipients the job read.
	if err := e.loadGroupMembers(ctx, job.Name(), d.GroupMembers, t); err != nil {
		return nil, err
	}
	t.Directory = dir
	p, err := job.Plan(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("%s: plan: %w", job.Name(), err)
	}
	run.Plan, run.Declared = p, d
	e.log().Info("planned", zap.String("run", run.ID), zap.String("job", job.Name()),
		zap.Int("in_scope", p.InScope), zap.Int("changes", len(p.Changes)), zap.Int("findings", len(p.Findings)))
	return run, nil
}

// Apply carries out a planned run according to opts. It returns a summary even when it stops early; the
// error is non-nil only when the run was refused as a whole (blast radius) or interrupted.
func (e *Executor) Apply(ctx context.Context, run *Run, opts Options) (*Summary, error) {
	// The contract first, in every mode: a plan holding one change the job did not declare is refused
	// whole, before any write, so a bug in a job can never reach the tenant.
	if err := e.checkDeclared(run); err != nil {
		e.log().Error("plan refused", zap.String("run", run.ID), zap.String("job", run.Job), zap.Error(err))
		return nil, err
	}
	changes, findings, warnings := restrict(run.Plan, opts.Objects)
	s := &Summary{
		RunID: run.ID, Job: run.Job, Mode: opts.Mode, InScope: run.Plan.InScope,
		Planned: len(changes), Findings: findings, Started: run.Started, Warnings: warnings,
	}
	defer func() { s.Finished = e.now() }()
	s.Changes = make([]ChangeResult, len(changes))
	for i, c := range changes {
		s.Changes[i] = ChangeResult{Change: c, Status: StatusPlanned}
	}
	// Exceptions first, in every mode: the plan a dry-run prints is the plan remediate applies.
	for _, w := range applyExceptions(s, e.Exceptions, e.now()) {
		s.Warnings = append(s.Warnings, w)
		e.log().Warn(w, zap.String("run", s.RunID), zap.String("job", s.Job))
	}
	if opts.Mode != jobs.ModeRemediate || len(changes) == 0 {
		s.count()
		return s, nil
	}
	if err := checkBlastRadius(run, s.Changes, opts); err != nil && !opts.Force {
		s.Aborted, s.AbortReason = true, err.Error()
		for i := range s.Changes {
			if s.Changes[i].Status == StatusPlanned {
				s.Changes[i].Status, s.Changes[i].Error = StatusSkipped, "not sent: the run would exceed its blast radius"
			}
		}
		s.count()
		return s, err
	}

	err := e.applyChanges(ctx, s)
	e.readBack(ctx, s, run.Declared.Reads)
	s.count()
	// "run finished" is the run owner's line (internal/daemon logs it once, with the run's final status).
	e.log().Info("changes applied", zap.String("run", s.RunID), zap.String("job", s.Job),
		zap.Int("applied", s.Applied), zap.Int("failed", s.Failed), zap.Int("verified", s.Verified), zap.Int("skipped", s.Skipped))
	return s, err
}

// Run plans and applies in one step, as run runID.
func (e *Executor) Run(ctx context.Context, runID string, job jobs.Job, opts Options) (*Summary, error) {
	run, err := e.Plan(ctx, runID, job)
	if err != nil {
		return nil, err
	}
	return e.Apply(ctx, run, opts)
}

// restrict keeps the changes and findings of a targeted rerun's objects, and warns about named objects
// with nothing planned (already right, out of the job's scope, or unknown) so an alert-driven rerun says
// what it did not do.
func restrict(p jobs.Plan, objects []string) ([]jobs.Change, []jobs.Finding, []string) {
	if len(objects) == 0 {
		return p.Changes, p.Findings, nil
	}
	want := map[string]bool{}
	for _, o := range objects {
		if o = strings.ToLower(strings.TrimSpace(o)); o != "" {
			want[o] = false
		}
	}
	var changes []jobs.Change
	for _, c := range p.Changes {
		id := strings.ToLower(c.Object.ID)
		if _, ok := want[id]; ok {
			changes = append(changes, c)
			want[id] = true
		}
	}
	var findings []jobs.Finding
	for _, f := range p.Findings {
		id := strings.ToLower(f.Object.ID)
		if _, ok := want[id]; ok {
			findings = append(findings, f)
			want[id] = true
		}
	}
	var idle []string
	for _, o := range objects {
		if o = strings.TrimSpace(o); o != "" && !want[strings.ToLower(o)] {
			idle = append(idle, o)
		}
	}
	var warnings []string
	if len(idle) > 0 {
		warnings = append(warnings, fmt.Sprintf("%d of the %d objects named have nothing planned (already as wanted, outside the job's scope, or unknown ids): %s",
			len(idle), len(want), strings.Join(idle, ", ")))
	}
	return changes, findings, warnings
}

// checkBlastRadius counts the objects that would really be written: changes an exception skips do not count.
func checkBlastRadius(run *Run, changes []ChangeResult, opts Options) error {
	objects := map[string]bool{}
	for _, c := range changes {
		if c.Status == StatusPlanned {
			objects[c.Object.ID] = true
		}
	}
	n := len(objects)
	be := &BlastRadiusError{Job: run.Job, ConfigPath: opts.JobConfigPath, Changes: n, InScope: run.Plan.InScope,
		MaxChanges: opts.MaxChanges, MaxChangePercent: opts.MaxChangePercent}
	if be.ConfigPath == "" {
		be.ConfigPath = "jobs." + run.Job
	}
	if opts.MaxChanges > 0 && n > opts.MaxChanges {
		return be
	}
	if opts.MaxChangePercent > 0 && run.Plan.InScope > 0 {
		be.Actual = 100 * float64(n) / float64(run.Plan.InScope)
		if be.Actual > opts.MaxChangePercent {
			return be
		}
	}
	return nil
}

// chunksInFlight is how many chunks the executor keeps sent at once. With two, the next chunk's batches
// are already queued at the exo client (which bounds requests in flight) while the last batches of the
// current one finish, so every request slot stays busy across chunk boundaries: a chunk of 100 is 10
// batches, which 3 slots would otherwise send in 4 round trips instead of 3⅓.
const chunksInFlight = 2

// sentChunk is a chunk whose requests are on their way.
type sentChunk struct {
	start, end int
	idx        []int
	results    chan []sendResult
}

func (e *Executor) applyChanges(ctx context.Context, s *Summary) error {
	chunk := e.ChunkSize
	if chunk <= 0 {
		chunk = 100
	}
	minAttempts, rate := e.BreakerMinAttempts, e.BreakerFailureRate
	if minAttempts <= 0 {
		minAttempts = 20
	}
	if rate <= 0 {
		rate = 0.5
	}
	if e.Progress != nil {
		e.Progress.Phase("applying", len(s.Changes))
		defer e.Progress.Done()
	}
	attempted, failed := 0, 0
	var queue []*sentChunk
	tripped := false
	// settle records the outcome of the oldest chunk in flight and checks the breaker. Outcomes are recorded
	// here only, in chunk order, so the journal sees them as the serial executor wrote them.
	settle := func() {
		sc := queue[0]
		queue = queue[1:]
		results := <-sc.results
		for i, res := range results {
			cr := &s.Changes[sc.idx[i]]
			attempted++
			cr.RequestID = res.requestID
			if res.unchanged {
				cr.Status, cr.Err, cr.Error = StatusUnchanged, res.err, "nothing written: "+res.err.Error()
				continue
			}
			if res.err != nil && exo.IsKind(res.err, exo.KindOutcomeUnknown) {
				// It may have landed: the read-back decides. Not a failure for the breaker: most such
				// writes land, and calling them failed is the defect this status exists for.
				cr.Status, cr.Err, cr.Error, cr.OutcomeWasUnknown = StatusUnknown, res.err, res.err.Error(), true
				e.log().Info("change sent, answer lost; it is read back before deciding", zap.String("run", s.RunID),
					zap.String("object", cr.Object.ID), zap.Error(res.err))
				continue
			}
			if res.err != nil {
				failed++
				cr.Status, cr.Err, cr.Error = StatusFailed, res.err, res.err.Error()
				e.log().Warn("change failed", zap.String("run", s.RunID), zap.String("object", cr.Object.ID),
					zap.Strings("params", cr.ParamNames()), zap.Error(res.err))
				continue
			}
			cr.Status = StatusApplied
		}
		e.journalOutcomes(ctx, s, sc.idx)
		if e.Progress != nil {
			e.Progress.Add(sc.end - sc.start)
		}
		if !tripped && attempted >= minAttempts && float64(failed)/float64(attempted) >= rate {
			tripped = true
		}
	}
	// drain settles every chunk still in flight: what was sent is accounted for however the run ends.
	drain := func() {
		for len(queue) > 0 {
			settle()
		}
	}
	sent := 0 // changes before this were journalled and sent (or skipped as excepted)
	for start := 0; start < len(s.Changes) && !tripped; start += chunk {
		end := min(start+chunk, len(s.Changes))
		if err := ctx.Err(); err != nil {
			drain()
			skipFrom(s, start, "the run was interrupted before this change was sent")
			return fmt.Errorf("%s: interrupted: %w", s.Job, err)
		}
		// The journal first: if it cannot record the chunk, nothing of it is sent.
		if err := e.journalChunk(ctx, s, start, end); err != nil {
			drain()
			if cerr := ctx.Err(); cerr != nil {
				// The journal failed because the run is being stopped (SIGINT/SIGTERM): that is an
				// interruption, not a broken store.
				skipFrom(s, start, "the run was interrupted before this change was sent")
				return fmt.Errorf("%s: interrupted: %w", s.Job, cerr)
			}
			s.Aborted, s.AbortReason = true, err.Error()
			skipFrom(s, start, "not sent: the change journal failed")
			return err
		}
		sc := &sentChunk{start: start, end: end, results: make(chan []sendResult, 1)}
		for i := start; i < end; i++ {
			if s.Changes[i].Status == StatusPlanned { // excepted changes are already skipped
				sc.idx = append(sc.idx, i)
			}
		}
		sent = end
		if len(sc.idx) == 0 {
			continue
		}
		bctx, cancel := graceful(ctx, e.stopGrace())
		go func() {
			defer cancel()
			sc.results <- e.send(bctx, s.Changes, sc.idx)
		}()
		queue = append(queue, sc)
		if len(queue) >= chunksInFlight {
			settle()
		}
	}
	drain()
	if tripped && sent < len(s.Changes) {
		s.Aborted = true
		s.AbortReason = fmt.Sprintf("circuit breaker: %d of the first %d changes failed (≥ %.0f%%); the remaining %d were not sent. Look at the errors above, fix the cause, then rerun",
			failed, attempted, rate*100, len(s.Changes)-sent)
		skipFrom(s, sent, "not sent: the circuit breaker stopped the run")
	}
	return nil
}

func skipFrom(s *Summary, from int, why string) {
	for i := from; i < len(s.Changes); i++ {
		if s.Changes[i].Status == StatusPlanned {
			s.Changes[i].Status, s.Changes[i].Error = StatusSkipped, why
		}
	}
}

// readBack reads every applied object again and checks it holds the value the run wrote. When many objects
// changed it re-runs the job's own query (a few pages of 1,000) instead of one Get per object: the same
// read-back for a fraction of the throttle budget. An object that still shows its old value (or is missing)
// is read again a few times before the change is called failed: Exchange Online may answer from a domain
// controller the write has not replicated to yet.
func (e *Executor) readBack(ctx context.Context, s *Summary, reads []jobs.Query) {
	var idx []int
	for i, cr := range s.Changes {
		if cr.Status == StatusApplied || cr.Status == StatusUnknown {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return
	}
	// Read-back runs even when the run was cancelled mid-way: what was written must be accounted for.
	// Its verdicts go to the journal however it ends; a write of unknown outcome gets its verdict from it.
	ctx, cancel := graceful(ctx, e.stopGrace())
	defer cancel()
	defer e.journalOutcomes(ctx, s, idx)
	defer e.checkGroupLicenses(ctx, s, idx)
	defer resolveUnknown(s, idx)
	if e.Progress != nil {
		e.Progress.Phase("verifying", len(idx))
		defer e.Progress.Done()
	}
	pages := s.InScope/1000 + 1
	listed := false
	// The one query that reads every written object (a job may also read other cmdlets, e.g. remote domains).
	var listQ *jobs.Query
	for i := range reads {
		if readsWritten(reads[i], s.Changes, idx) {
			if listQ != nil {
				listQ = nil
				break
			}
			listQ = &reads[i]
		}
	}
	if listQ != nil && pages < len(idx) {
		seen, err := e.listForReadBack(ctx, *listQ, s.Changes, idx)
		if err == nil {
			listed = true
			for _, i := range idx {
				cr := &s.Changes[i]
				obj, ok := seen[strings.ToLower(cr.Object.ID)]
				if !ok {
					cr.Status, cr.Error = StatusUnverified, "written, but the object was not found when read back (deleted, or no longer in scope)"
					cr.lagging = true
					continue
				}
				if o := observe(obj, cr.Change); o.Err != nil {
					cr.Status, cr.Err, cr.Error = StatusUnverified, o.Err, "written, but the read-back failed: "+o.Err.Error()
				} else {
					verify(cr, o)
				}
			}
			if e.Progress != nil {
				e.Progress.Add(len(idx))
			}
		} else {
			e.log().Warn("read-back by query failed; reading objects one by one", zap.Error(err))
		}
	}
	if !listed {
		e.readEach(ctx, s, idx)
		if e.Progress != nil {
			e.Progress.Add(len(idx))
		}
	}

	retries, delay := e.ReadBackRetries, e.ReadBackDelay
	if retries == 0 {
		retries = 3
	}
	if delay <= 0 {
		delay = 2 * time.Second
	}
	waited := time.Duration(0)
	for attempt := 1; attempt <= retries; attempt++ {
		var again []int
		for _, i := range idx {
			if s.Changes[i].lagging {
				again = append(again, i)
			}
		}
		if len(again) == 0 {
			return
		}
		e.log().Info("read-back disagrees; reading again in case of replication lag", zap.String("run", s.RunID),
			zap.Int("objects", len(again)), zap.Int("attempt", attempt), zap.Duration("wait", delay))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		waited += delay
		delay *= 2
		e.readEach(ctx, s, again)
		for _, i := range again {
			if cr := &s.Changes[i]; cr.Status != StatusVerified {
				cr.Error += fmt.Sprintf(" (read back %d times over %s)", attempt+1, waited)
			}
		}
	}
}

// resolveUnknown states what the read-back found for each write whose answer was lost: landed (verified),
// not applied (failed: the object still holds the old value after every re-read), or still unknown when the
// object could not be read (left pending in the journal for reconciliation).
func resolveUnknown(s *Summary, idx []int) {
	for _, i := range idx {
		cr := &s.Changes[i]
		if !cr.OutcomeWasUnknown {
			continue
		}
		lost := "the answer to the write was lost"
		if cr.Err != nil {
			lost += " (" + cr.Err.Error() + ")"
		}
		switch cr.Status {
		case StatusVerified:
			cr.Error = lost + "; read back: it landed"
		case StatusFailed:
			if !cr.notApplied {
				cr.Error = lost + "; read back: " + cr.Error
				continue
			}
			cr.Error = lost + "; read back: it did not land (the object still holds the old value); the next run sends it again"
		default: // unverified: the read-back itself failed or missed the object
			cr.Status = StatusUnknown
			cr.Error = lost + "; the read-back could not tell either (" + cr.Error + "): the journal keeps it pending until reconciliation reads the object"
		}
	}
}

// readEach reads the objects of the changes at idx (Observe: one Get each, batched) and verifies them.
func (e *Executor) readEach(ctx context.Context, s *Summary, idx []int) {
	changes := make([]jobs.Change, len(idx))
	for k, i := range idx {
		changes[k] = s.Changes[i].Change
	}
	for k, o := range e.Observe(ctx, changes) {
		cr := &s.Changes[idx[k]]
		cr.lagging = false
		if o.RequestID != "" && cr.RequestID == "" {
			cr.RequestID = o.RequestID
		}
		switch {
		case o.Err != nil:
			cr.Status, cr.Err, cr.Error = StatusUnverified, o.Err, "written, but the read-back failed: "+o.Err.Error()
		case !o.Found:
			cr.Status, cr.Error = StatusUnverified, "written, but the object was not found when read back"
			cr.lagging = true
		default:
			verify(cr, o)
		}
	}
}

// listForReadBack re-runs the job's query selecting the id and every written parameter.
func (e *Executor) listForReadBack(ctx context.Context, q jobs.Query, changes []ChangeResult, idx []int) (map[string]map[string]json.RawMessage, error) {
	sel := []string{"ExternalDirectoryObjectId"}
	seenParam := map[string]bool{}
	for _, i := range idx {
		for _, p := range changes[i].ParamNames() {
			if !seenParam[p] {
				seenParam[p] = true
				sel = append(sel, p)
			}
		}
	}
	params := map[string]any{"ResultSize": "Unlimited"}
	if q.Filter != "" {
		params["Filter"] = q.Filter
	}
	out := map[string]map[string]json.RawMessage{}
	for resp, err := range e.Client.Pages(ctx, exo.Command{Name: q.Cmdlet, Params: params, Select: sel}) {
		if err != nil {
			return nil, err
		}
		for _, raw := range resp.Values {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(raw, &obj); err != nil {
				return nil, fmt.Errorf("decode read-back (request-id %s): %w", resp.RequestID, err)
			}
			id := fieldText(obj, "ExternalDirectoryObjectId")
			out[strings.ToLower(id)] = obj
		}
	}
	return out, nil
}

// verify compares what the tenant holds now with what the change wrote: every parameter of it.
func verify(cr *ChangeResult, o Observation) {
	cr.lagging, cr.notApplied = false, false
	if cr.OutcomeWasUnknown && o.HoldsOld(cr.Change) {
		cr.Status, cr.Error = StatusFailed, "the object still holds the old value"
		cr.lagging, cr.notApplied = true, true // a lagging replica could show the old value: read again
		return
	}
	for _, p := range cr.Params {
		got := o.Values[p.Name]
		if !got.Equal(p.To) {
			cr.Status = StatusFailed
			cr.Error = fmt.Sprintf("written, but the read-back shows %s = %s, not %s (another writer, or a policy reverted it)", p.Name, got, p.To)
			cr.lagging = true
			return
		}
	}
	cr.Status = StatusVerified
}

var errNoField = errors.New("no such property")

// field returns a property of a decoded object as a typed value, matching the name case-insensitively as
// PowerShell does.
func field(obj map[string]json.RawMessage, name string) (jobs.Value, error) {
	v, ok := obj[name]
	if !ok {
		for k, kv := range obj {
			if strings.EqualFold(k, name) {
				v, ok = kv, true
				break
			}
		}
	}
	if !ok {
		return jobs.Null, errNoField
	}
	var out jobs.Value
	if err := json.Unmarshal(v, &out); err != nil {
		return jobs.Null, err
	}
	return out, nil
}

// fieldText is field for properties read as text (ids).
func fieldText(obj map[string]json.RawMessage, name string) string {
	v, err := field(obj, name)
	if err != nil {
		return ""
	}
	return v.AsText()
}

// writeCommand is the Exchange call of a change: its cmdlet, -Identity and every parameter, typed.
func writeCommand(c jobs.Change) exo.Command {
	params := map[string]any{"Identity": c.Object.ID}
	for _, p := range c.Params {
		params[p.Name] = p.To.Native()
	}
	return exo.Command{Name: c.Cmdlet, Params: params}
}

// readCommand is the read of what a change wrote: the read cmdlet the library's table pairs with the
// change's cmdlet (checked when the plan was accepted), selecting the id and every parameter written.
func readCommand(c jobs.Change) exo.Command {
	name, _ := jobs.ReadCmdlet(c.Cmdlet)
	return exo.Command{
		Name:   name,
		Params: map[string]any{"Identity": c.Object.ID},
		Select: append([]string{"ExternalDirectoryObjectId"}, c.ParamNames()...),
	}
}

func (s *Summary) count() {
	s.Applied, s.Failed, s.Verified, s.Skipped = 0, 0, 0, 0
	s.Unknown, s.UnknownLanded, s.UnknownNotApplied, s.Unresolved = 0, 0, 0, 0
	for _, cr := range s.Changes {
		if cr.OutcomeWasUnknown {
			s.Unknown++
			switch {
			case cr.Status == StatusVerified:
				s.UnknownLanded++
			case cr.Status == StatusFailed && cr.notApplied:
				s.UnknownNotApplied++
			}
		}
		switch cr.Status {
		case StatusUnknown:
			s.Unresolved++
		case StatusVerified:
			s.Applied++
			s.Verified++
		case StatusApplied, StatusUnverified:
			s.Applied++
		case StatusFailed:
			s.Failed++
		case StatusSkipped:
			s.Skipped++
		}
	}
}
