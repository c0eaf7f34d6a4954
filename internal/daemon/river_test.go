package daemon_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/daemon"
	"github.com/exo-worker/worker/internal/metrics"
	"github.com/exo-worker/worker/internal/server"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/internal/store/pgtest"
	"github.com/exo-worker/worker/jobs/executor"
	"github.com/exo-worker/worker/jobs/meurichtext"
)

// fleetDB is a fresh PostgreSQL schema, migrated for the worker and for River.
func fleetDB(t *testing.T) (dsn, schema string) {
	t.Helper()
	dsn = pgtest.DSN(t)
	schema = pgtest.Schema(t, dsn)
	ctx := t.Context()
	if _, err := store.MigratePostgres(ctx, dsn, store.WithSchema(schema)); err != nil {
		t.Fatal(err)
	}
	pg := openPG(t, dsn, schema, 4)
	if _, _, err := daemon.MigrateRiver(ctx, pg); err != nil {
		t.Fatal(err)
	}
	return dsn, schema
}

func openPG(t *testing.T, dsn, schema string, conns int32) *store.Postgres {
	t.Helper()
	pg, err := store.OpenPostgres(context.Background(), dsn, store.WithSchema(schema), store.WithMaxConns(conns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Close() })
	return pg
}

// simTenant is one simulated tenant and an exo client for it.
type simTenant struct {
	name   string
	srv    *sim.Server
	client *exo.Client
}

func newSimTenant(t *testing.T, name string, meus int, f sim.Faults) simTenant {
	t.Helper()
	sc := sim.DefaultScenario()
	sc.DirSyncedMEUs = meus
	srv, err := sim.Start(sim.Options{Dir: t.TempDir(), Scenario: &sc, Faults: f})
	if err != nil {
		t.Fatalf("start sim: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cred, err := srv.Credential()
	if err != nil {
		t.Fatal(err)
	}
	c, err := exo.New(exo.Options{BaseURL: srv.URL, Tenant: srv.Creds.TenantID, Credential: cred,
		Scope: "https://outlook.office365.com/.default", HTTPClient: srv.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	return simTenant{name: name, srv: srv, client: c}
}

// replica is one process's worth of fleet: a pool, a River client and one daemon per tenant.
type replica struct {
	owner   string
	fleet   *daemon.RiverFleet
	daemons []*daemon.Daemon
}

func startReplica(t *testing.T, dsn, schema, owner string, tenants []simTenant, schedule string) *replica {
	t.Helper()
	pg := openPG(t, dsn, schema, 40)
	fleet, err := daemon.NewRiverFleet(pg, daemon.RiverOptions{Owner: owner, Heartbeat: 3 * time.Second, MaxWorkers: 10})
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{owner: owner, fleet: fleet}
	for _, tn := range tenants {
		st, err := pg.ForTenant(tn.name)
		if err != nil {
			t.Fatal(err)
		}
		d, err := daemon.New(daemon.Options{Store: st, Executor: &executor.Executor{Client: tn.client},
			Jobs:    []daemon.JobSpec{{Job: richText(t), Schedule: schedule, Options: remediate()}},
			Metrics: metrics.New(metrics.Options{NoProcessCollectors: true}), Log: zap.NewNop(),
			Owner: owner, Grace: 5 * time.Second, River: fleet})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		r.daemons = append(r.daemons, d)
	}
	if err := fleet.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *replica) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.fleet.Stop(ctx)
	for _, d := range r.daemons {
		d.Stop()
	}
}

// tickOf reads the schedule tick a scheduled run's reason names.
func tickOf(r store.Run) (time.Time, bool) {
	_, after, ok := strings.Cut(r.Reason, ", tick ")
	if !ok {
		return time.Time{}, false
	}
	tk, err := time.Parse(time.RFC3339, after)
	return tk, err == nil
}

// Three replicas (each a River client with a daemon per tenant) on one PostgreSQL serve many simulated
// tenants on an every-second schedule: each tenant's tick runs at most once fleet-wide, no two runs of one
// tenant's job overlap, every tenant gets its runs, and the replicas share the work. It prints the delay
// between a tick and its run's start.
func TestRiverFleetManyTenantsThreeReplicasEachTickOnce(t *testing.T) {
	n := 20
	if testing.Short() {
		n = 4
	}
	dsn, schema := fleetDB(t)
	var tenants []simTenant
	for i := range n {
		tenants = append(tenants, newSimTenant(t, fmt.Sprintf("t%02d", i), 30, sim.Faults{}))
	}
	var replicas []*replica
	for i := range 3 {
		replicas = append(replicas, startReplica(t, dsn, schema, fmt.Sprintf("replica-%d", i), tenants, "* * * * * *"))
	}
	var stopOnce sync.Once
	stopAll := func() {
		stopOnce.Do(func() {
			var wg sync.WaitGroup
			for _, r := range replicas {
				wg.Go(r.stop)
			}
			wg.Wait()
		})
	}
	t.Cleanup(stopAll)

	root := openPG(t, dsn, schema, 4)
	handles := map[string]store.Store{}
	for _, tn := range tenants {
		h, err := root.ForTenant(tn.name)
		if err != nil {
			t.Fatal(err)
		}
		handles[tn.name] = h
	}
	const want = 3
	deadline := time.Now().Add(3 * time.Minute)
	for {
		short := 0
		for _, h := range handles {
			runs, err := h.ListRuns(t.Context(), store.RunFilter{Status: store.RunSucceeded})
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) < want {
				short++
			}
		}
		if short == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d tenants have fewer than %d successful scheduled runs after 3 minutes", short, n, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
	stopAll()

	var delays []time.Duration
	perReplica := map[string]int{}
	total := 0
	for name, h := range handles {
		runs, err := h.ListRuns(t.Context(), store.RunFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		perTick := map[time.Time][]string{}
		for _, r := range runs {
			if r.Tenant != name {
				t.Errorf("tenant %s lists run %s of tenant %s", name, r.ID, r.Tenant)
			}
			tk, ok := tickOf(r)
			if !ok {
				t.Errorf("run %s of %s has no tick in its reason %q", r.ID, name, r.Reason)
				continue
			}
			perTick[tk] = append(perTick[tk], r.ID)
			delays = append(delays, r.StartedAt.Sub(tk))
			perReplica[r.Owner]++
			total++
		}
		for tk, ids := range perTick {
			if len(ids) > 1 {
				t.Errorf("tenant %s: tick %s ran %d times (%v), want once", name, tk.Format(time.RFC3339), len(ids), ids)
			}
		}
		assertNoOverlap(t, name, runs)
	}
	if len(perReplica) < 2 {
		t.Errorf("runs by replica %v: the work was not shared", perReplica)
	}
	slices.Sort(delays)
	p := func(q float64) time.Duration {
		return delays[min(len(delays)-1, int(q*float64(len(delays))))].Round(time.Millisecond)
	}
	t.Logf("%d tenants × 3 replicas, every-second schedule: %d runs; runs per replica %v; tick→start delay p50 %s, p95 %s, max %s",
		n, total, perReplica, p(0.5), p(0.95), delays[len(delays)-1].Round(time.Millisecond))
}

// assertNoOverlap fails if two runs of one job of one tenant were in progress at the same moment.
func assertNoOverlap(t *testing.T, tenant string, runs []store.Run) {
	t.Helper()
	for i, a := range runs {
		for _, b := range runs[i+1:] {
			if a.Job != b.Job || a.FinishedAt.IsZero() || b.FinishedAt.IsZero() {
				continue
			}
			if a.StartedAt.Before(b.FinishedAt) && b.StartedAt.Before(a.FinishedAt) {
				t.Errorf("tenant %s: runs %s (%s) and %s (%s) of %s overlap", tenant, a.ID, a.Owner, b.ID, b.Owner, a.Job)
			}
		}
	}
}

// runTriggered triggers one run per tenant on the fleet at once and waits for the healthy ones to end; it
// returns each tenant's recorded run.
func runTriggered(t *testing.T, dsn, schema string, tenants []simTenant, wait []string) map[string]store.Run {
	t.Helper()
	var replicas []*replica
	for i := range 3 {
		replicas = append(replicas, startReplica(t, dsn, schema, fmt.Sprintf("%s-replica-%d", schema, i), tenants, ""))
	}
	defer func() {
		var wg sync.WaitGroup
		for _, r := range replicas {
			wg.Go(r.stop)
		}
		wg.Wait()
	}()
	ids := map[string]string{}
	for i, tn := range tenants {
		d := replicas[i%3].daemons[i]
		id, _, err := d.Trigger(t.Context(), server.Trigger{Job: meurichtext.Name, Source: store.TriggerAPI, Reason: "figure"})
		if err != nil {
			t.Fatal(err)
		}
		ids[tn.name] = id
	}
	root := openPG(t, dsn, schema, 4)
	out := map[string]store.Run{}
	for _, name := range wait {
		h, err := root.ForTenant(name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = waitRun(t, h, ids[name], 3*time.Minute)
	}
	return out
}

func durations(runs map[string]store.Run) []time.Duration {
	var ds []time.Duration
	for _, r := range runs {
		ds = append(ds, r.FinishedAt.Sub(r.StartedAt))
	}
	slices.Sort(ds)
	return ds
}

// One tenant throttled hard (5 requests/s) and one whose every call fails (5xx) beside 18 healthy ones:
// each tenant has its own EXO client (concurrency bound, learned budget, retries), so the noisy two do not
// slow the others. It prints the healthy tenants' run times without and with the noisy two (a figure, not
// a wall-clock assertion); it asserts that every healthy run succeeded and the failing tenant's run failed
// on its own.
func TestRiverFleetNoisyTenantsBesideHealthyOnesFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("a figure: 38 simulated tenants, several runs each")
	}
	const meus = 100
	f := sim.Faults{RTT: 10 * time.Millisecond}
	healthy := func(prefix string) ([]simTenant, []string) {
		var ts []simTenant
		var names []string
		for i := range 18 {
			name := fmt.Sprintf("%s%02d", prefix, i)
			ts = append(ts, newSimTenant(t, name, meus, f))
			names = append(names, name)
		}
		return ts, names
	}

	dsnA, schemaA := fleetDB(t)
	alone, names := healthy("a")
	before := runTriggered(t, dsnA, schemaA, alone, names)

	dsnB, schemaB := fleetDB(t)
	beside, namesB := healthy("b")
	throttled := f
	throttled.ThrottleBudget, throttled.ThrottleBurst = 5, 5
	failing := f
	failing.ErrorRate = 1
	noisy := []simTenant{newSimTenant(t, "throttled", meus, throttled), newSimTenant(t, "failing", meus, failing)}
	after := runTriggered(t, dsnB, schemaB, append(noisy, beside...), append(namesB, "failing"))

	for name, r := range before {
		if r.Status != store.RunSucceeded {
			t.Errorf("alone: %s run %s: %s", name, r.Status, r.Error)
		}
	}
	for name, r := range after {
		switch {
		case name == "failing" && r.Status == store.RunSucceeded:
			t.Errorf("the failing tenant's run succeeded")
		case name != "failing" && r.Status != store.RunSucceeded:
			t.Errorf("beside noisy tenants: %s run %s: %s", name, r.Status, r.Error)
		}
	}
	failed := after["failing"]
	delete(after, "failing")
	a, b := durations(before), durations(after)
	med := func(ds []time.Duration) time.Duration { return ds[len(ds)/2].Round(time.Millisecond) }
	p95 := func(ds []time.Duration) time.Duration {
		return ds[min(len(ds)-1, len(ds)*95/100)].Round(time.Millisecond)
	}
	t.Logf("18 healthy tenants × %d MEUs on 3 replicas: run time alone median %s p95 %s; beside a throttled (5/s, %d × 429 so far) "+
		"and a failing tenant (run %s after %s) median %s p95 %s (%.0f%% of alone)",
		meus, med(a), p95(a), noisy[0].srv.FaultStats().Throttled, failed.Status, failed.FinishedAt.Sub(failed.StartedAt).Round(time.Millisecond),
		med(b), p95(b), 100*float64(med(b))/float64(med(a)))
}
