package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/daemon"
	"github.com/exo-worker/worker/internal/eventually"
	"github.com/exo-worker/worker/internal/metrics"
	"github.com/exo-worker/worker/internal/server"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/audit"
	"github.com/exo-worker/worker/jobs/executor"
	"github.com/exo-worker/worker/jobs/library"
	"github.com/exo-worker/worker/jobs/meurichtext"
)

// These tests run the daemon in-process with the real executor, the real exo client, a real SQLite store
// and the simulated tenant over HTTPS. The real-process tests (serve, SIGKILL, SIGTERM, two daemons) are in
// cmd/worker.

type env struct {
	srv *sim.Server
	st  *store.SQLite
	ex  *executor.Executor
	m   *metrics.Metrics
	db  string
}

func newEnv(t *testing.T, sc *sim.Scenario, f sim.Faults) *env {
	t.Helper()
	dir := t.TempDir()
	srv, err := sim.Start(sim.Options{Dir: dir, Scenario: sc, Faults: f})
	if err != nil {
		t.Fatalf("start sim: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cred, err := srv.Credential()
	if err != nil {
		t.Fatalf("sim credential: %v", err)
	}
	client, err := exo.New(exo.Options{BaseURL: srv.URL, Tenant: srv.Creds.TenantID, Credential: cred,
		Scope: "https://outlook.office365.com/.default", HTTPClient: srv.HTTPClient()})
	if err != nil {
		t.Fatalf("exo client: %v", err)
	}
	db := filepath.Join(dir, "worker.db")
	st := openStore(t, db)
	return &env{srv: srv, st: st, m: metrics.New(metrics.Options{NoProcessCollectors: true}), db: db,
		ex: &executor.Executor{Client: client}}
}

func openStore(t *testing.T, path string) *store.SQLite {
	t.Helper()
	st, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func richText(t *testing.T) *meurichtext.Job {
	t.Helper()
	j, err := meurichtext.New("")
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func remediate() executor.Options { return executor.Options{Mode: jobs.ModeRemediate} }

func (e *env) daemon(t *testing.T, o daemon.Options) *daemon.Daemon {
	t.Helper()
	if o.Store == nil {
		o.Store = e.st
	}
	if o.Executor == nil {
		o.Executor = e.ex
	}
	if o.Jobs == nil {
		o.Jobs = []daemon.JobSpec{{Job: richText(t), Options: remediate()}}
	}
	if o.Metrics == nil {
		o.Metrics = e.m
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 3 * time.Second
	}
	if o.Grace == 0 {
		o.Grace = 5 * time.Second
	}
	d, err := daemon.New(o)
	if err != nil {
		t.Fatalf("daemon: %v", err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(d.Stop)
	return d
}

// waitRun polls the store until the run has ended. within is kept for the call sites' readability; the
// shared poller's watchdog is the only limit (no wall-clock bound is asserted).
func waitRun(t *testing.T, st store.Store, id string, within time.Duration) store.Run {
	t.Helper()
	_ = within
	return eventually.Value(t, "run "+id+" to end", func() (store.Run, bool, string) {
		r, err := st.GetRun(context.Background(), id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get run %s: %v", id, err)
		}
		return r, err == nil && r.Status != store.RunRunning, fmt.Sprintf("%+v, %v", r, err)
	})
}

func trigger(t *testing.T, d *daemon.Daemon, objects ...string) (string, bool) {
	t.Helper()
	id, coalesced, err := d.Trigger(context.Background(), server.Trigger{Job: meurichtext.Name, Objects: objects,
		Reason: "test", Source: store.TriggerAPI})
	if err != nil {
		t.Fatalf("trigger: %v", err)
	}
	return id, coalesced
}

func writes(srv *sim.Server) []sim.Entry {
	var out []sim.Entry
	for _, e := range srv.Log.Entries() {
		if e.IsWrite() {
			out = append(out, e)
		}
	}
	return out
}

// needing returns the in-scope MEUs that do not hold target yet, per the simulator's ground truth.
func needing(srv *sim.Server, target string) []sim.Object {
	var out []sim.Object
	for _, o := range srv.Tenant().InScopeMEUs() {
		if !strings.EqualFold(o.UseMapiRichTextFormat, target) {
			out = append(out, o)
		}
	}
	return out
}

// changing lists the in-scope MEUs a meu-richtext run to Never changes: not at Never, or (prefer_message_format
// being on by default) not yet preferring their own message format over the remote domain's.
func changing(srv *sim.Server) []sim.Object {
	var out []sim.Object
	for _, o := range srv.Tenant().InScopeMEUs() {
		if !strings.EqualFold(o.UseMapiRichTextFormat, "Never") || !o.UsePreferMessageFormat {
			out = append(out, o)
		}
	}
	return out
}

func TestTriggeredRunIsRecordedAndJournalled(t *testing.T) {
	e := newEnv(t, nil, sim.Faults{})
	want := len(changing(e.srv))
	if want == 0 {
		t.Fatal("scenario has nothing to fix")
	}
	d := e.daemon(t, daemon.Options{})
	id, coalesced := trigger(t, d)
	if coalesced {
		t.Fatal("first trigger of an idle job was coalesced")
	}
	r := waitRun(t, e.st, id, 30*time.Second)
	if r.Status != store.RunSucceeded || r.Trigger != store.TriggerAPI || r.Mode != "remediate" {
		t.Fatalf("run = %+v, want succeeded api remediate", r)
	}
	if r.Counts.Planned != want || r.Counts.Verified != want || r.Counts.InScope != len(e.srv.Tenant().InScopeMEUs()) {
		t.Errorf("counts = %+v, want planned = verified = %d", r.Counts, want)
	}
	if n := len(needing(e.srv, "Never")); n != 0 {
		t.Errorf("%d in-scope MEUs still not Never", n)
	}
	entries, err := e.st.Journal(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != want {
		t.Fatalf("journal has %d entries, want %d", len(entries), want)
	}
	reqIDs := map[string]bool{}
	for _, w := range writes(e.srv) {
		reqIDs[w.RequestID] = true
	}
	for _, en := range entries {
		if en.State != store.ChangeStateVerified {
			t.Errorf("entry %s: state %s, want verified", en.ObjectID, en.State)
		}
		if en.RequestID == "" || !reqIDs[en.RequestID] {
			t.Errorf("entry %s: request id %q is not one the tenant answered a write with", en.ObjectID, en.RequestID)
		}
		// One parameter is kept as its bare value, several as an object keyed by name: an MEU already at
		// Never only gains UsePreferMessageFormat.
		switch string(en.New) {
		case `"Never"`, `true`, `{"UseMapiRichTextFormat":"Never","UsePreferMessageFormat":true}`:
		default:
			t.Errorf("entry %s: new = %s", en.ObjectID, en.New)
		}
	}
	if got := counter(t, e.m, "exo_worker_runs_total", map[string]string{"job": meurichtext.Name, "status": "succeeded"}); got != 1 {
		t.Errorf("runs_total{succeeded} = %v, want 1", got)
	}
	if got := counter(t, e.m, "exo_worker_changes_total", map[string]string{"job": meurichtext.Name, "status": "verified"}); got != float64(want) {
		t.Errorf("changes_total{verified} = %v, want %d", got, want)
	}
}

// journalProbe wraps the real store journal and checks, at every JournalBegin, that the tenant has seen
// no write the journal has not recorded yet: the journal is written before the writes it announces.
type journalProbe struct {
	executor.Journal
	srv        *sim.Server
	mu         sync.Mutex
	journalled int
	begins     int
	violations []string
}

func (p *journalProbe) JournalBegin(ctx context.Context, runID string, changes []jobs.Change) ([]int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w := len(writes(p.srv)); w > p.journalled {
		p.violations = append(p.violations, fmt.Sprintf("begin #%d: the tenant saw %d writes but only %d were journalled", p.begins+1, w, p.journalled))
	}
	ids, err := p.Journal.JournalBegin(ctx, runID, changes)
	if err == nil {
		p.journalled += len(changes)
		p.begins++
	}
	return ids, err
}

func TestJournalIsWrittenBeforeEachChunkIsSent(t *testing.T) {
	e := newEnv(t, nil, sim.Faults{})
	probe := &journalProbe{Journal: daemon.NewJournal(e.st), srv: e.srv}
	e.ex.Journal = probe
	e.ex.ChunkSize = 10
	want := len(changing(e.srv))
	d := e.daemon(t, daemon.Options{})
	id, _ := trigger(t, d)
	r := waitRun(t, e.st, id, 30*time.Second)
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s %s", id, r.Status, r.Error)
	}
	if probe.begins < want/10 {
		t.Fatalf("%d journal begins for %d changes in chunks of 10", probe.begins, want)
	}
	if len(probe.violations) > 0 {
		t.Fatalf("writes reached the tenant before the journal recorded them:\n%s", strings.Join(probe.violations, "\n"))
	}
	if got := len(writes(e.srv)); got != want || probe.journalled != want {
		t.Fatalf("tenant saw %d writes, journal recorded %d, want %d each", got, probe.journalled, want)
	}
}

func TestJournalFailureSendsNothing(t *testing.T) {
	e := newEnv(t, nil, sim.Faults{})
	e.ex.Journal = daemon.NewJournal(e.st)
	ctx := context.Background()
	// A run that another process already gave up on: the store refuses to journal for it.
	rec, err := e.st.CreateRun(ctx, store.Run{Job: meurichtext.Name, Mode: "remediate"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.FinishRun(ctx, rec.ID, store.RunResult{Status: store.RunInterrupted}); err != nil {
		t.Fatal(err)
	}
	run, err := e.ex.Plan(ctx, rec.ID, richText(t))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := e.ex.Apply(ctx, run, remediate())
	var je *executor.JournalError
	if !errors.As(err, &je) || !errors.Is(err, store.ErrRunNotRunning) {
		t.Fatalf("apply error = %v, want a JournalError wrapping store.ErrRunNotRunning", err)
	}
	if n := len(writes(e.srv)); n != 0 {
		t.Fatalf("the tenant saw %d writes although the journal refused them", n)
	}
	if !sum.Aborted || sum.Skipped != len(run.Plan.Changes) || sum.Applied != 0 {
		t.Fatalf("summary aborted=%v skipped=%d applied=%d, want aborted with all %d skipped", sum.Aborted, sum.Skipped, sum.Applied, len(run.Plan.Changes))
	}
}

func TestTargetedRerunTouchesOnlyTheNamedObjects(t *testing.T) {
	e := newEnv(t, nil, sim.Faults{})
	need := needing(e.srv, "Never")
	if len(need) < 3 {
		t.Fatal("scenario too small")
	}
	named := []string{strings.ToUpper(need[0].ID), need[1].ID} // case must not matter
	d := e.daemon(t, daemon.Options{})
	id, _ := trigger(t, d, named...)
	r := waitRun(t, e.st, id, 30*time.Second)
	if r.Status != store.RunSucceeded || r.Counts.Planned != 2 || r.Counts.Verified != 2 {
		t.Fatalf("run = %s %+v (%s), want succeeded with 2 verified", r.Status, r.Counts, r.Error)
	}
	if len(r.Objects) != 2 {
		t.Errorf("run objects = %v, want the 2 named", r.Objects)
	}
	var got []string
	for _, w := range writes(e.srv) {
		got = append(got, strings.ToLower(w.Identity))
	}
	slices.Sort(got)
	want := []string{strings.ToLower(need[0].ID), strings.ToLower(need[1].ID)}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("writes went to %v, want exactly %v", got, want)
	}
	if o, _ := e.srv.Tenant().Object(need[2].ID); strings.EqualFold(o.UseMapiRichTextFormat, "Never") {
		t.Errorf("object %s outside the rerun was changed", need[2].ID)
	}
}

func TestTriggersWhileRunningCoalesceIntoOneFollowUp(t *testing.T) {
	// RTT makes the first run last long enough to trigger during it.
	e := newEnv(t, nil, sim.Faults{RTT: 150 * time.Millisecond})
	need := needing(e.srv, "Never")
	e.ex.ChunkSize = 10
	d := e.daemon(t, daemon.Options{})
	first, _ := trigger(t, d, need[0].ID)
	second, c2 := trigger(t, d, need[1].ID)
	// The follow-up's id answers before it has a record: queued. (Checked at once: the first run takes
	// several RTTs, so the follow-up cannot have started yet unless the machine stalled.)
	q, queued := d.QueuedRun(second)
	if _, err := e.st.GetRun(context.Background(), second); err == nil {
		t.Logf("follow-up %s already recorded: the machine stalled; queued state not checked", second)
	} else if !queued || q.Status != store.RunQueued || q.Job != meurichtext.Name || len(q.Objects) != 1 {
		t.Errorf("QueuedRun(%s) = %+v, %v; want queued meu-richtext on 1 object", second, q, queued)
	}
	third, c3 := trigger(t, d, need[2].ID, need[1].ID)
	if !c2 || !c3 {
		t.Fatalf("triggers during a run: coalesced = %v, %v, want true, true", c2, c3)
	}
	if second == first || third != second {
		t.Fatalf("ids: first %s, second %s, third %s: want the follow-up's id twice, distinct from the first", first, second, third)
	}
	infos := d.Jobs()
	if len(infos) != 1 || !infos[0].Running || !infos[0].Queued {
		t.Errorf("Jobs() = %+v, want running and queued", infos)
	}
	if _, ok := d.QueuedRun("no-such-run"); ok {
		t.Error("QueuedRun found a run that was never triggered")
	}
	waitRun(t, e.st, first, 30*time.Second)
	fu := waitRun(t, e.st, second, 30*time.Second)
	want := []string{strings.ToLower(need[1].ID), strings.ToLower(need[2].ID)}
	got := slices.Clone(fu.Objects)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || fu.Status != store.RunSucceeded {
		t.Fatalf("follow-up = %s objects %v, want succeeded on %v", fu.Status, fu.Objects, want)
	}
	runs, err := e.st.ListRuns(context.Background(), store.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Fatalf("%d runs recorded, want 2 (one follow-up for two triggers)", len(runs))
	}
	// A whole-scope trigger widens a queued targeted follow-up.
	a, _ := trigger(t, d, need[3].ID)
	b, _ := trigger(t, d, need[4].ID)
	c, _ := trigger(t, d)
	if b != c {
		t.Fatalf("whole-scope trigger got id %s, want the queued follow-up %s", c, b)
	}
	waitRun(t, e.st, a, 30*time.Second)
	if r := waitRun(t, e.st, b, 30*time.Second); len(r.Objects) != 0 {
		t.Fatalf("follow-up objects = %v, want the whole scope (none)", r.Objects)
	}
}

func TestTriggerErrors(t *testing.T) {
	e := newEnv(t, nil, sim.Faults{})
	lib, err := library.New()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := lib.Registry(nil) // every job on its defaults: none configured
	if err != nil {
		t.Fatal(err)
	}
	d := e.daemon(t, daemon.Options{Library: reg})
	if _, _, err := d.Trigger(context.Background(), server.Trigger{Job: "nope"}); !errors.Is(err, server.ErrUnknownJob) {
		t.Errorf("unknown job: err = %v, want ErrUnknownJob", err)
	}
	// A job of the library the configuration does not name is not startable through the API or a webhook.
	_, _, err = d.Trigger(context.Background(), server.Trigger{Job: audit.MEUAuditName})
	if !errors.Is(err, server.ErrUnknownJob) || !strings.Contains(err.Error(), "not configured") ||
		!strings.Contains(err.Error(), "jobs."+audit.MEUAuditName) {
		t.Errorf("unconfigured job: err = %v, want ErrUnknownJob saying it is not configured", err)
	}
	if n := e.srv.Log.Count(func(sim.Entry) bool { return true }); n != 0 {
		t.Errorf("%d requests reached the tenant for refused triggers", n)
	}
	d.Stop()
	if _, _, err := d.Trigger(context.Background(), server.Trigger{Job: meurichtext.Name}); !errors.Is(err, server.ErrShuttingDown) {
		t.Errorf("after stop: err = %v, want ErrShuttingDown", err)
	}
}

func TestScheduleFiresAndOverlappingTicksAreSkipped(t *testing.T) {
	// Every second, with runs of about two seconds (RTT): some ticks must find the job still running.
	e := newEnv(t, nil, sim.Faults{RTT: 200 * time.Millisecond})
	e.ex.ChunkSize = 10
	d := e.daemon(t, daemon.Options{Jobs: []daemon.JobSpec{{Job: richText(t), Schedule: "* * * * * *", Options: remediate()}}})
	runs := eventually.Value(t, "two scheduled runs and a skipped tick", func() ([]store.Run, bool, string) {
		runs, err := e.st.ListRuns(context.Background(), store.RunFilter{Status: store.RunSucceeded})
		if err != nil {
			t.Fatal(err)
		}
		skipped := counter(t, e.m, "exo_worker_schedule_skipped_total", nil)
		return runs, len(runs) >= 2 && skipped >= 1, fmt.Sprintf("%d succeeded runs, %v skipped ticks", len(runs), skipped)
	})
	for _, r := range runs {
		if r.Trigger != store.TriggerSchedule {
			t.Errorf("run %s trigger %s, want schedule", r.ID, r.Trigger)
		}
	}
	d.Stop()
	runs, _ = e.st.ListRuns(context.Background(), store.RunFilter{})
	for i := 1; i < len(runs); i++ { // newest first: each run started after the previous one finished
		if runs[i].FinishedAt.After(runs[i-1].StartedAt) {
			t.Errorf("runs %s and %s overlap", runs[i].ID, runs[i-1].ID)
		}
	}
}

func TestTwoDaemonsOnOneDatabaseRunEachTickOnce(t *testing.T) {
	e := newEnv(t, nil, sim.Faults{})
	st2 := openStore(t, e.db)
	spec := func() []daemon.JobSpec {
		return []daemon.JobSpec{{Job: richText(t), Schedule: "* * * * * *", Options: remediate()}}
	}
	e.daemon(t, daemon.Options{Owner: "daemon-a", Jobs: spec()})
	ex2 := &executor.Executor{Client: e.ex.Client}
	e.daemon(t, daemon.Options{Owner: "daemon-b", Store: st2, Executor: ex2, Jobs: spec(), Metrics: metrics.New(metrics.Options{NoProcessCollectors: true})})
	// Wait for a few ticks' worth of runs (the machine may be loaded: no fixed sleep).
	eventually.True(t, "four runs of an every-second schedule", func() (bool, string) {
		runs, err := e.st.ListRuns(context.Background(), store.RunFilter{Status: store.RunSucceeded})
		if err != nil {
			t.Fatal(err)
		}
		return len(runs) >= 4, fmt.Sprintf("%d runs", len(runs))
	})
	runs, err := e.st.ListRuns(context.Background(), store.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	ticks := map[string][]string{}
	for _, r := range runs {
		ticks[r.Reason] = append(ticks[r.Reason], r.Owner)
	}
	byOwner := map[string]int{}
	for tick, owners := range ticks {
		if len(owners) != 1 {
			t.Errorf("%s ran %d times (owners %v), want once", tick, len(owners), owners)
		}
		byOwner[owners[0]]++
	}
	t.Logf("%d runs, by owner %v", len(runs), byOwner)
}

// panicJob is a job whose plan panics: the daemon must survive it and record the run as failed.
type panicJob struct{}

func (panicJob) Name() string               { return "panics" }
func (panicJob) Describe() jobs.Description { return jobs.Description{Kind: jobs.KindAudit} }
func (panicJob) Plan(context.Context, *jobs.Tenant) (jobs.Plan, error) {
	var m map[string]int
	m["boom"]++ // a nil map write: a real runtime panic
	return jobs.Plan{}, nil
}

func TestPanickingRunIsRecordedFailedAndDaemonGoesOn(t *testing.T) {
	e := newEnv(t, nil, sim.Faults{})
	d := e.daemon(t, daemon.Options{Jobs: []daemon.JobSpec{
		{Job: panicJob{}, Options: executor.Options{Mode: jobs.ModeReport}},
		{Job: richText(t), Options: remediate()},
	}})
	id, _, err := d.Trigger(context.Background(), server.Trigger{Job: "panics", Source: store.TriggerAPI})
	if err != nil {
		t.Fatal(err)
	}
	r := waitRun(t, e.st, id, 10*time.Second)
	if r.Status != store.RunFailed || !strings.Contains(r.Error, "panic") {
		t.Fatalf("panicking run = %s %q, want failed naming the panic", r.Status, r.Error)
	}
	ok, _ := trigger(t, d)
	if r := waitRun(t, e.st, ok, 30*time.Second); r.Status != store.RunSucceeded {
		t.Fatalf("run after the panic = %s %s", r.Status, r.Error)
	}
}

func TestStopDuringRunRecordsInterruptedWithinGrace(t *testing.T) {
	sc := sim.DefaultScenario()
	sc.DirSyncedMEUs = 400
	e := newEnv(t, &sc, sim.Faults{RTT: 100 * time.Millisecond})
	e.ex.ChunkSize = 10
	planned := len(needing(e.srv, "Never"))
	d := e.daemon(t, daemon.Options{Grace: 3 * time.Second})
	id, _ := trigger(t, d)
	// Wait until writes are under way.
	eventually.True(t, "writes under way", func() (bool, string) {
		n := len(writes(e.srv))
		return n >= 20, fmt.Sprintf("%d writes", n)
	})
	d.Stop()
	// Stop returned with the run cut short (count-based, not a wall-clock bound): not every planned write
	// was sent.
	if n := len(writes(e.srv)); n >= planned {
		t.Errorf("Stop returned after all %d planned writes; it should interrupt the run within its grace", planned)
	}
	r := waitRun(t, e.st, id, time.Second)
	if r.Status != store.RunInterrupted {
		t.Fatalf("run = %s (%s), want interrupted", r.Status, r.Error)
	}
	entries, err := e.st.Journal(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	sent := len(writes(e.srv))
	if len(entries) == 0 || len(entries) >= planned {
		t.Fatalf("journal has %d entries; want some but not the whole plan", len(entries))
	}
	for _, en := range entries {
		if en.State == store.ChangeStatePending {
			t.Errorf("entry %s still pending after a graceful stop: in-flight writes should have finished and been recorded", en.ObjectID)
		}
	}
	if sent != len(entries) {
		t.Errorf("tenant saw %d writes, journal has %d entries", sent, len(entries))
	}
	t.Logf("%d of the plan's %d writes were sent before the stop", sent, planned)
}

func TestStartReconcilesRunsOfADeadProcess(t *testing.T) {
	e := newEnv(t, nil, sim.Faults{})
	ctx := context.Background()
	need := needing(e.srv, "Never")[:4]
	// A process that died mid-chunk: it journalled four writes; two reached the tenant, one object was
	// changed by someone else meanwhile, one write never landed.
	rec, err := e.st.CreateRun(ctx, store.Run{Job: meurichtext.Name, Mode: "remediate", Owner: "dead-host/1/abcd"})
	if err != nil {
		t.Fatal(err)
	}
	changes := make([]jobs.Change, len(need))
	for i, o := range need {
		changes[i] = jobs.Set(jobs.ObjectRef{ID: o.ID}, "Set-MailUser",
			jobs.Param{Name: "UseMapiRichTextFormat", From: jobs.Text(o.UseMapiRichTextFormat), To: jobs.Text("Never")})
	}
	if _, err := daemon.NewJournal(e.st).JournalBegin(ctx, rec.ID, changes); err != nil {
		t.Fatal(err)
	}
	for _, o := range need[:2] {
		if err := e.srv.Tenant().SetUseMapiRichTextFormat(o.ID, "Never"); err != nil {
			t.Fatal(err)
		}
	}
	other := "Always"
	if strings.EqualFold(need[2].UseMapiRichTextFormat, "Always") {
		other = "UseDefaultSettings"
	}
	if err := e.srv.Tenant().SetUseMapiRichTextFormat(need[2].ID, other); err != nil {
		t.Fatal(err)
	}

	e.daemon(t, daemon.Options{}) // Start sweeps
	r, err := e.st.GetRun(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != store.RunInterrupted {
		t.Fatalf("dead process's run = %s, want interrupted", r.Status)
	}
	entries, err := e.st.Journal(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantNote := []string{"write landed", "write landed", "neither the old nor the new", "did not land"}
	for i, en := range entries {
		if en.State != store.ChangeStateReconciled || !strings.Contains(en.Error, wantNote[i]) {
			t.Errorf("entry %d (%s): %s %q, want reconciled noting %q", i, en.ObjectID, en.State, en.Error, wantNote[i])
		}
	}
}

func TestRevertRestoresOldValuesExceptWhereChangedSince(t *testing.T) {
	e := newEnv(t, nil, sim.Faults{})
	ctx := context.Background()
	before := map[string]string{}
	for _, o := range e.srv.Tenant().InScopeMEUs() {
		before[o.ID] = o.UseMapiRichTextFormat
	}
	need := needing(e.srv, "Never")
	changed := changing(e.srv) // every object the run changes, need among them
	d := e.daemon(t, daemon.Options{})
	id, _ := trigger(t, d)
	if r := waitRun(t, e.st, id, 30*time.Second); r.Status != store.RunSucceeded {
		t.Fatalf("remediate run: %s %s", r.Status, r.Error)
	}
	// Someone else changes one object the run had changed.
	touched := need[len(need)/2]
	other := "Always"
	if strings.EqualFold(before[touched.ID], "Always") {
		other = "UseDefaultSettings"
	}
	if err := e.srv.Tenant().SetUseMapiRichTextFormat(touched.ID, other); err != nil {
		t.Fatal(err)
	}
	writesBefore := len(writes(e.srv))

	preview, err := d.Revert(ctx, id, "", true)
	if err != nil {
		t.Fatalf("revert dry run: %v", err)
	}
	if len(writes(e.srv)) != writesBefore {
		t.Fatal("revert --dry-run wrote to the tenant")
	}
	if preview.Summary.Planned != len(changed)-1 || preview.RunID != "" {
		t.Fatalf("dry run plans %d (run %q), want %d and no run recorded", preview.Summary.Planned, preview.RunID, len(changed)-1)
	}

	rep, err := d.Revert(ctx, id, "test", false)
	if err != nil {
		t.Fatalf("revert: %v", err)
	}
	if rep.Status != store.RunSucceeded || rep.Summary.Verified != len(changed)-1 {
		t.Fatalf("revert %s verified %d, want succeeded with %d", rep.Status, rep.Summary.Verified, len(changed)-1)
	}
	if len(rep.Skipped) != 1 || !strings.EqualFold(rep.Skipped[0].Entry.ObjectID, touched.ID) || !strings.Contains(rep.Skipped[0].Reason, "changed since") {
		t.Fatalf("skipped = %+v, want only %s, changed since", rep.Skipped, touched.ID)
	}
	for _, o := range e.srv.Tenant().InScopeMEUs() {
		want := before[o.ID]
		if o.ID == touched.ID {
			want = other
		}
		if !strings.EqualFold(o.UseMapiRichTextFormat, want) {
			t.Errorf("%s holds %s after revert, want %s", o.ID, o.UseMapiRichTextFormat, want)
		}
	}
	rr, err := e.st.GetRun(ctx, rep.RunID)
	if err != nil || rr.Mode != daemon.ModeRevert || rr.Status != store.RunSucceeded {
		t.Fatalf("revert run record = %+v, %v", rr, err)
	}
	revJournal, _ := e.st.Journal(ctx, rep.RunID)
	if len(revJournal) != len(changed) { // the restored ones and the skipped one
		t.Errorf("revert journal has %d entries, want %d", len(revJournal), len(changed))
	}
	orig, _ := e.st.Journal(ctx, id)
	for _, en := range orig {
		want := store.ChangeStateReverted
		if strings.EqualFold(en.ObjectID, touched.ID) {
			want = store.ChangeStateVerified
		}
		if en.State != want {
			t.Errorf("original entry %s: %s, want %s", en.ObjectID, en.State, want)
		}
	}
	// Reverting again changes nothing.
	n := len(writes(e.srv))
	again, err := d.Revert(ctx, id, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(writes(e.srv)) != n || again.Summary.Planned != 0 {
		t.Fatalf("second revert planned %d and wrote %d, want nothing", again.Summary.Planned, len(writes(e.srv))-n)
	}
}

// counter sums the samples of a counter or gauge whose labels include want.
func counter(t *testing.T, m *metrics.Metrics, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if labelsMatch(mt.GetLabel(), want) {
				if c := mt.GetCounter(); c != nil {
					sum += c.GetValue()
				} else if g := mt.GetGauge(); g != nil {
					sum += g.GetValue()
				}
			}
		}
	}
	return sum
}

func labelsMatch(have []*dto.LabelPair, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, l := range have {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestRunNowRecordsAbortsAndHonoursForce(t *testing.T) {
	e := newEnv(t, nil, sim.Faults{})
	ctx := context.Background()
	d := e.daemon(t, daemon.Options{Jobs: []daemon.JobSpec{}})
	opts := executor.Options{Mode: jobs.ModeRemediate, MaxChangePercent: 5}
	rec, sum, err := d.RunNow(ctx, richText(t), opts, "one-shot", "")
	var br *executor.BlastRadiusError
	if !errors.As(err, &br) || rec.Status != store.RunAborted || sum == nil || len(writes(e.srv)) != 0 {
		t.Fatalf("run over the blast radius: err %v, status %s, %d writes; want aborted before any write", err, rec.Status, len(writes(e.srv)))
	}
	if got, _ := e.st.GetRun(ctx, rec.ID); got.Status != store.RunAborted || got.Trigger != store.TriggerCLI {
		t.Fatalf("recorded run = %+v", got)
	}
	opts.Force = true
	rec, sum, err = d.RunNow(ctx, richText(t), opts, "forced", store.TriggerCLI)
	if err != nil || rec.Status != store.RunSucceeded || sum.Verified == 0 {
		t.Fatalf("forced run: %v, %s, verified %d", err, rec.Status, sum.Verified)
	}
	// Another process holds the job: a one-shot run refuses at once instead of writing beside it.
	if ok, err := e.st.AcquireLease(ctx, "job:"+meurichtext.Name, "other-process", time.Minute); !ok || err != nil {
		t.Fatalf("take lease: %v %v", ok, err)
	}
	if _, _, err := d.RunNow(ctx, richText(t), opts, "", ""); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("run while another process holds the job: err %v", err)
	}
}

// auditJob reports one finding per object in objects: a stand-in for an audit whose findings change.
type auditJob struct {
	mu      sync.Mutex
	objects []string
}

func (*auditJob) Name() string               { return "test-audit" }
func (*auditJob) Describe() jobs.Description { return jobs.Description{Kind: jobs.KindAudit} }
func (j *auditJob) Plan(context.Context, *jobs.Tenant) (jobs.Plan, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := jobs.Plan{InScope: 3}
	for _, o := range j.objects {
		p.Findings = append(p.Findings, jobs.Finding{Rule: "test-rule", Severity: jobs.SeverityHigh,
			Object: jobs.ObjectRef{ID: o}, Detail: "seen", OnPrem: &jobs.OnPremFix{Attribute: "mail", Value: o + "@contoso.com", Action: "replace"}})
	}
	return p, nil
}

func TestAuditFindingsAreRecordedResolvedAndCounted(t *testing.T) {
	e := newEnv(t, nil, sim.Faults{})
	ctx := context.Background()
	job := &auditJob{objects: []string{"a", "b"}}
	d := e.daemon(t, daemon.Options{Jobs: []daemon.JobSpec{{Job: job, Options: executor.Options{Mode: jobs.ModeReport}}}})
	run := func() {
		t.Helper()
		id, _, err := d.Trigger(ctx, server.Trigger{Job: "test-audit", Source: store.TriggerAPI})
		if err != nil {
			t.Fatal(err)
		}
		if r := waitRun(t, e.st, id, 10*time.Second); r.Status != store.RunSucceeded {
			t.Fatalf("audit run: %s %s", r.Status, r.Error)
		}
	}
	run()
	open, err := e.st.OpenFindings(ctx, store.FindingFilter{Job: "test-audit"})
	if err != nil || len(open) != 2 || open[0].OnPrem == nil {
		t.Fatalf("open findings after the first run: %+v, %v", open, err)
	}
	if got := counter(t, e.m, "exo_worker_findings", map[string]string{"rule": "test-rule", "severity": "high"}); got != 2 {
		t.Errorf("findings gauge = %v, want 2", got)
	}
	job.mu.Lock()
	job.objects = []string{"b"}
	job.mu.Unlock()
	run()
	open, _ = e.st.OpenFindings(ctx, store.FindingFilter{Job: "test-audit"})
	if len(open) != 1 || open[0].ObjectID != "b" {
		t.Fatalf("open findings after a is fixed: %+v, want only b", open)
	}
	if got := counter(t, e.m, "exo_worker_findings", map[string]string{"rule": "test-rule"}); got != 1 {
		t.Errorf("findings gauge = %v, want 1", got)
	}
}

// TestRunIdentityIsTheCallers: the daemon names the run (its store record) and the executor keeps that id
// — in the summary, the journal and the logs — and "run finished" is logged once per run.
func TestRunIdentityIsTheCallers(t *testing.T) {
	e := newEnv(t, nil, sim.Faults{})
	ctx := context.Background()
	core, logs := observer.New(zap.InfoLevel)
	e.ex.Log = zap.New(core)
	d := e.daemon(t, daemon.Options{Jobs: []daemon.JobSpec{}, Log: zap.New(core)})
	opts := executor.Options{Mode: jobs.ModeRemediate, Force: true}
	rec, sum, err := d.RunNow(ctx, richText(t), opts, "", store.TriggerCLI)
	if err != nil || sum == nil || sum.Applied == 0 {
		t.Fatalf("run: %v (summary %+v)", err, sum)
	}
	if sum.RunID != rec.ID {
		t.Errorf("summary run id %s, the store recorded %s", sum.RunID, rec.ID)
	}
	entries, err := e.st.Journal(ctx, rec.ID)
	if err != nil || len(entries) != sum.Applied {
		t.Errorf("journal of %s: %d entries (%v), want %d", rec.ID, len(entries), err, sum.Applied)
	}
	finished := 0
	for _, l := range logs.FilterMessage("run finished").All() {
		finished++
		if v, ok := l.ContextMap()["run"]; !ok || v != rec.ID {
			t.Errorf("run finished logged for run %v, want %s", v, rec.ID)
		}
	}
	if finished != 1 {
		t.Errorf(`"run finished" logged %d times, want once`, finished)
	}
	if _, err := e.ex.Plan(ctx, "", richText(t)); err == nil {
		t.Error("the executor planned a run nobody named")
	}
}
