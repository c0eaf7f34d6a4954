package daemon

import (
	"context"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/store"
)

// dispatcher decides when and where the daemon's runs happen; the daemon decides what a run is (record,
// executor, journal, findings, crash reconciliation). Two implement it:
//
//   - inProcess: cron schedules in this process, a lease per job and a claim per schedule tick in the store
//     (so processes sharing a SQLite file never run a job twice), triggers coalesced in memory. The
//     embedded default; leases and tick claims are used on this path only.
//   - riverDispatch (river.go): runs are River jobs in PostgreSQL, shared by every replica; schedules are
//     River periodic jobs enqueued by the elected leader; a (tenant, job) runs once at a time fleet-wide.
//
// The server, the executor and the jobs see neither: they talk to the Daemon.
type dispatcher interface {
	// start begins dispatching the daemon's scheduled jobs and accepting submissions.
	start(ctx context.Context) error
	// submit asks for a run: started (or queued to start) at once, queued behind the job's running run,
	// or merged into the one already queued. It returns the run id the caller can poll and whether the
	// request waits behind another run.
	submit(job string, req request) (id string, queued bool, err error)
	// queued reports a run accepted but not recorded yet, as store.RunQueued.
	queued(id string) (store.Run, bool)
	// state reports whether a run of job is in progress, and whether one is queued, for the status page.
	state(job string) (running, queued bool)
	// exclusive makes a run of job the only one anywhere (waiting for it with wait, else failing at once);
	// lost is called if exclusivity is lost mid-run. It reconciles what a dead owner's run of the job left.
	exclusive(ctx context.Context, job string, wait bool, lost func(error), log *zap.Logger) (release func(), err error)
	// stop stops dispatching; runs in flight finish their current writes or are handed back.
	stop()
}

// inProcess is the embedded dispatch: today's cron, leases and tick claims.
type inProcess struct{ d *Daemon }

func (p inProcess) start(context.Context) error { p.d.startLocal(); return nil }

func (p inProcess) submit(job string, req request) (string, bool, error) {
	return p.d.trigger(job, req)
}

func (p inProcess) queued(id string) (store.Run, bool) { return p.d.queuedLocal(id) }

func (p inProcess) state(job string) (bool, bool) {
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	js := p.d.jobs[job]
	if js == nil {
		return false, false
	}
	return js.active != nil, js.pending != nil
}

func (p inProcess) stop() { p.d.stopLocal() }

// exclusive holds the job's lease in the store and renews it while the run goes on.
func (p inProcess) exclusive(ctx context.Context, job string, wait bool, lost func(error), log *zap.Logger) (func(), error) {
	release, err := p.d.lease(ctx, job, wait, log)
	if err != nil {
		return nil, err
	}
	stopRenew := p.d.renewWhileRunning(ctx, job, lost, log)
	return func() { stopRenew(); release() }, nil
}
