package store

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestFindingsHistoryAcrossRuns(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		clk := newClock()
		s := db.open(t, WithClock(clk.Now))
		ctx := t.Context()
		const job = "address-audit"
		fA := Finding{Rule: "primary-not-mail", ObjectID: "A", DisplayName: "Ann", Severity: "warning", Detail: "SMTP: differs from mail",
			OnPrem: &OnPremFix{Attribute: "proxyAddresses", Value: "SMTP:ann@contoso.com", Action: "add"}}
		fB := Finding{Rule: "primary-not-mail", ObjectID: "B", Severity: "warning", Detail: "d"}
		fC := Finding{Rule: "upn-unverified", ObjectID: "C", Severity: "error", Detail: "d"}
		other := Finding{Rule: "x", ObjectID: "A", Severity: "info"}

		t0 := clk.Now()
		at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Hour).Truncate(time.Microsecond) }

		// Another job's open finding must never be resolved by this job's runs.
		otherRun := mustRun(t, s, Run{Job: "other-job"})
		if _, err := s.RecordFindings(ctx, otherRun.ID, "other-job", []Finding{other}, at(0)); err != nil {
			t.Fatal(err)
		}

		steps := []struct {
			name     string
			objects  []string // targeted rerun
			findings []Finding
			want     FindingsSummary
			open     []string // rule/object of open findings of job, sorted
		}{
			{"first run", nil, []Finding{fA, fB, fA}, FindingsSummary{New: 2}, []string{"primary-not-mail/A", "primary-not-mail/B"}},
			{"B fixed, C appears", nil, []Finding{fA, fC}, FindingsSummary{New: 1, Open: 1, Resolved: 1}, []string{"primary-not-mail/A", "upn-unverified/C"}},
			{"targeted rerun on C resolves only C", []string{"C"}, nil, FindingsSummary{Resolved: 1}, []string{"primary-not-mail/A"}},
			{"B comes back", nil, []Finding{fA, fB}, FindingsSummary{Reopened: 1, Open: 1}, []string{"primary-not-mail/A", "primary-not-mail/B"}},
			{"all fixed", nil, nil, FindingsSummary{Resolved: 2}, nil},
		}
		for i, st := range steps {
			run := mustRun(t, s, Run{Job: job, Objects: st.objects})
			sum, err := s.RecordFindings(ctx, run.ID, job, st.findings, at(i+1))
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if sum != st.want {
				t.Errorf("%s: summary %+v, want %+v", st.name, sum, st.want)
			}
			open, err := s.OpenFindings(ctx, FindingFilter{Job: job})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range open {
				got = append(got, f.Rule+"/"+f.ObjectID)
				if st.objects == nil && (f.LastRunID != run.ID || !f.LastSeen.Equal(at(i+1))) {
					t.Errorf("%s: %s/%s last seen %v in run %s, want %v in %s", st.name, f.Rule, f.ObjectID, f.LastSeen, f.LastRunID, at(i+1), run.ID)
				}
			}
			if !slices.Equal(got, st.open) {
				t.Errorf("%s: open findings %v, want %v", st.name, got, st.open)
			}

			switch i {
			case 1: // A has been open since the first run
				a := findOpen(t, s, job, "A")
				if !a.FirstSeen.Equal(at(1)) || a.Reopened != 0 || a.OnPrem == nil || a.OnPrem.Value != "SMTP:ann@contoso.com" ||
					a.DisplayName != "Ann" || a.Severity != "warning" {
					t.Errorf("A after run 2 = %+v", a)
				}
			case 3: // B's new episode starts now
				b := findOpen(t, s, job, "B")
				if !b.FirstSeen.Equal(at(4)) || b.Reopened != 1 || b.OnPrem != nil {
					t.Errorf("reopened B = %+v, want first seen %v, reopened 1", b, at(4))
				}
			}
		}
		if open, err := s.OpenFindings(ctx, FindingFilter{}); err != nil || len(open) != 1 || open[0].Job != "other-job" {
			t.Errorf("open findings across jobs = %+v, %v; want only other-job's", open, err)
		}
	})
}

func TestOpenFindingsFilter(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		s := db.open(t)
		ctx := t.Context()
		run := mustRun(t, s, Run{Job: "audit"})
		fs := []Finding{
			{Rule: "r1", ObjectID: "o1", Severity: "error"},
			{Rule: "r1", ObjectID: "o2", Severity: "warning"},
			{Rule: "r2", ObjectID: "o1", Severity: "error"},
		}
		if _, err := s.RecordFindings(ctx, run.ID, "audit", fs, time.Time{}); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			f    FindingFilter
			want int
		}{
			{"all", FindingFilter{}, 3},
			{"rule", FindingFilter{Rule: "r1"}, 2},
			{"severity", FindingFilter{Severity: "error"}, 2},
			{"object", FindingFilter{ObjectID: "o1"}, 2},
			{"rule and object", FindingFilter{Rule: "r1", ObjectID: "o2"}, 1},
			{"limit", FindingFilter{Limit: 1}, 1},
			{"other job", FindingFilter{Job: "nope"}, 0},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.OpenFindings(t.Context(), tc.f)
				if err != nil || len(got) != tc.want {
					t.Errorf("OpenFindings(%+v) = %d findings, %v; want %d", tc.f, len(got), err, tc.want)
				}
			})
		}
	})
}

func TestRecordFindingsRefusals(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		s := db.open(t)
		run := mustRun(t, s, Run{Job: "audit"})
		if _, err := s.RecordFindings(t.Context(), "nope", "audit", nil, time.Time{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown run: %v, want ErrNotFound", err)
		}
		if _, err := s.RecordFindings(t.Context(), run.ID, "", nil, time.Time{}); err == nil {
			t.Error("empty job accepted")
		}
		if _, err := s.RecordFindings(t.Context(), run.ID, "audit", []Finding{{Rule: "r"}}, time.Time{}); err == nil {
			t.Error("finding without object accepted")
		}
	})
}

func findOpen(t *testing.T, s Store, job, object string) FindingRecord {
	t.Helper()
	fs, err := s.OpenFindings(t.Context(), FindingFilter{Job: job, ObjectID: object})
	if err != nil || len(fs) != 1 {
		t.Fatalf("open findings of %s on %s = %+v, %v; want one", job, object, fs, err)
	}
	return fs[0]
}

func TestDeltaLinks(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		s := db.open(t)
		ctx := t.Context()
		get := func(res string) string {
			t.Helper()
			l, err := s.GetDeltaLink(ctx, res)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		if l := get("users"); l != "" {
			t.Fatalf("fresh store has delta link %q", l)
		}
		for _, l := range []string{"https://g/users/delta?$deltatoken=1", "https://g/users/delta?$deltatoken=2"} {
			if err := s.SetDeltaLink(ctx, "users", l); err != nil {
				t.Fatal(err)
			}
			if got := get("users"); got != l {
				t.Errorf("GetDeltaLink = %q, want %q", got, l)
			}
		}
		if err := s.SetDeltaLink(ctx, "groups", "https://g/groups/delta?$deltatoken=9"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteDeltaLink(ctx, "users"); err != nil {
			t.Fatal(err)
		}
		if l := get("users"); l != "" {
			t.Errorf("deleted link still there: %q", l)
		}
		if l := get("groups"); l == "" {
			t.Error("deleting users removed groups too")
		}
		if err := s.DeleteDeltaLink(ctx, "users"); err != nil {
			t.Errorf("deleting a missing link: %v", err)
		}
		if err := s.SetDeltaLink(ctx, "users", ""); err == nil {
			t.Error("empty link accepted")
		}
	})
}
