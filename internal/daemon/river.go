package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/server"
	"github.com/exo-worker/worker/internal/store"
)

// River dispatch: with PostgreSQL, every run is a River job (github.com/riverqueue/river) in the shared
// database, so any replica may run it and none runs it twice.
//
//   - Schedule ticks are River periodic jobs, enqueued by the elected leader only. A tick's job carries the
//     tick time in its unique key (kept while completed), so a leader handover that enqueues the same tick
//     again is a duplicate, not a second run. (River's ByPeriod would bucket by the enqueue clock; the tick
//     itself is exact for any cron schedule.)
//   - Triggers (API, alerts, run at start) are jobs unique per (tenant, job, slot) while queued or running.
//     Two slots give what the in-process dispatch does: one running run and one queued follow-up that later
//     triggers merge into (objects united, reasons joined).
//   - A run holds a PostgreSQL advisory lock on (tenant, job) for its whole length, on its own connection:
//     uniqueness alone does not stop a follow-up from starting while the run is still going. A busy tick is
//     skipped, as in-process; a busy trigger waits (snoozed, which costs no attempt).
//   - A replica renews a heartbeat lease while it lives. A run whose replica stopped renewing is handed to
//     another replica (the job made available again), whose run marks the dead one interrupted and
//     reconciles its pending journal entries by reading the objects before it plans. River's own rescuer
//     is not used for runs (no job timeout): a long run is not a stuck one.
//   - Stopping cancels running runs; their in-flight writes finish and are journalled, and the job goes back
//     to the queue for another replica (a run cancelled by shutdown returns context.Canceled to River).

const runKind = "exo_worker_run"

// runArgs is one run as a River job.
type runArgs struct {
	Tenant string `json:"tenant" river:"unique"`
	Job    string `json:"job" river:"unique"`
	// Slot completes the unique key: "tick:<RFC 3339 time>" for a schedule tick, "a" or "b" for a triggered
	// run (the running one and its follow-up).
	Slot    string        `json:"slot" river:"unique"`
	RunID   string        `json:"run_id"`
	Source  store.Trigger `json:"source"`
	Reason  string        `json:"reason,omitempty"`
	Objects []string      `json:"objects,omitempty"`
}

// Kind implements river.JobArgs.
func (runArgs) Kind() string { return runKind }

func (a runArgs) tick() bool { return strings.HasPrefix(a.Slot, "tick:") }

// queuedStates are the River states of a run that has not started.
var queuedStates = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
	rivertype.JobStateScheduled, rivertype.JobStateRetryable}

// triggerUnique keeps one job per (tenant, job, slot) while queued or running; a completed one frees the slot.
var triggerUnique = river.UniqueOpts{ByArgs: true, ByState: append(slices.Clone(queuedStates), rivertype.JobStateRunning)}

// RiverOptions configure a RiverFleet.
type RiverOptions struct {
	// Owner names this replica: its River client id, its runs' owner and its heartbeat lease's holder.
	// Default store.DefaultOwner().
	Owner string
	// MaxWorkers bounds the runs this replica works at once, across tenants (default 10).
	MaxWorkers int
	// Heartbeat is how long this replica's liveness lease lasts without renewal (default 15 s, renewed every
	// third): a killed replica's runs go to another replica about this long after it died.
	Heartbeat time.Duration
	// Log (default none) and Now (default time.Now).
	Log *zap.Logger
	Now func() time.Time
}

// RiverFleet is one replica's River client and the tenants' daemons it works runs for. Build it, give it
// to each tenant's daemon (Options.River), start the daemons, then Start the fleet; Stop it before the
// daemons.
type RiverFleet struct {
	pg     *store.Postgres
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	o      RiverOptions
	log    *zap.Logger

	mu      sync.Mutex
	daemons map[string]*Daemon // by tenant
	hb      *store.HeldLease
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// NewRiverFleet builds the River client on the store's pool and schema.
func NewRiverFleet(pg *store.Postgres, o RiverOptions) (*RiverFleet, error) {
	if o.Owner == "" {
		o.Owner = store.DefaultOwner()
	}
	if o.MaxWorkers <= 0 {
		o.MaxWorkers = 10
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	f := &RiverFleet{pg: pg, pool: pg.Pool(), o: o, log: o.Log.Named("river"), daemons: map[string]*Daemon{}}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &runWorker{f: f}); err != nil {
		return nil, fmt.Errorf("river: %w", err)
	}
	c, err := river.NewClient(riverpgxv5.New(f.pool), &river.Config{
		ID:      o.Owner,
		Schema:  pg.Schema(),
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: o.MaxWorkers}},
		Workers: workers,
		// A run takes as long as its tenant needs; a dead replica's run is handed on by the heartbeat.
		JobTimeout:  -1,
		MaxAttempts: 25,
		// Completed tick jobs keep their tick's unique key: longer than any schedule's gap that matters.
		CompletedJobRetentionPeriod: 48 * time.Hour,
		FetchCooldown:               50 * time.Millisecond,
		FetchPollInterval:           500 * time.Millisecond,
		Logger:                      newSlogger(f.log),
	})
	if err != nil {
		return nil, fmt.Errorf("river: %w", err)
	}
	f.client = c
	return f, nil
}

// MigrateRiver applies River's own migrations to the store's database and schema, under the same
// advisory lock as the worker's schema (rivermigrate takes none), and reports the versions before and after.
func MigrateRiver(ctx context.Context, pg *store.Postgres) (from, to int, err error) {
	conn, err := pg.Pool().Acquire(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("river migrate: %w", err)
	}
	defer conn.Release()
	key := "exo-worker migrate " + pg.Schema()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext($1))`, key); err != nil {
		return 0, 0, fmt.Errorf("river migrate: take the migration lock: %w", err)
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext($1))`, key) }()
	m, err := rivermigrate.New(riverpgxv5.New(pg.Pool()), &rivermigrate.Config{Schema: pg.Schema()})
	if err != nil {
		return 0, 0, fmt.Errorf("river migrate: %w", err)
	}
	from, err = riverVersion(ctx, m)
	if err != nil {
		return 0, 0, err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return from, from, fmt.Errorf("river migrate %s: %w", pg.Where(), err)
	}
	to, err = riverVersion(ctx, m)
	return from, to, err
}

func riverVersion(ctx context.Context, m *rivermigrate.Migrator[pgx.Tx]) (int, error) {
	got, err := m.ExistingVersions(ctx)
	if err != nil {
		return 0, fmt.Errorf("river: read its schema version: %w", err)
	}
	v := 0
	for _, g := range got {
		v = max(v, g.Version)
	}
	return v, nil
}

// checkRiverSchema refuses to start on River tables that are missing, older or newer than this binary's.
func (f *RiverFleet) checkRiverSchema(ctx context.Context) error {
	m, err := rivermigrate.New(riverpgxv5.New(f.pool), &rivermigrate.Config{Schema: f.pg.Schema()})
	if err != nil {
		return fmt.Errorf("river: %w", err)
	}
	have, err := riverVersion(ctx, m)
	if err != nil {
		return err
	}
	want := 0
	for _, v := range m.AllVersions() {
		want = max(want, v.Version)
	}
	switch {
	case have < want:
		return fmt.Errorf("river's tables in %s are at version %d, this binary needs %d: run `worker store migrate` once, then start the workers: %w",
			f.pg.Where(), have, want, store.ErrSchemaTooOld)
	case have > want:
		return fmt.Errorf("river's tables in %s are at version %d but this binary knows only up to %d: run a worker binary at least as new as the one that migrated it: %w",
			f.pg.Where(), have, want, store.ErrSchemaTooNew)
	}
	return nil
}

// Start takes the heartbeat, starts the River client (fetching runs, leader election, periodic jobs) and
// the rescuer of dead replicas' runs.
func (f *RiverFleet) Start(ctx context.Context) error {
	if err := f.checkRiverSchema(ctx); err != nil {
		return err
	}
	hb, ok, err := store.HoldLease(context.Background(), f.pg, heartbeatName(f.o.Owner), f.o.Owner, f.o.Heartbeat)
	if err != nil || !ok {
		return fmt.Errorf("river: heartbeat lease for %s: taken=%v: %v", f.o.Owner, ok, err)
	}
	f.hb = hb
	if err := f.client.Start(context.WithoutCancel(ctx)); err != nil {
		_ = hb.Release(context.Background())
		return fmt.Errorf("river: start: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.wg.Add(1)
	go f.rescuer(rctx)
	return nil
}

// Stop hands work back: running runs are cancelled (their in-flight writes finish and are journalled, the
// executor's stop grace), their jobs return to the queue for another replica, and the heartbeat is
// released. It waits at most until ctx ends.
func (f *RiverFleet) Stop(ctx context.Context) {
	if f.cancel != nil {
		f.cancel()
	}
	if err := f.client.StopAndCancel(ctx); err != nil {
		f.log.Warn("river client did not stop cleanly", zap.Error(err))
	}
	f.wg.Wait()
	if f.hb != nil {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = f.hb.Release(rctx)
	}
}

func heartbeatName(owner string) string { return "replica:" + owner }

// rescuer hands the runs of replicas that stopped renewing their heartbeat to the queue again, every third
// of the heartbeat.
func (f *RiverFleet) rescuer(ctx context.Context) {
	defer f.wg.Done()
	t := time.NewTicker(max(f.o.Heartbeat/3, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := f.rescueOnce(ctx); err != nil && ctx.Err() == nil {
			f.log.Warn("runs of stopped replicas not checked; retrying", zap.Error(err))
		}
	}
}

// rescueOnce makes the running jobs whose last worker is not a live replica available again.
func (f *RiverFleet) rescueOnce(ctx context.Context) error {
	rows, err := f.pool.Query(ctx, `UPDATE river_job SET state = 'available', scheduled_at = now()
	WHERE kind = $1 AND state = 'running' AND attempted_by IS NOT NULL
	  AND attempted_by[array_upper(attempted_by, 1)] NOT IN (
		SELECT holder FROM leases WHERE name LIKE 'replica:%' AND expires_at > $2)
	RETURNING id, attempted_by[array_upper(attempted_by, 1)], args->>'tenant', args->>'job'`, runKind, f.o.Now().UTC())
	if err != nil {
		return err
	}
	var (
		id                  int64
		dead, tenant, jobNm string
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &dead, &tenant, &jobNm}, func() error {
		f.log.Warn("run of a replica that stopped goes back to the queue", zap.Int64("river_job", id),
			zap.String("replica", dead), zap.String("tenant", tenant), zap.String("job", jobNm))
		return nil
	})
	return err
}

// register makes d the daemon that works runs of its tenant in this replica.
func (f *RiverFleet) register(d *Daemon) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.daemons[d.st.Tenant()] = d
}

func (f *RiverFleet) daemon(tenant string) *Daemon {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.daemons[tenant]
}

// runWorker works every run job.
type runWorker struct {
	river.WorkerDefaults[runArgs]
	f *RiverFleet
}

// Work runs one run job on its tenant's daemon.
func (w *runWorker) Work(ctx context.Context, job *river.Job[runArgs]) error {
	a := job.Args
	d := w.f.daemon(a.Tenant)
	if d == nil {
		// Another replica serves this tenant, or this one is still starting.
		return river.JobSnooze(5 * time.Second)
	}
	js := d.jobs[a.Job]
	if js == nil {
		return river.JobCancel(fmt.Errorf("tenant %s has no job %q in this replica's configuration", a.Tenant, a.Job))
	}
	req := request{id: a.RunID, source: a.Source, reason: a.Reason, objects: a.Objects}
	if job.Attempt > 1 {
		// An earlier attempt may have recorded the run before its replica died: this attempt is a new run.
		if _, err := d.st.GetRun(ctx, a.RunID); err == nil {
			req.id = store.NewRunID()
			req.reason = strings.TrimPrefix(req.reason+"; ", "; ") + "resumes run " + a.RunID + " (its replica stopped)"
		}
	}
	log := d.log.With(zap.String("job", a.Job), zap.String("run", req.id), zap.String("trigger", string(a.Source)),
		zap.Int64("river_job", job.ID), zap.Int("attempt", job.Attempt))
	opts := js.spec.Options
	opts.Objects = req.objects
	_, _, err := d.runJob(ctx, js.spec.Job, opts, req, false, nil, log)
	switch {
	case errors.Is(err, errLease) && a.tick():
		d.m.ObserveSkippedTick(a.Job)
		log.Info("scheduled run skipped: the previous run is still going")
		return nil
	case errors.Is(err, errLease):
		return river.JobSnooze(time.Second)
	case ctx.Err() != nil:
		// Shutdown: what was sent is journalled; the job goes back to the queue for another replica.
		log.Info("run handed back at shutdown")
		return fmt.Errorf("run %s handed back at shutdown: %w", req.id, context.Canceled)
	}
	// Every other outcome is recorded in the run (failed, partial, aborted): River does not retry it, the
	// next tick or trigger does.
	return nil
}

// riverDispatch is one tenant daemon's side of the fleet.
type riverDispatch struct {
	f *RiverFleet
	d *Daemon

	mu      sync.Mutex
	handles []rivertype.PeriodicJobHandle
}

func (f *RiverFleet) dispatcher(d *Daemon) dispatcher { return &riverDispatch{f: f, d: d} }

func (r *riverDispatch) tenant() string { return r.d.st.Tenant() }

func (r *riverDispatch) start(ctx context.Context) error {
	r.f.register(r.d)
	var pjs []*river.PeriodicJob
	for _, name := range r.d.order {
		js := r.d.jobs[name]
		if js.sched == nil {
			continue
		}
		pjs = append(pjs, r.periodic(name, js.spec.Schedule, js.sched))
		r.d.log.Info("job scheduled (River periodic job)", zap.String("job", name), zap.String("schedule", js.spec.Schedule),
			zap.Time("next", js.sched.Next(r.d.now())))
	}
	hs, err := r.f.client.PeriodicJobs().AddManySafely(pjs)
	if err != nil {
		return fmt.Errorf("river: periodic jobs of tenant %s: %w", r.tenant(), err)
	}
	r.mu.Lock()
	r.handles = hs
	r.mu.Unlock()
	if r.d.atStart {
		for _, name := range r.d.order {
			if r.d.jobs[name].sched == nil {
				continue
			}
			if _, _, err := r.submit(name, request{source: store.TriggerSchedule, reason: "run at start"}); err != nil {
				r.d.log.Warn("run at start not queued", zap.String("job", name), zap.Error(err))
			}
		}
	}
	return nil
}

// periodic is a job's schedule as a River periodic job (robfig's Schedule is River's PeriodicSchedule).
func (r *riverDispatch) periodic(name, spec string, sched cron.Schedule) *river.PeriodicJob {
	tenant := r.tenant()
	return river.NewPeriodicJob(sched, func() (river.JobArgs, *river.InsertOpts) {
		tick := lastTick(sched, r.d.now()).UTC()
		return runArgs{Tenant: tenant, Job: name, Slot: "tick:" + tick.Format(time.RFC3339), RunID: store.NewRunID(),
				Source: store.TriggerSchedule, Reason: fmt.Sprintf("schedule %q, tick %s", spec, tick.Format(time.RFC3339))},
			&river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}} // default states: completed keeps the tick
	}, &river.PeriodicJobOpts{ID: tenant + "/" + name})
}

func (r *riverDispatch) stop() {
	r.mu.Lock()
	hs := r.handles
	r.handles = nil
	r.mu.Unlock()
	r.f.client.PeriodicJobs().RemoveMany(hs)
	// Running runs belong to the River client: RiverFleet.Stop hands them back.
}

// submit inserts a triggered run, or merges it into the run already queued.
func (r *riverDispatch) submit(job string, req request) (string, bool, error) {
	r.d.mu.Lock()
	stopping := r.d.stopping
	r.d.mu.Unlock()
	if stopping {
		return "", false, fmt.Errorf("%w: job %s was not started", server.ErrShuttingDown, job)
	}
	ctx, cancel := context.WithTimeout(r.d.bgCtx, 10*time.Second)
	defer cancel()
	for range 20 {
		for _, slot := range []string{"a", "b"} {
			args := runArgs{Tenant: r.tenant(), Job: job, Slot: slot, RunID: store.NewRunID(), Source: req.source,
				Reason: req.reason, Objects: req.objects}
			res, err := r.f.client.Insert(ctx, args, &river.InsertOpts{UniqueOpts: triggerUnique})
			if err != nil {
				return "", false, fmt.Errorf("queue a run of %s: %w", job, err)
			}
			if !res.UniqueSkippedAsDuplicate {
				return args.RunID, slot == "b", nil
			}
			if res.Job.State == rivertype.JobStateRunning {
				continue // its follow-up may be the other slot
			}
			id, merged, err := r.merge(ctx, res.Job, req)
			if err != nil {
				return "", false, err
			}
			if merged {
				return id, true, nil
			}
			break // the queued run started meanwhile: look again
		}
		select {
		case <-ctx.Done():
			return "", false, fmt.Errorf("queue a run of %s: %w", job, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return "", false, fmt.Errorf("queue a run of %s: the job's runs kept changing state; try again", job)
}

// merge folds req into a queued run job, as the in-process follow-up does: a whole-scope request widens
// it, objects are united, reasons joined. It reports false when the job left the queue meanwhile.
func (r *riverDispatch) merge(ctx context.Context, row *rivertype.JobRow, req request) (string, bool, error) {
	var a runArgs
	if err := json.Unmarshal(row.EncodedArgs, &a); err != nil {
		return "", false, fmt.Errorf("queued run %d: %w", row.ID, err)
	}
	if a.Objects == nil || req.objects == nil {
		a.Objects = nil
	} else {
		for _, o := range req.objects {
			if !slices.Contains(a.Objects, o) {
				a.Objects = append(a.Objects, o)
			}
		}
	}
	if req.reason != "" && !strings.Contains(a.Reason, req.reason) && len(a.Reason) < 500 {
		a.Reason = strings.TrimPrefix(a.Reason+"; "+req.reason, "; ")
	}
	b, err := json.Marshal(a)
	if err != nil {
		return "", false, err
	}
	tag, err := r.f.pool.Exec(ctx, `UPDATE river_job SET args = $1 WHERE id = $2 AND state = ANY($3::river_job_state[])`,
		b, row.ID, stateNames(queuedStates))
	if err != nil {
		return "", false, fmt.Errorf("merge into queued run %s: %w", a.RunID, err)
	}
	return a.RunID, tag.RowsAffected() == 1, nil
}

func stateNames(ss []rivertype.JobState) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// queued finds a run accepted but not recorded yet: a queued job, or a running one whose record is not
// written yet.
func (r *riverDispatch) queued(id string) (store.Run, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var b []byte
	err := r.f.pool.QueryRow(ctx, `SELECT args FROM river_job WHERE kind = $1 AND args->>'tenant' = $2 AND args->>'run_id' = $3
	AND state = ANY($4::river_job_state[]) LIMIT 1`, runKind, r.tenant(), id,
		append(stateNames(queuedStates), string(rivertype.JobStateRunning))).Scan(&b)
	if err != nil {
		return store.Run{}, false
	}
	var a runArgs
	if json.Unmarshal(b, &a) != nil {
		return store.Run{}, false
	}
	js := r.d.jobs[a.Job]
	mode := ""
	if js != nil {
		mode = string(js.spec.Options.Mode)
	}
	return store.Run{ID: id, Tenant: a.Tenant, Job: a.Job, Mode: mode, Trigger: a.Source, Reason: a.Reason,
		Objects: a.Objects, Status: store.RunQueued}, true
}

// state reads whether the job has a running and a queued run anywhere in the fleet.
func (r *riverDispatch) state(job string) (running, queued bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.f.pool.QueryRow(ctx, `SELECT COALESCE(bool_or(state = 'running'), false), COALESCE(bool_or(state <> 'running'), false)
	FROM river_job WHERE kind = $1 AND args->>'tenant' = $2 AND args->>'job' = $3 AND state = ANY($4::river_job_state[])`,
		runKind, r.tenant(), job, append(stateNames(queuedStates), string(rivertype.JobStateRunning))).Scan(&running, &queued)
	return running, queued
}

// exclusive takes the (tenant, job) advisory lock on a connection of its own, held until release. A lock
// dies with its connection, so a killed replica's lock is free at once; no lease to wait out.
func (r *riverDispatch) exclusive(ctx context.Context, job string, wait bool, lost func(error), log *zap.Logger) (func(), error) {
	conn, err := r.f.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("the job lock could not be taken: %w", err)
	}
	key := "exo-worker run " + r.tenant() + "/" + job
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1))`, key).Scan(&ok); err != nil {
			conn.Release()
			return nil, fmt.Errorf("the job lock could not be taken: %w", err)
		}
		if ok {
			break
		}
		if !wait {
			conn.Release()
			// Busy (errors.Is ErrBusy), like a held lease: the CLI exits with its busy code.
			return nil, &BusyError{Job: job, Alive: "another replica (PostgreSQL advisory lock held)"}
		}
		select {
		case <-ctx.Done():
			conn.Release()
			return nil, errors.New("stopped while waiting for another replica to finish the job")
		case <-time.After(time.Second):
		}
	}
	release := func() {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(rctx, `SELECT pg_advisory_unlock(hashtext($1))`, key); err != nil {
			// Closing the connection frees the lock for sure.
			_ = conn.Conn().Close(rctx)
			log.Warn("job lock not released cleanly; its connection was closed instead", zap.Error(err))
		}
		conn.Release()
	}
	r.d.recoverJob(ctx, job, log)
	return release, nil
}
