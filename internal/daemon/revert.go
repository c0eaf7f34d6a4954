package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/executor"
)

// ModeRevert is the mode a revert run is recorded with.
const ModeRevert = "revert"

// RevertReport is what a revert did, or with DryRun would do.
type RevertReport struct {
	// Of is the run reverted; RunID the revert run (empty for a dry run, which records nothing).
	Of, RunID, Job string
	DryRun         bool
	Status         store.RunStatus
	// Summary is the executor's account of the revert writes (planned ones for a dry run).
	Summary *executor.Summary
	// Skipped lists the journal entries of the reverted run that were not put back, and why.
	Skipped []RevertSkip
	// Nothing, when set, says why there was nothing to revert (the run wrote nothing); nothing was read.
	Nothing string
}

// RevertSkip is one journal entry a revert left alone.
type RevertSkip struct {
	Entry  store.JournalEntry
	Reason string
}

// Revert puts back the old values a run wrote, but only where the object still holds the value the run
// wrote: a later change by someone else wins. It reads every object first, then applies the old values
// through the executor like any run — journalled, read back, exceptions and all — recorded as a run of
// the same job with mode "revert". The entries it restored are marked reverted in the original journal.
//
// A revert holds the job's lease from its first read to its last write, renewing it all along (reading
// thousands of objects on a throttled tenant takes longer than a lease lasts), and is recorded as a run from
// the start: stopped by ctx or by losing the lease, it ends with Status interrupted and an error saying so.
// A lease held by another live process is an error matching ErrBusy. A run that wrote nothing (dry-run,
// report) has nothing to revert: the report says so in Nothing, with no error.
func (d *Daemon) Revert(ctx context.Context, runID, reason string, dryRun bool) (*RevertReport, error) {
	orig, err := d.st.GetRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	rep := &RevertReport{Of: orig.ID, Job: orig.Job, DryRun: dryRun}
	if orig.Mode == string(jobs.ModeDryRun) || orig.Mode == string(jobs.ModeReport) {
		rep.Status = store.RunSucceeded
		rep.Nothing = fmt.Sprintf("run %s of %s was a %s run: it wrote nothing, so there is nothing to revert", orig.ID, orig.Job, orig.Mode)
		return rep, nil
	}
	declared, err := d.describe(orig.Job)
	if err != nil {
		return nil, fmt.Errorf("revert of run %s: %w: its writes cannot be checked against the job's declaration", orig.ID, err)
	}
	log := d.log.With(zap.String("job", orig.Job), zap.String("reverting", orig.ID))

	if dryRun {
		if orig.Status == store.RunRunning {
			return nil, fmt.Errorf("run %s of %s is still running (owner %s): wait for it to end, or stop its process, then revert", orig.ID, orig.Job, orig.Owner)
		}
		return d.revertRead(ctx, rep, orig, declared)
	}

	// The job's lease first, before any read: a scheduled run of the same job must not write while the
	// revert decides and writes, and the lease is renewed from here to the end.
	// (The dispatcher's exclusivity: a lease renewed in-process, or River's advisory lock.)
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	release, err := d.disp.exclusive(rctx, orig.Job, false, func(err error) { cancel(err) }, log)
	if err != nil {
		return nil, fmt.Errorf("revert of run %s not started: %w", orig.ID, err)
	}
	defer release()

	// Holding the lease, any other run of the job still marked running has lost its process (lease
	// marked it interrupted); read the run again to see it as it is now.
	if orig, err = d.st.GetRun(rctx, runID); err != nil {
		return nil, err
	}
	if orig.Status == store.RunRunning {
		return nil, fmt.Errorf("run %s of %s is still running (owner %s): wait for it to end, or stop its process, then revert", orig.ID, orig.Job, orig.Owner)
	}
	why := "revert of run " + orig.ID
	if reason != "" {
		why += ": " + reason
	}
	rec, err := d.st.CreateRun(rctx, store.Run{Job: orig.Job, Mode: ModeRevert, Trigger: store.TriggerCLI, Reason: why, Owner: d.owner})
	if err != nil {
		return nil, err
	}
	rep.RunID = rec.ID
	log = log.With(zap.String("run", rec.ID))
	d.reconcile(rctx) // pending entries of the run (it crashed?) become known before deciding

	rep, run, planned, err := d.revertPlan(rctx, rep, orig, declared)
	if err != nil || run == nil {
		res := store.RunResult{Status: store.RunFailed}
		if err != nil {
			res.Error = err.Error()
		}
		if rctx.Err() != nil {
			res.Status, res.Error = store.RunInterrupted, interruptedRevert(rctx, "while reading the objects; nothing was written")
			err = fmt.Errorf("%w: %s", ErrInterrupted, res.Error)
		}
		rep.Status = res.Status
		d.finish(rec, res, nil, log)
		return rep, err
	}
	d.journalSkips(rctx, rec.ID, rep.Skipped, log)
	run.ID = rec.ID
	sum, err := d.ex.Apply(rctx, run, revertOptions(orig.Job, false))
	rep.Summary = sum
	res := result(rctx, sum, err)
	if res.Status == store.RunInterrupted {
		res.Error = interruptedRevert(rctx, "before every old value was put back; rerun the revert to finish it")
		err = fmt.Errorf("%w: %s", ErrInterrupted, res.Error)
	}
	rep.Status = res.Status
	if sum != nil {
		d.markReverted(rctx, rec.ID, planned, sum, log)
	}
	d.finish(rec, res, sum, log)
	return rep, err
}

// ErrInterrupted means a revert (or run) stopped before it finished: cancelled (SIGINT, SIGTERM, a daemon
// stop) or because it lost the job's lease. What it wrote is journalled; rerunning completes the work.
var ErrInterrupted = errors.New("interrupted")

// interruptedRevert says why a revert stopped: the lease lost (the cancel cause), or a cancellation.
func interruptedRevert(ctx context.Context, when string) string {
	why := "it was cancelled (SIGINT/SIGTERM or a stop)"
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		why = cause.Error()
	}
	return fmt.Sprintf("the revert was interrupted %s: %s", when, why)
}

func revertOptions(job string, dryRun bool) executor.Options {
	o := executor.Options{Mode: jobs.ModeRemediate, JobConfigPath: "jobs." + job,
		// The blast radius guarded the run being reverted; putting its own values back is not a new reach.
		Force: true}
	if dryRun {
		o.Mode = jobs.ModeDryRun
	}
	return o
}

// revertRead is a dry-run revert: read the objects and show what would be put back; nothing is recorded.
func (d *Daemon) revertRead(ctx context.Context, rep *RevertReport, orig store.Run, declared jobs.Description) (*RevertReport, error) {
	rep, run, _, err := d.revertPlan(ctx, rep, orig, declared)
	if err != nil {
		return nil, err
	}
	rep.Summary, err = d.ex.Apply(ctx, run, revertOptions(orig.Job, true))
	rep.Status = store.RunSucceeded
	return rep, err
}

// revertPlan reads the run's journal and the objects it names, and plans the writes that put old values
// back; rep.Skipped gets the entries left alone. planned[i] is the journal entry of run.Plan.Changes[i].
func (d *Daemon) revertPlan(ctx context.Context, rep *RevertReport, orig store.Run, declared jobs.Description) (*RevertReport, *executor.Run, []store.JournalEntry, error) {
	entries, err := d.st.Journal(ctx, orig.ID)
	if err != nil {
		return rep, nil, nil, err
	}

	// Which entries are candidates: the ones whose write may have landed.
	var cand []store.JournalEntry
	var candChanges []jobs.Change
	for _, e := range entries {
		why := ""
		switch e.State {
		case store.ChangeStateApplied, store.ChangeStateVerified, store.ChangeStateReconciled:
		case store.ChangeStateFailed:
			// Read it too: a write whose answer was lost (a reset, a cut-off body) may have landed although
			// it was recorded failed. The object decides: only one holding the run's value is put back.
		case store.ChangeStatePending:
			why = "its outcome is unknown (pending): revert without --dry-run reconciles it first"
		case store.ChangeStateSkipped:
			why = "it was not sent"
		case store.ChangeStateReverted:
			why = "already reverted"
		default:
			why = fmt.Sprintf("unknown journal state %q", e.State)
		}
		c, ok := entryChange(e)
		if why == "" && !ok {
			why = "the journal holds no old value for it (never read)"
		}
		if why != "" {
			rep.Skipped = append(rep.Skipped, RevertSkip{Entry: e, Reason: why})
			continue
		}
		cand = append(cand, e)
		candChanges = append(candChanges, c)
	}

	// Read before writing: put back only what still holds the run's value.
	obs := d.ex.Observe(ctx, candChanges)
	var plan jobs.Plan
	var planned []store.JournalEntry
	for i, e := range cand {
		o, c := obs[i], candChanges[i]
		var why string
		switch {
		case o.Err != nil:
			why = "the object could not be read (" + o.Err.Error() + "); rerun the revert later"
		case !o.Found:
			why = "the object no longer exists"
		case o.HoldsNew(c):
			plan.Changes = append(plan.Changes, c.Reverse())
			planned = append(planned, e)
			continue
		case o.HoldsOld(c):
			why = fmt.Sprintf("it already holds the old value (%s)", o)
		default:
			why = fmt.Sprintf("changed since the run: it now holds %s, not what the run wrote (%s); left as is", o, c.Values())
		}
		rep.Skipped = append(rep.Skipped, RevertSkip{Entry: e, Reason: why})
	}
	plan.InScope = len(cand)
	if err := ctx.Err(); err != nil {
		return rep, nil, nil, err
	}
	// The revert writes what the job wrote, reversed: its declaration covers them, and the executor checks.
	return rep, &executor.Run{ID: "revert-preview", Job: orig.Job, Started: d.now(), Plan: plan, Declared: declared}, planned, nil
}

// journalSkips records in the revert run's journal the entries it left alone, so `worker show` of the
// revert says what it did not do and why. They were never sent.
func (d *Daemon) journalSkips(ctx context.Context, runID string, skips []RevertSkip, log *zap.Logger) {
	if len(skips) == 0 {
		return
	}
	changes := make([]store.Change, len(skips))
	for i, s := range skips {
		changes[i] = store.Change{ObjectID: s.Entry.ObjectID, DisplayName: s.Entry.DisplayName, Cmdlet: s.Entry.Cmdlet,
			Param: s.Entry.Param, Old: s.Entry.New, New: s.Entry.Old}
	}
	ids, err := d.st.JournalBegin(ctx, runID, changes)
	if err == nil {
		outs := make([]store.Outcome, len(ids))
		for i, id := range ids {
			outs[i] = store.Outcome{ID: id, State: store.ChangeStateSkipped, Error: "not reverted: " + skips[i].Reason}
		}
		err = d.st.JournalOutcomes(ctx, outs)
	}
	if err != nil {
		log.Warn("skipped revert entries not journalled (the report still lists them)", zap.Error(err))
	}
}

// markReverted marks the original entries whose old value is back (verified, or written when the read-back
// could not tell) as reverted, so a second revert of the same run does nothing.
func (d *Daemon) markReverted(ctx context.Context, revertID string, planned []store.JournalEntry, sum *executor.Summary, log *zap.Logger) {
	var outs []store.Outcome
	for i, cr := range sum.Changes {
		if i >= len(planned) {
			break
		}
		if cr.Status == executor.StatusVerified || cr.Status == executor.StatusApplied || cr.Status == executor.StatusUnverified {
			e := planned[i]
			if !strings.EqualFold(e.ObjectID, cr.Object.ID) {
				continue // order mismatch would be a bug; never mark the wrong entry
			}
			outs = append(outs, store.Outcome{ID: e.ID, State: store.ChangeStateReverted, RequestID: cr.RequestID,
				Error: fmt.Sprintf("reverted by run %s (%s)", revertID, cr.Status)})
		}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.grace)
	defer cancel()
	if err := d.st.JournalOutcomes(wctx, outs); err != nil {
		log.Warn("reverted entries not marked in the original run's journal", zap.Error(err))
	}
}
