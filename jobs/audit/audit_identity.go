package audit

import (
	"context"
	"strings"

	"github.com/exo-worker/worker/internal/directory"
	"github.com/exo-worker/worker/jobs"
)

// IdentityAudit checks what sync did to names: on-prem UPNs whose suffix the tenant has not verified (Entra
// replaced them with an onmicrosoft.com UPN) and attribute conflicts Entra quarantined
// (onPremisesProvisioningErrors with category PropertyConflict) on users, groups and contacts.
type IdentityAudit struct{}

// Name implements Job.
func (*IdentityAudit) Name() string { return IdentityAuditName }

// Describe implements Job.
func (*IdentityAudit) Describe() jobs.Description {
	return jobs.Description{
		Summary:        "Audit UPN suffixes against verified domains and the sync conflicts Entra quarantined (duplicate UPN or proxy address)",
		Kind:           jobs.KindAudit,
		Permissions:    auditPermissions,
		NeedsDirectory: true,
	}
}

// Plan implements Job.
func (a *IdentityAudit) Plan(_ context.Context, t *jobs.Tenant) (jobs.Plan, error) {
	if t.Directory == nil {
		return jobs.Plan{}, errNoDirectory
	}
	dv := newDomainView(t)
	addrIndex := proxyHolders(t.Directory)
	var p jobs.Plan
	for i := range t.Directory.Users {
		u := &t.Directory.Users[i]
		if !u.Synced() || !isMember(u) {
			continue
		}
		p.InScope++
		ref := userRef(u)
		if upn := u.OnPremisesUserPrincipalName; upn != "" && dv.known() && !dv.isVerified(domainOf(upn)) {
			p.Findings = append(p.Findings, newFinding(RuleUPNUnverifiedSuffix, ref, suggestUPN(u, dv),
				"the on-premises UPN %s ends in %s, which is not a verified domain; the cloud UPN became %s",
				upn, orNone(domainOf(upn)), u.UserPrincipalName))
		}
		p.Findings = append(p.Findings, conflicts(ref, u.OnPremisesProvisioningErrors, addrIndex)...)
	}
	for i := range t.Directory.Groups {
		g := &t.Directory.Groups[i]
		if !g.Synced() {
			continue
		}
		p.InScope++
		p.Findings = append(p.Findings, conflicts(groupRef(g), g.OnPremisesProvisioningErrors, addrIndex)...)
	}
	for i := range t.Directory.Contacts {
		c := &t.Directory.Contacts[i]
		if !c.Synced() {
			continue
		}
		p.InScope++
		p.Findings = append(p.Findings, conflicts(contactRef(c), c.OnPremisesProvisioningErrors, addrIndex)...)
	}
	jobs.SortFindings(p.Findings)
	return p, nil
}

// suggestUPN proposes the on-prem UPN's local part at a verified company domain: the domain of mail when it
// is one, else the tenant's default domain.
func suggestUPN(u *directory.User, dv domainView) *jobs.OnPremFix {
	local := localPart(u.OnPremisesUserPrincipalName)
	for _, d := range []string{domainOf(u.Mail), domainOf(primaryOrMail(u.ProxyAddresses, "")), dv.defaultName} {
		if d != "" && dv.isVanity(d) && dv.isVerified(d) {
			return &jobs.OnPremFix{Attribute: "userPrincipalName", Value: local + "@" + d, Action: "replace"}
		}
	}
	return nil
}

// proxyHolders maps every SMTP address and UPN of the synced directory to the objects that hold it, so a
// conflict finding can name the other object.
func proxyHolders(s *directory.Snapshot) map[string][]jobs.ObjectRef {
	m := map[string][]jobs.ObjectRef{}
	add := func(ref jobs.ObjectRef, proxies []string, upn string) {
		for _, p := range smtpAddresses(proxies) {
			k := lower(p.Value)
			m[k] = append(m[k], ref)
		}
		if upn != "" {
			m["upn:"+lower(upn)] = append(m["upn:"+lower(upn)], ref)
		}
	}
	for i := range s.Users {
		u := &s.Users[i]
		add(userRef(u), u.ProxyAddresses, u.UserPrincipalName)
	}
	for i := range s.Groups {
		add(groupRef(&s.Groups[i]), s.Groups[i].ProxyAddresses, "")
	}
	for i := range s.Contacts {
		add(contactRef(&s.Contacts[i]), s.Contacts[i].ProxyAddresses, "")
	}
	return m
}

// conflicts turns PropertyConflict provisioning errors into findings.
func conflicts(ref jobs.ObjectRef, errs []directory.ProvisioningError, holders map[string][]jobs.ObjectRef) []jobs.Finding {
	var out []jobs.Finding
	for _, e := range errs {
		if !strings.EqualFold(e.Category, "PropertyConflict") {
			continue
		}
		prop := lower(e.PropertyCausingError)
		value := strings.TrimSpace(e.Value)
		switch {
		case prop == "userprincipalname":
			other := otherHolder(holders["upn:"+lower(value)], ref.ID)
			out = append(out, newFinding(RuleSyncConflictUPN, ref, nil,
				"the UPN %s is already used by %s; Entra gave this object a generated UPN (since %s). Choose a unique userPrincipalName in AD",
				value, other, e.OccurredDateTime.UTC().Format("2006-01-02")))
		case strings.HasPrefix(prop, "proxyaddress"):
			addr := stripSMTP(value)
			entry := value
			if p, err := ParseProxyAddress(value); err != nil || !p.IsSMTP() {
				entry = "smtp:" + addr
			}
			other := otherHolder(holders[lower(addr)], ref.ID)
			out = append(out, newFinding(RuleSyncConflictProxy, ref,
				&jobs.OnPremFix{Attribute: "proxyAddresses", Value: entry, Action: "remove"},
				"%s is already an address of %s; Entra left it off this object (since %s). Remove it from the object that should not have it",
				addr, other, e.OccurredDateTime.UTC().Format("2006-01-02")))
		}
	}
	return out
}

// otherHolder names the first holder that is not self.
func otherHolder(refs []jobs.ObjectRef, self string) string {
	for _, r := range refs {
		if !strings.EqualFold(r.ID, self) {
			return r.String() + " (" + r.ID + ")"
		}
	}
	return "another object"
}

func orNone(s string) string {
	if s == "" {
		return "(no domain)"
	}
	return s
}
