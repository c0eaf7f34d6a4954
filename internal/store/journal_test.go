package store

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestJournalBeginOutcomePending(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		clk := newClock()
		s := db.open(t, WithClock(clk.Now))
		ctx := t.Context()
		run := mustRun(t, s, Run{Job: "meu-richtext", Mode: "remediate"})

		first, err := s.JournalBegin(ctx, run.ID, changes(0, 10))
		if err != nil {
			t.Fatal(err)
		}
		second, err := s.JournalBegin(ctx, run.ID, changes(10, 3))
		if err != nil {
			t.Fatal(err)
		}
		if len(first) != 10 || len(second) != 3 {
			t.Fatalf("got %d and %d ids, want 10 and 3", len(first), len(second))
		}
		clk.Advance(time.Second)

		// A $batch of ten comes back: eight applied, one failed, one skipped.
		var outs []Outcome
		for i, id := range first {
			o := Outcome{ID: id, State: ChangeStateApplied, RequestID: "req-1"}
			switch i {
			case 3:
				o = Outcome{ID: id, State: ChangeStateFailed, RequestID: "req-1", Error: "dir-sync write refused"}
			case 7:
				o = Outcome{ID: id, State: ChangeStateSkipped}
			}
			outs = append(outs, o)
		}
		if err := s.JournalOutcomes(ctx, outs); err != nil {
			t.Fatal(err)
		}
		if err := s.JournalOutcomes(ctx, []Outcome{{ID: first[0], State: ChangeStateVerified, RequestID: "req-2"}}); err != nil {
			t.Fatal(err)
		}

		pending, err := s.JournalPending(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := entryIDs(pending); !slices.Equal(got, second) {
			t.Errorf("pending = %v, want the unresolved second batch %v", got, second)
		}

		all, err := s.Journal(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 13 {
			t.Fatalf("journal has %d entries, want 13", len(all))
		}
		for i, e := range all {
			if e.Seq != i+1 || e.RunID != run.ID {
				t.Errorf("entry %d: seq %d run %s; want seq %d run %s", i, e.Seq, e.RunID, i+1, run.ID)
			}
		}
		wantStates := map[int]ChangeState{0: ChangeStateVerified, 1: ChangeStateApplied, 3: ChangeStateFailed, 7: ChangeStateSkipped, 10: ChangeStatePending}
		for i, want := range wantStates {
			if all[i].State != want {
				t.Errorf("entry %d state %s, want %s", i, all[i].State, want)
			}
		}
		e := all[3]
		if e.Error != "dir-sync write refused" || e.RequestID != "req-1" || e.ObjectID != changes(3, 1)[0].ObjectID ||
			e.DisplayName != "User 3" || e.Cmdlet != "Set-MailUser" || e.Param != "UseMapiRichTextFormat" ||
			string(e.Old) != `"UseDefaultSettings"` || string(e.New) != `"Never"` {
			t.Errorf("entry 3 = %+v", e)
		}
		if !e.UpdatedAt.After(e.CreatedAt) {
			t.Errorf("entry 3 updated %v not after created %v", e.UpdatedAt, e.CreatedAt)
		}
		if all[10].Error != "" || all[10].RequestID != "" || !all[10].UpdatedAt.Equal(all[10].CreatedAt) {
			t.Errorf("pending entry carries an outcome: %+v", all[10])
		}
	})
}

func TestJournalKeepsValuesTyped(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		s := db.open(t)
		ctx := t.Context()
		run := mustRun(t, s, Run{Job: "j"})
		values := []struct {
			name     string
			old, new json.RawMessage
			wantOld  string
		}{
			{"strings", json.RawMessage(`"Always"`), json.RawMessage(`"Never"`), `"Always"`},
			{"bool", json.RawMessage(`true`), json.RawMessage(`false`), `true`},
			{"list compacted", json.RawMessage(`[ "smtp:a@x" , "SMTP:b@x" ]`), json.RawMessage(`[]`), `["smtp:a@x","SMTP:b@x"]`},
			{"nil is null", nil, json.RawMessage(`"x"`), `null`},
		}
		var cs []Change
		for _, v := range values {
			cs = append(cs, Change{ObjectID: "o-" + v.name, Cmdlet: "Set-MailUser", Param: "P", Old: v.old, New: v.new})
		}
		if _, err := s.JournalBegin(ctx, run.ID, cs); err != nil {
			t.Fatal(err)
		}
		all, err := s.Journal(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range values {
			if string(all[i].Old) != v.wantOld {
				t.Errorf("%s: old = %s, want %s", v.name, all[i].Old, v.wantOld)
			}
		}
	})
}

func TestJournalRefusals(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		s := db.open(t)
		ctx := t.Context()
		run := mustRun(t, s, Run{Job: "j"})
		ids, err := s.JournalBegin(ctx, run.ID, changes(0, 2))
		if err != nil {
			t.Fatal(err)
		}
		finished := mustRun(t, s, Run{Job: "j"})
		if err := s.FinishRun(ctx, finished.ID, RunResult{Status: RunInterrupted}); err != nil {
			t.Fatal(err)
		}
		bad := changes(0, 1)[0]
		bad.New = json.RawMessage(`Never`)

		t.Run("begin", func(t *testing.T) {
			cases := []struct {
				name   string
				runID  string
				cs     []Change
				want   string
				target error
			}{
				{"unknown run", "nope", changes(0, 1), "nope", ErrNotFound},
				{"run no longer running", finished.ID, changes(0, 1), "interrupted", ErrRunNotRunning},
				{"not JSON", run.ID, []Change{bad}, "not valid JSON", nil},
				{"missing param", run.ID, []Change{{ObjectID: "o", Cmdlet: "Set-MailUser"}}, "needs an object id", nil},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					_, err := s.JournalBegin(t.Context(), tc.runID, tc.cs)
					if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "store: journal begin run") {
						t.Errorf("JournalBegin error = %v, want one mentioning %q", err, tc.want)
					}
					if tc.target != nil && !errors.Is(err, tc.target) {
						t.Errorf("error %v does not wrap %v", err, tc.target)
					}
				})
			}
		})

		t.Run("outcome", func(t *testing.T) {
			if err := s.JournalOutcomes(ctx, []Outcome{{ID: ids[0], State: ChangeStatePending}}); err == nil {
				t.Error("outcome pending accepted")
			}
			if err := s.JournalOutcomes(ctx, []Outcome{{ID: ids[0], State: "done"}}); err == nil {
				t.Error("unknown state accepted")
			}
			// All or nothing: one unknown id keeps the valid one from being recorded.
			err := s.JournalOutcomes(ctx, []Outcome{{ID: ids[0], State: ChangeStateApplied}, {ID: 999999, State: ChangeStateApplied}})
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("outcome for unknown id = %v, want ErrNotFound", err)
			}
			pending, err := s.JournalPending(ctx, run.ID)
			if err != nil || len(pending) != 2 {
				t.Errorf("after a failed batch %d entries pending (%v), want both still pending", len(pending), err)
			}
		})
	})
}

// A process that dies between journalling and recording outcomes leaves its
// entries pending for the next process, which marks the run interrupted.
func TestJournalSurvivesCloseWithoutOutcomes(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		s := db.open(t)
		run, err := s.CreateRun(ctx, Run{Job: "meu-richtext", Owner: "old-process"})
		if err != nil {
			t.Fatal(err)
		}
		ids, err := s.JournalBegin(ctx, run.ID, changes(0, 10))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.JournalOutcomes(ctx, []Outcome{{ID: ids[0], State: ChangeStateApplied, RequestID: "r"}}); err != nil {
			t.Fatal(err)
		}
		_ = s.Close()

		s2 := db.open(t)
		assertCrashRecovery(t, s2, run.ID, ids[1:])
	})
}

// The same with a real process killed by SIGKILL right after JournalBegin
// returned: nothing closed, nothing flushed by us.
func TestJournalSurvivesSIGKILL(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		out := runChildProcess(t, childJournalThenDie, db.loc, 0)
		var res struct {
			RunID string    `json:"run_id"`
			IDs   []EntryID `json:"ids"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("child output %q: %v", out, err)
		}
		s := db.open(t)
		assertCrashRecovery(t, s, res.RunID, res.IDs)
	})
}

func assertCrashRecovery(t *testing.T, s Store, runID string, wantPending []EntryID) {
	t.Helper()
	ctx := t.Context()
	pending, err := s.JournalPending(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := entryIDs(pending); !slices.Equal(got, wantPending) {
		t.Fatalf("pending after restart = %v, want %v", got, wantPending)
	}
	marked, err := s.MarkInterrupted(ctx, InterruptFilter{OrphansOnly: true, ExceptOwner: DefaultOwner()})
	if err != nil {
		t.Fatal(err)
	}
	if len(marked) != 1 || marked[0].ID != runID || marked[0].Status != RunInterrupted {
		t.Fatalf("MarkInterrupted = %+v, want run %s interrupted", marked, runID)
	}
	// Reconciling: the next process read the objects and resolved every entry.
	var outs []Outcome
	for _, e := range pending {
		outs = append(outs, Outcome{ID: e.ID, State: ChangeStateReconciled})
	}
	if err := s.JournalOutcomes(ctx, outs); err != nil {
		t.Fatal(err)
	}
	if left, err := s.JournalPending(ctx, runID); err != nil || len(left) != 0 {
		t.Errorf("still pending after reconcile: %d, %v", len(left), err)
	}
}

func entryIDs(es []JournalEntry) []EntryID {
	var out []EntryID
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}
