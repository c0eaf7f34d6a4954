package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/daemon"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/internal/store"
)

// TestDaemonPrunesHistory: the daemon prunes at start by its retention and again each interval; the
// journal of a remediation outlives the runs retention.
func TestDaemonPrunesHistory(t *testing.T) {
	sc := sim.DefaultScenario()
	sc.DirSyncedMEUs, sc.CloudMEUs, sc.Guests, sc.Mailboxes, sc.Contacts, sc.Groups = 1, 0, 0, 0, 0, 0
	e := newEnv(t, &sc, sim.Faults{})
	ctx := context.Background()
	now := time.Now()
	day := 24 * time.Hour
	mk := func(age time.Duration, journal bool) store.Run {
		t.Helper()
		r, err := e.st.CreateRun(ctx, store.Run{Job: "meu-richtext", StartedAt: now.Add(-age)})
		if err != nil {
			t.Fatal(err)
		}
		if journal {
			if _, err := e.st.JournalBegin(ctx, r.ID, []store.Change{{ObjectID: "o", Cmdlet: "Set-MailUser", Param: "P",
				Old: []byte(`"a"`), New: []byte(`"b"`)}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.st.FinishRun(ctx, r.ID, store.RunResult{Status: store.RunSucceeded}); err != nil {
			t.Fatal(err)
		}
		return r
	}
	oldNoChange := mk(100*day, false)
	oldWithJournal := mk(100*day, true)
	recent := mk(day, false)

	d := e.daemon(t, daemon.Options{Retention: daemon.Retention{Runs: 90 * day, Journal: 400 * day, ResolvedFindings: 180 * day}})
	for _, c := range []struct {
		r    store.Run
		kept bool
	}{{oldNoChange, false}, {oldWithJournal, true}, {recent, true}} {
		if _, err := e.st.GetRun(ctx, c.r.ID); (err == nil) != c.kept {
			t.Errorf("run started %v: kept %v, want %v", c.r.StartedAt, err == nil, c.kept)
		}
	}
	// A later prune by a shorter journal retention takes the journalled run as well.
	_ = d
	d2 := e.daemon(t, daemon.Options{Owner: "second", Retention: daemon.Retention{Runs: 90 * day, Journal: 30 * day}})
	if _, err := e.st.GetRun(ctx, oldWithJournal.ID); err == nil {
		t.Error("the run beyond the journal retention is still there")
	}
	if p, err := d2.PruneOnce(ctx); err != nil || p.Total() != 0 {
		t.Errorf("a second prune: %+v, %v; want nothing left to prune", p, err)
	}
}
