package daemon_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/daemon"
	"github.com/exo-worker/worker/internal/graph"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/internal/store"
)

// TestOnSyncRunsTheJobWhenASyncCycleFinishes: an on-sync job runs when Graph's last sync time moves past
// the one the daemon saw first, and only then; the run fixes the MEU the sync cycle created. The polls are
// driven by the test (SyncTicks), the real Graph client reads the simulator's organization.
func TestOnSyncRunsTheJobWhenASyncCycleFinishes(t *testing.T) {
	e := newEnv(t, nil, sim.Faults{})
	cred, err := e.srv.Credential()
	if err != nil {
		t.Fatal(err)
	}
	gc, err := graph.New(graph.Options{BaseURL: e.srv.URL, Credential: cred, HTTPClient: e.srv.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	e.ex.State = e.st // the on-sync pass is incremental
	ticks := make(chan time.Time)
	e.daemon(t, daemon.Options{Jobs: []daemon.JobSpec{{Job: richText(t), OnSync: true, Options: remediate()}},
		SyncClock: gc, SyncTicks: ticks})
	polls := func() int {
		return e.srv.Log.Count(func(en sim.Entry) bool { return en.Path == "/v1.0/organization" })
	}
	waitPolls := func(n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for polls() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d polls of /organization, want %d", polls(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	runs := func() []store.Run {
		rs, err := e.st.ListRuns(context.Background(), store.RunFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	waitPolls(1) // the baseline, at start
	ticks <- time.Now()
	waitPolls(2)
	if rs := runs(); len(rs) != 0 {
		t.Fatalf("%d runs without a sync cycle: %+v", len(rs), rs)
	}

	// A sync cycle creates a new MEU.
	tn := e.srv.Tenant()
	meu := tn.InScopeMEUs()[0]
	meu.ID, meu.Guid, meu.ExchangeObjectID = "0d0d0d0d-0000-4000-8000-000000000001", "0d0d0d0d-0000-4000-8000-000000000002", "0d0d0d0d-0000-4000-8000-000000000003"
	meu.Name, meu.Alias, meu.DisplayName, meu.PrimarySmtpAddress = "synced.now", "synced.now", "Synced Now", "synced.now@contoso.com"
	meu.EmailAddresses = []string{"SMTP:synced.now@contoso.com"}
	meu.UseMapiRichTextFormat, meu.WhenCreated, meu.WhenChanged = sim.RichTextUseDefault, time.Time{}, time.Time{}
	if err := tn.Add(meu); err != nil {
		t.Fatal(err)
	}
	ticks <- time.Now()
	waitPolls(3)
	deadline := time.Now().Add(60 * time.Second)
	for {
		rs := runs()
		if len(rs) == 1 && rs[0].Status != store.RunRunning {
			if rs[0].Trigger != store.TriggerSync || !strings.Contains(rs[0].Reason, "directory sync finished") {
				t.Fatalf("run %+v: want trigger sync with the sync time as reason", rs[0])
			}
			break
		}
		if len(rs) > 1 || time.Now().After(deadline) {
			t.Fatalf("runs %+v: want one on-sync run", rs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if o, ok := tn.Object(meu.ID); !ok || o.UseMapiRichTextFormat != sim.RichTextNever {
		t.Fatalf("the MEU sync created holds %q, want Never", o.UseMapiRichTextFormat)
	}
	// No further cycle, no further run.
	ticks <- time.Now()
	waitPolls(4)
	if rs := runs(); len(rs) != 1 {
		t.Fatalf("%d runs after a poll without a new cycle", len(rs))
	}
}
