package executor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/audit"
	"github.com/exo-worker/worker/jobs/executor"
	"github.com/exo-worker/worker/jobs/meurichtext"
)

func planOf(objs ...jobs.ObjectRef) *executor.Run {
	p := jobs.Plan{InScope: len(objs)}
	for _, o := range objs {
		p.Changes = append(p.Changes, jobs.Set(o, "Set-MailUser", jobs.Param{Name: "UseMapiRichTextFormat", From: jobs.Text("Always"), To: jobs.Text("Never")}))
	}
	rt, _ := meurichtext.New("")
	return &executor.Run{ID: "r1", Job: meurichtext.Name, Plan: p, Declared: rt.Describe()}
}

func TestExceptionsInDryRun(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	jane := jobs.ObjectRef{ID: "11111111-1111-1111-1111-111111111111", DisplayName: "Jane", Address: "jane@contoso.com"}
	bob := jobs.ObjectRef{ID: "22222222-2222-2222-2222-222222222222", DisplayName: "Bob", Address: "bob@contoso.com",
		OnPremisesUserPrincipalName: "bob.smith@corp.contoso.com"}
	tests := []struct {
		name        string
		exc         executor.Exception
		wantSkipped []string // object ids
		wantWarn    string   // substring of a warning; "" = no warning
	}{
		{"by id, any case", executor.Exception{Object: strings.ToUpper(jane.ID), Owner: "it-ops@contoso.com", Reason: "pilot"}, []string{jane.ID}, ""},
		{"by primary address", executor.Exception{Object: "BOB@contoso.com", Owner: "o", Reason: "r"}, []string{bob.ID}, ""},
		{"by on-premises UPN", executor.Exception{Object: "Bob.Smith@corp.contoso.com", Owner: "o", Reason: "r"}, []string{bob.ID}, ""},
		{"for this job", executor.Exception{Object: jane.Address, Jobs: []string{"address-audit", meurichtext.Name}, Owner: "o", Reason: "r"}, []string{jane.ID}, ""},
		{"for another job only", executor.Exception{Object: jane.Address, Jobs: []string{"address-audit"}, Owner: "o", Reason: "r"}, nil, ""},
		{"not expired yet", executor.Exception{Object: jane.ID, Owner: "o", Reason: "r", Expires: now.Add(time.Hour)}, []string{jane.ID}, ""},
		{"expired", executor.Exception{Object: jane.ID, Owner: "it-ops@contoso.com", Reason: "r", Expires: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
			ConfigPath: "exceptions[0]"}, nil, "exceptions[0] expired on 2026-11-01 (owner it-ops@contoso.com): the object is in scope again"},
		{"expires at this instant", executor.Exception{Object: jane.ID, Owner: "o", Reason: "r", Expires: now}, nil, "expired on 2026-11-27T12:00:00Z"},
		{"unknown object", executor.Exception{Object: "carol@contoso.com", Owner: "o", Reason: "r"}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex := &executor.Executor{Exceptions: []executor.Exception{tc.exc}, Now: func() time.Time { return now }}
			sum, err := ex.Apply(context.Background(), planOf(jane, bob), executor.Options{Mode: jobs.ModeDryRun})
			if err != nil {
				t.Fatal(err)
			}
			var skipped []string
			for _, c := range sum.Changes {
				switch c.Status {
				case executor.StatusSkipped:
					skipped = append(skipped, c.Object.ID)
					if !strings.Contains(c.Error, "owner "+tc.exc.Owner) || !strings.Contains(c.Error, "excepted by") {
						t.Errorf("skip reason %q does not name the exception and its owner", c.Error)
					}
				case executor.StatusPlanned:
				default:
					t.Errorf("%s: status %s in a dry run", c.Object.ID, c.Status)
				}
			}
			if strings.Join(skipped, ",") != strings.Join(tc.wantSkipped, ",") {
				t.Errorf("skipped %v, want %v", skipped, tc.wantSkipped)
			}
			if sum.Skipped != len(tc.wantSkipped) {
				t.Errorf("summary skipped = %d, want %d", sum.Skipped, len(tc.wantSkipped))
			}
			warn := strings.Join(sum.Warnings, "\n")
			if (tc.wantWarn == "") != (warn == "") || !strings.Contains(warn, tc.wantWarn) {
				t.Errorf("warnings %q, want one containing %q", warn, tc.wantWarn)
			}
		})
	}
}

func TestTargetedObjectsRestrictThePlan(t *testing.T) {
	a := jobs.ObjectRef{ID: "aaaaaaaa-0000-0000-0000-000000000001"}
	b := jobs.ObjectRef{ID: "aaaaaaaa-0000-0000-0000-000000000002"}
	c := jobs.ObjectRef{ID: "aaaaaaaa-0000-0000-0000-000000000003"}
	ex := &executor.Executor{}
	run := planOf(a, b, c)
	sum, err := ex.Apply(context.Background(), run, executor.Options{Mode: jobs.ModeDryRun,
		Objects: []string{strings.ToUpper(b.ID), "ffffffff-0000-0000-0000-000000000009"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Changes) != 1 || sum.Changes[0].Object.ID != b.ID || sum.Planned != 1 {
		t.Fatalf("changes %+v, want only %s", sum.Changes, b.ID)
	}
	if sum.InScope != 3 {
		t.Errorf("in scope = %d, want the job's whole scope (3): the blast radius measures against it", sum.InScope)
	}
	if len(sum.Warnings) != 1 || !strings.Contains(sum.Warnings[0], "ffffffff-0000-0000-0000-000000000009") {
		t.Errorf("warnings %q, want one naming the object with nothing planned", sum.Warnings)
	}
}

func TestTargetedRerunBlastRadiusMeasuresAgainstTheWholeScope(t *testing.T) {
	srv, client := startSim(t, nil, sim.Faults{})
	var target string
	for _, o := range srv.Tenant().InScopeMEUs() {
		if !strings.EqualFold(o.UseMapiRichTextFormat, "Never") {
			target = o.ID
			break
		}
	}
	ex := &executor.Executor{Client: client}
	// 1 object of the ~120 in scope is under 5%; the same limit stops the whole-scope run before any write.
	opts := executor.Options{Mode: jobs.ModeRemediate, MaxChangePercent: 5}
	if _, err := ex.Run(context.Background(), "run-1", richText(t), opts); err == nil {
		t.Fatal("whole-scope run passed a 5% blast radius")
	}
	if n := srv.Log.Count(isSet); n != 0 {
		t.Fatalf("refused run wrote %d times", n)
	}
	opts.Objects = []string{target}
	sum, err := ex.Run(context.Background(), "run-1", richText(t), opts)
	if err != nil {
		t.Fatalf("targeted run of one object refused: %v", err)
	}
	if sum.Verified != 1 || srv.Log.Count(isSet) != 1 {
		t.Fatalf("targeted run verified %d with %d writes, want 1 and 1", sum.Verified, srv.Log.Count(isSet))
	}
}

func TestRemediateLeavesExceptedObjectsAlone(t *testing.T) {
	srv, client := startSim(t, nil, sim.Faults{})
	var need []sim.Object
	for _, o := range srv.Tenant().InScopeMEUs() {
		if !strings.EqualFold(o.UseMapiRichTextFormat, "Never") {
			need = append(need, o)
		}
	}
	if len(need) < 3 {
		t.Fatal("scenario too small")
	}
	byID, byAddr, expired := need[0], need[1], need[2]
	ex := &executor.Executor{Client: client, Exceptions: []executor.Exception{
		{Object: byID.ID, Owner: "it-ops@contoso.com", Reason: "pilot"},
		{Object: byAddr.PrimarySmtpAddress, Jobs: []string{meurichtext.Name}, Owner: "hr@contoso.com", Reason: "legal hold"},
		{Object: expired.ID, Owner: "old@contoso.com", Reason: "done", Expires: time.Now().Add(-24 * time.Hour)},
	}}
	sum, err := ex.Run(context.Background(), "run-1", richText(t), executor.Options{Mode: jobs.ModeRemediate})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Skipped != 2 || sum.Verified != len(need)-2 {
		t.Fatalf("skipped %d verified %d, want 2 and %d", sum.Skipped, sum.Verified, len(need)-2)
	}
	for _, o := range []sim.Object{byID, byAddr} {
		got, _ := srv.Tenant().Object(o.ID)
		if got.UseMapiRichTextFormat != o.UseMapiRichTextFormat {
			t.Errorf("excepted %s changed from %s to %s", o.ID, o.UseMapiRichTextFormat, got.UseMapiRichTextFormat)
		}
		if n := srv.Log.Count(func(e sim.Entry) bool { return isSet(e) && strings.EqualFold(e.Identity, o.ID) }); n != 0 {
			t.Errorf("excepted %s received %d writes", o.ID, n)
		}
	}
	if got, _ := srv.Tenant().Object(expired.ID); got.UseMapiRichTextFormat != "Never" {
		t.Errorf("object of the expired exception holds %s, want Never (in scope again)", got.UseMapiRichTextFormat)
	}
	if len(sum.Warnings) != 1 || !strings.Contains(sum.Warnings[0], "owner old@contoso.com") {
		t.Errorf("warnings %q, want the expired exception reported with its owner", sum.Warnings)
	}
}

func TestExceptionsHideFindingsOfTheirAudit(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	jane := jobs.ObjectRef{ID: "11111111-1111-1111-1111-111111111111", DisplayName: "Jane", Address: "jane@contoso.com"}
	bob := jobs.ObjectRef{ID: "22222222-2222-2222-2222-222222222222", DisplayName: "Bob", Address: "bob@contoso.com"}
	// Findings of address-audit, as a suite (audit.Suite) labels them with the audit that reported them.
	findings := []jobs.Finding{
		{Rule: audit.RuleAddressOnMicrosoft, Job: audit.AddressAuditName, Severity: jobs.SeverityHigh, Object: jane},
		{Rule: audit.RuleAddressOnMicrosoft, Job: audit.AddressAuditName, Severity: jobs.SeverityHigh, Object: bob},
	}
	tests := []struct {
		name     string
		job      string // the run's job: an audit, or a report suite
		exc      executor.Exception
		wantKept []string // object ids still reported
		wantNote string
	}{
		{"exception for every job", "address-audit", executor.Exception{Object: jane.Address, Owner: "it-ops", ConfigPath: "exceptions[0]"},
			[]string{bob.ID}, "exceptions[0] (owner it-ops) hid 1 finding(s)"},
		{"exception for the rule's audit, run in a suite", "report", executor.Exception{Object: jane.ID, Jobs: []string{"address-audit"}, Owner: "o"},
			[]string{bob.ID}, "hid 1 finding(s)"},
		{"exception for another job", "report", executor.Exception{Object: jane.ID, Jobs: []string{meurichtext.Name}, Owner: "o"},
			[]string{jane.ID, bob.ID}, ""},
		{"expired exception", "address-audit", executor.Exception{Object: jane.ID, Owner: "o", Expires: now.Add(-time.Hour)},
			[]string{jane.ID, bob.ID}, "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex := &executor.Executor{Exceptions: []executor.Exception{tc.exc}, Now: func() time.Time { return now }}
			run := &executor.Run{ID: "r1", Job: tc.job, Plan: jobs.Plan{InScope: 2, Findings: findings}}
			sum, err := ex.Apply(context.Background(), run, executor.Options{Mode: jobs.ModeReport})
			if err != nil {
				t.Fatal(err)
			}
			var kept []string
			for _, f := range sum.Findings {
				kept = append(kept, f.Object.ID)
			}
			if strings.Join(kept, " ") != strings.Join(tc.wantKept, " ") {
				t.Errorf("reported %v, want %v", kept, tc.wantKept)
			}
			note := strings.Join(sum.Warnings, "\n")
			if (tc.wantNote == "") != (note == "") || !strings.Contains(note, tc.wantNote) {
				t.Errorf("warnings %q, want one containing %q", note, tc.wantNote)
			}
		})
	}
}
