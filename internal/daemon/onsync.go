package daemon

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/store"
)

// SyncClock tells when directory sync last finished a cycle: Graph's organization.onPremisesLastSyncDateTime
// (*graph.Client implements it with one small request).
type SyncClock interface {
	LastSync(ctx context.Context) (time.Time, error)
}

// DefaultSyncPoll is how often the on-sync trigger asks: Entra Connect syncs every 30 minutes by default,
// so a minute's delay is small, and one small request a minute costs nothing of the tenant's budget.
const DefaultSyncPoll = time.Minute

// watchSync polls the sync clock and starts the incremental pass of every on-sync job as soon as a sync
// cycle finished after the last one seen, so an MEU that sync created is fixed minutes later at the cost of
// what changed (the runs read through the store's snapshots). The first answer is the baseline: a cycle
// that finished before the daemon started is the schedules' and run-at-start's business.
func (d *Daemon) watchSync(ctx context.Context, poll <-chan time.Time) {
	defer d.bgWG.Done()
	var seen time.Time
	first := true
	for {
		last, err := d.syncClock.LastSync(ctx)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			d.log.Warn("on-sync: could not read the last directory sync time (needs Graph Organization.Read.All)", zap.Error(err))
		case first:
			seen, first = last, false
			d.log.Info("on-sync: watching directory sync", zap.Time("last_sync", last))
		case last.After(seen):
			seen = last
			for _, name := range d.order {
				if !d.jobs[name].spec.OnSync {
					continue
				}
				id, queued, err := d.trigger(name, request{source: store.TriggerSync, reason: "directory sync finished at " + last.UTC().Format(time.RFC3339)})
				if err != nil {
					d.log.Warn("on-sync: run not started", zap.String("job", name), zap.Error(err))
					continue
				}
				d.log.Info("on-sync: directory sync finished; running", zap.String("job", name), zap.String("run", id),
					zap.Bool("queued", queued), zap.Time("last_sync", last))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-poll:
		}
	}
}
