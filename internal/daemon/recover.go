package daemon

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs"
)

// reconcileBatch bounds one reconciliation pass, so a huge backlog is worked off over several sweeps
// instead of holding up the start.
const reconcileBatch = 1000

// sweeper runs sweepOnce every SweepInterval until the daemon stops.
func (d *Daemon) sweeper() {
	defer d.bgWG.Done()
	t := time.NewTicker(d.sweep)
	defer t.Stop()
	for {
		select {
		case <-d.bgCtx.Done():
			return
		case <-t.C:
			d.sweepOnce(d.bgCtx)
		}
	}
}

// sweepOnce marks interrupted the runs whose owner no longer holds any lease (a process that died: every
// live run holds its job's lease), then reconciles pending journal entries of runs that are not running.
func (d *Daemon) sweepOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	runs, err := d.st.MarkInterrupted(ctx, store.InterruptFilter{OrphansOnly: true, ExceptOwner: d.owner})
	if err != nil {
		d.log.Warn("runs of dead processes not checked; retrying at the next sweep", zap.Error(err))
	}
	for _, r := range runs {
		d.log.Warn("run of a process that stopped marked interrupted",
			zap.String("run", r.ID), zap.String("job", r.Job), zap.String("owner", r.Owner))
		d.m.ObserveRun(r.Job, string(store.RunInterrupted), r.FinishedAt.Sub(r.StartedAt))
	}
	d.reconcile(ctx)
}

// ReconcileResult counts what one reconciliation pass resolved.
type ReconcileResult struct {
	Landed, NotApplied, Changed, Gone, Unreadable int
}

// reconcile resolves pending journal entries of runs that have ended (interrupted by a crash or a stop):
// it reads each object and records what it holds. An entry whose object cannot be read stays pending for
// the next pass. Entries of running runs are left alone: their process is alive and will record them.
func (d *Daemon) reconcile(ctx context.Context) ReconcileResult {
	var res ReconcileResult
	pending, err := d.st.JournalPending(ctx, "")
	if err != nil {
		d.log.Warn("pending journal entries not read; retrying at the next sweep", zap.Error(err))
		return res
	}
	if len(pending) == 0 {
		return res
	}
	status := map[string]store.RunStatus{}
	var todo []store.JournalEntry
	for _, e := range pending {
		st, ok := status[e.RunID]
		if !ok {
			r, err := d.st.GetRun(ctx, e.RunID)
			if err != nil {
				d.log.Warn("run of a pending journal entry not read", zap.String("run", e.RunID), zap.Error(err))
				st = store.RunRunning // unknown: leave it
			} else {
				st = r.Status
			}
			status[e.RunID] = st
		}
		if st != store.RunRunning {
			todo = append(todo, e)
		}
		if len(todo) == reconcileBatch {
			break
		}
	}
	if len(todo) == 0 {
		return res
	}
	changes := make([]jobs.Change, len(todo))
	for i, e := range todo {
		c, _ := entryChange(e) // undecodable values only make every comparison below fail: "changed"
		changes[i] = c
	}
	obs := d.ex.Observe(ctx, changes)
	var outs []store.Outcome
	for i, e := range todo {
		o, c := obs[i], changes[i]
		var note string
		switch {
		case o.Err != nil:
			res.Unreadable++
			d.log.Warn("pending journal entry not reconciled: the object could not be read; retrying at the next sweep",
				zap.String("run", e.RunID), zap.String("object", e.ObjectID), zap.Error(o.Err))
			continue
		case !o.Found:
			res.Gone++
			note = "reconciled after the run's process stopped: the object no longer exists"
		case o.HoldsNew(c):
			res.Landed++
			note = fmt.Sprintf("reconciled after the run's process stopped: the object holds the new value (%s; the write landed)", o)
		case o.HoldsOld(c):
			res.NotApplied++
			note = fmt.Sprintf("reconciled after the run's process stopped: the object still holds the old value (%s; the write did not land; the next run plans it again)", o)
		default:
			res.Changed++
			note = fmt.Sprintf("reconciled after the run's process stopped: the object holds %s, neither the old nor the new value (changed by someone else)", o)
		}
		outs = append(outs, store.Outcome{ID: e.ID, State: store.ChangeStateReconciled, RequestID: o.RequestID, Error: note})
	}
	if err := d.st.JournalOutcomes(ctx, outs); err != nil {
		d.log.Warn("reconciled journal entries not recorded; retrying at the next sweep", zap.Error(err))
		return ReconcileResult{Unreadable: len(todo)}
	}
	d.log.Info("pending journal entries reconciled", zap.Int("landed", res.Landed), zap.Int("not_applied", res.NotApplied),
		zap.Int("changed_by_others", res.Changed), zap.Int("gone", res.Gone), zap.Int("unreadable", res.Unreadable))
	return res
}
