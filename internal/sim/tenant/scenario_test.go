package tenant

import (
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestScenarioIsDeterministic(t *testing.T) {
	a := NewTenant(DefaultScenario()).Objects()
	b := NewTenant(DefaultScenario()).Objects()
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same scenario generated different tenants")
	}
	other := DefaultScenario()
	other.Seed = 2
	c := NewTenant(other).Objects()
	if reflect.DeepEqual(a, c) {
		t.Fatal("a different seed generated the same tenant")
	}
	if NewTenant(DefaultScenario()).ID() != DefaultScenario().ResolvedTenantID() || NewTenant(other).ID() == NewTenant(DefaultScenario()).ID() {
		t.Error("tenant id does not follow the seed")
	}
}

func TestDefaultScenarioShape(t *testing.T) {
	sc := DefaultScenario()
	tn := NewTenant(sc)
	counts := map[string]int{}
	rich := map[string]int{}
	aliases := map[string]bool{}
	var apostrophe, nonASCII, x500 bool
	for _, o := range tn.Objects() {
		key := o.RecipientTypeDetails
		if o.RecipientTypeDetails == RTDMailUser {
			key += map[bool]string{true: "/synced", false: "/cloud"}[o.IsDirSynced]
		}
		counts[key]++
		if aliases[strings.ToLower(o.Alias)] {
			t.Errorf("alias %q is not unique", o.Alias)
		}
		aliases[strings.ToLower(o.Alias)] = true
		if o.ID == "" || o.Guid == "" || o.ExchangeObjectID == "" || o.Guid == o.ExchangeObjectID || o.ID == o.Guid {
			t.Errorf("%s: ids not set or not distinct: %+v", o.DisplayName, o)
		}
		if !o.InScopeMEU() {
			continue
		}
		rich[o.UseMapiRichTextFormat]++
		apostrophe = apostrophe || strings.Contains(o.DisplayName, "'")
		nonASCII = nonASCII || strings.ContainsFunc(o.DisplayName, func(r rune) bool { return r > 127 })
		for _, a := range o.EmailAddresses {
			x500 = x500 || strings.HasPrefix(a, "X500:/o=")
		}
		if o.ExternalEmailAddress != "SMTP:"+o.PrimarySmtpAddress || !strings.HasSuffix(o.PrimarySmtpAddress, "@contoso.com") {
			t.Errorf("%s: ExternalEmailAddress %q, primary %q", o.DisplayName, o.ExternalEmailAddress, o.PrimarySmtpAddress)
		}
		if !o.OnPremisesSyncEnabled || o.Kind != KindUser || o.UserType != "Member" {
			t.Errorf("%s: Entra side wrong: %+v", o.DisplayName, o)
		}
		primaries := 0
		for _, a := range o.EmailAddresses {
			if strings.HasPrefix(a, "SMTP:") {
				primaries++
			}
		}
		if primaries != 1 {
			t.Errorf("%s has %d primary addresses", o.DisplayName, primaries)
		}
	}
	want := map[string]int{
		"MailUser/synced": sc.DirSyncedMEUs, "MailUser/cloud": sc.CloudMEUs, RTDGuestMailUser: sc.Guests,
		RTDUserMailbox: sc.Mailboxes, RTDMailContact: sc.Contacts,
	}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s: %d objects, want %d", k, counts[k], n)
		}
	}
	if g := counts[RTDMailUniversalDistributionGrp] + counts[RTDMailUniversalSecurityGroup]; g != sc.Groups {
		t.Errorf("groups: %d, want %d", g, sc.Groups)
	}
	// About 60/20/20 over 120 objects: allow sampling noise, but every value must occur.
	if rich[RichTextUseDefault] < 50 || rich[RichTextAlways] < 10 || rich[RichTextNever] < 10 {
		t.Errorf("rich-text mix = %v, want roughly 60/20/20 %%", rich)
	}
	if !apostrophe || !nonASCII || !x500 {
		t.Errorf("names with apostrophes %v, non-ASCII names %v, X500 addresses %v: want all", apostrophe, nonASCII, x500)
	}
	guest := tn.Select(func(o *Object) bool { return o.RecipientTypeDetails == RTDGuestMailUser })[0]
	if !strings.Contains(guest.UserPrincipalName, "#EXT#@contoso.onmicrosoft.com") || guest.UserType != "Guest" || guest.IsDirSynced {
		t.Errorf("guest looks wrong: %+v", guest)
	}
}

func TestScenarioWithOnlySizes(t *testing.T) {
	tn := NewTenant(Scenario{DirSyncedMEUs: 3})
	if tn.Domain() != "contoso.com" || tn.InitialDomain() != "contoso.onmicrosoft.com" || len(tn.InScopeMEUs()) != 3 || tn.Len() != 3 {
		t.Errorf("domain %q initial %q in scope %d len %d", tn.Domain(), tn.InitialDomain(), len(tn.InScopeMEUs()), tn.Len())
	}
	// With no rich-text fractions every MEU starts at the default.
	for _, o := range tn.InScopeMEUs() {
		if o.UseMapiRichTextFormat != RichTextUseDefault {
			t.Errorf("%s starts as %s", o.ID, o.UseMapiRichTextFormat)
		}
	}
}

func TestTenantMutations(t *testing.T) {
	tn := NewTenant(DefaultScenario())
	o := tn.InScopeMEUs()[0]

	copyOf, _ := tn.Object(o.ID)
	copyOf.EmailAddresses[0] = "SMTP:changed@contoso.com"
	if again, _ := tn.Object(o.ID); again.EmailAddresses[0] == "SMTP:changed@contoso.com" {
		t.Fatal("a returned copy shares memory with the tenant")
	}
	if _, ok := tn.Object(strings.ToUpper(o.ID)); !ok {
		t.Error("lookup by id is case-sensitive")
	}
	if err := tn.SetUseMapiRichTextFormat(o.ID, "always"); err != nil {
		t.Fatal(err)
	}
	if got, _ := tn.Object(o.ID); got.UseMapiRichTextFormat != RichTextAlways || !got.WhenChanged.After(o.WhenChanged) {
		t.Errorf("after set: %s, WhenChanged %s (was %s)", got.UseMapiRichTextFormat, got.WhenChanged, o.WhenChanged)
	}
	if err := tn.SetUseMapiRichTextFormat(o.ID, "Sometimes"); err == nil {
		t.Error("invalid value accepted")
	}
	if err := tn.SetUseMapiRichTextFormat("00000000-0000-0000-0000-000000000000", "Never"); err == nil {
		t.Error("unknown id accepted")
	}
	n := tn.Len()
	if !tn.Delete(o.ID) || tn.Delete(o.ID) || tn.Len() != n-1 {
		t.Error("Delete did not remove exactly once")
	}
	if err := tn.Add(Object{ID: o.ID, RecipientType: "MailUser", RecipientTypeDetails: RTDMailUser, IsDirSynced: true, Alias: "back"}); err != nil {
		t.Fatal(err)
	}
	if err := tn.Add(Object{ID: o.ID}); err == nil {
		t.Error("duplicate id accepted")
	}
	if err := tn.Add(Object{}); err == nil {
		t.Error("empty id accepted")
	}
	tn.RLockFresh()
	hits := tn.ResolveLocked("BACK")
	tn.mu.RUnlock()
	if len(hits) != 1 || hits[0].ID != o.ID {
		t.Errorf("added object not resolvable by alias: %v", hits)
	}
}

// TestTenantConcurrentUse is meant for -race: readers, writers and identity lookups at once.
func TestTenantConcurrentUse(t *testing.T) {
	tn := NewTenant(DefaultScenario())
	ids := tn.InScopeMEUs()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				o := ids[(i*7+w)%len(ids)]
				switch i % 4 {
				case 0:
					_ = tn.SetUseMapiRichTextFormat(o.ID, RichTextNever)
				case 1:
					_ = tn.InScopeMEUs()
				case 2:
					tn.RLockFresh()
					_ = tn.ResolveLocked(o.Alias)
					tn.mu.RUnlock()
				case 3:
					tn.Update(o.ID, func(x *Object) { x.CustomAttributes[0] = "x" })
				}
			}
		})
	}
	wg.Wait()
}
