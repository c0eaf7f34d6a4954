package audit_test

import (
	"context"
	"strings"
	"testing"

	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/audit"
	"github.com/exo-worker/worker/jobs/jobtest"
)

// TestAuditReadsLoadFromTheSimulator loads the suite's EXO queries through the real exo client over HTTPS
// and checks that the snapshot holds exactly the recipients the seeded tenant has, decoded.
func TestAuditReadsLoadFromTheSimulator(t *testing.T) {
	sc := sim.DefaultScenario()
	d := sim.DefaultDefects()
	sc.Defects = &d
	srv, client := jobtest.StartSim(t, &sc, sim.Faults{})
	suite, err := audit.NewSuite("audits", audit.Audits()...)
	if err != nil {
		t.Fatal(err)
	}
	tn, err := jobs.LoadTenant(context.Background(), client, suite.Describe().Reads, nil)
	if err != nil {
		t.Fatal(err)
	}
	model := srv.Tenant()
	wantMEUs := len(model.InScopeMEUs())
	wantMailboxes := len(model.Select(func(o *sim.Object) bool { return o.RecipientType == "UserMailbox" }))
	if len(tn.MailUsers) != wantMEUs || len(tn.Mailboxes) != wantMailboxes || len(tn.AcceptedDomains) != len(model.AcceptedDomains()) {
		t.Errorf("snapshot: %d MEUs (want %d), %d mailboxes (want %d), %d accepted domains (want %d)",
			len(tn.MailUsers), wantMEUs, len(tn.Mailboxes), wantMailboxes, len(tn.AcceptedDomains), len(model.AcceptedDomains()))
	}
	for _, m := range tn.Mailboxes {
		if m.ExternalDirectoryObjectId == "" || m.RecipientTypeDetails == "" {
			t.Fatalf("mailbox decoded without its id or type: %+v", m)
		}
	}
	shared, initial := false, false
	for _, m := range tn.Mailboxes {
		shared = shared || m.RecipientTypeDetails == "SharedMailbox"
	}
	for _, a := range tn.AcceptedDomains {
		initial = initial || (a.InitialDomain && strings.HasSuffix(a.DomainName, ".onmicrosoft.com"))
	}
	if !shared || !initial {
		t.Errorf("the shared-mailbox trap (%v) or the initial domain flag (%v) did not survive decoding", shared, initial)
	}
	for _, mu := range tn.MailUsers {
		if mu.ExternalEmailAddress == "" {
			continue
		}
		if !strings.HasPrefix(strings.ToLower(mu.ExternalEmailAddress), "smtp:") {
			t.Errorf("ExternalEmailAddress %q lost its SMTP: prefix", mu.ExternalEmailAddress)
		}
	}
	// Every audit plans over an EXO-only snapshot by refusing: they need Graph too.
	if _, err := suite.Plan(context.Background(), tn); err == nil {
		t.Error("the suite planned without Graph's directory")
	}
}
