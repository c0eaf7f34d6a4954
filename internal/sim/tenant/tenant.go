package tenant

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// ObjectKind is the Entra directory class of an object: the simulator serves Graph (/users, /groups,
// /contacts) and Exchange Online from the same directory, so one object has both an Entra and an EXO side.
type ObjectKind string

// The directory classes the simulated tenant holds.
const (
	KindUser    ObjectKind = "user"
	KindGroup   ObjectKind = "group"
	KindContact ObjectKind = "contact"
)

// Recipient type details the generator produces (EXO's RecipientTypeDetails values).
const (
	RTDMailUser                     = "MailUser"
	RTDGuestMailUser                = "GuestMailUser"
	RTDUserMailbox                  = "UserMailbox"
	RTDMailContact                  = "MailContact"
	RTDMailUniversalDistributionGrp = "MailUniversalDistributionGroup"
	RTDMailUniversalSecurityGroup   = "MailUniversalSecurityGroup"
)

// UseMapiRichTextFormat values (EXO enum names).
const (
	RichTextUseDefault = "UseDefaultSettings"
	RichTextAlways     = "Always"
	RichTextNever      = "Never"
)

// License is an assigned licence as Graph shows it (assignedLicenses[]).
type License struct {
	SkuID         string
	DisabledPlans []string
}

// Plan is an assigned service plan as Graph shows it (assignedPlans[]).
type Plan struct {
	AssignedDateTime time.Time
	CapabilityStatus string // Enabled, Warning, Suspended, Deleted, LockedOut
	Service          string // e.g. "exchange"
	ServicePlanID    string
}

// Object is one directory object of the simulated tenant. The first block is what Entra (Graph) shows,
// the second what Exchange Online shows; the two are kept side by side so a later Graph front end and
// the EXO admin API answer from the same state, and a test that changes one object sees it everywhere.
// Objects handed out by Tenant are copies: mutate through Tenant methods.
type Object struct {
	// ID is the Entra object id, which EXO exposes as ExternalDirectoryObjectId: the key that joins both.
	ID                          string
	Kind                        ObjectKind
	OnPremisesSyncEnabled       bool
	OnPremisesImmutableID       string
	OnPremisesUserPrincipalName string
	OnPremisesSamAccountName    string
	UserPrincipalName           string
	Mail                        string
	MailNickname                string
	DisplayName                 string
	GivenName, Surname          string
	// ProxyAddresses is Entra's view of the addresses; normally equal to EmailAddresses minus what only
	// Exchange stamps, kept separately so audits can later seed a disagreement.
	ProxyAddresses   []string
	UserType         string // Member or Guest (users only)
	AccountEnabled   bool
	AssignedLicenses []License
	AssignedPlans    []Plan
	// Groups only.
	MailEnabled     bool
	SecurityEnabled bool
	GroupTypes      []string

	// EXO side.
	RecipientType         string
	RecipientTypeDetails  string
	Name                  string // also Identity and Id
	Alias                 string
	EmailAddresses        []string // "SMTP:" primary, "smtp:" secondaries, "X500:", ...
	PrimarySmtpAddress    string
	WindowsEmailAddress   string
	ExternalEmailAddress  string // "SMTP:..." prefixed; empty for mailboxes and groups
	UseMapiRichTextFormat string // Always, Never, UseDefaultSettings
	// UsePreferMessageFormat makes the recipient's own message-format settings win over the remote
	// domain's (Set-MailUser docs); false unless written.
	UsePreferMessageFormat        bool
	IsDirSynced                   bool
	HiddenFromAddressListsEnabled bool
	Guid                          string // the directory objectGuid
	ExchangeObjectID              string
	ExchangeGuid                  string // mailboxes only
	CustomAttributes              [15]string
	ManagedBy                     []string // groups only
	WhenCreated                   time.Time
	WhenChanged                   time.Time
}

// Clone returns a deep copy, so callers never share slices with the live tenant.
func (o Object) Clone() Object {
	c := o
	c.ProxyAddresses = slices.Clone(o.ProxyAddresses)
	c.EmailAddresses = slices.Clone(o.EmailAddresses)
	c.GroupTypes = slices.Clone(o.GroupTypes)
	c.ManagedBy = slices.Clone(o.ManagedBy)
	c.AssignedPlans = slices.Clone(o.AssignedPlans)
	c.AssignedLicenses = make([]License, len(o.AssignedLicenses))
	for i, l := range o.AssignedLicenses {
		c.AssignedLicenses[i] = License{SkuID: l.SkuID, DisabledPlans: slices.Clone(l.DisabledPlans)}
	}
	if o.AssignedLicenses == nil {
		c.AssignedLicenses = nil
	}
	return c
}

// IsMailUser reports whether Get-MailUser returns the object (mail users and guest mail users).
func (o *Object) IsMailUser() bool {
	return o.RecipientType == "MailUser"
}

// InScopeMEU reports whether the object is what job 1 must fix: a dir-synced plain MailUser.
func (o *Object) InScopeMEU() bool {
	return o.IsDirSynced && o.RecipientTypeDetails == RTDMailUser
}

// AcceptedDomain is a row of Get-AcceptedDomain.
type AcceptedDomain struct {
	DomainName    string
	DomainType    string // Authoritative | InternalRelay | ExternalRelay
	Default       bool
	InitialDomain bool
}

// Tenant is the live, thread-safe directory of the simulated tenant.
type Tenant struct {
	id            string
	domain        string
	initialDomain string
	domains       []AcceptedDomain

	mu    sync.RWMutex
	byID  map[string]*Object
	order []*Object // sorted by Guid: the stable order paging walks
	// softDeleted are copies of deleted recipients, sorted by Guid (cursor.go).
	softDeleted []*Object
	// lastSync is the end of the last sync cycle (sync.go).
	lastSync time.Time
	index    map[string][]*Object
	dirty    bool // index must be rebuilt
	now      func() time.Time
}

func newEmptyTenant(id, domain, initialDomain string) *Tenant {
	mailDomain := strings.TrimSuffix(initialDomain, ".onmicrosoft.com") + ".mail.onmicrosoft.com"
	return &Tenant{
		id:            id,
		domain:        domain,
		initialDomain: initialDomain,
		domains: []AcceptedDomain{
			{DomainName: domain, DomainType: "Authoritative", Default: true},
			{DomainName: initialDomain, DomainType: "Authoritative", InitialDomain: true},
			{DomainName: mailDomain, DomainType: "Authoritative"},
		},
		byID:  map[string]*Object{},
		dirty: true,
		now:   time.Now,
	}
}

// ID is the tenant id (a GUID).
func (t *Tenant) ID() string { return t.id }

// Domain is the tenant's default (vanity) domain, e.g. contoso.com.
func (t *Tenant) Domain() string { return t.domain }

// InitialDomain is the tenant's *.onmicrosoft.com domain.
func (t *Tenant) InitialDomain() string { return t.initialDomain }

// AcceptedDomains lists the domains Get-AcceptedDomain returns.
func (t *Tenant) AcceptedDomains() []AcceptedDomain { return slices.Clone(t.domains) }

// Len is the number of objects.
func (t *Tenant) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.order)
}

// Object returns a copy of the object with the given Entra object id (ExternalDirectoryObjectId).
func (t *Tenant) Object(id string) (Object, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	o, ok := t.byID[strings.ToLower(id)]
	if !ok {
		return Object{}, false
	}
	return o.Clone(), true
}

// Objects returns copies of all objects in the tenant's stable order.
func (t *Tenant) Objects() []Object {
	return t.Select(func(*Object) bool { return true })
}

// Select returns copies of the objects for which keep returns true. keep must not call Tenant methods.
func (t *Tenant) Select(keep func(*Object) bool) []Object {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []Object
	for _, o := range t.order {
		if keep(o) {
			out = append(out, o.Clone())
		}
	}
	return out
}

// InScopeMEUs is the ground truth for job 1: every dir-synced MailUser (never guests, mailboxes, contacts).
func (t *Tenant) InScopeMEUs() []Object {
	return t.Select(func(o *Object) bool { return o.InScopeMEU() })
}

// Add inserts an object (tests build edge cases with it). It fills Guid/ExchangeObjectId/Name when empty and
// refuses a duplicate id.
func (t *Tenant) Add(o Object) error {
	if o.ID == "" {
		return fmt.Errorf("sim: add object %q: empty ID", o.DisplayName)
	}
	o = o.Clone()
	o.ID = strings.ToLower(o.ID)
	o.Guid = strings.ToLower(o.Guid) // paging walks objects in Guid order
	if o.Guid == "" {
		o.Guid = DerivedGUID(o.ID, 1)
	}
	if o.ExchangeObjectID == "" {
		o.ExchangeObjectID = DerivedGUID(o.ID, 2)
	}
	if o.Name == "" {
		o.Name = o.ID
	}
	if o.WhenCreated.IsZero() {
		o.WhenCreated = t.now().UTC().Truncate(time.Second)
	}
	if o.WhenChanged.IsZero() {
		o.WhenChanged = o.WhenCreated
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, dup := t.byID[o.ID]; dup {
		return fmt.Errorf("sim: add object %s: an object with this id already exists", o.ID)
	}
	p := &o
	t.byID[o.ID] = p
	i, _ := slices.BinarySearchFunc(t.order, p.Guid, func(e *Object, g string) int { return strings.Compare(e.Guid, g) })
	t.order = slices.Insert(t.order, i, p)
	t.syncedLocked(p)
	t.dirty = true
	return nil
}

// Delete removes the object (as if it was deleted or moved out of sync scope). It reports whether it existed.
func (t *Tenant) Delete(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.byID[strings.ToLower(id)]
	if !ok {
		return false
	}
	delete(t.byID, o.ID)
	t.order = slices.DeleteFunc(t.order, func(e *Object) bool { return e == o })
	t.softDeleteLocked(o)
	t.syncedLocked(o)
	t.dirty = true
	return true
}

// Update applies fn to the live object under the write lock and stamps WhenChanged. It reports whether the
// object exists. fn must not call Tenant methods.
func (t *Tenant) Update(id string, fn func(*Object)) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.byID[strings.ToLower(id)]
	if !ok {
		return false
	}
	before := o.IdentityKeys(t.initialDomain)
	fn(o)
	o.ID = strings.ToLower(o.ID)
	o.WhenChanged = t.now().UTC()
	// Rebuild the identity index only when a name or address changed: rich-text writes at scale must not
	// pay for it.
	if !slices.Equal(before, o.IdentityKeys(t.initialDomain)) {
		t.dirty = true
	}
	return true
}

// SetUseMapiRichTextFormat changes the value behind the API's back, as another admin would.
func (t *Tenant) SetUseMapiRichTextFormat(id, v string) error {
	canon, ok := CanonicalRichText(v)
	if !ok {
		return fmt.Errorf("sim: %q is not a UseMapiRichTextFormat value (Always, Never, UseDefaultSettings)", v)
	}
	if !t.Update(id, func(o *Object) { o.UseMapiRichTextFormat = canon }) {
		return fmt.Errorf("sim: no object with id %s", id)
	}
	return nil
}

// CanonicalRichText returns the UseMapiRichTextFormat value v names, in the service's spelling.
func CanonicalRichText(v string) (string, bool) {
	for _, c := range []string{RichTextUseDefault, RichTextAlways, RichTextNever} {
		if strings.EqualFold(v, c) {
			return c, true
		}
	}
	return "", false
}

// ResolveLocked finds the objects an -Identity value names, the way EXO resolves it: Entra object id,
// Guid, ExchangeObjectId, Name, Alias, UPN, primary SMTP address, any smtp proxy address, or DN
// (case-insensitive; an "smtp:" prefix is ignored). The caller holds t.mu from LockFresh or RLockFresh.
func (t *Tenant) ResolveLocked(identity string) []*Object {
	key := strings.ToLower(strings.TrimSpace(identity))
	if strings.HasPrefix(key, "smtp:") {
		key = key[len("smtp:"):]
	}
	if key == "" {
		return nil
	}
	return slices.Clone(t.index[key])
}

// LockFresh takes the write lock with the identity index up to date.
func (t *Tenant) LockFresh() {
	t.mu.Lock()
	if t.dirty {
		t.rebuildIndexLocked()
	}
}

// RLockFresh takes the read lock with the identity index up to date (rebuilding it under the write lock
// first when needed).
func (t *Tenant) RLockFresh() {
	for {
		t.mu.RLock()
		if !t.dirty {
			return
		}
		t.mu.RUnlock()
		t.mu.Lock()
		if t.dirty {
			t.rebuildIndexLocked()
		}
		t.mu.Unlock()
	}
}

// Unlock releases the write lock LockFresh took.
func (t *Tenant) Unlock() { t.mu.Unlock() }

// RUnlock releases the read lock RLockFresh took.
func (t *Tenant) RUnlock() { t.mu.RUnlock() }

// OrderLocked is every object in Guid order (the order paging walks); the caller holds a lock.
func (t *Tenant) OrderLocked() []*Object { return t.order }

// MarkDirtyLocked says an edit under the write lock changed identity keys, so the index is rebuilt.
func (t *Tenant) MarkDirtyLocked() { t.dirty = true }

// Now is the tenant's clock (WhenChanged stamps, stale-read windows).
func (t *Tenant) Now() time.Time { return t.now() }

func (t *Tenant) rebuildIndexLocked() {
	idx := make(map[string][]*Object, len(t.order)*6)
	for _, o := range t.order {
		for _, k := range o.IdentityKeys(t.initialDomain) {
			if !slices.Contains(idx[k], o) {
				idx[k] = append(idx[k], o)
			}
		}
	}
	t.index = idx
	t.dirty = false
}

// IdentityKeys are the lowercased values -Identity resolves for the object.
func (o *Object) IdentityKeys(initialDomain string) []string {
	keys := make([]string, 0, 8+len(o.EmailAddresses))
	add := func(k string) {
		if k = strings.ToLower(strings.TrimSpace(k)); k != "" {
			keys = append(keys, k)
		}
	}
	add(o.ID)
	add(o.Guid)
	add(o.ExchangeObjectID)
	add(o.Name)
	add(o.Alias)
	add(o.UserPrincipalName)
	add(o.PrimarySmtpAddress)
	add(o.DistinguishedName(initialDomain))
	for _, a := range o.EmailAddresses {
		if p, addr, ok := strings.Cut(a, ":"); ok && strings.EqualFold(p, "smtp") {
			add(addr)
		}
	}
	return keys
}

// DistinguishedName is the DN Exchange Online shows for the object.
func (o *Object) DistinguishedName(initialDomain string) string {
	return "CN=" + o.Name + ",OU=" + initialDomain + ",OU=Microsoft Exchange Hosted Organizations,DC=NAMPR11A004,DC=PROD,DC=OUTLOOK,DC=COM"
}
