package audit

import (
	"context"
	"fmt"
	"strings"

	"github.com/exo-worker/worker/internal/directory"
	"github.com/exo-worker/worker/jobs"
)

// LicenseAudit compares each synced user's Exchange mailbox plans (Graph assignedPlans: Plan 1, Plan 2, Kiosk,
// Essentials, ... and government variants; EXCHANGE_S_FOUNDATION never counts) with what Exchange Online
// holds for the same object id: a mail user, a mailbox, or nothing.
type LicenseAudit struct{}

// Name implements Job.
func (*LicenseAudit) Name() string { return LicenseAuditName }

// Describe implements Job.
func (*LicenseAudit) Describe() jobs.Description {
	return jobs.Description{
		Summary:        "Audit Exchange licences against mailboxes: licensed users still mail users, licensed users without a mailbox, mailboxes without a licence",
		Kind:           jobs.KindAudit,
		Permissions:    auditPermissions,
		Reads:          []jobs.Query{auditMailUsers, auditMailboxes},
		NeedsDirectory: true,
	}
}

// Plan implements Job.
func (a *LicenseAudit) Plan(_ context.Context, t *jobs.Tenant) (jobs.Plan, error) {
	if t.Directory == nil {
		return jobs.Plan{}, errNoDirectory
	}
	plans := newPlanCatalog(t.Directory.SKUs)
	meus := exoMailUsers(t)
	mailboxes := make(map[string]string, len(t.Mailboxes)) // id → RecipientTypeDetails
	for _, m := range t.Mailboxes {
		if m.ExternalDirectoryObjectId != "" {
			mailboxes[lower(m.ExternalDirectoryObjectId)] = m.RecipientTypeDetails
		}
	}
	var p jobs.Plan
	for i := range t.Directory.Users {
		u := &t.Directory.Users[i]
		// Guests never get a mailbox whatever their licence; cloud-only users have no AD to fix.
		if !u.Synced() || !isMember(u) {
			continue
		}
		p.InScope++
		id := lower(u.ID)
		plan := plans.mailboxPlan(u)
		_, isMEU := meus[id]
		rtd, hasMailbox := mailboxes[id]
		ref := userRef(u)
		switch {
		case plan != "" && isMEU:
			p.Findings = append(p.Findings, newFinding(RuleLicenseOnMailUser, ref, nil,
				"%s is assigned (%s) but Exchange Online still shows a mail user forwarding to %s%s",
				plan, planSince(u, plans), ref.Address, provisioningNote(u)))
		case plan != "" && !hasMailbox:
			p.Findings = append(p.Findings, newFinding(RuleLicenseMailboxMissing, ref, nil,
				"%s is assigned (%s) but Exchange Online has no mailbox for this object%s",
				plan, planSince(u, plans), provisioningNote(u)))
		case plan == "" && hasMailbox && rtd == "UserMailbox":
			p.Findings = append(p.Findings, newFinding(RuleMailboxUnlicensed, ref, nil,
				"Exchange Online holds a user mailbox but no Exchange mailbox plan is enabled%s", foundationNote(u)))
		}
	}
	jobs.SortFindings(p.Findings)
	return p, nil
}

// planSince says when the first active mailbox plan was assigned.
func planSince(u *directory.User, c planCatalog) string {
	for _, pl := range u.AssignedPlans {
		if _, ok := c.mailbox[lower(pl.ServicePlanID)]; ok && activeStatus(pl.CapabilityStatus) {
			if pl.AssignedDateTime.IsZero() {
				return "assignment date unknown"
			}
			return "since " + pl.AssignedDateTime.UTC().Format("2006-01-02")
		}
	}
	return "assignment date unknown"
}

// provisioningNote quotes unresolved Exchange provisioning errors, which name the real cause.
func provisioningNote(u *directory.User) string {
	var parts []string
	for _, e := range u.ServiceProvisioningErrors {
		if e.IsResolved || !strings.HasPrefix(lower(e.ServiceInstance), "exchange") {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: %s", e.ServiceInstance, errorDetailText(e.ErrorDetail)))
	}
	if len(parts) == 0 {
		return ""
	}
	return "; Exchange provisioning error " + strings.Join(parts, "; ")
}

// errorDetailText shortens the XML of a serviceProvisioningXmlError to its text, for one line of a report.
func errorDetailText(x string) string {
	var b strings.Builder
	in := false
	for _, r := range x {
		switch {
		case r == '<':
			in = true
			b.WriteByte(' ')
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	s := strings.Join(strings.Fields(b.String()), " ")
	if r := []rune(s); len(r) > 300 {
		s = string(r[:300]) + "…"
	}
	if s == "" {
		return "(no detail)"
	}
	return s
}

func foundationNote(u *directory.User) string {
	for _, pl := range u.AssignedPlans {
		if nonMailboxPlans[lower(pl.ServicePlanID)] == "EXCHANGE_S_FOUNDATION" {
			return " (EXCHANGE_S_FOUNDATION is assigned, but it does not license a mailbox)"
		}
	}
	return ""
}
