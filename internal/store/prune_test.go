package store

import (
	"fmt"
	"testing"
	"time"
)

// TestPrune: runs without journal entries go after RunsBefore, runs with a journal (the audit trail revert
// reads) only after JournalBefore, resolved findings after FindingsResolvedBefore; running runs and open
// findings stay whatever their age.
func TestPrune(t *testing.T) { forEachDriver(t, testPrune) }

func testPrune(t *testing.T, db testDB) {
	clk := newClock()
	s := db.open(t, WithClock(clk.Now))
	ctx := t.Context()
	now := clk.Now()
	day := 24 * time.Hour
	finished := func(job string, age time.Duration, journal int) Run {
		t.Helper()
		r := mustRun(t, s, Run{Job: job, StartedAt: now.Add(-age)})
		if journal > 0 {
			if _, err := s.JournalBegin(ctx, r.ID, changes(0, journal)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.FinishRun(ctx, r.ID, RunResult{Status: RunSucceeded}); err != nil {
			t.Fatal(err)
		}
		return r
	}
	oldAudit := finished("address-audit", 100*day, 0)
	recentAudit := finished("address-audit", 10*day, 0)
	oldWrite := finished("meu-richtext", 100*day, 3)     // within the journal's retention
	ancientWrite := finished("meu-richtext", 500*day, 2) // beyond it
	stillRunning := mustRun(t, s, Run{Job: "meu-richtext-2", StartedAt: now.Add(-600 * day)})
	if _, err := s.JournalBegin(ctx, stillRunning.ID, changes(10, 1)); err != nil {
		t.Fatal(err)
	}
	// Findings: one resolved long ago, one resolved recently, one open since long ago.
	var fr Run
	mk := func(obj string) Finding { return Finding{Rule: "r", ObjectID: obj, Severity: "high"} }
	for _, step := range []struct {
		at    time.Time
		found []Finding
	}{
		{now.Add(-300 * day), []Finding{mk("old-resolved"), mk("recent-resolved"), mk("open")}},
		{now.Add(-200 * day), []Finding{mk("recent-resolved"), mk("open")}},
		{now.Add(-5 * day), []Finding{mk("open")}},
	} {
		fr = mustRun(t, s, Run{Job: "f-audit", StartedAt: now.Add(-time.Hour)})
		if _, err := s.RecordFindings(ctx, fr.ID, "f-audit", step.found, step.at); err != nil {
			t.Fatal(err)
		}
	}

	p, err := s.Prune(ctx, Retention{RunsBefore: now.Add(-90 * day), JournalBefore: now.Add(-400 * day), FindingsResolvedBefore: now.Add(-180 * day)})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Pruned{Runs: 2, JournalEntries: 2, Findings: 1}); p != want {
		t.Errorf("pruned %+v, want %+v", p, want)
	}
	for _, c := range []struct {
		run  Run
		kept bool
	}{{oldAudit, false}, {recentAudit, true}, {oldWrite, true}, {ancientWrite, false}, {stillRunning, true}, {fr, true}} {
		_, err := s.GetRun(ctx, c.run.ID)
		if kept := err == nil; kept != c.kept {
			t.Errorf("run %s (%s, started %v): kept %v, want %v (%v)", c.run.ID, c.run.Job, c.run.StartedAt, kept, c.kept, err)
		}
	}
	if j, err := s.Journal(ctx, oldWrite.ID); err != nil || len(j) != 3 {
		t.Errorf("journal of a run within retention: %d entries, %v", len(j), err)
	}
	open, err := s.OpenFindings(ctx, FindingFilter{Job: "f-audit"})
	if err != nil || len(open) != 1 || open[0].ObjectID != "open" {
		t.Errorf("open findings %v, %v; want the one open since long ago", open, err)
	}
	// A second prune finds nothing more; a zero Retention deletes nothing.
	if p, err := s.Prune(ctx, Retention{RunsBefore: now.Add(-90 * day), JournalBefore: now.Add(-400 * day), FindingsResolvedBefore: now.Add(-180 * day)}); err != nil || p.Total() != 0 {
		t.Errorf("second prune %+v, %v", p, err)
	}
	if p, err := s.Prune(ctx, Retention{}); err != nil || p.Total() != 0 {
		t.Errorf("zero retention pruned %+v, %v", p, err)
	}
}

// TestOpenFindingsPages: pages by key cover every open finding once, in order, and SummarizeOpenFindings
// counts them without reading them.
func TestOpenFindingsPages(t *testing.T) { forEachDriver(t, testOpenFindingsPages) }

func testOpenFindingsPages(t *testing.T, db testDB) {
	s := db.open(t)
	ctx := t.Context()
	var all []Finding
	for i := range 25 {
		all = append(all, Finding{Rule: fmt.Sprintf("rule-%d", i%3), ObjectID: fmt.Sprintf("obj-%02d", i), Severity: []string{"high", "low"}[i%2]})
	}
	r := mustRun(t, s, Run{Job: "a-audit"})
	if _, err := s.RecordFindings(ctx, r.ID, "a-audit", all, time.Time{}); err != nil {
		t.Fatal(err)
	}
	var got []string
	var after *FindingKey
	pages := 0
	for {
		page, err := s.OpenFindings(ctx, FindingFilter{Limit: 7, After: after})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		pages++
		for _, f := range page {
			got = append(got, f.Rule+"/"+f.ObjectID)
		}
		last := page[len(page)-1]
		after = &FindingKey{Job: last.Job, Rule: last.Rule, ObjectID: last.ObjectID}
	}
	whole, err := s.OpenFindings(ctx, FindingFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 25 || pages != 4 || len(whole) != 25 {
		t.Fatalf("%d findings in %d pages (whole list %d), want 25 in 4", len(got), pages, len(whole))
	}
	for i, f := range whole {
		if got[i] != f.Rule+"/"+f.ObjectID {
			t.Fatalf("page order differs at %d: %s vs %s/%s", i, got[i], f.Rule, f.ObjectID)
		}
	}
	groups, err := s.SummarizeOpenFindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, g := range groups {
		total += g.Open
	}
	if len(groups) != 6 || total != 25 {
		t.Errorf("groups %+v: %d groups, %d findings; want 6 and 25", groups, len(groups), total)
	}
}
