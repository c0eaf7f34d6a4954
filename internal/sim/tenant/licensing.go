package tenant

import (
	"strings"
)

// LicensingGroupName is the display name of the cloud-only security group a LicensingMix creates: group-based
// licensing with Exchange Online (Plan 1), the group the mailbox-license job adds unlicensed mailboxes to.
const LicensingGroupName = "LIC-Exchange Online (Plan 1)"

// LicensingMix seeds the staged-migration licence state the mailbox-license job works on: migrated mailboxes
// (directory-synced users that are now a UserMailbox in Exchange Online) with and without an Exchange
// licence, and a licensing group. Exchange disables a migrated mailbox that holds no Exchange licence after
// 30 days, so the unlicensed ones are what the job must find.
type LicensingMix struct {
	// Unlicensed migrated mailboxes: no licence at all.
	Unlicensed int
	// FoundationOnly migrated mailboxes hold EMS E5, whose only Exchange plan is EXCHANGE_S_FOUNDATION: they
	// have no mailbox licence either (a trap for a check that looks at service "exchange" alone).
	FoundationOnly int
	// GroupLicensed migrated mailboxes are already members of the licensing group and hold its licence.
	GroupLicensed int
	// CloudUnlicensed are cloud-only user mailboxes without a licence: not a staged-migration case, out of
	// the job's scope.
	CloudUnlicensed int
}

// DefaultLicensing is the mix `worker sim` and the job's tests use.
func DefaultLicensing() LicensingMix {
	return LicensingMix{Unlicensed: 6, FoundationOnly: 2, GroupLicensed: 3, CloudUnlicensed: 2}
}

// seedLicensing adds the licensing group and the mix's mailboxes. It runs after every other object, so the
// objects a scenario without it generates are the same with it.
func (g *generator) seedLicensing(mix LicensingMix) {
	group := g.licensingGroup()
	g.add(group)
	if err := g.t.SetGroupLicenses(group.ID, License{SkuID: SkuExchangeStandard}); err != nil {
		panic(err) // the default SKUs hold EXCHANGESTANDARD; anything else is a generator bug
	}
	// The licence audit reports every migrated mailbox without a mailbox plan (mailbox-unlicensed).
	ds := defectSideOf(g.t)
	for range mix.Unlicensed {
		o := g.unlicensed(g.mailbox())
		g.add(o)
		ds.expect(Expected{Rule: "mailbox-unlicensed", ObjectID: o.ID})
	}
	for range mix.FoundationOnly {
		o := g.unlicensed(g.mailbox())
		o.AssignedLicenses = []License{{SkuID: SkuEMSPremium}}
		o.AssignedPlans = []Plan{{AssignedDateTime: o.WhenCreated, CapabilityStatus: "Enabled", Service: "exchange", ServicePlanID: PlanExchangeFoundation}}
		g.add(o)
		ds.expect(Expected{Rule: "mailbox-unlicensed", ObjectID: o.ID})
	}
	for range mix.GroupLicensed {
		o := g.unlicensed(g.mailbox())
		g.add(o)
		if err := g.t.AddMember(group.ID, o.ID); err != nil {
			panic(err)
		}
	}
	for range mix.CloudUnlicensed {
		o := g.unlicensed(g.mailbox())
		o.OnPremisesSyncEnabled, o.IsDirSynced = false, false
		o.OnPremisesImmutableID, o.OnPremisesSamAccountName, o.OnPremisesUserPrincipalName = "", "", ""
		g.add(o)
	}
}

func (g *generator) unlicensed(o Object) Object {
	o.AssignedLicenses, o.AssignedPlans = nil, nil
	return o
}

func (g *generator) licensingGroup() Object {
	created := g.created()
	return Object{
		ID: g.guid(), Kind: KindGroup, DisplayName: LicensingGroupName,
		MailNickname: "lic-exchange-plan1", SecurityEnabled: true,
		// Cloud-only and not mail-enabled: Exchange Online does not see it (no RecipientType).
		Name: LicensingGroupName, Guid: g.guid(), ExchangeObjectID: g.guid(),
		WhenCreated: created, WhenChanged: created,
	}
}

// LicensingGroup returns the group a LicensingMix created (false when the scenario had none).
func (t *Tenant) LicensingGroup() (Object, bool) {
	gs := t.Select(func(o *Object) bool { return o.Kind == KindGroup && o.DisplayName == LicensingGroupName })
	if len(gs) == 0 {
		return Object{}, false
	}
	return gs[0], true
}

// mailboxPlanIDs are the Exchange service plans that license a mailbox (Plan 1, Plan 2, Kiosk, Essentials,
// Business, and their variants the simulator uses); EXCHANGE_S_FOUNDATION is not one.
var mailboxPlanIDs = map[string]bool{
	PlanExchangeStandard:                   true,
	PlanExchangeEnterprise:                 true,
	"4a82b400-a79f-41a4-b4e2-e94f5787b113": true, // EXCHANGE_S_DESKLESS
	"1126bef5-da20-4f07-b45e-ad25d2581aa8": true, // EXCHANGE_S_ESSENTIALS
	"90927877-dcff-4af6-b346-2332c0b15bb7": true, // EXCHANGE_B_STANDARD
}

// HasMailboxPlan reports whether the object holds an enabled (or in-grace Warning) Exchange mailbox plan.
func (o *Object) HasMailboxPlan() bool {
	for _, p := range o.AssignedPlans {
		if mailboxPlanIDs[strings.ToLower(p.ServicePlanID)] && (p.CapabilityStatus == "Enabled" || p.CapabilityStatus == "Warning") {
			return true
		}
	}
	return false
}

// UnlicensedMigratedMailboxes is the ground truth of the mailbox-license job: every directory-synced member
// user that Exchange Online holds as a UserMailbox and that has no Exchange mailbox plan.
func (t *Tenant) UnlicensedMigratedMailboxes() []Object {
	return t.Select(func(o *Object) bool {
		return o.Kind == KindUser && o.OnPremisesSyncEnabled && o.IsDirSynced && o.UserType != "Guest" &&
			o.RecipientTypeDetails == RTDUserMailbox && !o.HasMailboxPlan()
	})
}
