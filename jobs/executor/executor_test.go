package executor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/executor"
	"github.com/exo-worker/worker/jobs/jobtest"
	"github.com/exo-worker/worker/jobs/meurichtext"
)

// These tests run the real executor with the real exo client and a real azidentity credential against the
// simulated tenant over HTTPS: nothing of what the worker depends on is faked.

func startSim(t *testing.T, sc *sim.Scenario, f sim.Faults) (*sim.Server, *exo.Client) {
	t.Helper()
	return jobtest.StartSim(t, sc, f)
}

// richText is job 1 writing UseMapiRichTextFormat only (prefer_message_format: false): the executor's
// tests count the objects whose UseMapiRichTextFormat differs (the scenario's 100 of 120).
func richText(t *testing.T) *meurichtext.Job {
	t.Helper()
	j, err := meurichtext.New("")
	if err != nil {
		t.Fatal(err)
	}
	j.PreferMessageFormat = false
	return j
}

func isSet(e sim.Entry) bool { return strings.HasPrefix(e.Cmdlet, "Set-") }

// wantChanges counts the in-scope MEUs that do not hold target yet, from the simulator's ground truth.
func wantChanges(srv *sim.Server, target string) int {
	n := 0
	for _, o := range srv.Tenant().InScopeMEUs() {
		if !strings.EqualFold(o.UseMapiRichTextFormat, target) {
			n++
		}
	}
	return n
}

func TestRemediateFixesEveryInScopeMEUAndSecondRunPlansNothing(t *testing.T) {
	srv, client := startSim(t, nil, sim.Faults{})
	want := wantChanges(srv, "Never")
	if want == 0 {
		t.Fatal("default scenario has no MEU to fix; the test would prove nothing")
	}
	ex := &executor.Executor{Client: client}
	sum, err := ex.Run(context.Background(), "run-1", richText(t), executor.Options{Mode: jobs.ModeRemediate})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if sum.Planned != want || sum.Applied != want || sum.Verified != want || sum.Failed != 0 {
		t.Fatalf("summary planned=%d applied=%d verified=%d failed=%d, want %d/%d/%d/0",
			sum.Planned, sum.Applied, sum.Verified, sum.Failed, want, want, want)
	}
	if sum.InScope != len(srv.Tenant().InScopeMEUs()) {
		t.Errorf("in scope = %d, tenant has %d dir-synced MailUsers", sum.InScope, len(srv.Tenant().InScopeMEUs()))
	}
	for _, o := range srv.Tenant().InScopeMEUs() {
		if o.UseMapiRichTextFormat != "Never" {
			t.Errorf("%s (%s) still holds %s", o.DisplayName, o.ID, o.UseMapiRichTextFormat)
		}
	}
	if got := sum.ExitCode(); got != executor.ExitOK {
		t.Errorf("exit code %d, want 0", got)
	}

	again, err := ex.Run(context.Background(), "run-1", richText(t), executor.Options{Mode: jobs.ModeRemediate})
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if again.Planned != 0 || again.Applied != 0 {
		t.Errorf("second run planned %d, applied %d; want 0 and 0", again.Planned, again.Applied)
	}
}

func TestDryRunPrintsPlanAndWritesNothing(t *testing.T) {
	srv, client := startSim(t, nil, sim.Faults{})
	want := wantChanges(srv, "Never")
	before := map[string]string{}
	for _, o := range srv.Tenant().InScopeMEUs() {
		before[o.ID] = o.UseMapiRichTextFormat
	}
	sum, err := (&executor.Executor{Client: client}).Run(context.Background(), "run-1", richText(t), executor.Options{Mode: jobs.ModeDryRun})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Planned != want || sum.Applied != 0 {
		t.Fatalf("planned %d applied %d, want %d and 0", sum.Planned, sum.Applied, want)
	}
	for _, c := range sum.Changes {
		if c.Status != executor.StatusPlanned || !c.Params[0].To.Equal(jobs.Text("Never")) || c.Params[0].From.AsText() != before[c.Object.ID] {
			t.Errorf("change %+v: want planned %s → Never", c, before[c.Object.ID])
		}
	}
	if n := srv.Log.Count(isSet); n != 0 {
		t.Errorf("dry-run sent %d Set-* calls, want 0", n)
	}
}

func TestOnlyDirSyncedMailUsersAreWritten(t *testing.T) {
	srv, client := startSim(t, nil, sim.Faults{})
	if _, err := (&executor.Executor{Client: client}).Run(context.Background(), "run-1", richText(t), executor.Options{Mode: jobs.ModeRemediate}); err != nil {
		t.Fatal(err)
	}
	inScope := map[string]bool{}
	for _, o := range srv.Tenant().InScopeMEUs() {
		inScope[strings.ToLower(o.ID)] = true
	}
	sets := 0
	for _, e := range srv.Log.Entries() {
		if !isSet(e) {
			continue
		}
		sets++
		if !inScope[strings.ToLower(e.Identity)] {
			o, _ := srv.Tenant().Object(e.Identity)
			t.Errorf("wrote %s to %q (%s, dir-synced=%v): out of scope", e.Cmdlet, e.Identity, o.RecipientTypeDetails, o.IsDirSynced)
		}
	}
	if sets == 0 {
		t.Fatal("no Set-* call in the log: the assertion above proved nothing")
	}
	// The out-of-scope kinds exist in the scenario, so "never written" means something.
	kinds := map[string]int{}
	for _, o := range srv.Tenant().Objects() {
		switch {
		case o.RecipientTypeDetails == sim.RTDGuestMailUser:
			kinds["guest"]++
		case o.RecipientTypeDetails == sim.RTDMailUser && !o.IsDirSynced:
			kinds["cloud-only MEU"]++
		case o.RecipientTypeDetails == sim.RTDUserMailbox:
			kinds["mailbox"]++
		case o.RecipientTypeDetails == sim.RTDMailContact:
			kinds["contact"]++
		}
	}
	for _, k := range []string{"guest", "cloud-only MEU", "mailbox", "contact"} {
		if kinds[k] == 0 {
			t.Errorf("scenario has no %s: cannot show it is never written", k)
		}
	}
}

func TestObjectDeletedBetweenPlanAndApplyFailsAlone(t *testing.T) {
	srv, client := startSim(t, nil, sim.Faults{})
	ex := &executor.Executor{Client: client}
	run, err := ex.Plan(context.Background(), "run-1", richText(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Plan.Changes) < 2 {
		t.Fatal("need at least two planned changes")
	}
	gone := run.Plan.Changes[len(run.Plan.Changes)/2].Object.ID
	if !srv.Tenant().Delete(gone) {
		t.Fatalf("could not delete %s", gone)
	}
	sum, err := ex.Apply(context.Background(), run, executor.Options{Mode: jobs.ModeRemediate})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if sum.Failed != 1 || sum.Verified != len(run.Plan.Changes)-1 {
		t.Fatalf("failed=%d verified=%d, want 1 and %d", sum.Failed, sum.Verified, len(run.Plan.Changes)-1)
	}
	for _, c := range sum.Changes {
		if c.Object.ID != gone {
			continue
		}
		if c.Status != executor.StatusFailed || !strings.Contains(c.Error, "couldn't be found") {
			t.Errorf("deleted object: status %s, error %q; want failed with EXO's not-found text", c.Status, c.Error)
		}
		if !exo.IsKind(c.Err, exo.KindNotFound) {
			t.Errorf("deleted object error is not exo.KindNotFound: %v", c.Err)
		}
		if c.RequestID == "" {
			t.Error("failed change carries no request id")
		}
	}
	if sum.ExitCode() != executor.ExitFailed {
		t.Errorf("exit code %d, want 2", sum.ExitCode())
	}
}

func TestBlastRadiusStopsBeforeFirstWrite(t *testing.T) {
	sc := sim.DefaultScenario()
	sc.DirSyncedMEUs = 100
	srv, client := startSim(t, &sc, sim.Faults{})
	// make every one of the 100 need a change, so the numbers in the message are exact
	for _, o := range srv.Tenant().InScopeMEUs() {
		if err := srv.Tenant().SetUseMapiRichTextFormat(o.ID, "UseDefaultSettings"); err != nil {
			t.Fatal(err)
		}
	}
	ex := &executor.Executor{Client: client}
	sum, err := ex.Run(context.Background(), "run-1", richText(t), executor.Options{Mode: jobs.ModeRemediate, MaxChanges: 10, JobConfigPath: "jobs.meu-richtext"})
	var be *executor.BlastRadiusError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want a BlastRadiusError", err)
	}
	if sum.ExitCode() != executor.ExitAborted {
		t.Errorf("exit code %d, want 3", sum.ExitCode())
	}
	for _, want := range []string{"100 objects", "jobs.meu-richtext.max_changes = 10", "--force", "--dry-run", "Nothing was written"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not say %q", err.Error(), want)
		}
	}
	if n := srv.Log.Count(isSet); n != 0 {
		t.Errorf("blast radius let %d Set-* calls through", n)
	}

	// --force lifts it.
	sum, err = ex.Run(context.Background(), "run-1", richText(t), executor.Options{Mode: jobs.ModeRemediate, MaxChanges: 10, Force: true})
	if err != nil || sum.Verified != 100 {
		t.Fatalf("forced run: err=%v verified=%d, want nil and 100", err, sum.Verified)
	}
}

func TestBlastRadiusPercent(t *testing.T) {
	sc := sim.DefaultScenario()
	sc.DirSyncedMEUs = 50
	srv, client := startSim(t, &sc, sim.Faults{})
	sum, err := (&executor.Executor{Client: client}).Run(context.Background(), "run-1", richText(t), executor.Options{Mode: jobs.ModeRemediate, MaxChangePercent: 5})
	var be *executor.BlastRadiusError
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "max_change_percent = 5") {
		t.Fatalf("err = %v, want a percent blast-radius error", err)
	}
	if sum.Applied != 0 || srv.Log.Count(isSet) != 0 {
		t.Errorf("applied %d, Set-* calls %d; want none", sum.Applied, srv.Log.Count(isSet))
	}
}

func TestRerunPlansObjectChangedByAnotherWriter(t *testing.T) {
	// After a run, someone sets one MEU back to Always: the next run plans exactly that object again.
	srv, client := startSim(t, nil, sim.Faults{})
	ex := &executor.Executor{Client: client}
	first, err := ex.Run(context.Background(), "run-1", richText(t), executor.Options{Mode: jobs.ModeRemediate})
	if err != nil || first.Verified == 0 {
		t.Fatalf("first run: err=%v verified=%d", err, first.Verified)
	}
	id := first.Changes[0].Object.ID
	if err := srv.Tenant().SetUseMapiRichTextFormat(id, "Always"); err != nil {
		t.Fatal(err)
	}
	again, err := ex.Run(context.Background(), "run-1", richText(t), executor.Options{Mode: jobs.ModeDryRun})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Changes) != 1 || again.Changes[0].Object.ID != id || again.Changes[0].Params[0].From.AsText() != "Always" {
		t.Errorf("rerun planned %+v, want exactly %s Always → Never", again.Changes, id)
	}
}

func TestThrottledRunStaysWithinBudget_Slow(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 2,000 MEUs at 100 requests/s, twice (about 50 s); run without -short")
	}
	for _, tc := range []struct {
		name   string
		opaque bool
		// max429 bounds the throttled (sub-)requests. With honest Rate-Limit headers the client paces itself
		// and should see few; with opaque headers (as the real service sends) it can only learn the budget
		// from 429s: one burst when it first overshoots, then a few as it probes upwards again.
		max429 int64
	}{
		{"budget in Rate-Limit headers", false, 60},
		{"opaque Rate-Limit headers", true, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := sim.DefaultScenario()
			sc.DirSyncedMEUs = 2000
			const budget = 100.0
			f := sim.Faults{RTT: 50 * time.Millisecond, ThrottleBudget: budget, OpaqueRateHeaders: tc.opaque}
			srv, client := startSim(t, &sc, f)
			for _, o := range srv.Tenant().InScopeMEUs() {
				_ = srv.Tenant().SetUseMapiRichTextFormat(o.ID, "UseDefaultSettings")
			}
			start := time.Now()
			sum, err := (&executor.Executor{Client: client}).Run(context.Background(), "run-1", richText(t), executor.Options{Mode: jobs.ModeRemediate})
			wall := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Failed != 0 || sum.Verified != 2000 {
				t.Fatalf("failed=%d verified=%d, want 0 and 2000", sum.Failed, sum.Verified)
			}
			throttled := srv.FaultStats().Throttled
			st := client.Stats()
			t.Logf("2000 MEUs, RTT 50ms, budget %.0f req/s (each $batch sub-request counts), %s: wall %s, HTTP requests %d, sub-requests %d, 429s %d, retries %d",
				budget, tc.name, wall.Round(time.Millisecond), st.Requests, st.SubRequests, throttled, st.Retries)
			// "After the first 429 the client stays within the budget": the 429s belong to the first overshoot
			// (batches already in flight when the first 429 came back), not spread over the run.
			var first time.Time
			late := 0
			for _, e := range srv.Log.Entries() {
				if e.Status != 429 {
					continue
				}
				if first.IsZero() || e.Time.Before(first) {
					first = e.Time
				}
			}
			for _, e := range srv.Log.Entries() {
				if e.Status == 429 && e.Time.After(first.Add(2*time.Second)) {
					late++
				}
			}
			t.Logf("429s more than 2 s after the first: %d", late)
			if late > 10 {
				t.Errorf("%d 429s more than 2 s after the first: the client keeps overshooting the budget", late)
			}
			if throttled > tc.max429 {
				t.Errorf("%d throttled (sub-)requests, want at most %d: the client does not stay within the budget", throttled, tc.max429)
			}
			// 2,000 writes at 100/s take 20 s; far slower means the client throttles itself too hard.
			if wall > 60*time.Second {
				t.Errorf("wall time %s: far slower than the budget allows", wall)
			}
		})
	}
}

func TestReadBackWaitsOutReplicationLag(t *testing.T) {
	// Reads keep showing the old value for 2 s after each write, as a lagging domain controller would:
	// the executor reads again instead of reporting the writes as failed. (The window is wide so that even a
	// loaded machine reads back before it closes: every object must then lag once.)
	srv, client := startSim(t, nil, sim.Faults{StaleReads: 2 * time.Second})
	want := wantChanges(srv, "Never")
	ex := &executor.Executor{Client: client, ReadBackDelay: 500 * time.Millisecond}
	sum, err := ex.Run(context.Background(), "run-1", richText(t), executor.Options{Mode: jobs.ModeRemediate})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Verified != want || sum.Failed != 0 || sum.ExitCode() != executor.ExitOK {
		t.Fatalf("verified %d failed %d exit %d, want %d, 0, 0", sum.Verified, sum.Failed, sum.ExitCode(), want)
	}
	single := srv.Log.Count(func(e sim.Entry) bool { return e.Cmdlet == "Get-MailUser" && e.Identity != "" })
	if single < want {
		t.Errorf("%d single-object re-reads, want at least %d (one per lagging object)", single, want)
	}
}

func TestReadBackThatNeverAgreesIsAFailure(t *testing.T) {
	// Reads show the old value far longer than the executor waits: every change is reported failed with
	// what the read-back saw and how long it tried, and the run exits 2.
	srv, client := startSim(t, nil, sim.Faults{StaleReads: time.Minute})
	want := wantChanges(srv, "Never")
	ex := &executor.Executor{Client: client, ReadBackRetries: 1, ReadBackDelay: 50 * time.Millisecond}
	sum, err := ex.Run(context.Background(), "run-1", richText(t), executor.Options{Mode: jobs.ModeRemediate})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed != want || sum.Verified != 0 || sum.ExitCode() != executor.ExitFailed {
		t.Fatalf("failed %d verified %d exit %d, want %d, 0, 2", sum.Failed, sum.Verified, sum.ExitCode(), want)
	}
	for _, c := range sum.Changes {
		if !strings.Contains(c.Error, "read-back shows UseMapiRichTextFormat") || !strings.Contains(c.Error, "read back 2 times") {
			t.Errorf("%s: error %q does not say what the read-back saw and how often it read", c.Object.ID, c.Error)
			break
		}
	}
	// The writes did happen: the tenant holds the target value.
	for _, o := range srv.Tenant().InScopeMEUs() {
		if o.UseMapiRichTextFormat != "Never" {
			t.Errorf("%s holds %s", o.ID, o.UseMapiRichTextFormat)
		}
	}
}

func TestCircuitBreakerStopsWithAtMostOneChunkBeyondIt(t *testing.T) {
	srv, client := startSim(t, nil, sim.Faults{})
	ex := &executor.Executor{Client: client, ChunkSize: 10, BreakerMinAttempts: 20, ReadBackRetries: -1}
	run, err := ex.Plan(context.Background(), "run-breaker", richText(t))
	if err != nil {
		t.Fatal(err)
	}
	// 100 changes to objects that do not exist: every write fails.
	var changes []jobs.Change
	for i := range 100 {
		changes = append(changes, jobs.Set(jobs.ObjectRef{ID: fmt.Sprintf("0f0f0f0f-0000-4000-8000-%012d", i)}, "Set-MailUser",
			jobs.Param{Name: "UseMapiRichTextFormat", From: jobs.Text("Always"), To: jobs.Text("Never")}))
	}
	run.Plan.Changes = changes
	srv.Log.Reset()
	sum, err := ex.Apply(context.Background(), run, executor.Options{Mode: jobs.ModeRemediate, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	sets := srv.Log.Count(isSet)
	// The breaker trips once 20 changes were tried; chunks are kept two in flight, so at most the chunk after
	// the one that tripped it was already sent.
	if !sum.Aborted || !strings.Contains(sum.AbortReason, "circuit breaker") || sets < 20 || sets > 30 {
		t.Fatalf("aborted %v (%q), %d writes sent; want the breaker to stop the run after 20 to 30", sum.Aborted, sum.AbortReason, sets)
	}
	if sum.Failed != sets || sum.Skipped != 100-sets {
		t.Fatalf("failed %d, skipped %d with %d writes sent", sum.Failed, sum.Skipped, sets)
	}
}
