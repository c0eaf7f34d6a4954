package meurichtext_test

import (
	"context"
	"strings"
	"testing"

	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/executor"
	"github.com/exo-worker/worker/jobs/jobtest"
	"github.com/exo-worker/worker/jobs/meurichtext"
)

var tnefOn = true

// TestPreferMessageFormatMakesTheFixEffective runs job 1 against a tenant whose Default remote domain forces
// TNEF. By default each MEU gets UseMapiRichTextFormat and UsePreferMessageFormat in one change, read back
// together, and nothing overrides it; with prefer_message_format off, every MEU is reported overridden.
func TestPreferMessageFormatMakesTheFixEffective(t *testing.T) {
	srv, client := jobtest.StartSim(t, nil, sim.Faults{})
	srv.SetRemoteDomain(sim.RemoteDomain{Name: "Default", DomainName: "*", TNEFEnabled: &tnefOn})
	inScope := len(srv.Tenant().InScopeMEUs())

	off, err := meurichtext.New("")
	if err != nil {
		t.Fatal(err)
	}
	off.PreferMessageFormat = false
	ex := &executor.Executor{Client: client}
	dry, err := ex.Run(context.Background(), "run-1", off, executor.Options{Mode: jobs.ModeDryRun})
	if err != nil {
		t.Fatal(err)
	}
	overridden := 0
	for _, f := range dry.Findings {
		if f.Rule == jobs.RuleOverridden && strings.Contains(f.Detail, "TNEFEnabled $true") {
			overridden++
		}
	}
	if overridden != inScope {
		t.Errorf("prefer_message_format off: %d MEUs reported overridden, want all %d", overridden, inScope)
	}

	on, _ := meurichtext.New("")
	if !on.PreferMessageFormat {
		t.Fatal("prefer_message_format must default to true")
	}
	sum, err := ex.Run(context.Background(), "run-1", on, executor.Options{Mode: jobs.ModeRemediate, MaxChangePercent: 100, MaxChanges: 100000})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Planned != inScope || sum.Verified != inScope || sum.Failed != 0 {
		t.Fatalf("planned %d verified %d failed %d, want %d, %d, 0", sum.Planned, sum.Verified, sum.Failed, inScope, inScope)
	}
	for _, c := range sum.Changes {
		names := c.ParamNames()
		if !strings.Contains(strings.Join(names, ","), meurichtext.PreferParam) {
			t.Errorf("%s: change without %s: %v", c.Object.ID, meurichtext.PreferParam, names)
		}
	}
	for _, f := range sum.Findings {
		if f.Rule == jobs.RuleOverridden {
			t.Errorf("with UsePreferMessageFormat set nothing is overridden: %s", f.Detail)
		}
	}
	for _, o := range srv.Tenant().InScopeMEUs() {
		if o.UseMapiRichTextFormat != "Never" || !o.UsePreferMessageFormat {
			t.Errorf("%s: %s / %v after the run", o.ID, o.UseMapiRichTextFormat, o.UsePreferMessageFormat)
		}
	}
	// One Set-MailUser per object, both parameters in it.
	sets := srv.Log.Count(func(e sim.Entry) bool { return e.Cmdlet == "Set-MailUser" })
	if sets != inScope {
		t.Errorf("%d Set-MailUser calls for %d objects", sets, inScope)
	}
}
