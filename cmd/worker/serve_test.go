package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/eventually"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/internal/store"
)

// The tests in this file run `worker serve` as a real child process (built once in TestMain) against the
// simulated tenant, in-process (--sim) or as its own `worker sim serve` process.

type api struct {
	t     *testing.T
	base  string
	token string
	hc    *http.Client
}

func newAPI(t *testing.T, servingLine, token string) *api {
	t.Helper()
	// "serving http://127.0.0.1:PORT (status page, API, /metrics); owner ..."
	f := strings.Fields(servingLine)
	if len(f) < 2 || !strings.HasPrefix(f[1], "http://") {
		t.Fatalf("unexpected serving line %q", servingLine)
	}
	return &api{t: t, base: f[1], token: token, hc: &http.Client{Timeout: 10 * time.Second}}
}

// do sends a request; auth "" sends none, "bearer" the token, "basic" the token as the basic password.
func (a *api) do(method, path, auth, contentType string, body []byte) (int, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	switch auth {
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+a.token)
	case "basic":
		req.SetBasicAuth("admin", a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (a *api) runs() []store.Run {
	a.t.Helper()
	code, b := a.do("GET", "/api/v1/runs?limit=1000", "bearer", "", nil)
	if code != http.StatusOK {
		a.t.Fatalf("GET /api/v1/runs: %d %s", code, b)
	}
	var resp struct {
		Runs []store.Run `json:"runs"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		a.t.Fatalf("decode runs: %v", err)
	}
	return resp.Runs
}

// waitRunAPI polls GET /api/v1/runs/{id} until the run has ended (within documents the expected scale; the
// shared poller's watchdog is the only limit).
func (a *api) waitRun(id string, within time.Duration) store.Run {
	a.t.Helper()
	_ = within
	return eventually.Value(a.t, "run "+id+" to end", func() (store.Run, bool, string) {
		code, b := a.do("GET", "/api/v1/runs/"+id, "bearer", "", nil)
		if code == http.StatusNotFound {
			return store.Run{}, false, "404"
		}
		if code != http.StatusOK {
			a.t.Fatalf("GET run %s: %d %s", id, code, b)
		}
		var r store.Run
		if err := json.Unmarshal(b, &r); err != nil {
			a.t.Fatal(err)
		}
		return r, r.Status != store.RunRunning && r.Status != store.RunQueued, string(r.Status)
	})
}

func (a *api) metric(name string, labels ...string) float64 {
	a.t.Helper()
	code, b := a.do("GET", "/metrics", "", "", nil)
	if code != http.StatusOK {
		a.t.Fatalf("GET /metrics: %d", code)
	}
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v); err == nil {
			sum += v
		}
	}
	return sum
}

// scheduleAt is a CRON_TZ=UTC spec with a seconds field that fires at the given instants (same day; ticks
// of the cross product of the fields other than these lie a minute or more later, after the test).
func scheduleAt(ts ...time.Time) string {
	var secs, mins, hours []string
	add := func(list *[]string, v int) {
		if s := fmt.Sprint(v); !slices.Contains(*list, s) {
			*list = append(*list, s)
		}
	}
	for _, t := range ts {
		t = t.UTC()
		add(&secs, t.Second())
		add(&mins, t.Minute())
		add(&hours, t.Hour())
	}
	return fmt.Sprintf("CRON_TZ=UTC %s %s %s * * *", strings.Join(secs, ","), strings.Join(mins, ","), strings.Join(hours, ","))
}

func TestServeSimScheduleWebhookAuthAndMetrics(t *testing.T) {
	dir := t.TempDir()
	first := time.Now().Add(4 * time.Second).Truncate(time.Second)
	second := first.Add(2 * time.Second)
	srv := startWorker(t, "serve", "serve", "--sim", "--sim-dir", dir, "--listen", "127.0.0.1:0",
		"--schedule", "meu-richtext="+scheduleAt(first, second))
	cfgPath := strings.TrimPrefix(srv.waitLine("configuration: ", 30*time.Second), "configuration: ")
	tokenPath := strings.TrimPrefix(srv.waitLine("server token file: ", time.Second), "server token file: ")
	tok, err := os.ReadFile(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, srv.waitLine("serving http://", 30*time.Second), strings.TrimSpace(string(tok)))
	if logs, _ := os.ReadFile(srv.log); bytes.Contains(logs, bytes.TrimSpace(tok)) {
		t.Fatal("the server token appears in the log")
	}
	client := tenantClient(t, cfgPath)
	initial := inScope(t, client)

	// Unauthenticated requests: 401, and nothing starts.
	am := func(ids ...string) []byte {
		b, _ := json.Marshal(map[string]any{"version": "4", "status": "firing", "receiver": "worker",
			"alerts": []map[string]any{{"status": "firing", "labels": map[string]string{
				"alertname": "MEURichTextDrift", "object_ids": strings.Join(ids, ",")}}}})
		return b
	}
	var someID string
	for id := range initial {
		someID = id
		break
	}
	unauth := []struct {
		method, path, ctype string
		body                []byte
	}{
		{"POST", "/api/v1/runs", "application/json", []byte(`{"job":"meu-richtext"}`)},
		{"POST", "/api/v1/hooks/alertmanager", "application/json", am(someID)},
		{"GET", "/api/v1/findings", "", nil},
		{"GET", "/api/v1/runs", "", nil},
		{"GET", "/", "", nil},
	}
	for _, u := range unauth {
		if code, _ := a.do(u.method, u.path, "", u.ctype, u.body); code != http.StatusUnauthorized {
			t.Errorf("unauthenticated %s %s: %d, want 401", u.method, u.path, code)
		}
	}
	wrong := *a
	wrong.token = strings.Repeat("x", 32)
	if code, _ := wrong.do("POST", "/api/v1/runs", "bearer", "application/json", []byte(`{"job":"meu-richtext"}`)); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", code)
	}
	if code, _ := a.do("GET", "/", "basic", "", nil); code != http.StatusOK {
		t.Errorf("status page with the token as basic password: %d, want 200", code)
	}
	// Oversize body: 413, nothing starts.
	big := append([]byte(`{"job":"meu-richtext","reason":"`), bytes.Repeat([]byte("a"), 2<<20)...)
	big = append(big, `"}`...)
	if code, _ := a.do("POST", "/api/v1/runs", "bearer", "application/json", big); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize body: %d, want 413", code)
	}
	for _, r := range a.runs() {
		if r.Trigger != store.TriggerSchedule {
			t.Fatalf("a refused request started run %s (%s)", r.ID, r.Trigger)
		}
	}

	// The schedule fires twice.
	deadline := time.Now().Add(time.Until(second) + 30*time.Second)
	var sched []store.Run
	for {
		sched = sched[:0]
		for _, r := range a.runs() {
			if r.Trigger == store.TriggerSchedule && r.Status != store.RunRunning {
				sched = append(sched, r)
			}
		}
		if len(sched) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d finished scheduled runs by %s, want 2", len(sched), deadline.Format(time.TimeOnly))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every MEU changes in the first run: UsePreferMessageFormat starts $false on all of them
	// (prefer_message_format defaults to true), and UseMapiRichTextFormat on those not at Never.
	changedFirst := len(initial)
	for _, r := range sched {
		if r.Status != store.RunSucceeded {
			t.Errorf("scheduled run %s: %s %s", r.ID, r.Status, r.Error)
		}
	}
	if sched[1].Counts.Verified != changedFirst || sched[0].Counts.Planned != 0 { // newest first
		t.Errorf("scheduled runs verified %d then planned %d; want %d then 0", sched[1].Counts.Verified, sched[0].Counts.Planned, changedFirst)
	}

	// Someone sets three objects back; an alert names two of them: exactly those two are rerun.
	var ids []string
	for id := range initial {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	named, unnamed := ids[:2], ids[2]
	for _, id := range ids[:3] {
		setRichText(t, client, id, "Always")
	}
	code, b := a.do("POST", "/api/v1/hooks/alertmanager", "bearer", "application/json", am(named...))
	if code != http.StatusAccepted {
		t.Fatalf("alertmanager webhook: %d %s", code, b)
	}
	var hook struct {
		Triggered []struct {
			RunID   string   `json:"run_id"`
			Objects []string `json:"objects"`
		} `json:"triggered"`
	}
	if err := json.Unmarshal(b, &hook); err != nil || len(hook.Triggered) != 1 {
		t.Fatalf("webhook answer %s: %v", b, err)
	}
	r := a.waitRun(hook.Triggered[0].RunID, 30*time.Second)
	got := slices.Clone(r.Objects)
	slices.Sort(got)
	if r.Trigger != store.TriggerAlert || r.Status != store.RunSucceeded || !slices.Equal(got, named) ||
		r.Counts.Planned != 2 || r.Counts.Verified != 2 {
		t.Fatalf("alert run = %s %s objects %v counts %+v, want succeeded alert run on %v with 2 verified", r.Trigger, r.Status, r.Objects, r.Counts, named)
	}
	now := inScope(t, client)
	for _, id := range named {
		if now[id] != "Never" {
			t.Errorf("named %s holds %s, want Never", id, now[id])
		}
	}
	if now[unnamed] != "Always" {
		t.Errorf("%s, not named by the alert, holds %s: the rerun went beyond the objects named", unnamed, now[unnamed])
	}

	// /metrics shows what happened.
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"exo_worker_runs_total", []string{`job="meu-richtext"`, `status="succeeded"`}, 3},
		{"exo_worker_changes_total", []string{`job="meu-richtext"`, `status="verified"`}, float64(changedFirst + 2)},
		{"exo_worker_triggers_total", []string{`job="meu-richtext"`, `status="started"`}, 1},
		{"exo_worker_http_unauthorized_total", nil, float64(len(unauth) + 1)},
		{"exo_worker_last_success_timestamp_seconds", []string{`job="meu-richtext"`}, -1},
		{"exo_worker_api_requests_total", []string{`service="exo"`, `status="200"`}, -1},
	}
	for _, c := range checks {
		got := a.metric(c.name, c.labels...)
		if (c.want >= 0 && got != c.want) || (c.want < 0 && got <= 0) {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// SIGTERM: exit 0.
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := srv.wait(15 * time.Second); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM, want 0", code)
	}
}

// daemonUnderTest is a `worker sim serve` process and a config for `worker serve` against it.
type daemonUnderTest struct {
	cfg   string
	db    string
	sim   *proc
	truth map[string]string // in-scope object id → initial UseMapiRichTextFormat
}

func newDaemonUnderTest(t *testing.T, meus int, rtt time.Duration) *daemonUnderTest {
	t.Helper()
	args := []string{"--meus", fmt.Sprint(meus)}
	if rtt > 0 {
		args = append(args, "--rtt", rtt.String())
	}
	p, cfg := simProcess(t, args...)
	addServerSection(t, cfg)
	// The scenario is deterministic: the same seed and sizes give the same ids and initial values.
	sc := sim.DefaultScenario()
	sc.DirSyncedMEUs = meus
	truth := map[string]string{}
	for _, o := range sim.NewTenant(sc).InScopeMEUs() {
		truth[strings.ToLower(o.ID)] = o.UseMapiRichTextFormat
	}
	return &daemonUnderTest{cfg: cfg, db: filepath.Join(filepath.Dir(cfg), "worker.db"), sim: p, truth: truth}
}

func (d *daemonUnderTest) serve(t *testing.T, name string, extra ...string) (*proc, *api) {
	t.Helper()
	p := startWorker(t, name, append([]string{"serve", "--config", d.cfg, "--listen", "127.0.0.1:0"}, extra...)...)
	return p, newAPI(t, p.waitLine("serving http://", 30*time.Second), testToken)
}

func (a *api) trigger(job string) string {
	a.t.Helper()
	code, b := a.do("POST", "/api/v1/runs", "bearer", "application/json", []byte(`{"job":"`+job+`","reason":"test"}`))
	if code != http.StatusAccepted {
		a.t.Fatalf("POST /api/v1/runs: %d %s", code, b)
	}
	var res struct {
		RunID string `json:"run_id"`
	}
	if err := json.Unmarshal(b, &res); err != nil || res.RunID == "" {
		a.t.Fatalf("trigger answer %s: %v", b, err)
	}
	return res.RunID
}

// openDB opens the daemon's database from the test process (WAL lets it read beside the daemon).
func openDB(t *testing.T, path string) *store.SQLite {
	t.Helper()
	st, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// waitJournal waits until the run has journalled at least n changes.
func waitJournal(t *testing.T, st *store.SQLite, runID string, n int, within time.Duration) []store.JournalEntry {
	t.Helper()
	_ = within
	return eventually.Value(t, fmt.Sprintf("run %s to journal %d changes", runID, n), func() ([]store.JournalEntry, bool, string) {
		es, err := st.Journal(context.Background(), runID)
		if err != nil {
			t.Fatal(err)
		}
		return es, len(es) >= n, fmt.Sprintf("%d journalled", len(es))
	})
}

func TestServeSIGTERMDuringRunExitsZeroAndRecordsInterrupted(t *testing.T) {
	d := newDaemonUnderTest(t, 400, 100*time.Millisecond)
	const grace = 5 * time.Second
	p, a := d.serve(t, "serve", "--chunk-size", "10", "--grace", grace.String())
	st := openDB(t, d.db)
	id := a.trigger("meu-richtext")
	waitJournal(t, st, id, 30, 60*time.Second)
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := p.wait(grace + 5*time.Second)
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if took > grace+time.Second {
		t.Errorf("exit took %s, grace is %s", took, grace)
	}
	r, err := st.GetRun(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != store.RunInterrupted {
		t.Fatalf("run status %s (%s), want interrupted", r.Status, r.Error)
	}
	es, _ := st.Journal(context.Background(), id)
	pending := 0
	for _, e := range es {
		if e.State == store.ChangeStatePending {
			pending++
		}
	}
	if pending > 0 || r.Counts.Planned <= len(es) {
		t.Errorf("after SIGTERM: %d pending entries of %d, plan %d: want none pending and the plan cut short", pending, len(es), r.Counts.Planned)
	}
	t.Logf("SIGTERM to exit: %s; %d of %d planned changes journalled", took, len(es), r.Counts.Planned)
}

func TestServeSIGKILLMidRunIsRecoveredAtRestart(t *testing.T) {
	d := newDaemonUnderTest(t, 400, 100*time.Millisecond)
	lease := []string{"--chunk-size", "10", "--lease-ttl", "2s"}
	p, a := d.serve(t, "serve-1", lease...)
	st := openDB(t, d.db)
	client := tenantClient(t, d.cfg)
	killed := a.trigger("meu-richtext")
	waitJournal(t, st, killed, 30, 60*time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(10 * time.Second)
	if r, _ := st.GetRun(context.Background(), killed); r.Status != store.RunRunning {
		t.Fatalf("killed run is %s before any restart; the test would prove nothing", r.Status)
	}
	// Every object whose value changed must have been journalled first: read the tenant as the kill left it.
	journalled := map[string]bool{}
	es, _ := st.Journal(context.Background(), killed)
	for _, e := range es {
		journalled[strings.ToLower(e.ObjectID)] = true
	}
	for id, v := range inScope(t, client) {
		if !strings.EqualFold(v, d.truth[id]) && !journalled[id] {
			t.Errorf("object %s changed (%s → %s) without a journal entry", id, d.truth[id], v)
		}
	}

	_, a2 := d.serve(t, "serve-2", lease...)
	// The sweep marks the dead run interrupted once its lease expires, and reconciles its entries.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := st.GetRun(context.Background(), killed)
		if err != nil {
			t.Fatal(err)
		}
		pending, _ := st.JournalPending(context.Background(), killed)
		if r.Status == store.RunInterrupted && len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart: killed run %s with %d pending entries; want interrupted and none pending", r.Status, len(pending))
		}
		time.Sleep(100 * time.Millisecond)
	}
	es, _ = st.Journal(context.Background(), killed)
	reconciled := 0
	for _, e := range es {
		switch e.State {
		case store.ChangeStateVerified, store.ChangeStateApplied, store.ChangeStateFailed:
		case store.ChangeStateReconciled:
			reconciled++
		default:
			t.Errorf("entry %s of the killed run: %s", e.ObjectID, e.State)
		}
	}
	next := a2.trigger("meu-richtext")
	if r := a2.waitRun(next, 90*time.Second); r.Status != store.RunSucceeded {
		t.Fatalf("run after restart: %s %s", r.Status, r.Error)
	}
	for id, v := range inScope(t, client) {
		if v != "Never" {
			t.Errorf("after the next run, %s holds %s, want Never", id, v)
		}
	}
	t.Logf("killed run: %d entries journalled, %d reconciled at restart", len(es), reconciled)
}

func TestTwoServeProcessesRunEachTickOnce(t *testing.T) {
	d := newDaemonUnderTest(t, 120, 0)
	every := "meu-richtext=* * * * * *"
	pa, aa := d.serve(t, "serve-a", "--schedule", every)
	pb, ab := d.serve(t, "serve-b", "--schedule", every)
	st := openDB(t, d.db)
	deadline := time.Now().Add(60 * time.Second)
	for {
		runs, err := st.ListRuns(context.Background(), store.RunFilter{Status: store.RunSucceeded})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs in 60s of an every-second schedule", len(runs))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Both daemons take part: every tick each either ran the job or counted the tick as skipped (claimed by
	// the other, or the job still running).
	skipped := map[string]float64{}
	for name, a := range map[string]*api{"serve-a": aa, "serve-b": ab} {
		skipped[name] = a.metric("exo_worker_schedule_skipped_total")
		ran := a.metric("exo_worker_runs_total")
		if skipped[name]+ran < 3 {
			t.Errorf("%s ran %v and skipped %v ticks: it did not take part in the schedule", name, ran, skipped[name])
		}
	}
	for _, p := range []*proc{pa, pb} {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range []*proc{pa, pb} {
		if code := p.wait(15 * time.Second); code != 0 {
			t.Errorf("%s exited %d", p.name, code)
		}
	}
	runs, err := st.ListRuns(context.Background(), store.RunFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	perTick := map[string][]string{}
	owners := map[string]bool{}
	for _, r := range runs {
		perTick[r.Reason] = append(perTick[r.Reason], r.Owner)
		owners[r.Owner] = true
	}
	for tick, os := range perTick {
		if len(os) > 1 {
			t.Errorf("%s ran %d times (%v), want once", tick, len(os), os)
		}
	}
	t.Logf("%d runs over %d ticks by %d daemons; skipped ticks %v", len(runs), len(perTick), len(owners), skipped)
}

func TestRevertCommandRestoresAllButTheObjectChangedSince(t *testing.T) {
	d := newDaemonUnderTest(t, 60, 0)
	p, a := d.serve(t, "serve")
	client := tenantClient(t, d.cfg)
	id := a.trigger("meu-richtext")
	if r := a.waitRun(id, 60*time.Second); r.Status != store.RunSucceeded {
		t.Fatalf("remediate run: %s %s", r.Status, r.Error)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(15 * time.Second)

	var changed []string
	for oid, v := range d.truth {
		if !strings.EqualFold(v, "Never") {
			changed = append(changed, oid)
		}
	}
	slices.Sort(changed)
	touched := changed[0]
	// Every in-scope MEU was written (UsePreferMessageFormat, with UseMapiRichTextFormat where it was not
	// Never): the revert restores all but the touched one.
	written := len(d.truth)
	other := "Always"
	if strings.EqualFold(d.truth[touched], "Always") {
		other = "UseDefaultSettings"
	}
	setRichText(t, client, touched, other)

	type doc struct {
		RunID   string `json:"run_id"`
		Status  string `json:"status"`
		Changes []struct {
			Object, Status string
		} `json:"changes"`
		Skipped []struct {
			Object, Reason string
		} `json:"skipped"`
	}
	out, code := runWorker(t, "revert", id, "--config", d.cfg, "--dry-run", "--output", "json")
	var dry doc
	if code != 0 || json.Unmarshal([]byte(out), &dry) != nil || len(dry.Changes) != written-1 || dry.RunID != "" {
		t.Fatalf("revert --dry-run: exit %d, %d changes (want %d), run %q\n%s", code, len(dry.Changes), written-1, dry.RunID, out)
	}
	if now := inScope(t, client); now[changed[1]] != "Never" {
		t.Fatal("revert --dry-run wrote to the tenant")
	}
	out, code = runWorker(t, "revert", id, "--config", d.cfg, "--output", "json")
	var rev doc
	if err := json.Unmarshal([]byte(out), &rev); code != 0 || err != nil {
		t.Fatalf("revert: exit %d, %v\n%s", code, err, out)
	}
	if rev.Status != "succeeded" || len(rev.Skipped) != 1 || !strings.EqualFold(rev.Skipped[0].Object, touched) ||
		!strings.Contains(rev.Skipped[0].Reason, "changed since") {
		t.Fatalf("revert = %s, skipped %+v; want succeeded, skipping only %s as changed since", rev.Status, rev.Skipped, touched)
	}
	for _, c := range rev.Changes {
		if c.Status != "verified" {
			t.Errorf("revert change %s: %s", c.Object, c.Status)
		}
	}
	now := inScope(t, client)
	for oid, v := range d.truth {
		want := v
		if oid == touched {
			want = other
		}
		if !strings.EqualFold(now[oid], want) {
			t.Errorf("%s holds %s after revert, want %s", oid, now[oid], want)
		}
	}
	// The revert is in the history as a run of its own, and `worker show` lists its journal.
	out, code = runWorker(t, "history", "--config", d.cfg, "--output", "json")
	var hist struct {
		Runs []store.Run `json:"runs"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &hist) != nil || len(hist.Runs) != 2 || hist.Runs[0].Mode != "revert" || hist.Runs[0].ID != rev.RunID {
		t.Fatalf("history: exit %d\n%s", code, out)
	}
	out, code = runWorker(t, "show", rev.RunID, "--config", d.cfg)
	if code != 0 || !strings.Contains(out, "mode revert") || !strings.Contains(out, "not reverted: changed since") ||
		!strings.Contains(out, fmt.Sprintf("journal: %d entries", written)) {
		t.Fatalf("show: exit %d\n%s", code, out)
	}
	if _, code := runWorker(t, "show", "NOSUCHRUN", "--config", d.cfg); code != 1 {
		t.Errorf("show of an unknown run: exit %d, want 1", code)
	}
}
