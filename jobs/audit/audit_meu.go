package audit

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/jobs"
)

// MEUAudit checks where each directory-synced mail user's mail goes (ExternalEmailAddress, the AD
// targetAddress): missing, back into the tenant's own onmicrosoft.com domains, or to a tenant domain whose
// MX record already points at Exchange Online. The MX records come from Snapshot.MX, resolved before
// planning (WithMX).
type MEUAudit struct{}

// Name implements Job.
func (*MEUAudit) Name() string { return MEUAuditName }

// Describe implements Job.
func (*MEUAudit) Describe() jobs.Description {
	return jobs.Description{
		Summary:        "Audit directory-synced mail users' targetAddress: missing, pointing back into the tenant, or at a domain whose MX already points to Exchange Online",
		Kind:           jobs.KindAudit,
		Permissions:    auditPermissions,
		Needs:          []string{"DNS: MX lookups of the tenant's verified domains (tenant.dns_server or the system resolver)"},
		Reads:          []jobs.Query{auditMailUsers, auditAcceptedDomains, auditRemoteDomains},
		NeedsDirectory: true,
	}
}

// Plan implements Job.
func (a *MEUAudit) Plan(_ context.Context, t *jobs.Tenant) (jobs.Plan, error) {
	if t.Directory == nil {
		return jobs.Plan{}, errNoDirectory
	}
	dv := newDomainView(t)
	users := usersByID(t.Directory)
	meus := exoMailUsers(t)
	ids := make([]string, 0, len(meus))
	for id := range meus {
		ids = append(ids, id)
	}
	sort.Strings(ids)

	p := jobs.Plan{InScope: len(ids)}
	unknownMX := map[string]int{} // tenant domain → MEUs forwarding to it whose MX is unknown
	for _, id := range ids {
		mu := meus[id]
		ref := jobs.ObjectRef{ID: mu.ExternalDirectoryObjectId, DisplayName: mu.DisplayName, Address: mu.PrimarySmtpAddress, Kind: jobs.ObjectUser}
		if u, ok := users[id]; ok {
			ref = userRef(u)
			if ref.Address == "" {
				ref.Address = mu.PrimarySmtpAddress
			}
		}
		target := strings.TrimSpace(stripSMTP(mu.ExternalEmailAddress))
		d := domainOf(target)
		switch {
		case target == "":
			p.Findings = append(p.Findings, newFinding(RuleMEUTargetMissing, ref, targetFix(mu.PrimarySmtpAddress, dv),
				"ExternalEmailAddress (targetAddress) is empty: mail from the cloud to %s cannot be delivered", orNone(mu.PrimarySmtpAddress)))
		case dv.isOnMicrosoft(d):
			p.Findings = append(p.Findings, newFinding(RuleMEUTargetTenantDomain, ref, targetFix(mu.PrimarySmtpAddress, dv),
				"ExternalEmailAddress is %s, at the tenant's own %s, but the object has no cloud mailbox: mail loops", target, d))
		case dv.isVanity(d):
			atEXO, hosts, ok := dv.mxAtEXO(d)
			if !ok {
				unknownMX[d]++
				continue
			}
			if atEXO {
				p.Findings = append(p.Findings, newFinding(RuleMEUTargetMXCutover, ref, nil,
					"ExternalEmailAddress is %s; the MX of %s is %s (Exchange Online), so forwarded mail comes back to the tenant and loops",
					target, d, strings.Join(hosts, ", ")))
			}
		}
	}
	p.Findings = append(p.Findings, remoteDomainFindings(t, meus, ids)...)
	domains := make([]string, 0, len(unknownMX))
	for d := range unknownMX {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	for _, d := range domains {
		p.Findings = append(p.Findings, newFinding(RuleDomainMXUnknown,
			jobs.ObjectRef{ID: d, DisplayName: d, Kind: jobs.ObjectDomain}, nil,
			"%d mail user(s) forward to %s, whose MX record is unknown: %s", unknownMX[d], d, dv.mxError(d)))
	}
	jobs.SortFindings(p.Findings)
	return p, nil
}

// remoteDomainFindings flags each remote domain with TNEFEnabled $true that is the one applying to some
// MEUs' target domains (or is "*"), naming how many and which MEUs it overrides.
func remoteDomainFindings(t *jobs.Tenant, meus map[string]*exo.MailUser, ids []string) []jobs.Finding {
	affected := map[string][]string{}
	for _, id := range ids {
		mu := meus[id]
		rd := exo.CoveringRemoteDomain(t.RemoteDomains, domainOf(stripSMTP(mu.ExternalEmailAddress)))
		if rd == nil || rd.TNEFEnabled == nil || !*rd.TNEFEnabled || mu.UsePreferMessageFormat {
			continue
		}
		affected[rd.Name] = append(affected[rd.Name], orNone(mu.PrimarySmtpAddress))
	}
	var out []jobs.Finding
	for _, rd := range t.RemoteDomains {
		users := affected[rd.Name]
		if rd.TNEFEnabled == nil || !*rd.TNEFEnabled || (len(users) == 0 && rd.DomainName != "*") {
			continue
		}
		shown := users
		if len(shown) > 5 {
			shown = shown[:5]
		}
		more := ""
		if len(users) > len(shown) {
			more = fmt.Sprintf(" and %d more", len(users)-len(shown))
		}
		out = append(out, newFinding(RuleRemoteDomainTNEF, jobs.ObjectRef{ID: rd.Name, DisplayName: rd.Name, Kind: jobs.ObjectDomain}, nil,
			"remote domain %q (%s) has TNEFEnabled $true: it overrides UseMapiRichTextFormat for %d mail user(s) without UsePreferMessageFormat (%s%s); fix: keep jobs.meu-richtext.prefer_message_format: true, or Set-RemoteDomain -Identity %q -TNEFEnabled $null",
			rd.Name, rd.DomainName, len(users), strings.Join(shown, ", "), more, rd.Name))
	}
	return out
}

// targetFix proposes targetAddress = SMTP:<primary> when the primary address is at a company domain whose
// mail still goes elsewhere than Exchange Online; otherwise there is no value the audit can know.
func targetFix(primary string, dv domainView) *jobs.OnPremFix {
	d := domainOf(primary)
	if primary == "" || !dv.isVanity(d) {
		return nil
	}
	if atEXO, _, ok := dv.mxAtEXO(d); !ok || atEXO {
		return nil
	}
	return &jobs.OnPremFix{Attribute: "targetAddress", Value: "SMTP:" + primary, Action: "replace"}
}
