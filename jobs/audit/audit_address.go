package audit

import (
	"context"
	"sort"
	"strings"

	"github.com/exo-worker/worker/jobs"
)

// AddressAudit checks the address state of every synced, mail-enabled user, group and contact as Graph
// shows it after sync: exactly one primary SMTP address, primary = mail, no onmicrosoft.com-only primary,
// no duplicates, no addresses at domains the tenant has not verified.
type AddressAudit struct{}

// Name implements Job.
func (*AddressAudit) Name() string { return AddressAuditName }

// Describe implements Job.
func (*AddressAudit) Describe() jobs.Description {
	return jobs.Description{
		Summary:        "Audit proxyAddresses and mail of synced users, groups and contacts (one primary, primary = mail, no onmicrosoft.com primary, no duplicates, verified domains)",
		Kind:           jobs.KindAudit,
		Permissions:    auditPermissions,
		Reads:          []jobs.Query{auditAcceptedDomains},
		NeedsDirectory: true,
	}
}

// addressed is one synced mail-enabled object under audit, whatever its directory class.
type addressed struct {
	ref     jobs.ObjectRef
	mail    string
	proxies []string
	// onMicrosoftMatters: a primary at the tenant's onmicrosoft.com is a defect for users and groups; a
	// contact's address is someone else's and may legitimately be at another tenant's onmicrosoft.com.
	internal bool
	upn      string // on-prem UPN (users), a candidate for the address a fix suggests
}

// Plan implements Job.
func (a *AddressAudit) Plan(_ context.Context, t *jobs.Tenant) (jobs.Plan, error) {
	if t.Directory == nil {
		return jobs.Plan{}, errNoDirectory
	}
	dv := newDomainView(t)
	var objs []addressed
	for i := range t.Directory.Users {
		u := &t.Directory.Users[i]
		if !u.Synced() || !isMember(u) || (len(u.ProxyAddresses) == 0 && u.Mail == "") {
			continue
		}
		objs = append(objs, addressed{ref: userRef(u), mail: u.Mail, proxies: u.ProxyAddresses, internal: true, upn: u.OnPremisesUserPrincipalName})
	}
	for i := range t.Directory.Groups {
		g := &t.Directory.Groups[i]
		if !g.Synced() || !g.MailEnabled {
			continue
		}
		objs = append(objs, addressed{ref: groupRef(g), mail: g.Mail, proxies: g.ProxyAddresses, internal: true})
	}
	for i := range t.Directory.Contacts {
		c := &t.Directory.Contacts[i]
		if !c.Synced() || (len(c.ProxyAddresses) == 0 && c.Mail == "") {
			continue
		}
		objs = append(objs, addressed{ref: contactRef(c), mail: c.Mail, proxies: c.ProxyAddresses})
	}

	p := jobs.Plan{InScope: len(objs)}
	holders := map[string][]holder{} // lower-case SMTP address → objects holding it
	for i, o := range objs {
		p.Findings = append(p.Findings, checkAddresses(o, dv)...)
		seen := map[string]bool{}
		for _, s := range smtpAddresses(o.proxies) {
			k := lower(s.Value)
			if seen[k] {
				continue // within-object duplicates are reported by checkAddresses
			}
			seen[k] = true
			holders[k] = append(holders[k], holder{obj: i, entry: s})
		}
	}
	p.Findings = append(p.Findings, crossDuplicates(objs, holders)...)
	jobs.SortFindings(p.Findings)
	return p, nil
}

// checkAddresses applies the per-object address rules.
func checkAddresses(o addressed, dv domainView) []jobs.Finding {
	var out []jobs.Finding
	smtp := smtpAddresses(o.proxies)
	if len(smtp) == 0 {
		// No SMTP address at all: the object is not a recipient in Exchange; nothing to compare.
		return nil
	}
	var primaries []ProxyAddress
	seen := map[string]ProxyAddress{}
	for _, s := range smtp {
		if s.IsPrimary() {
			primaries = append(primaries, s)
		}
		k := lower(s.Value)
		if first, dup := seen[k]; dup {
			// The same address twice on one object: drop the secondary copy (or the second one written).
			drop := s
			if !s.IsPrimary() || first.IsPrimary() {
				drop = ProxyAddress{Prefix: strings.ToLower(s.Prefix), Value: s.Value}
			}
			out = append(out, newFinding(RuleAddressDuplicate, o.ref,
				&jobs.OnPremFix{Attribute: "proxyAddresses", Value: drop.String(), Action: "remove"},
				"%s appears twice in proxyAddresses (%s and %s)", s.Value, first, s))
			continue
		}
		seen[k] = s
	}

	switch len(primaries) {
	case 0:
		var fix *jobs.OnPremFix
		if o.mail != "" {
			fix = &jobs.OnPremFix{Attribute: "proxyAddresses", Value: "SMTP:" + o.mail, Action: "add"}
		}
		out = append(out, newFinding(RuleAddressPrimaryCount, o.ref, fix,
			"proxyAddresses has %d SMTP address(es) but none is primary (no upper-case SMTP: prefix)", len(smtp)))
		return out
	case 1:
	default:
		// Keep the primary that matches mail (or the first); the others must become secondaries.
		keep := primaries[0]
		for _, pr := range primaries {
			if strings.EqualFold(pr.Value, o.mail) {
				keep = pr
				break
			}
		}
		for _, pr := range primaries {
			if pr == keep {
				continue
			}
			out = append(out, newFinding(RuleAddressPrimaryCount, o.ref,
				&jobs.OnPremFix{Attribute: "proxyAddresses", Value: pr.String(), Action: "remove"},
				"proxyAddresses has %d primary SMTP addresses; keep %s, remove %s (add it back as smtp:%s if it is still needed)",
				len(primaries), keep, pr, pr.Value))
		}
		return out
	}
	primary := primaries[0]

	onMS := dv.isOnMicrosoft(primary.Domain())
	if o.internal && onMS {
		out = append(out, newFinding(RuleAddressOnMicrosoft, o.ref, suggestAddressFix(o, smtp, dv),
			"the primary SMTP address is %s, at the tenant's onmicrosoft.com domain (mail = %q)", primary.Value, o.mail))
	}
	if o.mail != "" && !strings.EqualFold(o.mail, primary.Value) && !(o.internal && onMS) {
		out = append(out, newFinding(RuleAddressPrimaryNotMail, o.ref,
			&jobs.OnPremFix{Attribute: "mail", Value: primary.Value, Action: "replace"},
			"mail is %s but the primary SMTP address is %s", o.mail, primary.Value))
	}
	if o.internal && dv.known() {
		for _, s := range smtp {
			d := s.Domain()
			if d == "" || dv.isVerified(d) {
				continue
			}
			if s.IsPrimary() {
				out = append(out, newFinding(RuleAddressUnverifiedDomain, o.ref, nil,
					"the primary SMTP address %s is at %s, which is not a verified domain of the tenant: make another address primary in AD, then remove this one", s.Value, d))
				continue
			}
			out = append(out, newFinding(RuleAddressUnverifiedDomain, o.ref,
				&jobs.OnPremFix{Attribute: "proxyAddresses", Value: s.String(), Action: "remove"},
				"%s is at %s, which is not a verified domain of the tenant", s.Value, d))
		}
	}
	return out
}

// suggestAddressFix proposes the mail value that gives an object with an onmicrosoft.com primary a
// company address: an existing secondary at a company domain, else the on-prem UPN when its domain is
// one, else the primary's local part at the default domain.
func suggestAddressFix(o addressed, smtp []ProxyAddress, dv domainView) *jobs.OnPremFix {
	for _, s := range smtp {
		if !s.IsPrimary() && dv.isVanity(s.Domain()) && dv.isVerified(s.Domain()) {
			return &jobs.OnPremFix{Attribute: "mail", Value: s.Value, Action: "replace"}
		}
	}
	if o.mail != "" && dv.isVanity(domainOf(o.mail)) && dv.isVerified(domainOf(o.mail)) {
		// mail is already right; the SMTP: entry in AD is what is missing.
		return &jobs.OnPremFix{Attribute: "proxyAddresses", Value: "SMTP:" + o.mail, Action: "add"}
	}
	if o.upn != "" && dv.isVanity(domainOf(o.upn)) && dv.isVerified(domainOf(o.upn)) {
		return &jobs.OnPremFix{Attribute: "mail", Value: o.upn, Action: "replace"}
	}
	for _, s := range smtp {
		if s.IsPrimary() && dv.defaultName != "" {
			return &jobs.OnPremFix{Attribute: "mail", Value: localPart(s.Value) + "@" + dv.defaultName, Action: "replace"}
		}
	}
	return nil
}

type holder struct {
	obj   int
	entry ProxyAddress
}

// crossDuplicates reports SMTP addresses held by more than one object. The holder where the address is
// primary (else the first by object id) keeps it; every other holder gets a finding, with a removal fix when
// the address is only a secondary there.
func crossDuplicates(objs []addressed, holders map[string][]holder) []jobs.Finding {
	var out []jobs.Finding
	keys := make([]string, 0)
	for k, hs := range holders {
		if len(hs) > 1 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		hs := holders[k]
		sort.SliceStable(hs, func(i, j int) bool {
			pi, pj := hs[i].entry.IsPrimary(), hs[j].entry.IsPrimary()
			if pi != pj {
				return pi
			}
			return objs[hs[i].obj].ref.ID < objs[hs[j].obj].ref.ID
		})
		keeper := objs[hs[0].obj].ref
		for _, h := range hs[1:] {
			o := objs[h.obj]
			var fix *jobs.OnPremFix
			note := ""
			if h.entry.IsPrimary() {
				note = "; it is this object's primary address, so choose which object keeps it before changing AD"
			} else {
				fix = &jobs.OnPremFix{Attribute: "proxyAddresses", Value: h.entry.String(), Action: "remove"}
			}
			out = append(out, newFinding(RuleAddressDuplicate, o.ref, fix,
				"%s is also an address of %s (%s)%s", h.entry.Value, keeper, keeper.ID, note))
		}
	}
	return out
}
