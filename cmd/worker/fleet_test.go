package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/store"
)

// fleetUnderTest is a simulated tenant and its configuration on a fresh PostgreSQL schema, migrated.
type fleetUnderTest struct {
	*daemonUnderTest
	st store.Store
}

func newFleetUnderTest(t *testing.T, meus int, rtt time.Duration) *fleetUnderTest {
	t.Helper()
	d := newDaemonUnderTest(t, meus, rtt)
	dsn, schema := usePostgres(t, d.cfg)
	if out, code := runWorker(t, "store", "migrate", "--config", d.cfg); code != 0 {
		t.Fatalf("store migrate: exit %d %s", code, out)
	}
	st, err := store.OpenPostgres(context.Background(), dsn, store.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return &fleetUnderTest{daemonUnderTest: d, st: st}
}

// replica starts one `worker serve` and returns it with its API and owner name.
func (f *fleetUnderTest) replica(t *testing.T, name string, extra ...string) (*proc, *api, string) {
	t.Helper()
	p := startWorker(t, name, append([]string{"serve", "--config", f.cfg, "--listen", "127.0.0.1:0"}, extra...)...)
	line := p.waitLine("serving http://", 30*time.Second)
	_, owner, _ := strings.Cut(line, "; owner ")
	return p, newAPI(t, line, testToken), owner
}

// Three replicas on one PostgreSQL with an every-second schedule: River's leader enqueues each tick once,
// and a tick's run is recorded by exactly one replica; runs of the job never overlap.
func TestFleetThreeReplicasRunEachTickOnce(t *testing.T) {
	f := newFleetUnderTest(t, 120, 0)
	var procs []*proc
	for i := range 3 {
		p, _, _ := f.replica(t, fmt.Sprintf("replica-%d", i), "--schedule", "meu-richtext=* * * * * *", "--lease-ttl", "3s")
		procs = append(procs, p)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		runs, err := f.st.ListRuns(context.Background(), store.RunFilter{Status: store.RunSucceeded})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) >= 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs in 90s of an every-second schedule on three replicas", len(runs))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		if code := p.wait(20 * time.Second); code != 0 {
			t.Errorf("%s exited %d", p.name, code)
		}
	}
	runs, err := f.st.ListRuns(context.Background(), store.RunFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	perTick := map[string][]string{}
	owners := map[string]int{}
	for _, r := range runs {
		if r.Trigger != store.TriggerSchedule {
			t.Errorf("run %s trigger %s, want schedule", r.ID, r.Trigger)
		}
		perTick[r.Reason] = append(perTick[r.Reason], r.ID)
		owners[r.Owner]++
	}
	for tick, ids := range perTick {
		if len(ids) > 1 {
			t.Errorf("%s ran %d times (%v), want once", tick, len(ids), ids)
		}
	}
	assertNoOverlap(t, runs)
	t.Logf("%d runs over %d ticks; runs per replica %v", len(runs), len(perTick), owners)
}

// assertNoOverlap fails if two runs of one job were in progress at the same moment.
func assertNoOverlap(t *testing.T, runs []store.Run) {
	t.Helper()
	for i, a := range runs {
		for _, b := range runs[i+1:] {
			if a.Job != b.Job || a.FinishedAt.IsZero() || b.FinishedAt.IsZero() {
				continue
			}
			if a.StartedAt.Before(b.FinishedAt) && b.StartedAt.Before(a.FinishedAt) {
				t.Errorf("runs %s (%s–%s, %s) and %s (%s–%s, %s) of %s overlap", a.ID, a.StartedAt.Format(time.StampMilli),
					a.FinishedAt.Format(time.StampMilli), a.Owner, b.ID, b.StartedAt.Format(time.StampMilli),
					b.FinishedAt.Format(time.StampMilli), b.Owner, a.Job)
			}
		}
	}
}

// A replica SIGKILLed mid-run: another replica takes the run's job over once the dead one's heartbeat
// expires, marks the dead run interrupted, reconciles its pending entries by reading the objects, and
// finishes the work. Every object that changed was journalled first, and no object was ever written with
// two different values.
func TestFleetSIGKILLedReplicasRunIsFinishedByAnother(t *testing.T) {
	f := newFleetUnderTest(t, 400, 100*time.Millisecond)
	client := tenantClient(t, f.cfg)
	flags := []string{"--chunk-size", "10", "--lease-ttl", "2s"}
	procs := map[string]*proc{}
	var first *api
	for i := range 3 {
		p, a, owner := f.replica(t, fmt.Sprintf("replica-%d", i), flags...)
		procs[owner] = p
		if first == nil {
			first = a
		}
	}
	killed := first.trigger("meu-richtext")
	var victim *proc
	deadline := time.Now().Add(60 * time.Second)
	for victim == nil {
		r, err := f.st.GetRun(context.Background(), killed)
		es, _ := f.st.Journal(context.Background(), killed)
		if err == nil && len(es) >= 30 {
			victim = procs[r.Owner]
			if victim == nil {
				t.Fatalf("run %s is owned by %q, not one of the replicas %v", killed, r.Owner, procs)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s did not journal 30 changes in 60s", killed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	victim.wait(10 * time.Second)
	killedAt := time.Now()

	// Another replica finishes the work: a run that resumes the killed one succeeds.
	var resumed store.Run
	deadline = time.Now().Add(120 * time.Second)
	for resumed.ID == "" {
		runs, err := f.st.ListRuns(context.Background(), store.RunFilter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			if strings.Contains(r.Reason, "resumes run "+killed) && r.Status == store.RunSucceeded {
				resumed = r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no successful run resumed %s within 120s of the kill (runs %+v)", killed, runs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(killedAt)
	if procs[resumed.Owner] == nil || procs[resumed.Owner] == victim {
		t.Errorf("resumed by %q, want one of the surviving replicas", resumed.Owner)
	}
	dead, err := f.st.GetRun(context.Background(), killed)
	if err != nil {
		t.Fatal(err)
	}
	if dead.Status != store.RunInterrupted {
		t.Errorf("killed run is %s, want interrupted", dead.Status)
	}
	if pending, _ := f.st.JournalPending(context.Background(), killed); len(pending) != 0 {
		t.Errorf("%d entries of the killed run still pending", len(pending))
	}
	// Every value ever journalled for an object is the same (Never): nothing written twice differently.
	written := map[string]map[string]bool{}
	for _, id := range []string{killed, resumed.ID} {
		es, err := f.st.Journal(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			o := strings.ToLower(e.ObjectID)
			if written[o] == nil {
				written[o] = map[string]bool{}
			}
			written[o][string(e.New)] = true
		}
	}
	// One value per object across both replicas' runs: the bare target, UsePreferMessageFormat alone (an
	// MEU already at Never), or both parameters together.
	allowed := map[string]bool{`"Never"`: true, `true`: true, `{"UseMapiRichTextFormat":"Never","UsePreferMessageFormat":true}`: true}
	for o, vals := range written {
		for v := range vals {
			if len(vals) != 1 || !allowed[v] {
				t.Errorf("object %s journalled with values %v, want one of %v", o, vals, allowed)
				break
			}
		}
	}
	for id, v := range inScope(t, client) {
		if v != "Never" {
			t.Errorf("%s holds %s after the resumed run, want Never", id, v)
		}
		setsNever := written[id][`"Never"`] || written[id][`{"UseMapiRichTextFormat":"Never","UsePreferMessageFormat":true}`]
		if !strings.EqualFold(f.truth[id], "Never") && !setsNever {
			t.Errorf("%s changed from %s without a journal entry", id, f.truth[id])
		}
	}
	for _, p := range procs {
		if p != victim {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			p.wait(20 * time.Second)
		}
	}
	deadEntries, _ := f.st.Journal(context.Background(), killed)
	t.Logf("killed run %s (%d changes journalled) resumed by %s as %s (%d applied), which finished %s after the kill",
		killed, len(deadEntries), resumed.Owner, resumed.ID, resumed.Counts.Applied, took.Round(100*time.Millisecond))
}
