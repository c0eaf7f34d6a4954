package tenant

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"weak"
)

// This file seeds the mistakes audits must find, each exactly as the cloud shows it after Entra Connect has
// run its rules (DESIGN.md "What the cloud can show"; research/peers.md §3), and the traps audits must not
// flag. Mistakes the cloud never shows (a group or contact without mail is not synced; invalid characters
// are rejected by sync) are not seeded: a cloud audit cannot see them, and faking them would only test a
// fiction. The generator records what it seeded as ground truth, so tests measure precision and recall.

// DefectMix says how many objects of each kind of defect the generator adds on top of the scenario's sizes.
// Every count adds new objects; the normal objects stay clean.
type DefectMix struct {
	// UPNUnverified: synced users whose on-premises UPN ends in a domain the tenant has not verified
	// (contoso.local). Entra fell back to <mailNickname>@<initial domain>; onPremisesUserPrincipalName keeps the
	// AD value. Alternates mailbox users and mail users.
	UPNUnverified int
	// UPNAndOnMicrosoft: licensed users with an unverified UPN suffix and neither mail nor proxyAddresses in AD:
	// the UPN fell back to the onmicrosoft.com domain and, with the Exchange licence, became the primary SMTP
	// address (two findings per object).
	UPNAndOnMicrosoft int
	// OnMicrosoftPrimary: mail users whose mail was never set on-premises: Exchange made the MOERA
	// (<alias>@<initial domain>) their primary SMTP address.
	OnMicrosoftPrimary int
	// PrimaryNotMail: synced objects whose mail differs from the SMTP: entry of proxyAddresses (the first is a
	// mail user whose primary address holds an apostrophe; every third is a distribution group).
	PrimaryNotMail int
	// DuplicateUPN: pairs of users with the same on-premises UPN. The later one carries a PropertyConflict on
	// UserPrincipalName and a generated <prefix><4 digits>@<initial domain> UPN.
	DuplicateUPN int
	// DuplicateProxy: pairs of mail users sharing an SMTP address. The later one carries a PropertyConflict on
	// ProxyAddress and the cloud left the address off it.
	DuplicateProxy int
	// LicensedMailUser: mail users (mailbox still on-premises) with a licence holding an Exchange mailbox plan.
	LicensedMailUser int
	// MailboxNotProvisioned: licensed synced users whose mailbox failed to provision: an unresolved Exchange
	// serviceProvisioningError and no recipient at all in Exchange Online.
	MailboxNotProvisioned int
	// MEUNoTarget: mail users without ExternalEmailAddress. The second one's sourceAnchor is not a GUID (an
	// employee number), so the fix must address it by sAMAccountName or DN.
	MEUNoTarget int
	// MEUTargetTenant: mail users whose ExternalEmailAddress is at the tenant's own mail.onmicrosoft.com or
	// onmicrosoft.com domain (alternating): mail loops.
	MEUTargetTenant int
	// MEUTargetMXCutover: mail users whose ExternalEmailAddress is at CutoverDomain, an accepted domain whose
	// MX already points at Exchange Online.
	MEUTargetMXCutover int
	// Traps adds one object for each case audits must leave alone (see Traps()).
	Traps bool
	// CutoverDomain is the accepted, verified domain whose MX points at Exchange Online; "" means "eu." + the
	// scenario's Domain. It is added whenever MEUTargetMXCutover or Traps asks for it.
	CutoverDomain string
}

// DefaultDefects is the mix `worker report --sim` and the audit tests use: every defect at least once.
func DefaultDefects() DefectMix {
	return DefectMix{UPNUnverified: 2, UPNAndOnMicrosoft: 1, OnMicrosoftPrimary: 2, PrimaryNotMail: 3, DuplicateUPN: 1,
		DuplicateProxy: 2, LicensedMailUser: 2, MailboxNotProvisioned: 1, MEUNoTarget: 2, MEUTargetTenant: 2,
		MEUTargetMXCutover: 2, Traps: true}
}

// Expected is one finding the audits must report for a seeded defect: the rule id of the audit catalogue
// (jobs.Rule*), the object, and the on-premises fix it should propose (empty Attribute: none).
type Expected struct {
	Rule     string
	ObjectID string
	// Attribute, Action and Value are the AD change the finding should carry.
	Attribute, Action, Value string
}

// Trap is an object the audits must not report at all, and why.
type Trap struct {
	ObjectID string
	What     string
}

// Rule ids of the audit catalogue. sim does not import jobs (jobs' tests import sim); an end-to-end test
// checks these against jobs.Rules().
const (
	ruleUPNUnverified     = "upn-unverified-suffix"
	ruleOnMicrosoft       = "address-onmicrosoft-primary"
	rulePrimaryNotMail    = "address-primary-not-mail"
	ruleConflictUPN       = "sync-conflict-upn"
	ruleConflictProxy     = "sync-conflict-proxy"
	ruleLicenseOnMailUser = "license-exchange-on-mailuser"
	ruleMailboxMissing    = "license-mailbox-missing"
	ruleMEUNoTarget       = "meu-target-missing"
	ruleMEUTenantTarget   = "meu-target-tenant-domain"
	ruleMEUMXCutover      = "meu-target-mx-exo"
)

// defectSide is the ground truth of one tenant, in a weak side table like the Graph side (graphmodel.go),
// so the shared Tenant type did not have to change.
type defectSide struct {
	mu       sync.Mutex
	truth    []Expected
	traps    []Trap
	cutover  string
	mxOnPrem string // host name suffix of on-premises MX records
}

var defectSides sync.Map // weak.Pointer[Tenant] → *defectSide

func defectSideOf(t *Tenant) *defectSide {
	k := weak.Make(t)
	if v, ok := defectSides.Load(k); ok {
		return v.(*defectSide)
	}
	v, loaded := defectSides.LoadOrStore(k, &defectSide{})
	if !loaded {
		runtime.AddCleanup(t, func(k weak.Pointer[Tenant]) { defectSides.Delete(k) }, k)
	}
	return v.(*defectSide)
}

// GroundTruth lists the findings the seeded defects must produce, in seeding order. Empty when the scenario
// seeded none.
func (t *Tenant) GroundTruth() []Expected {
	ds := defectSideOf(t)
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return slices.Clone(ds.truth)
}

// Traps lists the seeded objects no audit may report.
func (t *Tenant) Traps() []Trap {
	ds := defectSideOf(t)
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return slices.Clone(ds.traps)
}

// MXRecords is the DNS the scenario implies for the tenant's own domains (not the onmicrosoft.com ones): the
// vanity domains still receive mail on-premises (mail.<domain>), the cut-over domain at Exchange Online
// (<domain with dashes>.mail.protection.outlook.com). Tests and `worker report --sim` serve it from a local
// DNS server.
func (t *Tenant) MXRecords() map[string][]string {
	ds := defectSideOf(t)
	ds.mu.Lock()
	cutover := ds.cutover
	ds.mu.Unlock()
	out := map[string][]string{}
	for _, d := range t.AcceptedDomains() {
		name := strings.ToLower(d.DomainName)
		if strings.HasSuffix(name, ".onmicrosoft.com") {
			continue
		}
		if name == cutover {
			out[name] = []string{strings.ReplaceAll(name, ".", "-") + ".mail.protection.outlook.com"}
			continue
		}
		out[name] = []string{"mail." + name}
	}
	return out
}

func (ds *defectSide) expect(e Expected) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.truth = append(ds.truth, e)
}

func (ds *defectSide) trap(id, what string) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.traps = append(ds.traps, Trap{ObjectID: id, What: what})
}

// seedDefects adds the mix's objects. It runs once, at the end of NewTenant, before the tenant is served.
func (g *generator) seedDefects(m DefectMix) {
	ds := defectSideOf(g.t)
	sc := g.sc
	stem := strings.SplitN(sc.Domain, ".", 2)[0]
	local := stem + ".local" // the classic non-routable AD domain
	cutover := strings.ToLower(m.CutoverDomain)
	if cutover == "" {
		cutover = "eu." + strings.ToLower(sc.Domain)
	}
	if m.MEUTargetMXCutover > 0 || m.Traps {
		g.addAcceptedDomain(cutover)
		ds.mu.Lock()
		ds.cutover = cutover
		ds.mu.Unlock()
	}
	at := func(alias, domain string) string { return alias + "@" + domain }

	for i := range m.UPNUnverified {
		var o Object
		if i%2 == 0 {
			o = g.mailbox()
		} else {
			o = g.dirSyncedMEU()
		}
		o.OnPremisesUserPrincipalName = at(o.Alias, local)
		o.UserPrincipalName = at(o.MailNickname, sc.TenantDomain)
		g.add(o)
		ds.expect(Expected{Rule: ruleUPNUnverified, ObjectID: o.ID, Attribute: "userPrincipalName", Action: "replace", Value: at(o.Alias, sc.Domain)})
	}

	for range m.UPNAndOnMicrosoft {
		o := g.mailbox()
		moera := at(o.Alias, sc.TenantDomain)
		o.OnPremisesUserPrincipalName = at(o.Alias, local)
		o.UserPrincipalName, o.Mail, o.PrimarySmtpAddress, o.WindowsEmailAddress = moera, moera, moera, moera
		o.ProxyAddresses = []string{"SMTP:" + moera, "smtp:" + at(o.Alias, g.mailDomain)}
		o.EmailAddresses = append(slices.Clone(o.ProxyAddresses), g.x500(strings.ToUpper(stem[:1])+stem[1:], o.Alias))
		g.add(o)
		ds.expect(Expected{Rule: ruleUPNUnverified, ObjectID: o.ID, Attribute: "userPrincipalName", Action: "replace", Value: at(o.Alias, sc.Domain)})
		ds.expect(Expected{Rule: ruleOnMicrosoft, ObjectID: o.ID, Attribute: "mail", Action: "replace", Value: at(o.Alias, sc.Domain)})
	}

	for range m.OnMicrosoftPrimary {
		o := g.dirSyncedMEU()
		moera := at(o.Alias, sc.TenantDomain)
		o.Mail, o.PrimarySmtpAddress, o.WindowsEmailAddress = moera, moera, moera
		o.ProxyAddresses = []string{"SMTP:" + moera}
		o.EmailAddresses = []string{"SMTP:" + moera, g.x500(strings.ToUpper(stem[:1])+stem[1:], o.Alias)}
		// targetAddress was set on-premises; mail was not.
		g.add(o)
		ds.expect(Expected{Rule: ruleOnMicrosoft, ObjectID: o.ID, Attribute: "mail", Action: "replace", Value: o.OnPremisesUserPrincipalName})
	}

	for i := range m.PrimaryNotMail {
		if i%3 == 2 {
			o := g.group(g.sc.Groups + i)
			o.Mail = "old-" + o.Mail
			o.WindowsEmailAddress = o.Mail
			g.add(o)
			ds.expect(Expected{Rule: rulePrimaryNotMail, ObjectID: o.ID, Attribute: "mail", Action: "replace", Value: o.PrimarySmtpAddress})
			continue
		}
		o := g.dirSyncedMEU()
		primary := o.PrimarySmtpAddress
		if i == 0 {
			// An apostrophe is legal in an address and must survive every report format.
			primary = at("d'"+o.Alias, sc.Domain)
			o.ProxyAddresses[0] = "SMTP:" + primary
			o.EmailAddresses[0] = "SMTP:" + primary
			o.PrimarySmtpAddress = primary
		} else {
			o.Mail = at("old."+o.Alias, sc.Domain)
		}
		o.WindowsEmailAddress = o.Mail
		g.add(o)
		ds.expect(Expected{Rule: rulePrimaryNotMail, ObjectID: o.ID, Attribute: "mail", Action: "replace", Value: primary})
	}

	for range m.DuplicateUPN {
		first := g.mailbox()
		g.add(first)
		o := g.dirSyncedMEU()
		o.OnPremisesUserPrincipalName = first.OnPremisesUserPrincipalName
		prefix, _, _ := strings.Cut(first.OnPremisesUserPrincipalName, "@")
		o.UserPrincipalName = fmt.Sprintf("%s%04d@%s", prefix, 1000+g.rnd.IntN(9000), sc.TenantDomain)
		g.add(o)
		g.conflict(o.ID, "UserPrincipalName", first.OnPremisesUserPrincipalName)
		ds.expect(Expected{Rule: ruleConflictUPN, ObjectID: o.ID})
	}

	for i := range m.DuplicateProxy {
		first := g.dirSyncedMEU()
		g.add(first)
		o := g.dirSyncedMEU()
		// AD gave o a secondary address that first already holds; Entra kept it on first only.
		value := "smtp:" + first.PrimarySmtpAddress
		if i%2 == 1 {
			value = first.PrimarySmtpAddress // the error's value is also seen without a prefix
		}
		g.add(o)
		g.conflict(o.ID, "ProxyAddress", value)
		ds.expect(Expected{Rule: ruleConflictProxy, ObjectID: o.ID, Attribute: "proxyAddresses", Action: "remove", Value: "smtp:" + first.PrimarySmtpAddress})
	}

	for i := range m.LicensedMailUser {
		o := g.dirSyncedMEU()
		sku, plan := e3SkuID, exchangePlanID
		if i%2 == 1 {
			sku, plan = SkuExchangeStandard, PlanExchangeStandard
		}
		g.license(&o, sku, plan)
		g.add(o)
		ds.expect(Expected{Rule: ruleLicenseOnMailUser, ObjectID: o.ID})
	}

	for range m.MailboxNotProvisioned {
		o := g.mailbox()
		o.RecipientType, o.RecipientTypeDetails, o.ExchangeGuid = "", "", ""
		o.EmailAddresses, o.PrimarySmtpAddress, o.WindowsEmailAddress, o.Name, o.Alias = nil, "", "", "", ""
		g.add(o)
		detail := fmt.Sprintf(`<ServiceInstance Name="exchange/NAMPR11A004-001-01"><ObjectErrors><ErrorRecord><ErrorCode>ProxyAddressExists</ErrorCode>`+
			`<ErrorDescription>The value "SMTP:%s" of property "EmailAddresses" is used by another recipient object.</ErrorDescription>`+
			`</ErrorRecord></ObjectErrors></ServiceInstance>`, o.Mail)
		created := g.created()
		must(g.t.UpdateGraphExtras(o.ID, func(x *GraphExtras) {
			x.ServiceProvisioningErrors = append(x.ServiceProvisioningErrors, ServiceProvisioningError{
				ServiceInstance: "exchange/NAMPR11A004-001-01", ErrorDetail: detail, CreatedDateTime: created})
		}))
		ds.expect(Expected{Rule: ruleMailboxMissing, ObjectID: o.ID})
	}

	for i := range m.MEUNoTarget {
		o := g.dirSyncedMEU()
		o.ExternalEmailAddress = ""
		if i%2 == 1 {
			// sourceAnchor is an employee number here, not the objectGUID; the display name holds a comma and
			// non-ASCII letters, so the DN LDIF must use is neither plain nor ASCII.
			o.OnPremisesImmutableID = fmt.Sprintf("EMP-%06d", g.rnd.IntN(1_000_000))
			o.DisplayName = o.Surname + ", " + o.GivenName + " (Zoë)"
		}
		g.add(o)
		ds.expect(Expected{Rule: ruleMEUNoTarget, ObjectID: o.ID, Attribute: "targetAddress", Action: "replace", Value: "SMTP:" + o.PrimarySmtpAddress})
	}

	for i := range m.MEUTargetTenant {
		o := g.dirSyncedMEU()
		d := g.mailDomain
		if i%2 == 1 {
			d = sc.TenantDomain
		}
		o.ExternalEmailAddress = "SMTP:" + at(o.Alias, d)
		g.add(o)
		ds.expect(Expected{Rule: ruleMEUTenantTarget, ObjectID: o.ID, Attribute: "targetAddress", Action: "replace", Value: "SMTP:" + o.PrimarySmtpAddress})
	}

	for range m.MEUTargetMXCutover {
		o := g.dirSyncedMEU()
		g.moveTo(&o, cutover)
		g.add(o)
		ds.expect(Expected{Rule: ruleMEUMXCutover, ObjectID: o.ID})
	}

	if m.Traps {
		g.seedTraps(ds, cutover)
	}
}

// seedTraps adds one object per case the audits must not flag.
func (g *generator) seedTraps(ds *defectSide, cutover string) {
	sc := g.sc
	org := strings.SplitN(sc.Domain, ".", 2)[0]

	o := g.dirSyncedMEU()
	x500s := []string{
		"X500:/o=" + org + "/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=O'Brien, Seán (old)",
		"x500:/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=d'angelo; test",
	}
	o.ProxyAddresses = append(o.ProxyAddresses, x500s...)
	o.EmailAddresses = append(o.EmailAddresses, x500s...)
	g.add(o)
	ds.trap(o.ID, "X500 addresses with spaces, parentheses, apostrophes, commas")

	o = g.mailbox()
	others := []string{"SIP:" + o.PrimarySmtpAddress, "SPO:SPO_" + g.guid() + "@SPO_" + sc.TenantID,
		"X400:C=US;A= ;P=" + org + ";O=Exchange;S=" + asciiFold(o.Surname) + ";G=" + asciiFold(o.GivenName) + ";"}
	o.ProxyAddresses = append(o.ProxyAddresses, others...)
	o.EmailAddresses = append(o.EmailAddresses, others...)
	g.add(o)
	ds.trap(o.ID, "SIP, SPO and X400 proxy addresses")

	o = g.guest()
	g.license(&o, e3SkuID, exchangePlanID)
	g.add(o)
	ds.trap(o.ID, "guest with an Exchange licence and no mailbox (guests never get one)")

	o = g.cloudMEU()
	moera := o.Alias + "@" + sc.TenantDomain
	o.ProxyAddresses, o.EmailAddresses = []string{"SMTP:" + moera}, []string{"SMTP:" + moera}
	o.Mail, o.PrimarySmtpAddress, o.WindowsEmailAddress = moera, moera, moera
	o.ExternalEmailAddress = "SMTP:" + o.Alias + "@" + g.mailDomain
	g.add(o)
	ds.trap(o.ID, "cloud-only mail user with an onmicrosoft.com primary and target (no AD to fix)")

	o = g.mailbox()
	o.OnPremisesSyncEnabled, o.IsDirSynced = false, false
	o.OnPremisesImmutableID, o.OnPremisesSamAccountName, o.OnPremisesUserPrincipalName = "", "", ""
	o.RecipientType, o.RecipientTypeDetails, o.EmailAddresses, o.PrimarySmtpAddress = "", "", nil, ""
	g.add(o)
	ds.trap(o.ID, "cloud-only licensed user without a mailbox")

	o = g.dirSyncedMEU()
	g.license(&o, SkuEMSPremium, PlanExchangeFoundation)
	g.add(o)
	ds.trap(o.ID, "mail user whose only Exchange plan is EXCHANGE_S_FOUNDATION")

	o = g.mailbox()
	o.AssignedLicenses, o.AssignedPlans = nil, nil
	g.license(&o, SkuEMSPremium, PlanExchangeFoundation)
	o.RecipientType, o.RecipientTypeDetails, o.EmailAddresses, o.PrimarySmtpAddress, o.ExchangeGuid = "", "", nil, "", ""
	g.add(o)
	ds.trap(o.ID, "synced user with only EXCHANGE_S_FOUNDATION and no recipient in Exchange")

	o = g.dirSyncedMEU()
	ds.trap(o.ID, "mail user forwarding to an accepted domain whose MX still points on-premises")
	g.add(o)

	o = g.dirSyncedMEU()
	o.ExternalEmailAddress = "SMTP:" + o.Alias + "@fabrikam.mail.onmicrosoft.com"
	g.add(o)
	ds.trap(o.ID, "mail user forwarding to another tenant's mail.onmicrosoft.com (cross-tenant migration)")

	o = g.mailbox()
	o.RecipientTypeDetails = "SharedMailbox"
	o.AssignedLicenses, o.AssignedPlans = nil, nil
	g.add(o)
	ds.trap(o.ID, "shared mailbox without a licence")

	o = g.mailbox()
	o.OnPremisesUserPrincipalName = o.Alias + "@" + cutover
	o.UserPrincipalName = o.OnPremisesUserPrincipalName
	g.add(o)
	ds.trap(o.ID, "UPN at another verified domain than the mail address")

	grp := g.group(g.sc.Groups + 100)
	grp.DisplayName, grp.Name = "SG-Access "+grp.Alias, "SG-Access "+grp.Alias
	grp.MailEnabled, grp.SecurityEnabled, grp.Mail, grp.ProxyAddresses = false, true, "", nil
	grp.RecipientType, grp.RecipientTypeDetails, grp.EmailAddresses, grp.PrimarySmtpAddress, grp.WindowsEmailAddress = "", "", nil, "", ""
	g.add(grp)
	ds.trap(grp.ID, "synced security group that is not mail-enabled")

	c := g.contact(true)
	addr := c.Alias + "@fabrikam.onmicrosoft.com"
	c.Mail, c.PrimarySmtpAddress, c.WindowsEmailAddress = addr, addr, addr
	c.ProxyAddresses, c.EmailAddresses, c.ExternalEmailAddress = []string{"SMTP:" + addr}, []string{"SMTP:" + addr}, "SMTP:"+addr
	g.add(c)
	ds.trap(c.ID, "synced contact at another tenant's onmicrosoft.com")
}

// conflict records a PropertyConflict provisioning error on an object already added.
func (g *generator) conflict(id, property, value string) {
	when := g.created()
	must(g.t.UpdateGraphExtras(id, func(x *GraphExtras) {
		x.OnPremisesProvisioningErrors = append(x.OnPremisesProvisioningErrors, OnPremisesProvisioningError{
			Category: "PropertyConflict", PropertyCausingError: property, Value: value, OccurredDateTime: when})
	}))
}

// license assigns a SKU with one Exchange plan, dated by the generator so the tenant stays deterministic.
func (g *generator) license(o *Object, sku, plan string) {
	o.AssignedLicenses = append(o.AssignedLicenses, License{SkuID: sku})
	o.AssignedPlans = append(o.AssignedPlans, Plan{AssignedDateTime: g.created(), CapabilityStatus: "Enabled",
		Service: "exchange", ServicePlanID: plan})
}

// moveTo puts every company address of o at domain d (its primary, mail, UPN and target).
func (g *generator) moveTo(o *Object, d string) {
	addr := o.Alias + "@" + d
	o.Mail, o.PrimarySmtpAddress, o.WindowsEmailAddress = addr, addr, addr
	o.UserPrincipalName, o.OnPremisesUserPrincipalName = addr, addr
	o.ExternalEmailAddress = "SMTP:" + addr
	o.ProxyAddresses[0] = "SMTP:" + addr
	o.EmailAddresses[0] = "SMTP:" + addr
}

// addAcceptedDomain adds an authoritative accepted domain, verified in Entra.
func (g *generator) addAcceptedDomain(d string) {
	if slices.ContainsFunc(g.t.domains, func(a AcceptedDomain) bool { return strings.EqualFold(a.DomainName, d) }) {
		return
	}
	g.t.domains = append(g.t.domains, AcceptedDomain{DomainName: d, DomainType: "Authoritative"})
	g.t.SetGraphDomain(GraphDomain{ID: d, IsVerified: true, IsRoot: false, IsAdminManaged: true, AuthenticationType: "Managed",
		SupportedServices: []string{"Email"}})
}

func must(err error) {
	if err != nil {
		// Only reachable through a generator bug (an id that was just added is missing).
		panic(err)
	}
}
