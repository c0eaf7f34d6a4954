package daemon

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/store"
)

// Retention is how long the daemon keeps history; zero keeps that kind forever. The defaults of the
// configuration (retention:) are 90 days of runs, 400 days of journal (the audit trail of every write, and
// what `worker revert` reads) and 180 days of resolved findings.
type Retention struct {
	Runs             time.Duration
	Journal          time.Duration
	ResolvedFindings time.Duration
}

// DefaultPruneInterval is how often the daemon prunes when Options.PruneInterval is zero.
const DefaultPruneInterval = 6 * time.Hour

// cutoffs turns the retention into the store's cutoffs at now.
func (r Retention) cutoffs(now time.Time) store.Retention {
	var c store.Retention
	if r.Runs > 0 {
		c.RunsBefore = now.Add(-r.Runs)
	}
	if r.Journal > 0 {
		c.JournalBefore = now.Add(-r.Journal)
	}
	if r.ResolvedFindings > 0 {
		c.FindingsResolvedBefore = now.Add(-r.ResolvedFindings)
	}
	return c
}

// pruner prunes at start and then every PruneInterval until the daemon stops. Several daemons on one
// database each prune; the deletes are idempotent.
func (d *Daemon) pruner() {
	defer d.bgWG.Done()
	t := time.NewTicker(d.pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-d.bgCtx.Done():
			return
		case <-t.C:
			d.PruneOnce(d.bgCtx)
		}
	}
}

// PruneOnce deletes the history the retention no longer keeps, and logs what it deleted.
func (d *Daemon) PruneOnce(ctx context.Context) (store.Pruned, error) {
	c := d.retention.cutoffs(d.now())
	if c == (store.Retention{}) {
		return store.Pruned{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	p, err := d.st.Prune(ctx, c)
	if err != nil {
		d.log.Warn("history not pruned; retrying at the next interval", zap.Error(err))
		return p, err
	}
	if p.Total() > 0 {
		d.log.Info("history pruned", zap.Int("runs", p.Runs), zap.Int("journal_entries", p.JournalEntries),
			zap.Int("resolved_findings", p.Findings))
	}
	return p, nil
}
