package graph_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/daemon"
	"github.com/exo-worker/worker/internal/graph"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/executor"
	"github.com/exo-worker/worker/jobs/jobtest"
	"github.com/exo-worker/worker/jobs/mailboxlicense"
)

// The mailbox-license job end to end: the job's plan over what the real exo client and the real
// msgraph-sdk-go read from the simulated tenant, and the executor's Graph path (dry-run, exceptions, blast
// radius, journal, membership and licence read-back, revert) through the daemon and a real SQLite store.

var (
	_ executor.GraphWriter        = (*graph.Client)(nil)
	_ executor.GraphLicenseReader = (*graph.Client)(nil)
)

type licenseEnv struct {
	srv   *sim.Server
	gc    *graph.Client
	ex    *executor.Executor
	st    *store.SQLite
	d     *daemon.Daemon
	group sim.Object
	job   *mailboxlicense.Job
}

func newLicenseEnv(t *testing.T) *licenseEnv {
	t.Helper()
	sc := sim.DefaultScenario()
	mix := sim.DefaultLicensing()
	sc.Licensing = &mix
	srv, xc := jobtest.StartSim(t, &sc, sim.Faults{})
	cred, err := srv.Credential()
	if err != nil {
		t.Fatal(err)
	}
	gc, err := graph.New(graph.Options{BaseURL: srv.URL, Credential: cred, HTTPClient: srv.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	g, ok := srv.Tenant().LicensingGroup()
	if !ok {
		t.Fatal("no licensing group")
	}
	job, err := mailboxlicense.New(g.ID)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "worker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ex := &executor.Executor{Client: xc, Graph: gc, Directory: gc, ReadBackDelay: 5 * time.Millisecond, ReadBackRetries: 6}
	d, err := daemon.New(daemon.Options{Store: st, Executor: ex, Jobs: []daemon.JobSpec{{Job: job}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return &licenseEnv{srv: srv, gc: gc, ex: ex, st: st, d: d, group: g, job: job}
}

// memberWrites are the membership writes the tenant saw (POST and DELETE of members/$ref).
func memberWrites(srv *sim.Server) []sim.Entry {
	var out []sim.Entry
	for _, e := range srv.Log.Entries() {
		if e.Service == "graph" && (e.Method == http.MethodPost || e.Method == http.MethodDelete) && strings.Contains(e.Path, "/members/") {
			out = append(out, e)
		}
	}
	return out
}

func ids(objs []sim.Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = strings.ToLower(o.ID)
	}
	slices.Sort(out)
	return out
}

func changeIDs(cs []jobs.Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = strings.ToLower(c.Object.ID)
	}
	slices.Sort(out)
	return out
}

func TestMailboxLicensePlanFindsExactlyTheUnlicensedMigratedMailboxes(t *testing.T) {
	e := newLicenseEnv(t)
	cx := ctx(t)
	truth := e.srv.Tenant().UnlicensedMigratedMailboxes()
	// One more, in the group already but its licence not applied yet: a finding, not a change.
	pending := truth[len(truth)-1]
	e.srv.Tenant().SetLicensingLag(1_000_000)
	if err := e.srv.Tenant().AddMember(e.group.ID, pending.ID); err != nil {
		t.Fatal(err)
	}
	run, err := e.ex.Plan(cx, "run-1", e.job)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	want := ids(truth[:len(truth)-1])
	if got := changeIDs(run.Plan.Changes); !slices.Equal(got, want) {
		t.Fatalf("planned %v\nwant      %v (unlicensed migrated mailboxes, not MEUs, cloud-only or licensed ones)", got, want)
	}
	for _, c := range run.Plan.Changes {
		if c.Graph != jobs.GraphGroupMember || !strings.EqualFold(c.Group.ID, e.group.ID) || c.Group.DisplayName != e.group.DisplayName {
			t.Fatalf("change %s is not an add to the licensing group", c)
		}
	}
	if len(run.Plan.Findings) != 1 || run.Plan.Findings[0].Rule != mailboxlicense.RulePending || !strings.EqualFold(run.Plan.Findings[0].Object.ID, pending.ID) {
		t.Fatalf("findings %+v, want one %s for %s", run.Plan.Findings, mailboxlicense.RulePending, pending.ID)
	}
	migrated := len(e.srv.Tenant().Select(func(o *sim.Object) bool {
		return o.Kind == sim.KindUser && o.IsDirSynced && o.OnPremisesSyncEnabled && o.RecipientTypeDetails == sim.RTDUserMailbox
	}))
	if run.Plan.InScope != migrated {
		t.Fatalf("in scope %d, want every migrated mailbox (%d)", run.Plan.InScope, migrated)
	}
}

func TestMailboxLicenseDryRunBlastRadiusRemediateAndRevert(t *testing.T) {
	e := newLicenseEnv(t)
	cx := ctx(t)
	e.srv.Tenant().SetLicensingLag(3) // the licence follows the membership a few Graph requests later
	before := e.srv.Tenant().Members(e.group.ID)
	truth := e.srv.Tenant().UnlicensedMigratedMailboxes()
	n := len(truth)

	// Dry-run: the plan, and no write.
	_, sum, err := e.d.RunNow(cx, e.job, executor.Options{Mode: jobs.ModeDryRun}, "test", store.TriggerCLI)
	if err != nil || sum.Planned != n {
		t.Fatalf("dry-run: %v, planned %v, want %d", err, sum, n)
	}
	if w := memberWrites(e.srv); len(w) != 0 {
		t.Fatalf("dry-run sent %d membership writes", len(w))
	}

	// Blast radius: one change too many stops the run before its first write.
	_, _, err = e.d.RunNow(cx, e.job, executor.Options{Mode: jobs.ModeRemediate, MaxChanges: n - 1}, "test", store.TriggerCLI)
	var be *executor.BlastRadiusError
	if !errors.As(err, &be) || len(memberWrites(e.srv)) != 0 {
		t.Fatalf("over the blast radius: %v, %d writes; want a BlastRadiusError and none", err, len(memberWrites(e.srv)))
	}

	// Remediate with one mailbox excepted.
	excepted := truth[0]
	e.ex.Exceptions = []executor.Exception{{Object: excepted.PrimarySmtpAddress, Jobs: []string{mailboxlicense.Name}, Owner: "it@contoso.com", Reason: "test"}}
	rec, sum, err := e.d.RunNow(cx, e.job, executor.Options{Mode: jobs.ModeRemediate, MaxChanges: n}, "test", store.TriggerCLI)
	if err != nil {
		t.Fatalf("remediate: %v", err)
	}
	if sum.Verified != n-1 || sum.Failed != 0 || sum.ExitCode() != executor.ExitOK {
		t.Fatalf("remediate verified %d failed %d (exit %d), want %d verified: %+v", sum.Verified, sum.Failed, sum.ExitCode(), n-1, sum.Changes)
	}
	if w := memberWrites(e.srv); len(w) != n-1 {
		t.Fatalf("%d membership writes, want %d (the excepted mailbox untouched)", len(w), n-1)
	}
	if e.srv.Tenant().IsMember(e.group.ID, excepted.ID) {
		t.Fatal("the excepted mailbox was added")
	}
	for _, cr := range sum.Changes {
		if strings.EqualFold(cr.Object.ID, excepted.ID) {
			continue
		}
		if !strings.Contains(cr.Note, "licence reached the member") || cr.RequestID == "" {
			t.Errorf("%s: note %q, request-id %q; want the licence read back and the write's request-id", cr.Object, cr.Note, cr.RequestID)
		}
		if o, _ := e.srv.Tenant().Object(cr.Object.ID); !o.HasMailboxPlan() {
			t.Errorf("%s holds no Exchange plan after the run", cr.Object)
		}
	}
	entries, err := e.st.Journal(cx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	verified := 0
	for _, en := range entries {
		if en.State == store.ChangeStateVerified {
			verified++
		}
	}
	if verified != n-1 {
		t.Fatalf("journal holds %d verified entries, want %d: %+v", verified, n-1, entries)
	}

	// Revert removes exactly the memberships the run added: the group's earlier members stay.
	writes := len(memberWrites(e.srv))
	rep, err := e.d.Revert(cx, rec.ID, "test", false)
	if err != nil {
		t.Fatalf("revert: %v", err)
	}
	if rep.Summary.Verified != n-1 {
		t.Fatalf("revert verified %d, want %d: %+v %+v", rep.Summary.Verified, n-1, rep.Summary.Changes, rep.Skipped)
	}
	for _, w := range memberWrites(e.srv)[writes:] {
		if w.Method != http.MethodDelete {
			t.Fatalf("revert sent %s %s", w.Method, w.Path)
		}
	}
	if got := e.srv.Tenant().Members(e.group.ID); !slices.Equal(got, before) {
		t.Fatalf("members after revert %v, want the members before the run %v", got, before)
	}
}

func TestMailboxLicenseAlreadyMemberIsNotAWriteToRevert(t *testing.T) {
	e := newLicenseEnv(t)
	cx := ctx(t)
	run, err := e.ex.Plan(cx, "run-1", e.job)
	if err != nil || len(run.Plan.Changes) < 2 {
		t.Fatalf("plan: %v (%d changes)", err, len(run.Plan.Changes))
	}
	// Someone adds one of them between the plan and the write.
	raced := run.Plan.Changes[0].Object.ID
	if err := e.srv.Tenant().AddMember(e.group.ID, raced); err != nil {
		t.Fatal(err)
	}
	ex := &executor.Executor{Client: e.ex.Client, Graph: e.gc, Directory: e.gc, ReadBackDelay: time.Millisecond} // no journal: no run record
	sum, err := ex.Apply(cx, run, executor.Options{Mode: jobs.ModeRemediate, MaxChanges: 100, MaxChangePercent: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, cr := range sum.Changes {
		want := executor.StatusVerified
		if strings.EqualFold(cr.Object.ID, raced) {
			want = executor.StatusUnchanged
		}
		if cr.Status != want {
			t.Errorf("%s: %s (%s), want %s", cr.Object.ID, cr.Status, cr.Error, want)
		}
	}
	if sum.Failed != 0 || sum.ExitCode() != executor.ExitOK {
		t.Fatalf("an already-member counted as a failure: %+v", sum)
	}
}

func TestMailboxLicenseUndeclaredGroupRefusedBeforeAnyRequest(t *testing.T) {
	e := newLicenseEnv(t)
	cx := ctx(t)
	run, err := e.ex.Plan(cx, "run-1", e.job)
	if err != nil || len(run.Plan.Changes) == 0 {
		t.Fatalf("plan: %v", err)
	}
	// A plan that adds to another group than the one the job declares.
	other := e.srv.Tenant().Select(func(o *sim.Object) bool { return o.Kind == sim.KindGroup && o.ID != e.group.ID })[0]
	c := run.Plan.Changes[0]
	run.Plan.Changes = []jobs.Change{jobs.AddToGroup(c.Object, jobs.ObjectRef{ID: other.ID})}
	before := len(e.srv.Log.Entries())
	_, err = e.ex.Apply(cx, run, executor.Options{Mode: jobs.ModeRemediate, MaxChanges: 100, MaxChangePercent: 100})
	var ue *executor.UndeclaredChangeError
	if !errors.As(err, &ue) {
		t.Fatalf("apply: %v, want an UndeclaredChangeError", err)
	}
	if n := len(e.srv.Log.Entries()) - before; n != 0 || e.srv.Tenant().IsMember(other.ID, c.Object.ID) {
		t.Fatalf("%d requests reached the tenant after the refusal", n)
	}
}

func TestMailboxLicenseRevertLeavesAnAlreadyMemberAnswerAlone(t *testing.T) {
	e := newLicenseEnv(t)
	cx := ctx(t)
	truth := e.srv.Tenant().UnlicensedMigratedMailboxes()
	// Someone else adds one of the planned users while the run's writes are under way: the run's own add of
	// that user gets the service's "already a member" answer.
	raced := strings.ToLower(truth[0].ID)
	var once sync.Once
	e.srv.InjectGraphFault(sim.GraphFault{Status: 500, Times: 1 << 30, Match: func(r sim.GraphRequest) bool {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/members/$ref") {
			once.Do(func() { _ = e.srv.Tenant().AddMember(e.group.ID, raced) })
		}
		return false // never answers with the fault itself
	}})
	rec, sum, err := e.d.RunNow(cx, e.job, executor.Options{Mode: jobs.ModeRemediate, MaxChanges: 100, MaxChangePercent: 100}, "test", store.TriggerCLI)
	if err != nil {
		t.Fatal(err)
	}
	unchanged := 0
	for _, cr := range sum.Changes {
		if cr.Status == executor.StatusUnchanged {
			unchanged++
			if !strings.EqualFold(cr.Object.ID, raced) || !strings.Contains(cr.Error, "nothing written") {
				t.Fatalf("%s recorded unchanged (%s), want only %s", cr.Object.ID, cr.Error, raced)
			}
		}
	}
	if unchanged != 1 || sum.Failed != 0 || sum.Verified != len(truth)-1 {
		t.Fatalf("unchanged %d, failed %d, verified %d: %+v", unchanged, sum.Failed, sum.Verified, sum.Changes)
	}
	writes := len(memberWrites(e.srv))
	rep, err := e.d.Revert(cx, rec.ID, "test", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range memberWrites(e.srv)[writes:] {
		if strings.Contains(strings.ToLower(w.Path), raced) {
			t.Fatalf("revert removed %s, whose add the service answered as already done", raced)
		}
	}
	if !e.srv.Tenant().IsMember(e.group.ID, raced) {
		t.Fatal("the membership someone else made is gone after the revert")
	}
	if rep.Summary.Verified != len(truth)-1 {
		t.Fatalf("revert verified %d, want %d", rep.Summary.Verified, len(truth)-1)
	}
}

// BenchmarkMailboxLicenseRemediate adds 200 unlicensed migrated mailboxes to the licensing group over a
// 20 ms round trip, with the membership and licence read-back, and prints the figures.
func BenchmarkMailboxLicenseRemediate(b *testing.B) {
	for range b.N {
		sc := sim.DefaultScenario()
		sc.Licensing = &sim.LicensingMix{Unlicensed: 200}
		srv, xc := jobtest.StartSim(b, &sc, sim.Faults{RTT: 20 * time.Millisecond})
		cred, _ := srv.Credential()
		gc, err := graph.New(graph.Options{BaseURL: srv.URL, Credential: cred, HTTPClient: srv.HTTPClient()})
		if err != nil {
			b.Fatal(err)
		}
		g, _ := srv.Tenant().LicensingGroup()
		job, _ := mailboxlicense.New(g.ID)
		ex := &executor.Executor{Client: xc, Graph: gc, Directory: gc, ReadBackDelay: 10 * time.Millisecond}
		run, err := ex.Plan(context.Background(), "run-1", job)
		if err != nil {
			b.Fatal(err)
		}
		before := len(srv.Log.Entries())
		start := time.Now()
		sum, err := ex.Apply(context.Background(), run, executor.Options{Mode: jobs.ModeRemediate, MaxChanges: 1000, MaxChangePercent: 100})
		took := time.Since(start)
		if err != nil || sum.Verified != 200 {
			b.Fatalf("apply: %v, verified %d", err, sum.Verified)
		}
		reqs := len(srv.Log.Entries()) - before
		b.ReportMetric(float64(200)/took.Seconds(), "changes/s")
		b.ReportMetric(float64(reqs)/200, "requests/change")
		b.Logf("200 memberships added and read back (membership + licence) in %s over a 20 ms RTT: %d Graph requests", took.Round(time.Millisecond), reqs)
	}
}
