package tenant

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Scenario describes the staged-migration tenant the simulator generates. The CLI maps its flags onto
// these fields; the same Scenario (same Seed) always yields the same objects, ids and values.
type Scenario struct {
	// Seed makes the tenant deterministic: ids, names, values and the rich-text mix all derive from it.
	Seed int64
	// TenantID is the tenant GUID; empty means one derived from Seed.
	TenantID string
	// Domain is the verified vanity domain users' addresses live at, e.g. contoso.com.
	Domain string
	// TenantDomain is the initial *.onmicrosoft.com domain, e.g. contoso.onmicrosoft.com.
	TenantDomain string

	// DirSyncedMEUs are mail users created by directory sync for on-prem users not yet migrated: job 1's scope.
	DirSyncedMEUs int
	// CloudMEUs are mail users created in the cloud (IsDirSynced false): out of scope.
	CloudMEUs int
	// Guests are B2B guest mail users (RecipientTypeDetails GuestMailUser): out of scope.
	Guests int
	// Mailboxes are migrated, dir-synced user mailboxes: out of scope.
	Mailboxes int
	// Contacts are mail contacts (half of them dir-synced): out of scope.
	Contacts int
	// Groups are distribution and mail-enabled security groups.
	Groups int

	// RichTextAlways and RichTextNever are the fractions (0..1) of dir-synced MEUs whose
	// UseMapiRichTextFormat starts as Always / Never; the rest start as UseDefaultSettings.
	RichTextAlways float64
	RichTextNever  float64

	// BaseTime anchors generated WhenCreated values; zero means 2023-03-01T10:11:12Z.
	BaseTime time.Time

	// Defects, when set, adds the seeded audit defects and traps (defects.go) on top of the sizes above.
	Defects *DefectMix
	// Licensing, when set, adds a licensing group and migrated mailboxes with and without an Exchange
	// licence (licensing.go): the mailbox-license job's work.
	Licensing *LicensingMix
}

// DefaultScenario is the small tenant `worker run --sim` and most tests use.
func DefaultScenario() Scenario {
	return Scenario{
		Seed:           1,
		Domain:         "contoso.com",
		TenantDomain:   "contoso.onmicrosoft.com",
		DirSyncedMEUs:  120,
		CloudMEUs:      10,
		Guests:         8,
		Mailboxes:      40,
		Contacts:       10,
		Groups:         6,
		RichTextAlways: 0.2,
		RichTextNever:  0.2,
	}
}

// WithDefaults fills empty fields so a partly filled Scenario (e.g. only sizes) still generates a tenant.
func (sc Scenario) WithDefaults() Scenario {
	if sc.Domain == "" {
		sc.Domain = "contoso.com"
	}
	if sc.TenantDomain == "" {
		sc.TenantDomain = strings.SplitN(sc.Domain, ".", 2)[0] + ".onmicrosoft.com"
	}
	if sc.TenantID == "" {
		sc.TenantID = DerivedGUID(fmt.Sprintf("tenant-%d", sc.Seed), 0)
	}
	if sc.BaseTime.IsZero() {
		sc.BaseTime = time.Date(2023, 3, 1, 10, 11, 12, 0, time.UTC)
	}
	return sc
}

// ResolvedTenantID returns the tenant GUID the scenario yields (TenantID, or the one derived from Seed),
// so the Entra side and the EXO side agree on it.
func (sc Scenario) ResolvedTenantID() string { return sc.WithDefaults().TenantID }

// Exchange Online Plan 2 (the plan inside E3/E5) — a realistic service plan id for licensed mailboxes.
const (
	exchangePlanID = "efb87545-963c-4e0d-99df-69c6916d9eb0"
	e3SkuID        = "6fd2c87f-b296-42f0-b197-1e91e994b900"
)

var (
	firstNames = []string{
		"Ada", "Ben", "Chloé", "Dmitri", "Émile", "Fatima", "Grace", "Hiro", "Ingrid", "José",
		"Kai", "Léa", "Mohammed", "Nuala", "Oskar", "Priya", "Quentin", "Rósa", "Søren", "Tomás",
		"Uma", "Vera", "Wojciech", "Xiao", "Yusuf", "Zoë", "Aoife", "Björn", "Łukasz", "Siobhán",
		"Jane", "John", "Maria", "David", "Sarah", "Michael", "Anna", "James", "Laura", "Peter",
	}
	lastNames = []string{
		"O'Brien", "Müller", "García", "Smith", "Nguyen", "Kowalski", "D'Angelo", "Jönsson", "Dubois", "Okafor",
		"Tanaka", "Fernández", "O'Neill", "Novák", "Schröder", "Brown", "Ivanova", "Þórsdóttir", "Lefèvre", "Patel",
		"Wilson", "Rossi", "Kim", "Andersen", "Çelik", "Murphy", "Johansson", "Moreau", "Yilmaz", "Clarke",
	}
	partnerDomains = []string{"fabrikam.com", "northwindtraders.com", "adventure-works.com", "tailspintoys.com", "woodgrovebank.com"}
	groupNames     = []string{"Sales", "Finance", "Engineering", "HR", "Legal", "Marketing", "Support", "Operations", "IT", "Facilities"}
)

// NewTenant generates the tenant a scenario describes.
func NewTenant(sc Scenario) *Tenant {
	sc = sc.WithDefaults()
	t := newEmptyTenant(sc.TenantID, sc.Domain, sc.TenantDomain)
	g := &generator{
		sc:      sc,
		rnd:     rand.New(rand.NewPCG(uint64(sc.Seed), 0x9e3779b97f4a7c15)),
		aliases: map[string]bool{},
		names:   map[string]bool{},
		t:       t,
	}
	mailDomain := strings.TrimSuffix(sc.TenantDomain, ".onmicrosoft.com") + ".mail.onmicrosoft.com"
	g.mailDomain = mailDomain

	for range sc.DirSyncedMEUs {
		g.add(g.dirSyncedMEU())
	}
	for range sc.CloudMEUs {
		g.add(g.cloudMEU())
	}
	for range sc.Guests {
		g.add(g.guest())
	}
	for range sc.Mailboxes {
		g.add(g.mailbox())
	}
	for i := range sc.Contacts {
		g.add(g.contact(i%2 == 0))
	}
	for i := range sc.Groups {
		g.add(g.group(i))
	}
	if sc.Defects != nil {
		g.seedDefects(*sc.Defects)
	}
	if sc.Licensing != nil {
		g.seedLicensing(*sc.Licensing)
	}
	return t
}

type generator struct {
	sc         Scenario
	rnd        *rand.Rand
	aliases    map[string]bool
	names      map[string]bool
	t          *Tenant
	mailDomain string
	n          int
}

func (g *generator) add(o Object) {
	// Generated ids are unique by construction; Add only fails on a duplicate, which would be a generator bug.
	if err := g.t.Add(o); err != nil {
		panic(err)
	}
}

func (g *generator) guid() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(g.rnd.UintN(256))
	}
	return FormatGUID(b)
}

// FormatGUID formats 16 bytes as a version-4 GUID.
func FormatGUID(b [16]byte) string {
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// DerivedGUID makes a stable GUID from a string, for ids the generator does not draw (tenant id, and the
// Guid/ExchangeObjectId of objects tests add by hand).
func DerivedGUID(s string, n int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%d", s, n))
	var b [16]byte
	copy(b[:], h[:16])
	return FormatGUID(b)
}

// person draws a display name and a unique ASCII alias derived from it (O'Brien → obrien, Zoë → zoe).
func (g *generator) person() (given, surname, display, alias string) {
	given = firstNames[g.rnd.IntN(len(firstNames))]
	surname = lastNames[g.rnd.IntN(len(lastNames))]
	display = given + " " + surname
	base := asciiFold(given) + "." + asciiFold(surname)
	alias = base
	for i := 2; g.aliases[alias]; i++ {
		alias = fmt.Sprintf("%s%d", base, i)
	}
	g.aliases[alias] = true
	name := display
	for i := 2; g.names[strings.ToLower(name)]; i++ {
		name = fmt.Sprintf("%s %d", display, i)
	}
	g.names[strings.ToLower(name)] = true
	if name != display {
		display = name // EXO Name must be unique; on-prem CNs carry the same disambiguation
	}
	return given, surname, display, alias
}

// asciiFold strips diacritics and anything that is not a letter or digit, the way admins build aliases.
func asciiFold(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteString(foldMap[r]) // apostrophes, spaces and unknown letters drop out
		}
	}
	if b.Len() == 0 {
		return "user"
	}
	return b.String()
}

// foldMap covers the non-ASCII letters of the name lists.
var foldMap = map[rune]string{
	'á': "a", 'à': "a", 'ä': "a", 'å': "a", 'ç': "c", 'é': "e", 'è': "e", 'ë': "e", 'í': "i", 'ï': "i",
	'ñ': "n", 'ó': "o", 'ö': "o", 'ø': "o", 'ú': "u", 'ü': "u", 'ł': "l", 'þ': "th", 'ð': "d", 'ß': "ss",
}

func (g *generator) created() time.Time {
	g.n++
	// Spread creation over ~2 years; seconds only, like AD's whenCreated.
	return g.sc.BaseTime.Add(time.Duration(g.rnd.IntN(2*365*24*3600)) * time.Second)
}

func (g *generator) immutableID() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(g.rnd.UintN(256))
	}
	return base64.StdEncoding.EncodeToString(b[:])
}

func (g *generator) richText() string {
	f := g.rnd.Float64()
	switch {
	case f < g.sc.RichTextAlways:
		return RichTextAlways
	case f < g.sc.RichTextAlways+g.sc.RichTextNever:
		return RichTextNever
	default:
		return RichTextUseDefault
	}
}

func (g *generator) x500(org, alias string) string {
	return fmt.Sprintf("X500:/o=%s/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=%s%x",
		org, alias, g.rnd.Uint32())
}

func (g *generator) dirSyncedMEU() Object {
	given, surname, display, alias := g.person()
	id := g.guid()
	primary := alias + "@" + g.sc.Domain
	org := strings.SplitN(g.sc.Domain, ".", 2)[0]
	addrs := []string{
		"SMTP:" + primary,
		"smtp:" + alias + "@" + g.mailDomain,
		g.x500(strings.ToUpper(org[:1])+org[1:], alias),
	}
	created := g.created()
	return Object{
		ID: id, Kind: KindUser,
		OnPremisesSyncEnabled: true, OnPremisesImmutableID: g.immutableID(),
		OnPremisesUserPrincipalName: primary, OnPremisesSamAccountName: truncate(alias, 20),
		UserPrincipalName: primary, Mail: primary, MailNickname: alias, DisplayName: display,
		GivenName: given, Surname: surname,
		ProxyAddresses: addrs[:2], UserType: "Member", AccountEnabled: true,

		RecipientType: "MailUser", RecipientTypeDetails: RTDMailUser,
		Name: display, Alias: alias, EmailAddresses: addrs, PrimarySmtpAddress: primary,
		WindowsEmailAddress: primary,
		// The on-prem mailbox system still receives this user's mail: targetAddress points back on-prem.
		ExternalEmailAddress:  "SMTP:" + primary,
		UseMapiRichTextFormat: g.richText(), IsDirSynced: true,
		Guid: g.guid(), ExchangeObjectID: g.guid(),
		WhenCreated: created, WhenChanged: created,
	}
}

func (g *generator) cloudMEU() Object {
	given, surname, display, alias := g.person()
	id := g.guid()
	partner := partnerDomains[g.rnd.IntN(len(partnerDomains))]
	external := alias + "@" + partner
	primary := alias + "@" + g.sc.Domain
	created := g.created()
	return Object{
		ID: id, Kind: KindUser,
		UserPrincipalName: primary, Mail: primary, MailNickname: alias, DisplayName: display + " (" + partner + ")",
		GivenName: given, Surname: surname,
		ProxyAddresses: []string{"SMTP:" + primary, "smtp:" + alias + "@" + g.sc.TenantDomain},
		UserType:       "Member", AccountEnabled: true,

		RecipientType: "MailUser", RecipientTypeDetails: RTDMailUser,
		// Cloud-created objects in newer tenants are named by their object id.
		Name: id, Alias: alias, PrimarySmtpAddress: primary, WindowsEmailAddress: primary,
		EmailAddresses:        []string{"SMTP:" + primary, "smtp:" + alias + "@" + g.sc.TenantDomain},
		ExternalEmailAddress:  "SMTP:" + external,
		UseMapiRichTextFormat: g.richText(),
		Guid:                  g.guid(), ExchangeObjectID: g.guid(),
		WhenCreated: created, WhenChanged: created,
	}
}

func (g *generator) guest() Object {
	given, surname, display, alias := g.person()
	id := g.guid()
	partner := partnerDomains[g.rnd.IntN(len(partnerDomains))]
	external := alias + "@" + partner
	upn := strings.ReplaceAll(external, "@", "_") + "#EXT#@" + g.sc.TenantDomain
	exoAlias := strings.ReplaceAll(external, "@", "_")
	created := g.created()
	return Object{
		ID: id, Kind: KindUser,
		UserPrincipalName: upn, Mail: external, MailNickname: exoAlias, DisplayName: display,
		GivenName: given, Surname: surname,
		ProxyAddresses: []string{"SMTP:" + external}, UserType: "Guest", AccountEnabled: true,

		RecipientType: "MailUser", RecipientTypeDetails: RTDGuestMailUser,
		Name: id, Alias: exoAlias, PrimarySmtpAddress: external, WindowsEmailAddress: external,
		EmailAddresses:       []string{"SMTP:" + external, "smtp:" + exoAlias + "@" + g.sc.TenantDomain},
		ExternalEmailAddress: "SMTP:" + external, UseMapiRichTextFormat: RichTextUseDefault,
		HiddenFromAddressListsEnabled: true,
		Guid:                          g.guid(), ExchangeObjectID: g.guid(),
		WhenCreated: created, WhenChanged: created,
	}
}

func (g *generator) mailbox() Object {
	given, surname, display, alias := g.person()
	id := g.guid()
	primary := alias + "@" + g.sc.Domain
	org := strings.SplitN(g.sc.Domain, ".", 2)[0]
	addrs := []string{
		"SMTP:" + primary,
		"smtp:" + alias + "@" + g.mailDomain,
		"smtp:" + alias + "@" + g.sc.TenantDomain,
		g.x500(strings.ToUpper(org[:1])+org[1:], alias),
	}
	created := g.created()
	return Object{
		ID: id, Kind: KindUser,
		OnPremisesSyncEnabled: true, OnPremisesImmutableID: g.immutableID(),
		OnPremisesUserPrincipalName: primary, OnPremisesSamAccountName: truncate(alias, 20),
		UserPrincipalName: primary, Mail: primary, MailNickname: alias, DisplayName: display,
		GivenName: given, Surname: surname,
		ProxyAddresses: addrs[:3], UserType: "Member", AccountEnabled: true,
		AssignedLicenses: []License{{SkuID: e3SkuID}},
		AssignedPlans: []Plan{{AssignedDateTime: created, CapabilityStatus: "Enabled",
			Service: "exchange", ServicePlanID: exchangePlanID}},

		RecipientType: "UserMailbox", RecipientTypeDetails: RTDUserMailbox,
		Name: display, Alias: alias, EmailAddresses: addrs, PrimarySmtpAddress: primary,
		WindowsEmailAddress: primary, UseMapiRichTextFormat: RichTextUseDefault, IsDirSynced: true,
		Guid: g.guid(), ExchangeObjectID: g.guid(), ExchangeGuid: g.guid(),
		WhenCreated: created, WhenChanged: created,
	}
}

func (g *generator) contact(synced bool) Object {
	given, surname, display, alias := g.person()
	id := g.guid()
	partner := partnerDomains[g.rnd.IntN(len(partnerDomains))]
	external := alias + "@" + partner
	created := g.created()
	name := display
	if !synced {
		name = id
	}
	return Object{
		ID: id, Kind: KindContact,
		OnPremisesSyncEnabled: synced,
		Mail:                  external, MailNickname: alias, DisplayName: display, GivenName: given, Surname: surname,
		ProxyAddresses: []string{"SMTP:" + external},

		RecipientType: "MailContact", RecipientTypeDetails: RTDMailContact,
		Name: name, Alias: alias, EmailAddresses: []string{"SMTP:" + external}, PrimarySmtpAddress: external,
		WindowsEmailAddress: external, ExternalEmailAddress: "SMTP:" + external,
		UseMapiRichTextFormat: RichTextUseDefault, IsDirSynced: synced,
		Guid: g.guid(), ExchangeObjectID: g.guid(),
		WhenCreated: created, WhenChanged: created,
	}
}

func (g *generator) group(i int) Object {
	base := groupNames[i%len(groupNames)]
	if i >= len(groupNames) {
		base = fmt.Sprintf("%s %d", base, i/len(groupNames)+1)
	}
	security := i%3 == 2
	display := "DL-" + base
	rtd := RTDMailUniversalDistributionGrp
	if security {
		display = "SG-" + base
		rtd = RTDMailUniversalSecurityGroup
	}
	alias := asciiFold(display)
	for j := 2; g.aliases[alias]; j++ {
		alias = fmt.Sprintf("%s%d", asciiFold(display), j)
	}
	g.aliases[alias] = true
	primary := alias + "@" + g.sc.Domain
	id := g.guid()
	created := g.created()
	return Object{
		ID: id, Kind: KindGroup,
		OnPremisesSyncEnabled: true, OnPremisesSamAccountName: truncate(alias, 20),
		Mail: primary, MailNickname: alias, DisplayName: display,
		ProxyAddresses: []string{"SMTP:" + primary, "smtp:" + alias + "@" + g.mailDomain},
		MailEnabled:    true, SecurityEnabled: security,

		RecipientType:        map[bool]string{false: "MailUniversalDistributionGroup", true: "MailUniversalSecurityGroup"}[security],
		RecipientTypeDetails: rtd,
		Name:                 display, Alias: alias, PrimarySmtpAddress: primary, WindowsEmailAddress: primary,
		EmailAddresses: []string{"SMTP:" + primary, "smtp:" + alias + "@" + g.mailDomain},
		IsDirSynced:    true,
		Guid:           g.guid(), ExchangeObjectID: g.guid(),
		WhenCreated: created, WhenChanged: created,
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
