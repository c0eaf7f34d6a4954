package audit

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/directory"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/meurichtext"
)

// The fixture tenant: contoso.com (default, MX on-premises), eu.contoso.com (verified, MX already at
// Exchange Online), contoso.onmicrosoft.com (initial).
var (
	fixtureDomains = []directory.Domain{
		{ID: "contoso.com", IsVerified: true, IsDefault: true},
		{ID: "contoso.onmicrosoft.com", IsVerified: true, IsInitial: true},
		{ID: "eu.contoso.com", IsVerified: true},
	}
	fixtureMX = map[string]directory.MX{
		"contoso.com":    {Hosts: []string{"mail.contoso.com"}},
		"eu.contoso.com": {Hosts: []string{"eu-contoso-com.mail.protection.outlook.com"}},
	}
	fixtureAccepted = []exo.AcceptedDomain{
		{DomainName: "contoso.com", DomainType: "Authoritative", Default: true},
		{DomainName: "contoso.onmicrosoft.com", DomainType: "Authoritative", InitialDomain: true},
		{DomainName: "contoso.mail.onmicrosoft.com", DomainType: "Authoritative"},
		{DomainName: "eu.contoso.com", DomainType: "Authoritative"},
	}
)

const (
	planEXO1       = "9aaf7827-d63c-4b61-89c3-182f06f82e5c"
	planEXO2       = "efb87545-963c-4e0d-99df-69c6916d9eb0"
	planKiosk      = "4a82b400-a79f-41a4-b4e2-e94f5787b113"
	planFoundation = "113feb6c-3fe4-4440-bddc-54d774bf0318"
)

func ptr[T any](v T) *T { return &v }

// member is a synced internal user in the normal state of a staged migration.
func member(id, alias string, mods ...func(*directory.User)) directory.User {
	addr := alias + "@contoso.com"
	u := directory.User{
		ID: id, UserPrincipalName: addr, Mail: addr, MailNickname: alias, DisplayName: alias,
		ProxyAddresses:        []string{"SMTP:" + addr, "smtp:" + alias + "@contoso.mail.onmicrosoft.com"},
		OnPremisesSyncEnabled: ptr(true), OnPremisesImmutableID: "AAECAwQFBgcICQoLDA0ODw==",
		OnPremisesUserPrincipalName: addr, OnPremisesSamAccountName: alias, UserType: "Member", AccountEnabled: true,
	}
	for _, m := range mods {
		m(&u)
	}
	return u
}

func licensed(plan string) func(*directory.User) {
	return func(u *directory.User) {
		u.AssignedPlans = append(u.AssignedPlans, directory.AssignedPlan{ServicePlanID: plan, CapabilityStatus: "Enabled", Service: "exchange",
			AssignedDateTime: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)})
	}
}

func cloudOnly(u *directory.User) { u.OnPremisesSyncEnabled = nil }
func guest(u *directory.User)     { u.UserType = "Guest"; u.OnPremisesSyncEnabled = nil }

// meu is the EXO side of a synced mail user.
func meu(id, alias, target string) exo.MailUser {
	return exo.MailUser{ExternalDirectoryObjectId: id, DisplayName: alias, PrimarySmtpAddress: alias + "@contoso.com",
		ExternalEmailAddress: target, IsDirSynced: true, RecipientType: "MailUser", RecipientTypeDetails: "MailUser"}
}

type fixture struct {
	users     []directory.User
	groups    []directory.Group
	contacts  []directory.Contact
	mailUsers []exo.MailUser
	mailboxes []exo.Mailbox
	mx        map[string]directory.MX
	noMX      bool
}

func (f fixture) tenant() *jobs.Tenant {
	mx := f.mx
	if mx == nil && !f.noMX {
		mx = fixtureMX
	}
	return &jobs.Tenant{
		MailUsers: f.mailUsers, Mailboxes: f.mailboxes, AcceptedDomains: fixtureAccepted,
		Directory: &directory.Snapshot{Users: f.users, Groups: f.groups, Contacts: f.contacts, Domains: fixtureDomains, MX: mx},
	}
}

type auditCase struct {
	name string
	f    fixture
	// want lists "rule/object-id" pairs; nil means no finding at all (a trap).
	want []string
	// fixes, by object id, the on-prem fix expected on that object's finding ("-" for none).
	fixes map[string]string
	// detail, when set, must appear in the (first) finding's detail.
	detail string
}

func runAuditCases(t *testing.T, j jobs.Job, cases []auditCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := j.Plan(context.Background(), tc.f.tenant())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range p.Findings {
				got = append(got, f.Rule+"/"+f.Object.ID)
				if r, _ := LookupRule(f.Rule); r.Job != j.Name() {
					t.Errorf("%s reported rule %s, which the catalogue gives to %q", j.Name(), f.Rule, r.Job)
				}
				if want, ok := tc.fixes[f.Object.ID]; ok {
					gotFix := "-"
					if f.OnPrem != nil {
						gotFix = f.OnPrem.Action + " " + f.OnPrem.Attribute + " " + f.OnPrem.Value
					}
					if gotFix != want {
						t.Errorf("fix for %s (%s) = %q, want %q", f.Object.ID, f.Rule, gotFix, want)
					}
				}
			}
			sort.Strings(got)
			want := slices.Clone(tc.want)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("findings %v, want %v", got, want)
				for _, f := range p.Findings {
					t.Logf("  %s %s: %s", f.Rule, f.Object.ID, f.Detail)
				}
			}
			if tc.detail != "" && (len(p.Findings) == 0 || !strings.Contains(p.Findings[0].Detail, tc.detail)) {
				t.Errorf("detail does not mention %q: %+v", tc.detail, p.Findings)
			}
		})
	}
}

func TestAddressAudit(t *testing.T) {
	runAuditCases(t, &AddressAudit{}, []auditCase{
		{name: "clean user", f: fixture{users: []directory.User{member("u1", "jane")}}},
		{name: "trap: X500 with spaces, parentheses, apostrophes, commas; SIP, SPO, X400", f: fixture{users: []directory.User{member("u1", "obrien", func(u *directory.User) {
			u.ProxyAddresses = append(u.ProxyAddresses,
				"X500:/o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=O'Brien, Seán",
				"x500:/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=d'angelo (old)",
				"SIP:obrien@contoso.com", "SPO:SPO_0b6d2f7a-1111-4c2e-8d3f-222233334444@SPO_3f2b9c1e",
				"X400:C=US;A= ;P=Contoso;O=Exchange;S=O'Brien;G=Sean;")
		})}}},
		{name: "no primary", f: fixture{users: []directory.User{member("u1", "jane", func(u *directory.User) {
			u.ProxyAddresses = []string{"smtp:jane@contoso.com"}
		})}}, want: []string{"address-primary-count/u1"}, fixes: map[string]string{"u1": "add proxyAddresses SMTP:jane@contoso.com"}},
		{name: "two primaries: keep the one equal to mail", f: fixture{users: []directory.User{member("u1", "jane", func(u *directory.User) {
			u.ProxyAddresses = []string{"SMTP:jane.doe@contoso.com", "SMTP:jane@contoso.com"}
		})}}, want: []string{"address-primary-count/u1"}, fixes: map[string]string{"u1": "remove proxyAddresses SMTP:jane.doe@contoso.com"}},
		{name: "primary differs from mail", f: fixture{users: []directory.User{member("u1", "jane", func(u *directory.User) {
			u.Mail = "jane.doe@contoso.com"
		})}}, want: []string{"address-primary-not-mail/u1"}, fixes: map[string]string{"u1": "replace mail jane@contoso.com"}},
		{name: "primary equals mail except case", f: fixture{users: []directory.User{member("u1", "jane", func(u *directory.User) {
			u.Mail = "Jane@Contoso.com"
		})}}},
		{name: "onmicrosoft primary, mail never set: suggest the on-prem UPN", f: fixture{users: []directory.User{member("u1", "jane", func(u *directory.User) {
			u.ProxyAddresses = []string{"SMTP:jane@contoso.onmicrosoft.com"}
			u.Mail = "jane@contoso.onmicrosoft.com"
		})}}, want: []string{"address-onmicrosoft-primary/u1"}, fixes: map[string]string{"u1": "replace mail jane@contoso.com"}},
		{name: "onmicrosoft primary after licence removal: suggest the default domain", f: fixture{users: []directory.User{member("u1", "jane", func(u *directory.User) {
			u.ProxyAddresses = []string{"SMTP:jane@contoso.onmicrosoft.com", "smtp:jane@contoso.mail.onmicrosoft.com"}
			u.Mail = "jane@contoso.onmicrosoft.com"
			u.OnPremisesUserPrincipalName = "jane@contoso.local"
		})}}, want: []string{"address-onmicrosoft-primary/u1"}, fixes: map[string]string{"u1": "replace mail jane@contoso.com"}},
		{name: "onmicrosoft primary with a company secondary: promote it", f: fixture{users: []directory.User{member("u1", "jane", func(u *directory.User) {
			u.ProxyAddresses = []string{"SMTP:jane@contoso.onmicrosoft.com", "smtp:jane.doe@eu.contoso.com"}
			u.Mail = "jane@contoso.onmicrosoft.com"
		})}}, want: []string{"address-onmicrosoft-primary/u1"}, fixes: map[string]string{"u1": "replace mail jane.doe@eu.contoso.com"}},
		{name: "onmicrosoft primary but mail right: only one finding, no contradicting mail fix", f: fixture{users: []directory.User{member("u1", "jane", func(u *directory.User) {
			u.ProxyAddresses = []string{"SMTP:jane@contoso.onmicrosoft.com"}
		})}}, want: []string{"address-onmicrosoft-primary/u1"}, fixes: map[string]string{"u1": "add proxyAddresses SMTP:jane@contoso.com"}},
		{name: "same address twice on one object", f: fixture{users: []directory.User{member("u1", "jane", func(u *directory.User) {
			u.ProxyAddresses = append(u.ProxyAddresses, "smtp:JANE@contoso.com")
		})}}, want: []string{"address-duplicate/u1"}, fixes: map[string]string{"u1": "remove proxyAddresses smtp:JANE@contoso.com"}},
		{name: "address on two objects: the secondary holder is flagged", f: fixture{users: []directory.User{
			member("u1", "sales"),
			member("u2", "jane", func(u *directory.User) { u.ProxyAddresses = append(u.ProxyAddresses, "smtp:Sales@contoso.com") }),
		}}, want: []string{"address-duplicate/u2"}, fixes: map[string]string{"u2": "remove proxyAddresses smtp:Sales@contoso.com"}, detail: "sales"},
		{name: "address at an unverified domain on an unlicensed object", f: fixture{users: []directory.User{member("u1", "jane", func(u *directory.User) {
			u.ProxyAddresses = append(u.ProxyAddresses, "smtp:jane@contoso-old.com")
		})}}, want: []string{"address-unverified-domain/u1"}, fixes: map[string]string{"u1": "remove proxyAddresses smtp:jane@contoso-old.com"}},
		{name: "trap: guests and cloud-only users are not synced objects", f: fixture{users: []directory.User{
			member("g1", "guest", guest, func(u *directory.User) { u.ProxyAddresses = []string{"SMTP:guest@contoso.onmicrosoft.com"} }),
			member("c1", "admin", cloudOnly, func(u *directory.User) {
				u.ProxyAddresses = []string{"SMTP:admin@contoso.onmicrosoft.com", "SMTP:x@y.com"}
				u.Mail = "other@contoso.com"
			}),
		}}},
		{name: "trap: a contact at another tenant's onmicrosoft.com or a partner domain", f: fixture{contacts: []directory.Contact{
			{ID: "k1", DisplayName: "Partner", Mail: "Ann@Fabrikam.com", ProxyAddresses: []string{"SMTP:ann@fabrikam.com"}, OnPremisesSyncEnabled: ptr(true)},
			{ID: "k2", DisplayName: "Other tenant", Mail: "bob@fabrikam.onmicrosoft.com", ProxyAddresses: []string{"SMTP:bob@fabrikam.onmicrosoft.com"}, OnPremisesSyncEnabled: ptr(true)},
		}}},
		{name: "contact whose mail differs from its primary", f: fixture{contacts: []directory.Contact{
			{ID: "k1", DisplayName: "Partner", Mail: "ann.old@fabrikam.com", ProxyAddresses: []string{"SMTP:ann@fabrikam.com"}, OnPremisesSyncEnabled: ptr(true)},
		}}, want: []string{"address-primary-not-mail/k1"}, fixes: map[string]string{"k1": "replace mail ann@fabrikam.com"}},
		{name: "mail-enabled group whose mail differs from its primary", f: fixture{groups: []directory.Group{
			{ID: "g1", DisplayName: "DL-Sales", Mail: "sales-old@contoso.com", MailEnabled: true, OnPremisesSyncEnabled: ptr(true),
				ProxyAddresses: []string{"SMTP:sales@contoso.com"}},
			{ID: "g2", DisplayName: "SG-NoMail", SecurityEnabled: true, OnPremisesSyncEnabled: ptr(true)},
		}}, want: []string{"address-primary-not-mail/g1"}},
		{name: "trap: a synced user without any address is not a recipient", f: fixture{users: []directory.User{member("u1", "svc", func(u *directory.User) {
			u.ProxyAddresses, u.Mail = nil, ""
		})}}},
	})
}

func TestIdentityAudit(t *testing.T) {
	occurred := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	runAuditCases(t, &IdentityAudit{}, []auditCase{
		{name: "clean", f: fixture{users: []directory.User{member("u1", "jane")}}},
		{name: "UPN suffix not verified", f: fixture{users: []directory.User{member("u1", "jane", func(u *directory.User) {
			u.OnPremisesUserPrincipalName = "jane.doe@contoso.local"
			u.UserPrincipalName = "jane@contoso.onmicrosoft.com"
		})}}, want: []string{"upn-unverified-suffix/u1"}, fixes: map[string]string{"u1": "replace userPrincipalName jane.doe@contoso.com"},
			detail: "contoso.local"},
		{name: "trap: UPN at another verified domain than mail", f: fixture{users: []directory.User{member("u1", "jane", func(u *directory.User) {
			u.OnPremisesUserPrincipalName = "jane@EU.contoso.com"
			u.UserPrincipalName = "jane@eu.contoso.com"
		})}}},
		{name: "duplicate UPN quarantined", f: fixture{users: []directory.User{
			member("u1", "jane"),
			member("u2", "jane2", func(u *directory.User) {
				u.OnPremisesUserPrincipalName = "jane@contoso.com"
				u.UserPrincipalName = "jane4821@contoso.onmicrosoft.com"
				u.OnPremisesProvisioningErrors = []directory.ProvisioningError{{Category: "PropertyConflict", PropertyCausingError: "UserPrincipalName", Value: "jane@contoso.com", OccurredDateTime: occurred}}
			}),
		}}, want: []string{"sync-conflict-upn/u2"}, fixes: map[string]string{"u2": "-"}, detail: "u1"},
		{name: "duplicate proxy address quarantined", f: fixture{users: []directory.User{
			member("u1", "sales"),
			member("u2", "jane", func(u *directory.User) {
				u.OnPremisesProvisioningErrors = []directory.ProvisioningError{{Category: "PropertyConflict", PropertyCausingError: "ProxyAddresses", Value: "SMTP:sales@contoso.com", OccurredDateTime: occurred}}
			}),
		}}, want: []string{"sync-conflict-proxy/u2"}, fixes: map[string]string{"u2": "remove proxyAddresses SMTP:sales@contoso.com"}, detail: "u1"},
		{name: "proxy conflict value without prefix", f: fixture{groups: []directory.Group{
			{ID: "g1", DisplayName: "DL-Sales", MailEnabled: true, OnPremisesSyncEnabled: ptr(true), ProxyAddresses: []string{"SMTP:dl@contoso.com"},
				OnPremisesProvisioningErrors: []directory.ProvisioningError{{Category: "PropertyConflict", PropertyCausingError: "ProxyAddress", Value: "sales@contoso.com"}}},
		}}, want: []string{"sync-conflict-proxy/g1"}, fixes: map[string]string{"g1": "remove proxyAddresses smtp:sales@contoso.com"}},
		{name: "trap: other categories, guests, cloud-only", f: fixture{users: []directory.User{
			member("u1", "jane", func(u *directory.User) {
				u.OnPremisesProvisioningErrors = []directory.ProvisioningError{{Category: "SomethingElse", PropertyCausingError: "UserPrincipalName", Value: "x"}}
			}),
			member("g1", "guest", guest, func(u *directory.User) { u.OnPremisesUserPrincipalName = "x@contoso.local" }),
			member("c1", "cloud", cloudOnly, func(u *directory.User) {
				u.OnPremisesProvisioningErrors = []directory.ProvisioningError{{Category: "PropertyConflict", PropertyCausingError: "UserPrincipalName", Value: "x"}}
			}),
		}}},
	})
}

func TestLicenseAudit(t *testing.T) {
	xmlErr := `<ServiceInstance Name="exchange/NAMPRD09-001-01"><ObjectErrors><ErrorRecord><ErrorCode>ProxyAddressExists</ErrorCode><ErrorDescription>The value "SMTP:x@contoso.com" is already used.</ErrorDescription></ErrorRecord></ObjectErrors></ServiceInstance>`
	runAuditCases(t, &LicenseAudit{}, []auditCase{
		{name: "licensed mailbox", f: fixture{users: []directory.User{member("u1", "jane", licensed(planEXO2))},
			mailboxes: []exo.Mailbox{{Recipient: exo.Recipient{ExternalDirectoryObjectId: "U1", RecipientTypeDetails: "UserMailbox"}}}}},
		{name: "licence on a user still a mail user", f: fixture{users: []directory.User{member("u1", "jane", licensed(planEXO1))},
			mailUsers: []exo.MailUser{meu("u1", "jane", "SMTP:jane@contoso.com")}},
			want: []string{"license-exchange-on-mailuser/u1"}, fixes: map[string]string{"u1": "-"}, detail: "EXCHANGE_S_STANDARD"},
		{name: "kiosk licence on a mail user", f: fixture{users: []directory.User{member("u1", "jane", licensed(planKiosk))},
			mailUsers: []exo.MailUser{meu("u1", "jane", "SMTP:jane@contoso.com")}},
			want: []string{"license-exchange-on-mailuser/u1"}, detail: "EXCHANGE_S_DESKLESS"},
		{name: "licensed, mailbox failed to provision", f: fixture{users: []directory.User{member("u1", "jane", licensed(planEXO2), func(u *directory.User) {
			u.ServiceProvisioningErrors = []directory.ServiceProvisioningError{{ServiceInstance: "exchange/NAMPRD09-001-01", ErrorDetail: xmlErr}}
		})}}, want: []string{"license-mailbox-missing/u1"}, detail: "ProxyAddressExists"},
		{name: "trap: EXCHANGE_S_FOUNDATION only, no mailbox (mail user or nothing)", f: fixture{users: []directory.User{
			member("u1", "jane", licensed(planFoundation)), member("u2", "john", licensed(planFoundation)),
		}, mailUsers: []exo.MailUser{meu("u1", "jane", "SMTP:jane@contoso.com")}}},
		{name: "trap: licensed guest has no mailbox by design", f: fixture{users: []directory.User{member("g1", "guest", guest, licensed(planEXO1))}}},
		{name: "trap: cloud-only licensed user", f: fixture{users: []directory.User{member("c1", "cloud", cloudOnly, licensed(planEXO1))}}},
		{name: "mailbox without licence", f: fixture{users: []directory.User{member("u1", "jane", licensed(planFoundation))},
			mailboxes: []exo.Mailbox{{Recipient: exo.Recipient{ExternalDirectoryObjectId: "u1", RecipientTypeDetails: "UserMailbox"}}}},
			want: []string{"mailbox-unlicensed/u1"}, detail: "EXCHANGE_S_FOUNDATION"},
		{name: "trap: shared mailbox without licence", f: fixture{users: []directory.User{member("u1", "info")},
			mailboxes: []exo.Mailbox{{Recipient: exo.Recipient{ExternalDirectoryObjectId: "u1", RecipientTypeDetails: "SharedMailbox"}}}}},
		{name: "trap: guest and cloud mail users in EXO are not MEUs", f: fixture{users: []directory.User{member("u1", "jane", licensed(planEXO1))},
			mailUsers: []exo.MailUser{{ExternalDirectoryObjectId: "u1", RecipientTypeDetails: "MailUser", IsDirSynced: false}},
			mailboxes: []exo.Mailbox{{Recipient: exo.Recipient{ExternalDirectoryObjectId: "u1", RecipientTypeDetails: "UserMailbox"}}}}},
	})
}

func TestMEUAudit(t *testing.T) {
	users := []directory.User{member("u1", "jane")}
	one := func(target string) fixture {
		return fixture{users: users, mailUsers: []exo.MailUser{meu("u1", "jane", target)}}
	}
	runAuditCases(t, &MEUAudit{}, []auditCase{
		{name: "trap: target at an accepted domain whose MX is on-premises", f: one("SMTP:jane@contoso.com")},
		{name: "target missing", f: one(""), want: []string{"meu-target-missing/u1"}, fixes: map[string]string{"u1": "replace targetAddress SMTP:jane@contoso.com"}},
		{name: "target at the tenant's mail.onmicrosoft.com", f: one("SMTP:jane@contoso.mail.onmicrosoft.com"),
			want: []string{"meu-target-tenant-domain/u1"}, fixes: map[string]string{"u1": "replace targetAddress SMTP:jane@contoso.com"}},
		{name: "target at the tenant's onmicrosoft.com", f: one("smtp:jane@CONTOSO.onmicrosoft.com"), want: []string{"meu-target-tenant-domain/u1"}},
		{name: "target at a domain whose MX is Exchange Online", f: one("SMTP:jane@eu.contoso.com"),
			want: []string{"meu-target-mx-exo/u1"}, fixes: map[string]string{"u1": "-"}, detail: "mail.protection.outlook.com"},
		{name: "trap: another tenant's mail.onmicrosoft.com (cross-tenant migration)", f: one("SMTP:jane@fabrikam.mail.onmicrosoft.com")},
		{name: "trap: a partner domain", f: one("SMTP:jane@fabrikam.com")},
		{name: "trap: guest and cloud-only mail users", f: fixture{users: users, mailUsers: []exo.MailUser{
			{ExternalDirectoryObjectId: "g1", RecipientTypeDetails: "GuestMailUser", IsDirSynced: false, ExternalEmailAddress: "SMTP:x@contoso.onmicrosoft.com"},
			{ExternalDirectoryObjectId: "c1", RecipientTypeDetails: "MailUser", IsDirSynced: false, ExternalEmailAddress: ""},
		}}},
		{name: "MX lookup failed: one finding for the domain", f: fixture{users: users, mailUsers: []exo.MailUser{
			meu("u1", "jane", "SMTP:jane@eu.contoso.com"), meu("u2", "john", "SMTP:john@eu.contoso.com"),
		}, mx: map[string]directory.MX{"contoso.com": {Hosts: []string{"mail.contoso.com"}}, "eu.contoso.com": {Err: "SERVFAIL"}}},
			want: []string{"domain-mx-unknown/eu.contoso.com"}, detail: "2 mail user(s)"},
		{name: "no resolver ran", f: fixture{users: users, noMX: true, mailUsers: []exo.MailUser{meu("u1", "jane", "SMTP:jane@contoso.com")}},
			want: []string{"domain-mx-unknown/contoso.com"}, detail: "no MX resolver"},
	})
}

func TestAuditsNeedTheDirectory(t *testing.T) {
	for _, j := range Audits() {
		d := j.Describe()
		if d.Kind != jobs.KindAudit || !d.NeedsDirectory || len(d.Writes) != 0 {
			t.Errorf("%s: kind %s, needs directory %v, writes %v: audits read Graph and write nothing", j.Name(), d.Kind, d.NeedsDirectory, d.Writes)
		}
		if err := d.Validate(nil); err != nil {
			t.Errorf("%s: its declaration does not validate: %v", j.Name(), err)
		}
		if _, err := j.Plan(context.Background(), &jobs.Tenant{}); !errors.Is(err, errNoDirectory) {
			t.Errorf("%s planned without a directory: %v", j.Name(), err)
		}
	}
}

func TestSuite(t *testing.T) {
	s, err := NewSuite("audits", Audits()...)
	if err != nil {
		t.Fatal(err)
	}
	d := s.Describe()
	cmdlets := map[string]int{}
	for _, q := range d.Reads {
		cmdlets[q.Cmdlet]++
	}
	for c, n := range cmdlets {
		if n != 1 {
			t.Errorf("the suite reads %s %d times", c, n)
		}
	}
	if cmdlets["Get-MailUser"] != 1 || cmdlets["Get-Mailbox"] != 1 || cmdlets["Get-AcceptedDomain"] != 1 || !d.NeedsDirectory {
		t.Errorf("suite reads %v, needs directory %v", cmdlets, d.NeedsDirectory)
	}
	f := fixture{users: []directory.User{
		member("u1", "jane", licensed(planEXO1)),
		member("u2", "john", func(u *directory.User) { u.Mail = "other@contoso.com" }),
	}, mailUsers: []exo.MailUser{meu("u1", "jane", "")}}
	p, err := s.Plan(context.Background(), f.tenant())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range p.Findings {
		got = append(got, f.Rule+"/"+f.Object.ID)
	}
	want := []string{"license-exchange-on-mailuser/u1", "meu-target-missing/u1", "address-primary-not-mail/u2"}
	if !slices.Equal(got, want) {
		t.Errorf("suite findings %v, want %v (sorted by severity, rule, object)", got, want)
	}
	for _, f := range p.Findings {
		if r, _ := LookupRule(f.Rule); f.Job != r.Job {
			t.Errorf("finding %s/%s says job %q, want the audit of its rule, %q", f.Rule, f.Object.ID, f.Job, r.Job)
		}
	}

	rt, _ := meurichtext.New("")
	if _, err := NewSuite("x", rt); err == nil {
		t.Error("a suite accepted a remediation job")
	}
	if _, err := NewSuite("x", &MEUAudit{}, &conflictingAudit{}); err == nil {
		t.Error("a suite accepted two different queries of one cmdlet")
	}
}

type conflictingAudit struct{ MEUAudit }

func (conflictingAudit) Name() string { return "conflicting" }
func (conflictingAudit) Describe() jobs.Description {
	return jobs.Description{Kind: jobs.KindAudit, Reads: []jobs.Query{{Cmdlet: "Get-MailUser", Filter: "Name -like 'a*'"}}}
}

// staticDirectory and staticMX stand in for Graph and DNS in the WithMX test: both are this package's
// own interfaces, and the real implementations are tested against the simulator and a local DNS server.
type staticDirectory struct{ s directory.Snapshot }

func (d staticDirectory) Snapshot(context.Context) (*directory.Snapshot, error) {
	s := d.s
	return &s, nil
}

type staticMX map[string][]string

func (m staticMX) LookupMX(_ context.Context, domain string) ([]string, error) {
	if h, ok := m[domain]; ok {
		return h, nil
	}
	return nil, errors.New("lookup " + domain + ": no such host")
}

func TestWithMXResolvesVerifiedDomains(t *testing.T) {
	dir := staticDirectory{directory.Snapshot{Domains: []directory.Domain{
		{ID: "Contoso.com", IsVerified: true},
		{ID: "contoso.onmicrosoft.com", IsVerified: true, IsInitial: true},
		{ID: "eu.contoso.com", IsVerified: true},
		{ID: "pending.contoso.com", IsVerified: false},
		{ID: "broken.contoso.com", IsVerified: true},
	}}}
	r := staticMX{"contoso.com": {"Mail.Contoso.com."}, "eu.contoso.com": {"eu-contoso-com.mail.protection.outlook.com."}}
	s, err := WithMX(dir, r).Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]directory.MX{
		"contoso.com":        {Hosts: []string{"mail.contoso.com"}},
		"eu.contoso.com":     {Hosts: []string{"eu-contoso-com.mail.protection.outlook.com"}},
		"broken.contoso.com": {Err: "lookup broken.contoso.com: no such host"},
	}
	if len(s.MX) != len(want) {
		t.Fatalf("MX = %+v, want %+v (onmicrosoft.com and unverified domains are not looked up)", s.MX, want)
	}
	for d, w := range want {
		if g := s.MX[d]; !slices.Equal(g.Hosts, w.Hosts) || g.Err != w.Err {
			t.Errorf("MX[%s] = %+v, want %+v", d, g, w)
		}
	}
}
