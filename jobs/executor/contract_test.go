package executor_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/executor"
	"github.com/exo-worker/worker/jobs/meurichtext"
)

// rogue is a test job whose plan is whatever the test says, over the same read as meu-richtext: it stands
// for a buggy (or careless) job the executor must stop.
type rogue struct {
	desc jobs.Description
	plan func(t *jobs.Tenant) []jobs.Change
}

func (r *rogue) Name() string               { return "rogue" }
func (r *rogue) Describe() jobs.Description { return r.desc }
func (r *rogue) Plan(_ context.Context, t *jobs.Tenant) (jobs.Plan, error) {
	return jobs.Plan{InScope: len(t.MailUsers), Changes: r.plan(t)}, nil
}

var mailUserRead = jobs.Query{Cmdlet: "Get-MailUser", Filter: jobs.MailUserScope,
	Select: []string{"ExternalDirectoryObjectId", "DisplayName", "PrimarySmtpAddress", "UseMapiRichTextFormat"}}

// eachMailUser plans one change per mail user read.
func eachMailUser(params ...jobs.Param) func(t *jobs.Tenant) []jobs.Change {
	return func(t *jobs.Tenant) []jobs.Change {
		var out []jobs.Change
		for _, mu := range t.MailUsers {
			out = append(out, jobs.Set(jobs.ObjectRef{ID: mu.ExternalDirectoryObjectId}, "Set-MailUser", params...))
		}
		return out
	}
}

// TestExecutorRefusesWhatTheJobDidNotDeclare: every planned change is checked against the job's declaration
// before any write, in every mode; one bad change aborts the whole run and nothing reaches the tenant.
func TestExecutorRefusesWhatTheJobDidNotDeclare(t *testing.T) {
	never := jobs.Param{Name: "UseMapiRichTextFormat", From: jobs.Text("Always"), To: jobs.Text("Never")}
	declared := jobs.Description{Kind: jobs.KindRemediate, Reads: []jobs.Query{mailUserRead},
		Writes:      []jobs.Write{{Cmdlet: "Set-MailUser", Params: []string{"UseMapiRichTextFormat"}}},
		Permissions: []jobs.Permission{jobs.ExchangeManageAsApp}}
	withWrite := func(w jobs.Write) jobs.Description {
		d := declared
		d.Writes = []jobs.Write{w}
		return d
	}
	tests := []struct {
		name string
		desc jobs.Description
		plan func(t *jobs.Tenant) []jobs.Change
		want string // in the error
	}{
		{"undeclared parameter", declared,
			eachMailUser(never, jobs.Param{Name: "HiddenFromAddressListsEnabled", From: jobs.Bool(false), To: jobs.Bool(true)}),
			"no declared write covers it"},
		{"undeclared cmdlet", declared, func(t *jobs.Tenant) []jobs.Change {
			return []jobs.Change{jobs.Set(jobs.ObjectRef{ID: t.MailUsers[0].ExternalDirectoryObjectId}, "Remove-MailUser", never)}
		}, "no declared write covers it"},
		{"sync-owned parameter", withWrite(jobs.Write{Cmdlet: "Set-MailUser", Params: []string{"CustomAttribute1"}}),
			eachMailUser(jobs.Param{Name: "CustomAttribute1", From: jobs.Null, To: jobs.Text("x")}),
			"directory sync owns CustomAttribute1"},
		{"write from an audit", jobs.Description{Kind: jobs.KindAudit, Reads: []jobs.Query{mailUserRead},
			Permissions: []jobs.Permission{jobs.ExchangeManageAsApp}}, eachMailUser(never),
			"audits cannot write"},
		{"a write cmdlet with no read-back", withWrite(jobs.Write{Cmdlet: "Set-CASMailbox", Params: []string{"OWAEnabled"}}),
			func(t *jobs.Tenant) []jobs.Change {
				return []jobs.Change{jobs.Set(jobs.ObjectRef{ID: t.MailUsers[0].ExternalDirectoryObjectId}, "Set-CASMailbox",
					jobs.Param{Name: "OWAEnabled", From: jobs.Bool(true), To: jobs.Bool(false)})}
			}, "no read-back cmdlet"},
		{"a Graph change without a Graph writer", withWrite(jobs.Write{Graph: jobs.GraphGroupMember}), func(t *jobs.Tenant) []jobs.Change {
			return []jobs.Change{jobs.AddToGroup(jobs.ObjectRef{ID: t.MailUsers[0].ExternalDirectoryObjectId}, jobs.ObjectRef{ID: "g1"})}
		}, "GroupMember.ReadWrite.All"},
	}
	for _, tc := range tests {
		for _, mode := range []jobs.Mode{jobs.ModeRemediate, jobs.ModeDryRun} {
			t.Run(tc.name+"/"+string(mode), func(t *testing.T) {
				srv, client := startSim(t, nil, sim.Faults{})
				ex := &executor.Executor{Client: client, SyncOwned: exo.SyncOwned}
				sum, err := ex.Run(context.Background(), "run-1", &rogue{desc: tc.desc, plan: tc.plan}, executor.Options{Mode: mode, Force: true})
				var ue *executor.UndeclaredChangeError
				if !errors.As(err, &ue) {
					t.Fatalf("run: err %v (summary %+v), want an UndeclaredChangeError", err, sum)
				}
				if sum != nil {
					t.Errorf("a refused run returned a summary: %+v", sum)
				}
				msg := err.Error()
				for _, want := range []string{"rogue", ue.Change.Object.ID, tc.want, "Nothing was written"} {
					if !strings.Contains(msg, want) {
						t.Errorf("error %q does not say %q", msg, want)
					}
				}
				// The reads happened (planning needs them); no write of any kind did.
				if n := srv.Log.Count(sim.Entry.IsWrite); n != 0 {
					t.Errorf("%d non-read requests reached the simulator, want 0", n)
				}
			})
		}
	}
}

// TestMultiParameterChangeIsOneWriteTypedAndReadBackWhole: a change of two parameters is one Set-MailUser
// call carrying both, each value typed as declared (a boolean goes as JSON true, not "True"); the read-back
// checks both, and one that does not hold fails the change as a whole.
func TestMultiParameterChangeIsOneWriteTypedAndReadBackWhole(t *testing.T) {
	srv, client := startSim(t, nil, sim.Faults{})
	ids := map[string]bool{}
	for _, o := range srv.Tenant().InScopeMEUs()[:3] {
		ids[strings.ToLower(o.ID)] = true
	}
	job := &rogue{
		desc: jobs.Description{Kind: jobs.KindRemediate, Reads: []jobs.Query{mailUserRead},
			Writes:      []jobs.Write{{Cmdlet: "Set-MailUser", Params: []string{"UseMapiRichTextFormat", "MessageFormat", "UsePreferMessageFormat", "MacAttachmentFormat"}}},
			Permissions: []jobs.Permission{jobs.ExchangeManageAsApp}},
		plan: func(t *jobs.Tenant) []jobs.Change {
			var out []jobs.Change
			for _, mu := range t.MailUsers {
				if !ids[strings.ToLower(mu.ExternalDirectoryObjectId)] {
					continue
				}
				// MessageFormat and UseMapiRichTextFormat: the simulator holds both (Mime is its value).
				out = append(out, jobs.Set(jobs.ObjectRef{ID: mu.ExternalDirectoryObjectId}, "Set-MailUser",
					jobs.Param{Name: "UseMapiRichTextFormat", From: jobs.Text(mu.UseMapiRichTextFormat), To: jobs.Text("Never")},
					jobs.Param{Name: "MessageFormat", From: jobs.Text("Mime"), To: jobs.Text("Mime")}))
			}
			// One more change also sets a boolean, and a value the simulator does not keep (MacAttachmentFormat
			// stays BinHex): its read-back disagrees.
			first := out[0]
			first.Params = append(first.Params, jobs.Param{Name: "UsePreferMessageFormat", From: jobs.Bool(false), To: jobs.Bool(true)},
				jobs.Param{Name: "MacAttachmentFormat", From: jobs.Text("BinHex"), To: jobs.Text("UuEncode")})
			out[0] = first
			return out
		},
	}
	ex := &executor.Executor{Client: client, ReadBackRetries: -1}
	sum, err := ex.Run(context.Background(), "run-1", job, executor.Options{Mode: jobs.ModeRemediate})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var sets []sim.Entry
	for _, e := range srv.Log.Entries() {
		if e.Cmdlet == "Set-MailUser" {
			sets = append(sets, e)
		}
	}
	if len(sets) != 3 {
		t.Fatalf("%d Set-MailUser calls, want 3 (one per change, carrying every parameter)", len(sets))
	}
	typed := 0
	for _, e := range sets {
		if e.Params["UseMapiRichTextFormat"] != "Never" || e.Params["MessageFormat"] != "Mime" {
			t.Errorf("Set-MailUser %s sent %v, want both parameters", e.Identity, e.Params)
		}
		if v, ok := e.Params["UsePreferMessageFormat"]; ok {
			typed++
			if v != true {
				t.Errorf("UsePreferMessageFormat sent as %#v, want the JSON boolean true", v)
			}
		}
	}
	if typed != 1 {
		t.Errorf("UsePreferMessageFormat sent %d times, want 1", typed)
	}
	if sum.Verified != 2 || sum.Failed != 1 {
		t.Fatalf("verified %d, failed %d, want 2 and 1: %+v", sum.Verified, sum.Failed, sum.Changes)
	}
	for _, c := range sum.Changes {
		if c.Status == executor.StatusFailed && !strings.Contains(c.Error, "MacAttachmentFormat = BinHex, not UuEncode") {
			t.Errorf("failed change says %q, want the parameter that disagrees, typed", c.Error)
		}
	}
}

// TestMEURichTextDeclaresWhatItPlans is the contract from job 1's side: its declaration validates, and every
// change it plans on the default tenant is one its declaration allows.
func TestMEURichTextDeclaresWhatItPlans(t *testing.T) {
	_, client := startSim(t, nil, sim.Faults{})
	j, _ := meurichtext.New("")
	d := j.Describe()
	if err := d.Validate(exo.SyncOwned); err != nil {
		t.Fatalf("meu-richtext's declaration: %v", err)
	}
	run, err := (&executor.Executor{Client: client}).Plan(context.Background(), "run-1", j)
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Plan.Changes) == 0 {
		t.Fatal("no change planned; the test would prove nothing")
	}
	for _, c := range run.Plan.Changes {
		if err := d.Allows(c); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
}
