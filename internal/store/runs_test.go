package store

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCreateRunDefaultsAndRoundTrip(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		clk := newClock()
		s := db.open(t, WithClock(clk.Now))
		ctx := t.Context()

		got := mustRun(t, s, Run{Job: "meu-richtext", Mode: "remediate", Reason: "alert X", Objects: []string{"o1", "o2"},
			Status: RunSucceeded, FinishedAt: clk.Now()}) // status and finish are ignored on create
		if got.Status != RunRunning || !got.FinishedAt.IsZero() {
			t.Errorf("new run status %s finished %v, want running and zero", got.Status, got.FinishedAt)
		}
		if got.Trigger != TriggerCLI || got.Owner != DefaultOwner() || len(got.ID) != 26 {
			t.Errorf("defaults: trigger %q owner %q id %q", got.Trigger, got.Owner, got.ID)
		}
		if want := clk.Now().Truncate(time.Microsecond); !got.StartedAt.Equal(want) || got.StartedAt.Location() != time.UTC {
			t.Errorf("StartedAt = %v, want %v in UTC", got.StartedAt, want)
		}
		read, err := s.GetRun(ctx, got.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !runsEqual(read, got) {
			t.Errorf("GetRun = %+v\nCreateRun returned %+v", read, got)
		}

		own := mustRun(t, s, Run{ID: "my-run_1", Job: "address-audit", Trigger: TriggerAlert, Owner: "me"})
		if own.ID != "my-run_1" || own.Owner != "me" || own.Trigger != TriggerAlert {
			t.Errorf("caller-supplied fields not kept: %+v", own)
		}
	})
}

func TestCreateRunRefusesBadInput(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		s := db.open(t)
		mustRun(t, s, Run{ID: "taken", Job: "j"})
		cases := []struct {
			name string
			run  Run
			want string
		}{
			{"no job", Run{}, "empty job name"},
			{"bad trigger", Run{Job: "j", Trigger: "cron"}, `unknown trigger "cron"`},
			{"id with slash", Run{ID: "../etc", Job: "j"}, "may contain only"},
			{"id too long", Run{ID: strings.Repeat("a", 129), Job: "j"}, "1 to 128"},
			{"duplicate id", Run{ID: "taken", Job: "j"}, "already exists"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				_, err := s.CreateRun(t.Context(), tc.run)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("CreateRun(%+v) error = %v, want it to mention %q", tc.run, err, tc.want)
				}
			})
		}
	})
}

func TestFinishRun(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		clk := newClock()
		s := db.open(t, WithClock(clk.Now))
		ctx := t.Context()
		r := mustRun(t, s, Run{Job: "meu-richtext"})
		clk.Advance(90 * time.Second)

		if err := s.FinishRun(ctx, r.ID, RunResult{Status: RunRunning}); err == nil {
			t.Error("FinishRun accepted status running")
		}
		if err := s.FinishRun(ctx, r.ID, RunResult{Status: "done"}); err == nil {
			t.Error("FinishRun accepted an unknown status")
		}
		counts := Counts{InScope: 10, Planned: 4, Applied: 3, Failed: 1, Verified: 3, Skipped: 6}
		if err := s.FinishRun(ctx, r.ID, RunResult{Status: RunPartial, Counts: counts, Error: "1 object failed"}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetRun(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != RunPartial || got.Counts != counts || got.Error != "1 object failed" ||
			!got.FinishedAt.Equal(clk.Now().Truncate(time.Microsecond)) {
			t.Errorf("finished run = %+v", got)
		}

		// A second finish must not overwrite the first: the caller learns it lost.
		err = s.FinishRun(ctx, r.ID, RunResult{Status: RunSucceeded})
		if !errors.Is(err, ErrRunNotRunning) || !strings.Contains(err.Error(), "already partial") {
			t.Errorf("second FinishRun error = %v, want ErrRunNotRunning naming the status", err)
		}
		if err := s.FinishRun(ctx, "nope", RunResult{Status: RunSucceeded}); !errors.Is(err, ErrNotFound) {
			t.Errorf("FinishRun of a missing run = %v, want ErrNotFound", err)
		}
		if _, err := s.GetRun(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetRun of a missing run = %v, want ErrNotFound", err)
		}
	})
}

func TestListRuns(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		clk := newClock()
		s := db.open(t, WithClock(clk.Now))
		ctx := t.Context()
		var ids []string // oldest first
		for i := range 7 {
			job := "meu-richtext"
			if i%3 == 2 {
				job = "address-audit"
			}
			r := mustRun(t, s, Run{Job: job})
			ids = append(ids, r.ID)
			if i == 1 {
				if err := s.FinishRun(ctx, r.ID, RunResult{Status: RunFailed}); err != nil {
					t.Fatal(err)
				}
			}
			clk.Advance(time.Minute)
		}
		runAt := func(i int) time.Time { return newClock().Now().Add(time.Duration(i) * time.Minute) }

		cases := []struct {
			name string
			f    RunFilter
			want []int // indexes into ids, newest first
		}{
			{"all", RunFilter{}, []int{6, 5, 4, 3, 2, 1, 0}},
			{"limit", RunFilter{Limit: 2}, []int{6, 5}},
			{"job", RunFilter{Job: "address-audit"}, []int{5, 2}},
			{"status", RunFilter{Status: RunFailed}, []int{1}},
			{"before pages back", RunFilter{Before: runAt(4), Limit: 2}, []int{3, 2}},
			{"job and before", RunFilter{Job: "meu-richtext", Before: runAt(3)}, []int{1, 0}},
			{"no match", RunFilter{Job: "other"}, nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				runs, err := s.ListRuns(t.Context(), tc.f)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, r := range runs {
					got = append(got, r.ID)
				}
				var want []string
				for _, i := range tc.want {
					want = append(want, ids[i])
				}
				if !slices.Equal(got, want) {
					t.Errorf("ListRuns(%+v) = %v, want %v", tc.f, got, want)
				}
			})
		}
	})
}

func TestMarkInterrupted(t *testing.T) {
	cases := []struct {
		name string
		f    InterruptFilter
		want []string // ids marked
	}{
		{"everything running", InterruptFilter{}, []string{"a1", "a2", "b1", "c1"}},
		{"one job", InterruptFilter{Job: "audit"}, []string{"c1"}},
		{"named owners", InterruptFilter{Owners: []string{"dead-a", "dead-b"}, Job: "meu"}, []string{"a1", "a2", "b1"}},
		{"except my own", InterruptFilter{ExceptOwner: "dead-b"}, []string{"a1", "a2", "c1"}},
		{"orphans only: live lease holder keeps its runs", InterruptFilter{OrphansOnly: true}, []string{"a1", "a2", "c1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachDriver(t, func(t *testing.T, db testDB) {
				clk := newClock()
				s := db.open(t, WithClock(clk.Now))
				ctx := t.Context()
				for _, r := range []Run{
					{ID: "a1", Job: "meu", Owner: "dead-a"},
					{ID: "a2", Job: "meu", Owner: "dead-a"},
					{ID: "b1", Job: "meu", Owner: "dead-b"},
					{ID: "c1", Job: "audit", Owner: "dead-c"},
					{ID: "done", Job: "meu", Owner: "dead-a"},
				} {
					mustRun(t, s, r)
					clk.Advance(time.Second)
				}
				if err := s.FinishRun(ctx, "done", RunResult{Status: RunSucceeded}); err != nil {
					t.Fatal(err)
				}
				// dead-b still renews a lease; dead-c's lease has run out.
				if ok, err := s.AcquireLease(ctx, "job:meu", "dead-b", time.Minute); !ok || err != nil {
					t.Fatal(ok, err)
				}
				if ok, err := s.AcquireLease(ctx, "job:audit", "dead-c", time.Second); !ok || err != nil {
					t.Fatal(ok, err)
				}
				clk.Advance(2 * time.Second)

				marked, err := s.MarkInterrupted(ctx, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, r := range marked {
					got = append(got, r.ID)
					if r.Status != RunInterrupted || r.FinishedAt.IsZero() || !strings.Contains(r.Error, r.Owner) {
						t.Errorf("returned run %+v: want interrupted, finished, error naming the owner", r)
					}
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("marked %v, want %v", got, tc.want)
				}
				for _, id := range []string{"a1", "a2", "b1", "c1"} {
					r, err := s.GetRun(ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					wantStatus := RunRunning
					if slices.Contains(tc.want, id) {
						wantStatus = RunInterrupted
					}
					if r.Status != wantStatus {
						t.Errorf("run %s is %s, want %s", id, r.Status, wantStatus)
					}
				}
				if r, _ := s.GetRun(ctx, "done"); r.Status != RunSucceeded {
					t.Errorf("finished run changed to %s", r.Status)
				}
				// Marking is idempotent: nothing left to mark with the same filter.
				if again, err := s.MarkInterrupted(ctx, tc.f); err != nil || len(again) != 0 {
					t.Errorf("second MarkInterrupted = %d runs, %v; want none", len(again), err)
				}
			})
		})
	}
}

func runsEqual(a, b Run) bool {
	return a.ID == b.ID && a.Job == b.Job && a.Mode == b.Mode && a.Trigger == b.Trigger && a.Reason == b.Reason &&
		slices.Equal(a.Objects, b.Objects) && a.Status == b.Status && a.StartedAt.Equal(b.StartedAt) &&
		a.FinishedAt.Equal(b.FinishedAt) && a.Counts == b.Counts && a.Error == b.Error && a.Owner == b.Owner
}
