package daemon_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/daemon"
	"github.com/exo-worker/worker/internal/metrics"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/executor"
)

// The fault matrix, CI-sized: job 1 runs against the simulator while it injects one fault profile during the
// writes and their read-back (planning reads are clean, so every profile writes), then the next run and a
// revert run on a healthy tenant. Asserted per profile, never timed:
//   - nothing changed on the tenant without a journal entry;
//   - no entry claims a write that did not land (verified/applied hold the new value), and no change is
//     called failed that landed (issue 9 defect 1: resets and cut-off answers are "unknown", read back);
//   - the run's status is truthful: succeeded exactly when nothing failed and nothing is unresolved;
//   - the next run completes the job, planning exactly what is left;
//   - the revert puts back every object the run changed.
// It logs one table row per profile (the README's table is the full-size one).

type faultProfile struct {
	name   string
	faults sim.Faults
	expire bool // expire every token as the writes begin
}

// faultPhases switches the simulator's faults on when the executor starts writing.
type faultPhases struct {
	srv    *sim.Server
	p      faultProfile
	mu     sync.Mutex
	active bool
}

func (f *faultPhases) Phase(name string, _ int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name == "applying" && !f.active {
		f.active = true
		f.srv.SetFaults(f.p.faults)
		if f.p.expire {
			f.srv.ExpireTokens()
		}
	}
}
func (f *faultPhases) Add(int) {}
func (f *faultPhases) Done()   {}

func TestFaultMatrixInvariants(t *testing.T) {
	profiles := []faultProfile{
		{name: "5xx", faults: sim.Faults{ErrorRate: 0.3, Seed: 11}},
		{name: "resets", faults: sim.Faults{ResetRate: 0.4, Seed: 12}},
		{name: "truncation", faults: sim.Faults{TruncateRate: 0.3, Seed: 13}},
		{name: "resets+truncation (issue 9 #1)", faults: sim.Faults{ResetRate: 0.4, TruncateRate: 0.3, Seed: 1}},
		{name: "throttle", faults: sim.Faults{ThrottleBudget: 200, Seed: 14}},
		{name: "stale reads", faults: sim.Faults{StaleReads: 300 * time.Millisecond, Seed: 15}},
		{name: "token expiry", expire: true},
		{name: "all together", expire: true, faults: sim.Faults{ErrorRate: 0.1, ResetRate: 0.2, TruncateRate: 0.15,
			ThrottleBudget: 300, StaleReads: 300 * time.Millisecond, Seed: 16}},
	}
	meus := 400
	if testing.Short() {
		meus = 150
	}
	var rows []string
	for _, p := range profiles {
		t.Run(p.name, func(t *testing.T) { rows = append(rows, runFaultProfile(t, p, meus)) })
	}
	t.Logf("\n%-32s %5s %8s %8s %8s %8s %7s %9s %9s\n%s", "profile", "status", "applied", "unknown", "resolved", "failed",
		"next", "journal", "reverted", strings.Join(rows, "\n"))
}

func runFaultProfile(t *testing.T, p faultProfile, meus int) string {
	ctx := context.Background()
	sc := sim.DefaultScenario()
	sc.DirSyncedMEUs = meus
	dir := t.TempDir()
	srv, err := sim.Start(sim.Options{Dir: dir, Scenario: &sc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cred, err := srv.Credential()
	if err != nil {
		t.Fatal(err)
	}
	client, err := exo.New(exo.Options{BaseURL: srv.URL, Tenant: srv.Creds.TenantID, Credential: cred,
		HTTPClient: srv.HTTPClient(), MaxRetries: 3, RetryBaseDelay: 5 * time.Millisecond, RetryMaxDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t, filepath.Join(dir, "worker.db"))
	phases := &faultPhases{srv: srv, p: p}
	ex := &executor.Executor{Client: client, Progress: phases, ReadBackDelay: 200 * time.Millisecond, ReadBackRetries: 4}
	d, err := daemon.New(daemon.Options{Store: st, Executor: ex, Log: zap.NewNop(), LeaseTTL: 10 * time.Second,
		Metrics: metrics.New(metrics.Options{NoProcessCollectors: true}),
		Jobs:    []daemon.JobSpec{{Job: richText(t), Options: remediate()}}})
	if err != nil {
		t.Fatal(err)
	}
	before := values(srv)

	rec, sum, _ := d.RunNow(ctx, richText(t), executor.Options{Mode: jobs.ModeRemediate, Force: true}, "fault matrix", "")
	srv.SetFaults(sim.Faults{})
	if sum == nil {
		t.Fatalf("run under %s did not plan: %s %s", p.name, rec.Status, rec.Error)
	}
	after := values(srv)
	entries, err := st.Journal(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	byObject := map[string]store.JournalEntry{}
	for _, e := range entries {
		byObject[strings.ToLower(e.ObjectID)] = e
	}
	changed := 0
	for id, v := range after {
		if v == before[id] {
			continue
		}
		changed++
		if _, ok := byObject[id]; !ok {
			t.Errorf("%s changed %s → %s without a journal entry", id, before[id], v)
		}
	}
	for _, e := range entries {
		now := after[strings.ToLower(e.ObjectID)]
		switch e.State {
		case store.ChangeStateVerified, store.ChangeStateApplied:
			if now != done {
				t.Errorf("entry %s is %s but the object holds %s: it claims a write that did not land", e.ObjectID, e.State, now)
			}
		case store.ChangeStateFailed:
			if now == done {
				t.Errorf("entry %s is failed (%s) but the write landed", e.ObjectID, e.Error)
			}
		}
	}
	wantOK := sum.Failed == 0 && sum.Unresolved == 0 && sum.Applied == sum.Verified
	if (rec.Status == store.RunSucceeded) != wantOK {
		t.Errorf("run recorded %s with failed %d, unresolved %d, applied %d, verified %d: the status is not truthful",
			rec.Status, sum.Failed, sum.Unresolved, sum.Applied, sum.Verified)
	}
	if sum.Unknown != sum.UnknownLanded+sum.UnknownNotApplied+sum.Unresolved {
		t.Errorf("unknown %d ≠ landed %d + not applied %d + unresolved %d", sum.Unknown, sum.UnknownLanded, sum.UnknownNotApplied, sum.Unresolved)
	}

	// The next run, on a healthy tenant, plans exactly what is left and completes the job.
	left := 0
	for _, v := range after {
		if v != done {
			left++
		}
	}
	next, nsum, err := d.RunNow(ctx, richText(t), executor.Options{Mode: jobs.ModeRemediate, Force: true}, "next", "")
	if err != nil || next.Status != store.RunSucceeded || nsum.Planned != left {
		t.Errorf("next run: %s %v, planned %d; want succeeded planning the %d objects left", next.Status, err, nsum.Planned, left)
	}
	for id, v := range values(srv) {
		if v != done {
			t.Errorf("after the next run %s holds %s", id, v)
		}
	}
	// The revert of the faulted run puts back every object it changed (the next run's changes stay).
	rep, err := d.Revert(ctx, rec.ID, "", false)
	if err != nil {
		t.Fatalf("revert: %v", err)
	}
	reverted := 0
	final := values(srv)
	for id, v := range after {
		if v != before[id] {
			if final[id] == before[id] {
				reverted++
			} else {
				t.Errorf("revert left %s at %s, want %s", id, final[id], before[id])
			}
		}
	}
	_ = rep
	return fmt.Sprintf("%-32s %5s %8d %8d %8s %8d %7d %9s %9s", p.name, rec.Status, sum.Applied, sum.Unknown,
		fmt.Sprintf("%d/%d", sum.UnknownLanded, sum.UnknownNotApplied), sum.Failed, nsum.Planned,
		fmt.Sprintf("%d/%d", len(entries), changed), fmt.Sprintf("%d/%d", reverted, changed))
}

// values is what job 1 writes on every in-scope MEU (UseMapiRichTextFormat and UsePreferMessageFormat), by
// lower-case id, from the simulator's ground truth; done is the value of an MEU the job is done with.
func values(srv *sim.Server) map[string]string {
	out := map[string]string{}
	for _, o := range srv.Tenant().InScopeMEUs() {
		out[strings.ToLower(o.ID)] = fmt.Sprintf("%s/%t", o.UseMapiRichTextFormat, o.UsePreferMessageFormat)
	}
	return out
}

const done = "Never/true"
