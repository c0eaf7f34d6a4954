package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/daemon"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/executor"
	"github.com/exo-worker/worker/jobs/meurichtext"
)

const jobLease = "job:" + meurichtext.Name

// remediatedEnv is a tenant whose in-scope MEUs a run of job 1 changed, with a daemon on a short lease, so
// that a revert has work whose reading outlasts the lease many times once the tenant throttles.
func remediatedEnv(t *testing.T, meus int, ttl time.Duration) (*env, *daemon.Daemon, string, int) {
	t.Helper()
	sc := sim.DefaultScenario()
	sc.DirSyncedMEUs = meus
	e := newEnv(t, &sc, sim.Faults{})
	d := e.daemon(t, daemon.Options{LeaseTTL: ttl})
	rec, sum, err := d.RunNow(context.Background(), richText(t), executor.Options{Mode: jobs.ModeRemediate, Force: true}, "", "")
	if err != nil || rec.Status != store.RunSucceeded {
		t.Fatalf("remediate run: %s %v", rec.Status, err)
	}
	return e, d, rec.ID, sum.Verified // every change the run made, whichever parameters
}

// TestRevertHoldsItsLeaseWhileReading: a revert on a throttled tenant reads for many lease lifetimes before
// its first write. Another process trying for the job's lease all along must never get it (today's defect:
// the revert renewed only once it started writing, so the lease expired while it read).
func TestRevertHoldsItsLeaseWhileReading(t *testing.T) {
	const ttl = 1500 * time.Millisecond
	e, d, id, need := remediatedEnv(t, 120, ttl)
	e.srv.SetFaults(sim.Faults{ThrottleBudget: 25})

	type result struct {
		rep *daemon.RevertReport
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		rep, err := d.Revert(context.Background(), id, "lease test", false)
		done <- result{rep, err}
	}()
	waitRevertRunning(t, e.st)
	// From the revert's first read on, another process tries for the job's lease again and again.
	var stolen, tries atomic.Int64
	var r result
	for r.rep == nil && r.err == nil {
		tries.Add(1)
		if ok, _ := e.st.AcquireLease(context.Background(), jobLease, "other-process", ttl); ok {
			stolen.Add(1)
			_ = e.st.ReleaseLease(context.Background(), jobLease, "other-process")
		}
		select {
		case r = <-done:
		case <-time.After(ttl / 10):
		}
	}
	took := time.Since(start)
	if r.err != nil || r.rep.Status != store.RunSucceeded {
		t.Fatalf("revert: %v, report %+v", r.err, r.rep)
	}
	rep := r.rep
	if rep.Summary.Verified != need {
		t.Errorf("revert verified %d, want %d", rep.Summary.Verified, need)
	}
	if took < 3*ttl {
		t.Fatalf("the revert took %s, less than 3 lease lifetimes: the test would prove nothing", took)
	}
	if n := stolen.Load(); n > 0 {
		t.Errorf("another process got the job's lease %d times (of %d tries) during a revert lasting %s", n, tries.Load(), took)
	}
	t.Logf("revert of %d changes on a throttled tenant: %s (%.0f lease lifetimes), %d takeover attempts refused",
		need, took.Round(time.Millisecond), float64(took)/float64(ttl), tries.Load())
}

// TestRevertThatLosesItsLeaseSaysInterrupted: the lease taken away mid-revert stops it; the revert says it
// was interrupted and why, records the revert run interrupted, and puts nothing more back afterwards.
func TestRevertThatLosesItsLeaseSaysInterrupted(t *testing.T) {
	const ttl = 1500 * time.Millisecond
	e, d, id, need := remediatedEnv(t, 120, ttl)
	e.srv.SetFaults(sim.Faults{ThrottleBudget: 25})

	type result struct {
		rep *daemon.RevertReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := d.Revert(context.Background(), id, "", false)
		done <- result{rep, err}
	}()
	// Once the revert is recorded and reading, another process takes the lease (as after a store hiccup
	// that outlasted it).
	ctx := context.Background()
	waitRevertRunning(t, e.st)
	if err := e.st.ReleaseLease(ctx, jobLease, d.Owner()); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.st.AcquireLease(ctx, jobLease, "other-process", time.Minute); !ok || err != nil {
		t.Fatalf("take the lease: %v %v", ok, err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the revert did not stop within 60s of losing its lease")
	}
	if !errors.Is(r.err, daemon.ErrInterrupted) || r.rep == nil || r.rep.Status != store.RunInterrupted {
		t.Fatalf("revert after losing its lease: err %v, report %+v; want ErrInterrupted and status interrupted", r.err, r.rep)
	}
	if !strings.Contains(r.err.Error(), "lease") {
		t.Errorf("the error does not say the lease was lost: %v", r.err)
	}
	rec, err := e.st.GetRun(ctx, r.rep.RunID)
	if err != nil || rec.Status != store.RunInterrupted || !strings.Contains(rec.Error, "lease") {
		t.Fatalf("revert run recorded as %s (%q), %v; want interrupted, naming the lease", rec.Status, rec.Error, err)
	}
	restored := len(needing(e.srv, "Never"))
	if restored >= need {
		t.Errorf("all %d changes were put back although the lease was lost", need)
	}
	t.Logf("lease lost mid-revert: %d of %d put back; recorded %q", restored, need, rec.Error)
}

// TestRevertOfADryRunHasNothingToDo: a dry-run wrote nothing, so reverting it is not an error.
func TestRevertOfADryRunHasNothingToDo(t *testing.T) {
	e := newEnv(t, nil, sim.Faults{})
	d := e.daemon(t, daemon.Options{Jobs: []daemon.JobSpec{}})
	rec, _, err := d.RunNow(context.Background(), richText(t), executor.Options{Mode: jobs.ModeDryRun}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	n := len(e.srv.Log.Entries())
	rep, err := d.Revert(context.Background(), rec.ID, "", false)
	if err != nil || rep == nil || !strings.Contains(rep.Nothing, "nothing to revert") || rep.RunID != "" {
		t.Fatalf("revert of a dry run: %+v, %v; want a report saying there is nothing to revert", rep, err)
	}
	if got := len(e.srv.Log.Entries()); got != n {
		t.Errorf("the revert of a dry run sent %d requests", got-n)
	}
}

// TestLeaseOfAKilledProcessIsTakenOverAndALiveOneIsBusy: a run refused because a live process holds the
// job says who and until when (ErrBusy); a lease left by a process of this host that no longer exists is
// taken over at once, its run marked interrupted.
func TestLeaseOfAKilledProcessIsTakenOverAndALiveOneIsBusy(t *testing.T) {
	e := newEnv(t, nil, sim.Faults{})
	ctx := context.Background()
	d := e.daemon(t, daemon.Options{Jobs: []daemon.JobSpec{}, LeaseTTL: time.Minute})
	opts := executor.Options{Mode: jobs.ModeRemediate, Force: true}
	host, _ := os.Hostname()

	// A live holder: this test process, under another name (same host, pid alive).
	live := fmt.Sprintf("%s/%d/feedbeef", host, os.Getpid()+0)
	live = strings.Replace(live, fmt.Sprintf("/%d/", os.Getpid()), fmt.Sprintf("/%d/", os.Getppid()), 1)
	if ok, err := e.st.AcquireLease(ctx, jobLease, live, time.Minute); !ok || err != nil {
		t.Fatalf("take lease: %v %v", ok, err)
	}
	_, sum, err := d.RunNow(ctx, richText(t), opts, "", "")
	var be *daemon.BusyError
	if !errors.Is(err, daemon.ErrBusy) || !errors.As(err, &be) || sum != nil {
		t.Fatalf("run beside a live holder: %v; want ErrBusy and no run", err)
	}
	if be.Holder != live || be.Expires.IsZero() || !strings.Contains(err.Error(), "expires at") || !strings.Contains(err.Error(), "alive") {
		t.Errorf("busy error does not name the holder, its expiry and that it is alive: %v", err)
	}
	if _, err := d.Revert(ctx, "01JAAAAAAAAAAAAAAAAAAAAAAA", "", false); err == nil {
		t.Error("revert of an unknown run did not fail")
	}
	if err := e.st.ReleaseLease(ctx, jobLease, live); err != nil {
		t.Fatal(err)
	}

	// A holder on another host: only its expiry can tell.
	if ok, _ := e.st.AcquireLease(ctx, jobLease, "elsewhere/4242/cafe", time.Minute); !ok {
		t.Fatal("take lease")
	}
	if _, _, err := d.RunNow(ctx, richText(t), opts, "", ""); !errors.Is(err, daemon.ErrBusy) || !strings.Contains(err.Error(), "on host elsewhere") {
		t.Fatalf("run beside another host's holder: %v", err)
	}
	_ = e.st.ReleaseLease(ctx, jobLease, "elsewhere/4242/cafe")

	// A dead holder: a process of this host that has exited, with a run it left running.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	holder := fmt.Sprintf("%s/%d/deadbeef", host, dead.Process.Pid)
	if ok, _ := e.st.AcquireLease(ctx, jobLease, holder, time.Minute); !ok {
		t.Fatal("take lease")
	}
	left, err := e.st.CreateRun(ctx, store.Run{Job: meurichtext.Name, Mode: "remediate", Owner: holder})
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := d.RunNow(ctx, richText(t), opts, "", "")
	if err != nil || rec.Status != store.RunSucceeded {
		t.Fatalf("run after a killed holder: %s, %v; want it to take the lease over and succeed", rec.Status, err)
	}
	if r, _ := e.st.GetRun(ctx, left.ID); r.Status != store.RunInterrupted {
		t.Errorf("the killed process's run is %s, want interrupted", r.Status)
	}
}

// waitRevertRunning waits until a revert run is recorded as running: it holds the lease and reads.
func waitRevertRunning(t *testing.T, st store.Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		runs, err := st.ListRuns(context.Background(), store.RunFilter{Status: store.RunRunning})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) == 1 && runs[0].Mode == daemon.ModeRevert {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the revert was not recorded as running within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
