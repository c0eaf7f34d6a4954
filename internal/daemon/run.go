package daemon

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/metrics"
	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/executor"
)

// execute runs one request of a job from lease to record, for the scheduler and triggers.
func (d *Daemon) execute(js *jobState, ar *activeRun) {
	name := js.spec.Job.Name()
	log := d.log.With(zap.String("job", name), zap.String("run", ar.req.id), zap.String("trigger", string(ar.req.source)))
	opts := js.spec.Options
	opts.Objects = ar.req.objects
	_, _, err := d.runJob(d.runCtx, js.spec.Job, opts, ar.req, ar.req.source != store.TriggerSchedule, func(id string) {
		d.mu.Lock()
		ar.runID, ar.created = id, true
		d.mu.Unlock()
	}, log)
	if errors.Is(err, errLease) {
		if ar.req.source == store.TriggerSchedule {
			d.m.ObserveSkippedTick(name)
			log.Info("scheduled run skipped: " + err.Error())
		} else {
			log.Warn("triggered run not started: " + err.Error())
		}
	}
}

// errLease marks a run that did not start because the job's lease was not to be had.
var errLease = errors.New("job lease")

// RunNow runs a job once, synchronously, the way the daemon does: under the job's lease (it fails at once
// if another process is running the job), recorded in the store, every write journalled. It is for one-shot
// callers (`worker run` uses it); opts.Force is honoured here, since a person asked for this run.
// The error is the executor's (blast radius, journal, interruption) or the store's; the summary is nil when
// the run never planned.
func (d *Daemon) RunNow(ctx context.Context, job jobs.Job, opts executor.Options, reason string, source store.Trigger) (store.Run, *executor.Summary, error) {
	if source == "" {
		source = store.TriggerCLI
	}
	req := request{id: store.NewRunID(), source: source, reason: reason, objects: opts.Objects}
	log := d.log.With(zap.String("job", job.Name()), zap.String("run", req.id), zap.String("trigger", string(source)))
	return d.runJob(ctx, job, opts, req, false, nil, log)
}

// runJob is one run from lease to record. It never panics: a panic in planning or applying is recovered and
// the run recorded as failed, with the stack in the log.
func (d *Daemon) runJob(parent context.Context, job jobs.Job, opts executor.Options, req request, waitLease bool,
	created func(id string), log *zap.Logger) (store.Run, *executor.Summary, error) {
	name := job.Name()
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)

	// The dispatcher makes the run exclusive: a lease (in-process) or a PostgreSQL advisory lock (River).
	// Losing it means another process may take the job over, so the run must stop writing.
	release, err := d.disp.exclusive(ctx, name, waitLease, func(err error) { cancel(err) }, log)
	if err != nil {
		return store.Run{}, nil, fmt.Errorf("%s not started: %w: %w", name, errLease, err)
	}
	defer release()

	mode := string(opts.Mode)
	rec, err := d.st.CreateRun(ctx, store.Run{ID: req.id, Job: name, Mode: mode, Trigger: req.source,
		Reason: req.reason, Objects: req.objects, Owner: d.owner})
	if err != nil {
		log.Error("run not started: the store could not record it", zap.Error(err))
		return store.Run{}, nil, fmt.Errorf("%s not started: record the run: %w", name, err)
	}
	if created != nil {
		created(rec.ID)
	}
	log.Info("run started", zap.String("mode", mode), zap.Strings("objects", req.objects), zap.String("reason", req.reason))

	res, sum, runErr := d.plannedRun(ctx, job, rec.ID, opts, log)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && res.Status == store.RunInterrupted {
		res.Error = cause.Error() + "; " + res.Error
	}
	d.finish(rec, res, sum, log)
	rec.Status, rec.Counts, rec.Error, rec.FinishedAt = res.Status, res.Counts, res.Error, res.FinishedAt
	return rec, sum, runErr
}

// plannedRun plans and applies, turning every way it can end (panic included) into a RunResult.
func (d *Daemon) plannedRun(ctx context.Context, job jobs.Job, runID string, opts executor.Options, log *zap.Logger) (res store.RunResult, sum *executor.Summary, err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("run panicked; recorded as failed", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			res = store.RunResult{Status: store.RunFailed, Error: fmt.Sprintf("internal error (panic: %v); the stack is in the log; please report it", p)}
			if sum != nil {
				res.Counts = counts(sum)
			}
			err = errors.New(res.Error)
		}
	}()
	run, err := d.ex.Plan(ctx, runID, job)
	if err != nil {
		st := store.RunFailed
		if ctx.Err() != nil {
			st = store.RunInterrupted
		}
		return store.RunResult{Status: st, Error: err.Error()}, nil, err
	}
	sum, err = d.ex.Apply(ctx, run, opts)
	if sum != nil {
		d.recordFindings(ctx, job, runID, sum, log)
	}
	return result(ctx, sum, err), sum, err
}

// result decides a run's final status from the executor's summary and error.
func result(ctx context.Context, sum *executor.Summary, err error) store.RunResult {
	var res store.RunResult
	if sum != nil {
		res.Counts = counts(sum)
	}
	var br *executor.BlastRadiusError
	var je *executor.JournalError
	switch {
	case errors.As(err, &br):
		res.Status, res.Error = store.RunAborted, err.Error()
	case errors.As(err, &je):
		res.Status, res.Error = store.RunAborted, err.Error()
	case err != nil && ctx.Err() != nil:
		res.Status = store.RunInterrupted
		res.Error = "interrupted (a stop signal, a daemon stop, or the job lease was lost): writes already sent finished and were journalled, the rest were not sent. The next run completes the work"
	case err != nil:
		res.Status, res.Error = store.RunFailed, err.Error()
	case sum == nil:
		res.Status, res.Error = store.RunFailed, "the executor returned no summary"
	case sum.Aborted:
		res.Status, res.Error = store.RunAborted, sum.AbortReason
	case sum.Failed > 0 || sum.Applied > sum.Verified || sum.Unresolved > 0:
		res.Status = store.RunPartial
		res.Error = fmt.Sprintf("%d changes failed and %d were written but not verified; `worker show RUN` lists them", sum.Failed, sum.Applied-sum.Verified)
		if sum.Unresolved > 0 {
			res.Error += fmt.Sprintf("; %d got no answer and could not be read back: they stay pending until reconciliation reads them", sum.Unresolved)
		}
	default:
		res.Status = store.RunSucceeded
	}
	return res
}

func counts(s *executor.Summary) store.Counts {
	return store.Counts{InScope: s.InScope, Planned: s.Planned, Applied: s.Applied, Failed: s.Failed,
		Verified: s.Verified, Skipped: s.Skipped}
}

// finish records the end of a run in the store and the metrics.
func (d *Daemon) finish(rec store.Run, res store.RunResult, sum *executor.Summary, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res.FinishedAt = d.now()
	if err := d.st.FinishRun(ctx, rec.ID, res); err != nil {
		log.Error("run result not recorded", zap.String("status", string(res.Status)), zap.Error(err))
	}
	d.m.ObserveRun(rec.Job, string(res.Status), res.FinishedAt.Sub(rec.StartedAt))
	if sum != nil {
		for st, n := range map[string]int{"applied": sum.Applied, "failed": sum.Failed, "verified": sum.Verified, "skipped": sum.Skipped} {
			d.m.ObserveChanges(rec.Job, st, n)
		}
		for _, w := range sum.Warnings {
			log.Warn(w)
		}
	}
	fields := []zap.Field{zap.String("status", string(res.Status)), zap.Int("in_scope", res.Counts.InScope),
		zap.Int("planned", res.Counts.Planned), zap.Int("applied", res.Counts.Applied), zap.Int("verified", res.Counts.Verified),
		zap.Int("failed", res.Counts.Failed), zap.Int("skipped", res.Counts.Skipped)}
	if sum != nil && sum.Unknown > 0 {
		fields = append(fields, zap.Int("unknown_outcome", sum.Unknown), zap.Int("unknown_landed", sum.UnknownLanded),
			zap.Int("unknown_not_applied", sum.UnknownNotApplied), zap.Int("unknown_unresolved", sum.Unresolved))
	}
	if res.Error != "" {
		fields = append(fields, zap.String("error", res.Error))
	}
	log.Info("run finished", fields...)
}

// suite is a job that runs several audits over one read (audit.Suite, `worker report`): its findings are
// recorded under the audit that reported each (jobs.Finding.Job), as the audits' own scheduled runs record
// them, so one finding has one history whichever way it was found.
type suite interface{ Jobs() []jobs.Job }

// recordFindings keeps the findings history: new, still open, resolved.
func (d *Daemon) recordFindings(ctx context.Context, job jobs.Job, runID string, sum *executor.Summary, log *zap.Logger) {
	byJob := map[string][]store.Finding{job.Name(): nil}
	order := []string{job.Name()}
	if s, ok := job.(suite); ok {
		byJob, order = map[string][]store.Finding{}, nil
		for _, j := range s.Jobs() {
			byJob[j.Name()] = nil
			order = append(order, j.Name())
		}
	}
	for _, f := range sum.Findings {
		name := f.Job
		if _, ok := byJob[name]; !ok {
			// A finding of no known audit (a plain job sets no Finding.Job) is the run's job's.
			name = job.Name()
			if _, ok := byJob[name]; !ok {
				byJob[name] = nil
				order = append(order, name)
			}
		}
		sf := store.Finding{Rule: f.Rule, ObjectID: f.Object.ID, DisplayName: f.Object.DisplayName,
			Severity: string(f.Severity), Detail: f.Detail}
		if f.OnPrem != nil {
			sf.OnPrem = &store.OnPremFix{Attribute: f.OnPrem.Attribute, Value: f.OnPrem.Value, Action: f.OnPrem.Action}
		}
		byJob[name] = append(byJob[name], sf)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, name := range order {
		fsum, err := d.st.RecordFindings(wctx, runID, name, byJob[name], d.now())
		if err != nil {
			log.Error("findings not recorded", zap.String("audit", name), zap.Error(err))
			continue
		}
		if fsum != (store.FindingsSummary{}) {
			log.Info("findings recorded", zap.String("audit", name), zap.Int("new", fsum.New), zap.Int("reopened", fsum.Reopened),
				zap.Int("open", fsum.Open), zap.Int("resolved", fsum.Resolved))
		}
	}
	d.refreshFindingMetrics(wctx)
}

// refreshFindingMetrics sets the open-findings gauge from the store.
func (d *Daemon) refreshFindingMetrics(ctx context.Context) {
	if d.m == nil {
		return
	}
	groups, err := d.st.SummarizeOpenFindings(ctx)
	if err != nil {
		d.log.Warn("open findings not read for metrics", zap.Error(err))
		return
	}
	agg := map[[2]string]int{}
	for _, g := range groups {
		agg[[2]string{g.Rule, g.Severity}] += g.Open
	}
	counts := make([]metrics.FindingCount, 0, len(agg))
	for k, n := range agg {
		counts = append(counts, metrics.FindingCount{Rule: k[0], Severity: k[1], Open: n})
	}
	d.m.SetOpenFindings(counts)
}

// lease takes the job's lease. With wait, it polls until it gets it or the daemon stops (a triggered run
// queues behind another process's run of the job); without, it fails at once. Once held, any other run of
// the job still marked running has lost its owner: it is marked interrupted and its pending entries are
// reconciled before this run plans, so the plan sees the tenant as it is.
func (d *Daemon) lease(ctx context.Context, job string, wait bool, log *zap.Logger) (release func(), err error) {
	poll := min(time.Second, d.ttl/3)
	for {
		ok, err := d.st.AcquireLease(ctx, leaseName(job), d.owner, d.ttl)
		if err != nil {
			return nil, fmt.Errorf("the job lease could not be taken: %w", err)
		}
		if ok {
			break
		}
		// A holder that was killed on this host never released the lease: take it over at once rather
		// than refuse every run until it expires.
		busy := d.takeOverDead(ctx, job, log)
		if busy == nil {
			continue
		}
		if !wait {
			return nil, busy
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped while waiting for another process to finish the job: %w", busy)
		case <-time.After(poll):
		}
	}
	release = func() {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.st.ReleaseLease(rctx, leaseName(job), d.owner); err != nil {
			log.Warn("job lease not released; it expires by itself", zap.Error(err))
		}
	}
	d.recoverJob(ctx, job, log)
	return release, nil
}

// recoverJob runs once a run holds its job exclusively: any other run of the job still marked running has
// lost its owner, so it is marked interrupted and its pending entries are reconciled before this run plans,
// so the plan sees the tenant as it is.
func (d *Daemon) recoverJob(ctx context.Context, job string, log *zap.Logger) {
	orphans, err := d.st.MarkInterrupted(ctx, store.InterruptFilter{Job: job, ExceptOwner: d.owner})
	if err != nil {
		log.Warn("runs of dead processes not checked", zap.Error(err))
	}
	if len(orphans) > 0 {
		for _, r := range orphans {
			log.Warn("run of a process that stopped marked interrupted", zap.String("interrupted_run", r.ID), zap.String("owner", r.Owner))
			d.m.ObserveRun(r.Job, string(store.RunInterrupted), r.FinishedAt.Sub(r.StartedAt))
		}
		d.reconcile(ctx)
	}
}

// renewWhileRunning renews the job lease every third of its TTL; lost is called if it cannot.
func (d *Daemon) renewWhileRunning(ctx context.Context, job string, lost func(error), log *zap.Logger) (stop func()) {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
			ok, err := d.st.RenewLease(rctx, leaseName(job), d.owner, d.ttl)
			if rctx.Err() != nil {
				return
			}
			if err != nil || !ok {
				if err == nil {
					err = errors.New("it expired or was taken")
				}
				log.Error("job lease lost: stopping the run so two processes never write at once", zap.Error(err))
				lost(fmt.Errorf("lost the job lease (%v)", err))
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}
