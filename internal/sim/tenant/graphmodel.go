package tenant

import (
	"fmt"
	"hash/fnv"
	"io"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"
)

// This file holds what Microsoft Graph shows of the tenant beyond the shared Object: provisioning errors,
// provisioned plans, the tenant's subscribed SKUs and domains with their verification state, and the change
// tracking that delta queries need. Audits (defects.go) seed defects through the exported methods below.
//
// Model rule (issue 3): one Object is one directory object seen from both sides. A synced user with an
// Exchange plan is a Mailbox in EXO with the same object id; an unlicensed synced user with a targetAddress is
// a MailUser; guests are users with UserType Guest; contacts are orgContacts; distribution and mail-enabled
// security groups are groups with MailEnabled.

// Service plan ids (servicePlanId) the generated tenant uses. The Exchange plans all have service "exchange"
// in assignedPlans; EXCHANGE_S_FOUNDATION is the one that grants no mailbox.
const (
	PlanExchangeEnterprise   = "efb87545-963c-4e0d-99df-69c6916d9eb0" // EXCHANGE_S_ENTERPRISE (Exchange Online Plan 2)
	PlanExchangeStandard     = "9aaf7827-d63c-4b61-89c3-182f06f82e5c" // EXCHANGE_S_STANDARD (Exchange Online Plan 1)
	PlanExchangeFoundation   = "113feb6c-3fe4-4440-bddc-54d774bf0318" // EXCHANGE_S_FOUNDATION (no mailbox)
	PlanSharePointEnterprise = "5dbe027f-2339-4123-9542-606e4d348a72" // SHAREPOINTENTERPRISE
	PlanTeams                = "57ff2da0-773e-42df-b2af-ffb7a2317929" // TEAMS1
	PlanOfficeSubscription   = "43de0ff5-c92c-492b-9116-175376d08c38" // OFFICESUBSCRIPTION
	PlanATA                  = "14ab5db5-e6c4-4b20-b4bc-13e36fd2227f" // ATA (Defender for Identity)
)

// SKU ids (skuId) of the tenant's default subscriptions.
const (
	SkuEnterprisePack   = "6fd2c87f-b296-42f0-b197-1e91e994b900" // ENTERPRISEPACK (Office 365 E3)
	SkuEMSPremium       = "b05e124f-c7cc-45a0-a6aa-8cf78c946968" // EMSPREMIUM: its only Exchange plan is EXCHANGE_S_FOUNDATION
	SkuExchangeStandard = "4b9405b0-7788-4568-add1-99614e613b69" // EXCHANGESTANDARD (Exchange Online Plan 1)
)

// ServicePlanInfo is one service plan of a SKU (subscribedSku.servicePlans[]). Service is the name
// assignedPlans[].service carries for it; Graph does not show it in servicePlans.
type ServicePlanInfo struct {
	ServicePlanID      string
	ServicePlanName    string
	ProvisioningStatus string // Success
	AppliesTo          string // User or Company
	Service            string // e.g. exchange, SharePoint, TeamspaceAPI
}

// SubscribedSKU is a licence SKU the tenant owns (GET /subscribedSkus). ConsumedUnits is computed from the
// users' assignedLicenses when Graph is asked.
type SubscribedSKU struct {
	SkuID            string
	SkuPartNumber    string
	AppliesTo        string // User
	CapabilityStatus string // Enabled, Suspended, ...
	PrepaidEnabled   int
	ServicePlans     []ServicePlanInfo
}

// GraphDomain is a tenant domain as GET /domains shows it.
type GraphDomain struct {
	ID                 string // the domain name
	IsVerified         bool
	IsDefault          bool
	IsInitial          bool
	IsRoot             bool
	IsAdminManaged     bool
	AuthenticationType string // Managed or Federated
	SupportedServices  []string
}

// OnPremisesProvisioningError is a sync conflict Entra quarantined (onPremisesProvisioningErrors[]).
type OnPremisesProvisioningError struct {
	Category             string // PropertyConflict
	PropertyCausingError string // UserPrincipalName or ProxyAddress
	Value                string
	OccurredDateTime     time.Time
}

// ServiceProvisioningError is a serviceProvisioningErrors[] entry. A non-empty ErrorDetail makes it a
// #microsoft.graph.serviceProvisioningXmlError, which is what Exchange writes.
type ServiceProvisioningError struct {
	ServiceInstance string // e.g. exchange/namprd11-001-01
	IsResolved      bool
	ErrorDetail     string
	CreatedDateTime time.Time
}

// ProvisionedPlan is a provisionedPlans[] entry.
type ProvisionedPlan struct {
	CapabilityStatus   string // Enabled, ...
	ProvisioningStatus string // Success, PendingInput, PendingActivation, Error, Disabled
	Service            string
}

// GraphExtras is the Entra-only state of one object that Object does not carry. The zero value means "nothing
// beyond what Object implies": no provisioning errors, provisioned plans derived from the assigned plans.
type GraphExtras struct {
	OnPremisesProvisioningErrors []OnPremisesProvisioningError
	ServiceProvisioningErrors    []ServiceProvisioningError
	// ProvisionedPlans, when non-nil, replaces the derived list (one Success entry per assigned plan).
	ProvisionedPlans []ProvisionedPlan
	// CreationType overrides the derived value (Invitation for guests, null otherwise).
	CreationType string
	// SyncStopped makes an object whose OnPremisesSyncEnabled is false show onPremisesSyncEnabled=false
	// ("was synced, no longer") instead of null ("never synced").
	SyncStopped bool
	// OnPremisesDistinguishedName and OnPremisesSecurityIdentifier override the values derived for synced
	// objects (OnPremisesDN, OnPremisesSID).
	OnPremisesDistinguishedName  string
	OnPremisesSecurityIdentifier string
}

func (x GraphExtras) clone() GraphExtras {
	c := x
	c.OnPremisesProvisioningErrors = slices.Clone(x.OnPremisesProvisioningErrors)
	c.ServiceProvisioningErrors = slices.Clone(x.ServiceProvisioningErrors)
	c.ProvisionedPlans = slices.Clone(x.ProvisionedPlans)
	return c
}

// DefaultSubscribedSKUs are the subscriptions every generated tenant owns: E3 (Exchange Plan 2), EMS E5 (only
// EXCHANGE_S_FOUNDATION: licensed users without a mailbox are normal) and Exchange Online Plan 1.
func DefaultSubscribedSKUs() []SubscribedSKU {
	return []SubscribedSKU{
		{SkuID: SkuEnterprisePack, SkuPartNumber: "ENTERPRISEPACK", AppliesTo: "User", CapabilityStatus: "Enabled", PrepaidEnabled: 250,
			ServicePlans: []ServicePlanInfo{
				{ServicePlanID: PlanExchangeEnterprise, ServicePlanName: "EXCHANGE_S_ENTERPRISE", ProvisioningStatus: "Success", AppliesTo: "User", Service: "exchange"},
				{ServicePlanID: PlanSharePointEnterprise, ServicePlanName: "SHAREPOINTENTERPRISE", ProvisioningStatus: "Success", AppliesTo: "User", Service: "SharePoint"},
				{ServicePlanID: PlanTeams, ServicePlanName: "TEAMS1", ProvisioningStatus: "Success", AppliesTo: "User", Service: "TeamspaceAPI"},
				{ServicePlanID: PlanOfficeSubscription, ServicePlanName: "OFFICESUBSCRIPTION", ProvisioningStatus: "Success", AppliesTo: "User", Service: "MicrosoftOffice"},
			}},
		{SkuID: SkuEMSPremium, SkuPartNumber: "EMSPREMIUM", AppliesTo: "User", CapabilityStatus: "Enabled", PrepaidEnabled: 250,
			ServicePlans: []ServicePlanInfo{
				{ServicePlanID: PlanExchangeFoundation, ServicePlanName: "EXCHANGE_S_FOUNDATION", ProvisioningStatus: "Success", AppliesTo: "Company", Service: "exchange"},
				{ServicePlanID: PlanATA, ServicePlanName: "ATA", ProvisioningStatus: "Success", AppliesTo: "User", Service: "Adallom"},
			}},
		{SkuID: SkuExchangeStandard, SkuPartNumber: "EXCHANGESTANDARD", AppliesTo: "User", CapabilityStatus: "Enabled", PrepaidEnabled: 50,
			ServicePlans: []ServicePlanInfo{
				{ServicePlanID: PlanExchangeStandard, ServicePlanName: "EXCHANGE_S_STANDARD", ProvisioningStatus: "Success", AppliesTo: "User", Service: "exchange"},
			}},
	}
}

// GraphSide is the Graph-only state of one Tenant plus the simulator's Graph front-end state. It lives in a
// side table keyed weakly by the Tenant (graphSideOf) so the shared tenant model did not have to change.
type GraphSide struct {
	mu      sync.Mutex
	extras  map[string]*GraphExtras // by lower-case object id
	skus    []SubscribedSKU         // nil: DefaultSubscribedSKUs
	domains []GraphDomain           // nil: derived from the accepted domains

	// Change tracking for delta queries: every observation compares each object's Graph-visible state with
	// the last one seen and gives each change (and each disappearance) the next sequence number.
	seq      uint64
	observed bool
	state    map[string]objState
	tombs    []tomb // ascending seq

	// Delta token validity: tokens carry the epoch they were issued in; ExpireDeltaTokens bumps it.
	epoch  int64
	expiry DeltaExpiry
}

type objState struct {
	kind ObjectKind
	hash uint64
	seq  uint64
}

type tomb struct {
	id   string
	kind ObjectKind
	seq  uint64
}

var graphSides sync.Map // weak.Pointer[Tenant] → *GraphSide

// graphSideOf returns the tenant's Graph side, creating it on first use. The table holds the Tenant weakly and
// drops the entry when the Tenant is collected, so tests that build many tenants do not leak.
// GraphSide returns the Graph-only state of the tenant (extras, delta sequence), which the Graph API reads.
func (t *Tenant) GraphSide() *GraphSide { return graphSideOf(t) }

func graphSideOf(t *Tenant) *GraphSide {
	k := weak.Make(t)
	if v, ok := graphSides.Load(k); ok {
		return v.(*GraphSide)
	}
	v, loaded := graphSides.LoadOrStore(k, &GraphSide{extras: map[string]*GraphExtras{}})
	if !loaded {
		runtime.AddCleanup(t, func(k weak.Pointer[Tenant]) { graphSides.Delete(k) }, k)
	}
	return v.(*GraphSide)
}

// GraphExtras returns a copy of the Entra-only state of the object (zero value when none was set).
func (t *Tenant) GraphExtras(id string) GraphExtras {
	gs := graphSideOf(t)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if x, ok := gs.extras[strings.ToLower(id)]; ok {
		return x.clone()
	}
	return GraphExtras{}
}

// UpdateGraphExtras applies fn to the Entra-only state of the object; it fails when no object has that id.
// Example (a sync conflict): t.UpdateGraphExtras(id, func(x *GraphExtras) { x.OnPremisesProvisioningErrors =
// append(x.OnPremisesProvisioningErrors, OnPremisesProvisioningError{Category: "PropertyConflict",
// PropertyCausingError: "ProxyAddress", Value: "smtp:dup@contoso.com"}) }).
func (t *Tenant) UpdateGraphExtras(id string, fn func(*GraphExtras)) error {
	if _, ok := t.Object(id); !ok {
		return fmt.Errorf("sim: no object with id %s", id)
	}
	gs := graphSideOf(t)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	key := strings.ToLower(id)
	x, ok := gs.extras[key]
	if !ok {
		x = &GraphExtras{}
		gs.extras[key] = x
	}
	fn(x)
	return nil
}

// SubscribedSKUs returns the tenant's SKUs (DefaultSubscribedSKUs unless SetSubscribedSKUs replaced them).
func (t *Tenant) SubscribedSKUs() []SubscribedSKU {
	gs := graphSideOf(t)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return cloneSKUs(gs.skusLocked())
}

func (gs *GraphSide) skusLocked() []SubscribedSKU {
	if gs.skus == nil {
		gs.skus = DefaultSubscribedSKUs()
	}
	return gs.skus
}

func cloneSKUs(in []SubscribedSKU) []SubscribedSKU {
	out := slices.Clone(in)
	for i := range out {
		out[i].ServicePlans = slices.Clone(in[i].ServicePlans)
	}
	return out
}

// SetSubscribedSKUs replaces the tenant's SKUs.
func (t *Tenant) SetSubscribedSKUs(skus []SubscribedSKU) {
	gs := graphSideOf(t)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	gs.skus = cloneSKUs(skus)
}

// AssignLicense gives the object a licence for skuID, as an admin (or group-based licensing) would: an
// assignedLicenses entry and one Enabled assignedPlans entry per service plan of the SKU not in disabledPlans.
// It does not touch the EXO side: licensing a MailUser does not make it a mailbox (that is the staged-migration
// defect audits look for).
func (t *Tenant) AssignLicense(id, skuID string, disabledPlans ...string) error {
	var sku *SubscribedSKU
	for _, s := range t.SubscribedSKUs() {
		if strings.EqualFold(s.SkuID, skuID) {
			sku = &s
			break
		}
	}
	if sku == nil {
		return fmt.Errorf("sim: assign licence to %s: the tenant has no SKU %s (see SubscribedSKUs)", id, skuID)
	}
	now := t.now().UTC().Truncate(time.Second)
	ok := t.Update(id, func(o *Object) {
		o.AssignedLicenses = slices.DeleteFunc(o.AssignedLicenses, func(l License) bool { return strings.EqualFold(l.SkuID, skuID) })
		o.AssignedLicenses = append(o.AssignedLicenses, License{SkuID: sku.SkuID, DisabledPlans: slices.Clone(disabledPlans)})
		for _, p := range sku.ServicePlans {
			if slices.Contains(disabledPlans, p.ServicePlanID) {
				continue
			}
			if slices.ContainsFunc(o.AssignedPlans, func(a Plan) bool { return a.ServicePlanID == p.ServicePlanID }) {
				continue
			}
			o.AssignedPlans = append(o.AssignedPlans, Plan{AssignedDateTime: now, CapabilityStatus: "Enabled",
				Service: p.Service, ServicePlanID: p.ServicePlanID})
		}
	})
	if !ok {
		return fmt.Errorf("sim: assign licence: no object with id %s", id)
	}
	return nil
}

// GraphDomains returns the domains GET /domains shows: by default the accepted domains, all verified, the
// vanity domain default and the onmicrosoft.com domain initial.
func (t *Tenant) GraphDomains() []GraphDomain {
	gs := graphSideOf(t)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return cloneDomains(gs.domainsLocked(t))
}

func (gs *GraphSide) domainsLocked(t *Tenant) []GraphDomain {
	if gs.domains == nil {
		for _, d := range t.AcceptedDomains() {
			svc := []string{"Email", "OfficeCommunicationsOnline"}
			if strings.HasSuffix(strings.ToLower(d.DomainName), ".mail.onmicrosoft.com") {
				svc = []string{"Email"}
			}
			gs.domains = append(gs.domains, GraphDomain{
				ID: d.DomainName, IsVerified: true, IsDefault: d.Default, IsInitial: d.InitialDomain, IsRoot: true,
				IsAdminManaged: true, AuthenticationType: "Managed", SupportedServices: svc,
			})
		}
	}
	return gs.domains
}

func cloneDomains(in []GraphDomain) []GraphDomain {
	out := slices.Clone(in)
	for i := range out {
		out[i].SupportedServices = slices.Clone(in[i].SupportedServices)
	}
	return out
}

// SetGraphDomain adds the domain or replaces the one with the same name (case-insensitive), e.g. an
// unverified domain users' UPN suffixes or proxy addresses point at: SetGraphDomain(GraphDomain{ID:
// "fabrikam.example", AuthenticationType: "Managed"}).
func (t *Tenant) SetGraphDomain(d GraphDomain) {
	gs := graphSideOf(t)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	doms := gs.domainsLocked(t)
	d.SupportedServices = slices.Clone(d.SupportedServices)
	if i := slices.IndexFunc(doms, func(e GraphDomain) bool { return strings.EqualFold(e.ID, d.ID) }); i >= 0 {
		doms[i] = d
		return
	}
	gs.domains = append(doms, d)
}

// DeltaExpiry selects how the simulator answers a delta or skip token issued before ExpireDeltaTokens: the
// service's answer for an expired directory delta token is not authoritatively documented (research §2), so
// clients must survive each shape seen in documentation and in the wild.
type DeltaExpiry string

// The expired-token shapes.
const (
	// DeltaExpiredGone: 410 Gone with a Location header holding the initial query (empty $deltatoken).
	DeltaExpiredGone DeltaExpiry = "gone"
	// DeltaExpiredSyncStateNotFound: 400 with error code syncStateNotFound (the documented code).
	DeltaExpiredSyncStateNotFound DeltaExpiry = "syncStateNotFound"
	// DeltaExpiredSyncStateNotFoundGone: 410 with error code SyncStateNotFound in PascalCase and no Location
	// (observed on Outlook delta).
	DeltaExpiredSyncStateNotFoundGone DeltaExpiry = "SyncStateNotFound-410"
	// DeltaExpiredResyncRequired: 400 with error code resyncRequired.
	DeltaExpiredResyncRequired DeltaExpiry = "resyncRequired"
	// DeltaExpiredSyncStateInvalid: 400 with error code SyncStateInvalid.
	DeltaExpiredSyncStateInvalid DeltaExpiry = "SyncStateInvalid"
)

// DeltaExpiries lists every shape, for table tests.
func DeltaExpiries() []DeltaExpiry {
	return []DeltaExpiry{DeltaExpiredGone, DeltaExpiredSyncStateNotFound, DeltaExpiredSyncStateNotFoundGone,
		DeltaExpiredResyncRequired, DeltaExpiredSyncStateInvalid}
}

// ExpireDeltaTokens makes every delta and skip token issued so far invalid; requests carrying one are answered
// in the given shape. Tokens issued afterwards (a new initial round) are valid.
func (t *Tenant) ExpireDeltaTokens(shape DeltaExpiry) {
	gs := graphSideOf(t)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	gs.epoch++
	gs.expiry = shape
}

func (gs *GraphSide) DeltaEpoch() (int64, DeltaExpiry) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return gs.epoch, gs.expiry
}

// Observe compares the tenant with the last observation and numbers the changes; it returns the sequence
// number of the latest change. Delta rounds call it once at their start, so an unchanged tenant keeps its
// sequence and an incremental round finds nothing. Lock order: gs.mu, then the tenant's lock.
func (gs *GraphSide) Observe(t *Tenant) uint64 {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.state == nil {
		gs.state = make(map[string]objState, t.Len())
	}
	seen := make(map[string]bool, len(gs.state))
	h := fnv.New64a()
	t.Select(func(o *Object) bool {
		h.Reset()
		writeGraphFingerprint(h, o, gs.extras[o.ID])
		sum := h.Sum64()
		seen[o.ID] = true
		if st, ok := gs.state[o.ID]; ok && st.hash == sum && st.kind == o.Kind {
			return false
		}
		gs.seq++
		gs.state[o.ID] = objState{kind: o.Kind, hash: sum, seq: gs.seq}
		return false
	})
	if len(seen) != len(gs.state) {
		gone := make([]string, 0, len(gs.state)-len(seen))
		for id := range gs.state {
			if !seen[id] {
				gone = append(gone, id)
			}
		}
		sort.Strings(gone) // deterministic sequence numbers
		for _, id := range gone {
			gs.seq++
			gs.tombs = append(gs.tombs, tomb{id: id, kind: gs.state[id].kind, seq: gs.seq})
			delete(gs.state, id)
			delete(gs.extras, id)
		}
	}
	gs.observed = true
	return gs.seq
}

// ExtrasFor returns copies of the extras of the given objects, by object id (absent: none set).
func (gs *GraphSide) ExtrasFor(objs []Object) map[string]GraphExtras {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	out := make(map[string]GraphExtras)
	for i := range objs {
		if x, ok := gs.extras[objs[i].ID]; ok {
			out[objs[i].ID] = x.clone()
		}
	}
	return out
}

// AllExtras returns copies of every object's extras, by object id.
func (gs *GraphSide) AllExtras() map[string]GraphExtras {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	out := make(map[string]GraphExtras, len(gs.extras))
	for id, x := range gs.extras {
		out[id] = x.clone()
	}
	return out
}

// Change is one entry of an incremental delta round: a live object (by id) or a removal.
type Change struct {
	ID      string
	Seq     uint64
	Removed bool
}

// Changes lists the changes of kind with since < seq <= upto, in sequence order.
func (gs *GraphSide) Changes(kind ObjectKind, since, upto uint64) []Change {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	var out []Change
	for id, st := range gs.state {
		if st.kind == kind && st.seq > since && st.seq <= upto {
			out = append(out, Change{ID: id, Seq: st.seq})
		}
	}
	i, _ := slices.BinarySearchFunc(gs.tombs, since+1, func(tb tomb, s uint64) int { return cmpU64(tb.seq, s) })
	for ; i < len(gs.tombs) && gs.tombs[i].seq <= upto; i++ {
		if gs.tombs[i].kind == kind {
			out = append(out, Change{ID: gs.tombs[i].id, Seq: gs.tombs[i].seq, Removed: true})
		}
	}
	slices.SortFunc(out, func(a, b Change) int { return cmpU64(a.Seq, b.Seq) })
	return out
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// writeGraphFingerprint writes every Graph-visible property of the object (and what derived values depend
// on, like RecipientTypeDetails for provisioned plans) to w. EXO-only changes such as UseMapiRichTextFormat
// do not change it, so they do not show up in Graph delta rounds, as on the real service.
func writeGraphFingerprint(w io.Writer, o *Object, x *GraphExtras) {
	s := func(v string) { _, _ = io.WriteString(w, v); _, _ = w.Write([]byte{0}) }
	b := func(v bool) { s(strconv.FormatBool(v)) }
	s(string(o.Kind))
	b(o.OnPremisesSyncEnabled)
	s(o.OnPremisesImmutableID)
	s(o.OnPremisesUserPrincipalName)
	s(o.OnPremisesSamAccountName)
	s(o.UserPrincipalName)
	s(o.Mail)
	s(o.MailNickname)
	s(o.DisplayName)
	s(o.GivenName)
	s(o.Surname)
	for _, p := range o.ProxyAddresses {
		s(p)
	}
	s("|")
	s(o.UserType)
	b(o.AccountEnabled)
	for _, l := range o.AssignedLicenses {
		s(l.SkuID)
		for _, d := range l.DisabledPlans {
			s(d)
		}
	}
	s("|")
	for _, p := range o.AssignedPlans {
		s(p.ServicePlanID)
		s(p.Service)
		s(p.CapabilityStatus)
		s(p.AssignedDateTime.UTC().Format(time.RFC3339))
	}
	s("|")
	b(o.MailEnabled)
	b(o.SecurityEnabled)
	for _, g := range o.GroupTypes {
		s(g)
	}
	s("|")
	s(o.RecipientTypeDetails)
	if x == nil {
		return
	}
	for _, e := range x.OnPremisesProvisioningErrors {
		s(e.Category)
		s(e.PropertyCausingError)
		s(e.Value)
		s(e.OccurredDateTime.UTC().Format(time.RFC3339))
	}
	s("|")
	for _, e := range x.ServiceProvisioningErrors {
		s(e.ServiceInstance)
		b(e.IsResolved)
		s(e.ErrorDetail)
		s(e.CreatedDateTime.UTC().Format(time.RFC3339))
	}
	s("|")
	b(x.ProvisionedPlans != nil)
	for _, p := range x.ProvisionedPlans {
		s(p.CapabilityStatus)
		s(p.ProvisioningStatus)
		s(p.Service)
	}
	s("|")
	s(x.CreationType)
	b(x.SyncStopped)
	s(x.OnPremisesDistinguishedName)
	s(x.OnPremisesSecurityIdentifier)
}

// OnPremisesDN is the AD DistinguishedName Graph shows for a synced object (onPremisesDistinguishedName),
// unless GraphExtras overrides it: CN=<displayName, RFC 4514-escaped>,OU=<Users|Groups|Contacts>,OU=Sync,
// DC=<each label of the vanity domain>. Empty for cloud-only objects.
func OnPremisesDN(o Object, x GraphExtras, domain string) string {
	if x.OnPremisesDistinguishedName != "" {
		return x.OnPremisesDistinguishedName
	}
	if !o.OnPremisesSyncEnabled && !x.SyncStopped {
		return ""
	}
	ou := map[ObjectKind]string{KindUser: "Users", KindGroup: "Groups", KindContact: "Contacts"}[o.Kind]
	var b strings.Builder
	b.WriteString("CN=" + escapeRDN(o.DisplayName) + ",OU=" + ou + ",OU=Sync")
	for _, label := range strings.Split(domain, ".") {
		b.WriteString(",DC=" + label)
	}
	return b.String()
}

// escapeRDN escapes an attribute value for a DN (RFC 4514 section 2.4).
func escapeRDN(v string) string {
	var b strings.Builder
	for i, r := range v {
		switch {
		case strings.ContainsRune(`,+"\<>;=`, r):
			b.WriteByte('\\')
		case i == 0 && (r == '#' || r == ' '), i == len(v)-1 && r == ' ':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// OnPremisesSID is the AD objectSid Graph shows for a synced user or group (onPremisesSecurityIdentifier),
// unless GraphExtras overrides it: a domain SID derived from the tenant id and a RID derived from the object
// id, so it is stable for a seed. Empty for cloud-only objects and for contacts (which have no SID).
func OnPremisesSID(o Object, x GraphExtras, tenantID string) string {
	if x.OnPremisesSecurityIdentifier != "" {
		return x.OnPremisesSecurityIdentifier
	}
	if o.Kind == KindContact || !o.OnPremisesSyncEnabled && !x.SyncStopped {
		return ""
	}
	d := fnv.New64a()
	_, _ = io.WriteString(d, tenantID)
	dom := d.Sum64()
	r := fnv.New32a()
	_, _ = io.WriteString(r, o.ID)
	return fmt.Sprintf("S-1-5-21-%d-%d-%d-%d", uint32(dom>>32)%1e9, uint32(dom)%1e9, uint32(dom>>16)%1e9, 1100+r.Sum32()%1e8)
}
