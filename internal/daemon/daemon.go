// Package daemon runs jobs for weeks: on cron schedules, on triggers from the HTTP API and alert webhooks,
// and once for a revert. It is the coordinator around the executor: it records each run in the store,
// gives the executor the store's journal, keeps two processes sharing one database from running a job
// twice (a lease per job, a claim per schedule tick), and after a crash marks the dead process's runs
// interrupted and reconciles their pending journal entries by reading the objects.
//
// Safety decisions (mode, blast radius, exceptions, journal before write, read-back) stay in the executor;
// the daemon only decides when a job runs and records how it ended.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/metrics"
	"github.com/exo-worker/worker/internal/schedule"
	"github.com/exo-worker/worker/internal/server"
	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/executor"
)

// JobSpec is one job as the daemon runs it.
type JobSpec struct {
	Job jobs.Job
	// Schedule is a cron spec: 5 fields, or 6 with a leading seconds field, an optional CRON_TZ=Zone prefix,
	// or a descriptor (@hourly, @every 10m). Empty means the job runs only when triggered.
	Schedule string
	// Options are the job's safety settings (mode, blast radius). Force is ignored: the daemon never lifts
	// the blast radius, a person does, with a one-shot run.
	Options executor.Options
	// OnSync runs the job as soon as a directory sync cycle finishes (Options.SyncClock, polled every
	// SyncPoll), beside or instead of its schedule.
	OnSync bool
}

// Options configure a Daemon.
type Options struct {
	Store    store.Store
	Executor *executor.Executor
	Jobs     []JobSpec
	// Library is every job the worker knows, configured or not: a revert checks its writes against the
	// reverted job's declaration even when the job is no longer scheduled. Nil: the jobs of Jobs only.
	Library *jobs.Registry
	Metrics *metrics.Metrics // nil = no metrics
	Log     *zap.Logger
	// Owner names this process in runs and leases; default store.DefaultOwner().
	Owner string
	// LeaseTTL is how long a job lease lasts without renewal (default 30s): how long a crashed process's
	// job stays blocked before another process takes over. Renewed every third of it while a run goes on.
	LeaseTTL time.Duration
	// Grace bounds a stop: in-flight writes may finish, then runs still going are recorded as interrupted
	// (default 30s).
	Grace time.Duration
	// RunAtStart runs every scheduled job once when the daemon starts, without waiting for its first tick.
	RunAtStart bool
	// SweepInterval is how often the daemon looks for runs of dead processes and pending journal entries to
	// reconcile (default LeaseTTL).
	SweepInterval time.Duration
	// Retention is how long history is kept (zero: forever); the daemon prunes at start and every
	// PruneInterval (default DefaultPruneInterval).
	Retention     Retention
	PruneInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// River, when set, dispatches runs through River on PostgreSQL (several replicas, one queue) instead of
	// in this process (cron, leases and tick claims in the store).
	River *RiverFleet
	// SyncClock, when set, is polled for the end of directory sync cycles on behalf of the OnSync jobs;
	// SyncPoll is how often (default DefaultSyncPoll), or SyncTicks, when set, delivers the polls (tests).
	SyncClock SyncClock
	SyncPoll  time.Duration
	SyncTicks <-chan time.Time
}

// Daemon schedules and runs jobs. It implements server.Runner.
type Daemon struct {
	st      store.Store
	ex      *executor.Executor
	library *jobs.Registry
	m       *metrics.Metrics
	log     *zap.Logger
	owner   string
	ttl     time.Duration
	grace   time.Duration
	sweep   time.Duration
	atStart bool

	retention  Retention
	pruneEvery time.Duration
	now        func() time.Time

	syncClock SyncClock
	syncPoll  time.Duration
	syncTicks <-chan time.Time

	cron  *cron.Cron
	jobs  map[string]*jobState
	order []string
	disp  dispatcher

	// runCtx is cancelled when a stop begins: runs stop sending new chunks.
	runCtx    context.Context
	cancelRun context.CancelFunc
	bgCtx     context.Context // background work (sweeps): cancelled at stop
	cancelBg  context.CancelFunc

	mu       sync.Mutex
	stopping bool
	started  bool
	wg       sync.WaitGroup // runs in flight
	bgWG     sync.WaitGroup
}

var _ server.Runner = (*Daemon)(nil)

type jobState struct {
	spec    JobSpec
	sched   cron.Schedule // nil when unscheduled
	entry   cron.EntryID
	active  *activeRun // nil when idle
	pending *request   // coalesced follow-up, at most one
}

type activeRun struct {
	req     request
	runID   string // the store's run id once created
	created bool
	done    chan struct{}
}

// request is one asked-for run.
type request struct {
	id      string
	source  store.Trigger
	reason  string
	objects []string // nil = whole scope
}

// ParseSchedule parses one job schedule (internal/schedule, the parser config validation uses too), with an
// error naming its config path.
func ParseSchedule(job, spec string) (cron.Schedule, error) {
	s, err := schedule.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("jobs.%s.schedule %q: %w", job, spec, err)
	}
	return s, nil
}

// New checks the options and builds a daemon; Start runs it.
func New(o Options) (*Daemon, error) {
	if o.Store == nil || o.Executor == nil {
		return nil, errors.New("daemon: a store and an executor are required")
	}
	d := &Daemon{
		st: o.Store, ex: o.Executor, library: o.Library, m: o.Metrics, log: o.Log, owner: o.Owner,
		ttl: o.LeaseTTL, grace: o.Grace, sweep: o.SweepInterval, atStart: o.RunAtStart, now: o.Now,
		retention: o.Retention, pruneEvery: o.PruneInterval,
		jobs: map[string]*jobState{}, syncClock: o.SyncClock, syncPoll: o.SyncPoll, syncTicks: o.SyncTicks,
	}
	if d.syncPoll <= 0 {
		d.syncPoll = DefaultSyncPoll
	}
	if d.log == nil {
		d.log = zap.NewNop()
	}
	if d.owner == "" {
		d.owner = store.DefaultOwner()
	}
	if d.ttl <= 0 {
		d.ttl = 30 * time.Second
	}
	if d.grace <= 0 {
		d.grace = 30 * time.Second
	}
	if d.sweep <= 0 {
		d.sweep = d.ttl
	}
	if d.pruneEvery <= 0 {
		d.pruneEvery = DefaultPruneInterval
	}
	if d.now == nil {
		d.now = time.Now
	}
	var problems []string
	for _, js := range o.Jobs {
		if js.Job == nil {
			problems = append(problems, "a job spec has no job")
			continue
		}
		name := js.Job.Name()
		if _, dup := d.jobs[name]; dup {
			problems = append(problems, fmt.Sprintf("job %s is listed twice", name))
			continue
		}
		js.Options.Force = false
		st := &jobState{spec: js}
		if strings.TrimSpace(js.Schedule) != "" {
			s, err := ParseSchedule(name, js.Schedule)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			st.sched = s
		}
		d.jobs[name] = st
		d.order = append(d.order, name)
	}
	for _, js := range d.jobs {
		if js.spec.OnSync && d.syncClock == nil {
			problems = append(problems, fmt.Sprintf("job %s runs on sync, but no sync clock (Graph reader) is configured", js.spec.Job.Name()))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("daemon: %s", strings.Join(problems, "; "))
	}
	slices.Sort(d.order)
	if d.ex.Journal == nil {
		// Every write the daemon makes is journalled: that is what crash recovery and revert stand on.
		d.ex.Journal = NewJournal(d.st)
	}
	d.runCtx, d.cancelRun = context.WithCancel(context.Background())
	d.bgCtx, d.cancelBg = context.WithCancel(context.Background())
	d.cron = cron.New(cron.WithChain(cron.Recover(cronLogger{d.log})), cron.WithLogger(cronLogger{d.log}))
	d.disp = inProcess{d}
	if o.River != nil {
		d.disp = o.River.dispatcher(d)
	}
	// The executor learns when to let go of in-flight work from the grace period: a third of it for the
	// batch in flight, a third for the read-back, the rest for recording.
	if d.ex.StopGrace <= 0 || d.ex.StopGrace > d.grace/3 {
		d.ex.StopGrace = d.grace / 3
	}
	return d, nil
}

// Owner is the name this daemon records in runs and leases.
func (d *Daemon) Owner() string { return d.owner }

// Start recovers what dead processes left (runs still marked running, pending journal entries), then
// starts the schedules and, with RunAtStart, one run of every scheduled job. It returns once scheduling has
// begun; Stop ends it.
func (d *Daemon) Start(ctx context.Context) error {
	d.mu.Lock()
	if d.started {
		d.mu.Unlock()
		return errors.New("daemon: already started")
	}
	d.started = true
	d.mu.Unlock()

	if err := d.st.Ping(ctx); err != nil {
		return fmt.Errorf("daemon: the store does not answer: %w", err)
	}
	d.sweepOnce(ctx)
	d.refreshFindingMetrics(ctx) // /metrics shows the open findings from the first scrape, not the first run
	if err := d.disp.start(ctx); err != nil {
		return err
	}
	d.bgWG.Add(1)
	go d.sweeper()
	if d.syncClock != nil && slices.ContainsFunc(d.order, func(n string) bool { return d.jobs[n].spec.OnSync }) {
		ticks := d.syncTicks
		if ticks == nil {
			t := time.NewTicker(d.syncPoll)
			go func() { <-d.bgCtx.Done(); t.Stop() }()
			ticks = t.C
		}
		d.bgWG.Add(1)
		go d.watchSync(d.bgCtx, ticks)
	}
	_, _ = d.PruneOnce(ctx)
	d.bgWG.Add(1)
	go d.pruner()
	return nil
}

// startLocal starts the in-process schedules (and the runs at start).
func (d *Daemon) startLocal() {
	for _, name := range d.order {
		js := d.jobs[name]
		if js.sched == nil {
			continue
		}
		js.entry = d.cron.Schedule(js.sched, cron.FuncJob(func() { d.tick(js) }))
		d.log.Info("job scheduled", zap.String("job", name), zap.String("schedule", js.spec.Schedule),
			zap.Time("next", js.sched.Next(d.now())))
	}
	d.cron.Start()
	if d.atStart {
		for _, name := range d.order {
			if d.jobs[name].sched == nil {
				continue
			}
			if _, _, err := d.trigger(name, request{source: store.TriggerSchedule, reason: "run at start"}); err != nil {
				d.log.Warn("run at start not started", zap.String("job", name), zap.Error(err))
			}
		}
	}
}

// Stop stops scheduling, lets runs in flight finish their current writes, and records runs still going
// when the grace period ends as interrupted. It returns when every run has ended or been recorded.
func (d *Daemon) Stop() {
	d.mu.Lock()
	if d.stopping {
		d.mu.Unlock()
		return
	}
	d.stopping = true
	d.mu.Unlock()
	d.cancelBg() // a tick or sweep waiting on the store gives up
	d.disp.stop()
	d.bgWG.Wait()
}

// stopLocal is Stop of the in-process dispatch: schedules stop, runs in flight get the grace period.
func (d *Daemon) stopLocal() {
	d.mu.Lock()
	var active []*activeRun
	for _, js := range d.jobs {
		js.pending = nil // a queued follow-up is dropped: it never started, nothing to record
		if js.active != nil {
			active = append(active, js.active)
		}
	}
	d.mu.Unlock()

	d.log.Info("stopping: no new runs; runs in flight finish their current writes",
		zap.Int("running", len(active)), zap.Duration("grace", d.grace))
	<-d.cron.Stop().Done() // tick functions only claim and launch: this returns at once
	d.cancelRun()

	deadline := time.NewTimer(d.grace)
	defer deadline.Stop()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-deadline.C:
		// Runs that did not end in time are recorded here; their goroutines die with the process, and the
		// next start reconciles whatever they left pending.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.mu.Lock()
		var late []*activeRun
		for _, js := range d.jobs {
			if js.active != nil && js.active.created {
				late = append(late, js.active)
			}
		}
		d.mu.Unlock()
		for _, ar := range late {
			err := d.st.FinishRun(ctx, ar.runID, store.RunResult{Status: store.RunInterrupted,
				Error: fmt.Sprintf("the daemon stopped and the run did not end within the %s grace period; "+
					"pending journal entries are reconciled at the next start", d.grace)})
			if err != nil {
				d.log.Warn("record interrupted run", zap.String("run", ar.runID), zap.Error(err))
			}
			d.log.Warn("run interrupted at stop", zap.String("run", ar.runID))
		}
	}
	d.releaseLeases()
}

// releaseLeases gives up this process's job leases, so another daemon need not wait for them to expire.
func (d *Daemon) releaseLeases() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, name := range d.order {
		if err := d.st.ReleaseLease(ctx, leaseName(name), d.owner); err != nil {
			d.log.Warn("release lease", zap.String("job", name), zap.Error(err))
		}
	}
}

func leaseName(job string) string { return "job:" + job }

// Trigger implements server.Runner: it starts a run of the job now, or, when the job is running, queues
// one follow-up run that later triggers merge into.
func (d *Daemon) Trigger(_ context.Context, t server.Trigger) (string, bool, error) {
	src := t.Source
	if src == "" {
		src = store.TriggerAPI
	}
	if !src.Valid() {
		return "", false, fmt.Errorf("%w: unknown trigger source %q", server.ErrInvalidTrigger, src)
	}
	var objects []string
	for _, o := range t.Objects {
		if o = strings.TrimSpace(o); o != "" && !slices.Contains(objects, strings.ToLower(o)) {
			objects = append(objects, strings.ToLower(o))
		}
	}
	// The server counts triggers (started, coalesced, rate limited) in the metrics; the daemon does not.
	if _, ok := d.jobs[t.Job]; !ok {
		return "", false, d.unknownJob(t.Job)
	}
	return d.disp.submit(t.Job, request{source: src, reason: t.Reason, objects: objects})
}

// QueuedRun implements server.QueuedRuns: a run the daemon accepted but has not recorded yet (a coalesced
// follow-up waiting for the running one, or a run whose record is being created), shown as queued.
func (d *Daemon) QueuedRun(id string) (store.Run, bool) { return d.disp.queued(id) }

// queuedLocal is QueuedRun of the in-process dispatch.
func (d *Daemon) queuedLocal(id string) (store.Run, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, js := range d.jobs {
		var req *request
		switch {
		case js.pending != nil && js.pending.id == id:
			req = js.pending
		case js.active != nil && !js.active.created && js.active.req.id == id:
			req = &js.active.req
		default:
			continue
		}
		return store.Run{ID: id, Job: name, Mode: string(js.spec.Options.Mode), Trigger: req.source, Reason: req.reason,
			Objects: slices.Clone(req.objects), Status: store.RunQueued, Owner: d.owner}, true
	}
	return store.Run{}, false
}

// trigger starts or queues a run.
func (d *Daemon) trigger(job string, req request) (string, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	js, ok := d.jobs[job]
	if !ok {
		return "", false, d.unknownJob(job)
	}
	if d.stopping {
		return "", false, fmt.Errorf("%w: job %s was not started", server.ErrShuttingDown, job)
	}
	if js.active == nil {
		req.id = store.NewRunID()
		d.launchLocked(js, req)
		return req.id, false, nil
	}
	if js.pending == nil {
		req.id = store.NewRunID()
		js.pending = &req
		return req.id, true, nil
	}
	p := js.pending
	if p.objects == nil || req.objects == nil {
		p.objects = nil // a whole-scope trigger widens the follow-up
	} else {
		for _, o := range req.objects {
			if !slices.Contains(p.objects, o) {
				p.objects = append(p.objects, o)
			}
		}
	}
	if req.reason != "" && !strings.Contains(p.reason, req.reason) && len(p.reason) < 500 {
		p.reason = strings.TrimPrefix(p.reason+"; "+req.reason, "; ")
	}
	return p.id, true, nil
}

// launchLocked starts a run in its own goroutine. d.mu must be held.
func (d *Daemon) launchLocked(js *jobState, req request) {
	ar := &activeRun{req: req, runID: req.id, done: make(chan struct{})}
	js.active = ar
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(ar.done)
		d.execute(js, ar)
		d.mu.Lock()
		defer d.mu.Unlock()
		js.active = nil
		if next := js.pending; next != nil && !d.stopping {
			js.pending = nil
			d.launchLocked(js, *next)
		}
	}()
}

// tick is a schedule firing. Every daemon on the database computes the same tick time; ClaimTick lets one
// of them have it, and the job lease keeps a run from overlapping another process's run of the same job.
func (d *Daemon) tick(js *jobState) {
	name := js.spec.Job.Name()
	tick := lastTick(js.sched, d.now())
	d.mu.Lock()
	busy, stopping := js.active != nil, d.stopping
	d.mu.Unlock()
	if stopping {
		return
	}
	if busy {
		d.m.ObserveSkippedTick(name)
		d.log.Warn("schedule tick skipped: the previous run is still going", zap.String("job", name), zap.Time("tick", tick))
		return
	}
	ctx, cancel := context.WithTimeout(d.bgCtx, 10*time.Second)
	won, err := d.st.ClaimTick(ctx, name, tick, d.owner)
	cancel()
	if err != nil {
		d.log.Error("schedule tick not claimed: the store failed; the job waits for its next tick", zap.String("job", name), zap.Error(err))
		return
	}
	if !won {
		d.m.ObserveSkippedTick(name)
		d.log.Debug("schedule tick claimed by another process", zap.String("job", name), zap.Time("tick", tick))
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping {
		return
	}
	if js.active != nil {
		d.m.ObserveSkippedTick(name)
		return
	}
	d.launchLocked(js, request{id: store.NewRunID(), source: store.TriggerSchedule,
		reason: fmt.Sprintf("schedule %q, tick %s", js.spec.Schedule, tick.UTC().Format(time.RFC3339))})
}

// lastTick is the latest schedule time at or before now: the tick that is firing. cron starts the job a
// little after the tick; every process computes the same value from the same schedule.
func lastTick(s cron.Schedule, now time.Time) time.Time {
	for _, back := range []time.Duration{time.Minute, time.Hour, 25 * time.Hour, 32 * 24 * time.Hour} {
		t := s.Next(now.Add(-back))
		if t.IsZero() || t.After(now) {
			continue
		}
		for {
			n := s.Next(t)
			if n.IsZero() || n.After(now) {
				return t
			}
			t = n
		}
	}
	return now.Truncate(time.Minute)
}

// Jobs implements server.Runner.
func (d *Daemon) Jobs() []server.JobInfo {
	out := d.jobInfos()
	for i := range out {
		out[i].Running, out[i].Queued = d.disp.state(out[i].Name)
	}
	return out
}

func (d *Daemon) jobInfos() []server.JobInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]server.JobInfo, 0, len(d.order))
	for _, name := range d.order {
		js := d.jobs[name]
		desc := js.spec.Job.Describe()
		ji := server.JobInfo{
			Name: name, Summary: desc.Summary, Kind: string(desc.Kind), Mode: string(js.spec.Options.Mode),
			Schedule: js.spec.Schedule,
		}
		if js.sched != nil && !d.stopping {
			ji.NextRun = js.sched.Next(d.now())
		}
		out = append(out, ji)
	}
	return out
}

// cronLogger sends cron's own messages (panics it recovered, mostly) to zap.
type cronLogger struct{ l *zap.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Sugar().Debugw("cron: "+msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Sugar().Errorw("cron: "+msg, append(kv, "error", err)...)
}

// describe returns a job's declaration, from the daemon's jobs or the library.
func (d *Daemon) describe(name string) (jobs.Description, error) {
	if js, ok := d.jobs[name]; ok {
		return js.spec.Job.Describe(), nil
	}
	if d.library != nil {
		j, err := d.library.Get(name)
		if err != nil {
			return jobs.Description{}, err
		}
		return j.Describe(), nil
	}
	return jobs.Description{}, fmt.Errorf("job %s is not one of this daemon's jobs", name)
}

// unknownJob is the refusal of a trigger for a job the daemon does not run: one the library does not know,
// or one the configuration does not name (the daemon, its API and webhooks only start configured jobs).
func (d *Daemon) unknownJob(job string) error {
	if d.library != nil {
		if _, err := d.library.Get(job); err == nil {
			return fmt.Errorf("%w %q: the job is not configured, and the daemon only starts jobs the configuration names "+
				"(add jobs.%s with its mode and blast radius); configured jobs are %s", server.ErrUnknownJob, job, job, strings.Join(d.order, ", "))
		}
	}
	return fmt.Errorf("%w %q: known jobs are %s", server.ErrUnknownJob, job, strings.Join(d.order, ", "))
}
