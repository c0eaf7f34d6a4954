package audit

import (
	"errors"
	"strings"
	"testing"

	"github.com/exo-worker/worker/internal/directory"
	"github.com/exo-worker/worker/jobs"
)

func TestCatalogueIsComplete(t *testing.T) {
	ids := map[string]bool{}
	audits := map[string]bool{}
	for _, j := range Audits() {
		audits[j.Name()] = true
	}
	for _, r := range Rules() {
		if ids[r.ID] {
			t.Errorf("rule %s listed twice", r.ID)
		}
		ids[r.ID] = true
		if r.Title == "" || r.Explanation == "" || r.Fix == "" || r.Area == "" || r.Source == "" {
			t.Errorf("rule %s: title, explanation, fix, area and source are all required", r.ID)
		}
		if jobs.SeverityRank(r.Severity) > 3 {
			t.Errorf("rule %s: unknown severity %q", r.ID, r.Severity)
		}
		if r.OnPremOnly && r.Job != "" {
			t.Errorf("rule %s is on-prem only but names job %s: the cloud cannot show it", r.ID, r.Job)
		}
		if !r.OnPremOnly && !audits[r.Job] {
			t.Errorf("rule %s: job %q is not an audit of the library", r.ID, r.Job)
		}
		if (r.OnPremAttribute == "") != (r.OnPremAction == "") {
			t.Errorf("rule %s: attribute %q and action %q go together", r.ID, r.OnPremAttribute, r.OnPremAction)
		}
		if strings.Count(r.Explanation, "\n") > 0 {
			t.Errorf("rule %s: the explanation is one paragraph", r.ID)
		}
	}
	// The on-prem-only rules the issue requires are in the catalogue, marked so.
	for _, id := range []string{RuleGroupNoMail, RuleContactNoMail, RuleInvalidCharacters} {
		if r, ok := LookupRule(id); !ok || !r.OnPremOnly {
			t.Errorf("%s must be in the catalogue as on-prem only", id)
		}
	}
}

func TestParseProxyAddress(t *testing.T) {
	tests := []struct {
		in      string
		typ     string
		value   string
		primary bool
		smtp    bool
		wantErr bool
	}{
		{in: "SMTP:jane@contoso.com", typ: "SMTP", value: "jane@contoso.com", primary: true, smtp: true},
		{in: "smtp:jane@contoso.mail.onmicrosoft.com", typ: "SMTP", value: "jane@contoso.mail.onmicrosoft.com", smtp: true},
		{in: "X500:/o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=O'Brien, Jane", typ: "X500",
			value: "/o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=O'Brien, Jane", primary: true},
		{in: "x500:/o=ExchangeLabs/cn=a:b", typ: "X500", value: "/o=ExchangeLabs/cn=a:b"},
		{in: "SIP:jane@contoso.com", typ: "SIP", value: "jane@contoso.com", primary: true},
		{in: "SPO:SPO_0b6d2f7a-1111-4c2e-8d3f-222233334444@SPO_3f2b9c1e", typ: "SPO", value: "SPO_0b6d2f7a-1111-4c2e-8d3f-222233334444@SPO_3f2b9c1e", primary: true},
		{in: "X400:C=US;A= ;P=Contoso;O=Exchange;S=Smith;G=Jane;", typ: "X400", value: "C=US;A= ;P=Contoso;O=Exchange;S=Smith;G=Jane;", primary: true},
		{in: "", wantErr: true},
		{in: "jane@contoso.com", wantErr: true},
		{in: ":jane@contoso.com", wantErr: true},
		{in: "SMTP:", wantErr: true},
		{in: "SM TP:jane@contoso.com", wantErr: true},
		{in: "VERYLONGTYPE:x", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParseProxyAddress(tc.in)
			if tc.wantErr {
				if err == nil || !errors.Is(err, ErrProxyAddress) {
					t.Fatalf("ParseProxyAddress(%q) = %+v, %v; want an ErrProxyAddress", tc.in, p, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Type() != tc.typ || p.Value != tc.value || p.IsPrimary() != tc.primary || p.IsSMTP() != tc.smtp {
				t.Errorf("got type %s value %q primary %v smtp %v", p.Type(), p.Value, p.IsPrimary(), p.IsSMTP())
			}
			if p.String() != tc.in {
				t.Errorf("String() = %q, want the input back", p.String())
			}
		})
	}
}

func FuzzParseProxyAddress(f *testing.F) {
	for _, s := range []string{
		"SMTP:jane@contoso.com", "smtp:a@b.c", "X500:/o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=O'Brien",
		"SIP:x@y", "X400:C=US;A= ;P=Contoso;", "", ":", "SMTP:", "noprefix", "EUM:123;phone-context=x", "smtp:ü@ä.de",
		"SMTP:a@b:c", "\x00:\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseProxyAddress(s)
		if err != nil {
			if !errors.Is(err, ErrProxyAddress) {
				t.Fatalf("error %v does not wrap ErrProxyAddress", err)
			}
			return
		}
		if p.String() != s {
			t.Fatalf("round trip: %q → %q", s, p.String())
		}
		if p.Prefix == "" || p.Value == "" || strings.Contains(p.Prefix, ":") {
			t.Fatalf("parsed %q into prefix %q value %q", s, p.Prefix, p.Value)
		}
		if p.IsSMTP() {
			_ = p.Domain()
		}
	})
}

func TestMailboxPlans(t *testing.T) {
	skus := []directory.SubscribedSKU{{SkuPartNumber: "EXCHANGEDESKLESS_GOV", ServicePlans: []directory.ServicePlan{
		{ServicePlanID: "88f4d7ef-0000-4000-8000-000000000001", ServicePlanName: "EXCHANGE_S_DESKLESS_GOV"},
		{ServicePlanID: "113feb6c-3fe4-4440-bddc-54d774bf0318", ServicePlanName: "EXCHANGE_S_FOUNDATION"},
		{ServicePlanID: "88f4d7ef-0000-4000-8000-000000000002", ServicePlanName: "EXCHANGE_S_FOUNDATION_GOV"},
		{ServicePlanID: "88f4d7ef-0000-4000-8000-000000000003", ServicePlanName: "EXCHANGE_S_ARCHIVE_ADDON_GOV"},
	}}}
	c := newPlanCatalog(skus)
	tests := []struct {
		name   string
		plans  []directory.AssignedPlan
		mbxPln string
	}{
		{"plan 1", []directory.AssignedPlan{{ServicePlanID: "9aaf7827-d63c-4b61-89c3-182f06f82e5c", CapabilityStatus: "Enabled"}}, "EXCHANGE_S_STANDARD"},
		{"plan 2 upper-case id", []directory.AssignedPlan{{ServicePlanID: "EFB87545-963C-4E0D-99DF-69C6916D9EB0", CapabilityStatus: "Enabled"}}, "EXCHANGE_S_ENTERPRISE"},
		{"kiosk", []directory.AssignedPlan{{ServicePlanID: "4a82b400-a79f-41a4-b4e2-e94f5787b113", CapabilityStatus: "Enabled"}}, "EXCHANGE_S_DESKLESS"},
		{"essentials", []directory.AssignedPlan{{ServicePlanID: "1126bef5-da20-4f07-b45e-ad25d2581aa8", CapabilityStatus: "Enabled"}}, "EXCHANGE_S_ESSENTIALS"},
		{"pop", []directory.AssignedPlan{{ServicePlanID: "90927877-dcff-4af6-b346-2332c0b15bb7", CapabilityStatus: "Enabled"}}, "EXCHANGE_B_STANDARD"},
		{"gcc plan 1", []directory.AssignedPlan{{ServicePlanID: "e9b4930a-925f-45e2-ac2a-3f7788ca6fdd", CapabilityStatus: "Enabled"}}, "EXCHANGE_S_STANDARD_GOV"},
		{"gcc plan 2", []directory.AssignedPlan{{ServicePlanID: "8c3069c0-ccdb-44be-ab77-986203a67df2", CapabilityStatus: "Enabled"}}, "EXCHANGE_S_ENTERPRISE_GOV"},
		{"kiosk gov known only by the SKU's name", []directory.AssignedPlan{{ServicePlanID: "88f4d7ef-0000-4000-8000-000000000001", CapabilityStatus: "Enabled"}}, "EXCHANGE_S_DESKLESS_GOV"},
		{"grace period still counts", []directory.AssignedPlan{{ServicePlanID: "9aaf7827-d63c-4b61-89c3-182f06f82e5c", CapabilityStatus: "Warning"}}, "EXCHANGE_S_STANDARD"},
		{"foundation does not count", []directory.AssignedPlan{{ServicePlanID: "113feb6c-3fe4-4440-bddc-54d774bf0318", CapabilityStatus: "Enabled"}}, ""},
		{"foundation gov does not count", []directory.AssignedPlan{{ServicePlanID: "88f4d7ef-0000-4000-8000-000000000002", CapabilityStatus: "Enabled"}}, ""},
		{"archive add-on does not count", []directory.AssignedPlan{{ServicePlanID: "176a09a6-7ec5-4039-ac02-b2791c6ba793", CapabilityStatus: "Enabled"}}, ""},
		{"archive gov by name does not count", []directory.AssignedPlan{{ServicePlanID: "88f4d7ef-0000-4000-8000-000000000003", CapabilityStatus: "Enabled"}}, ""},
		{"deleted plan does not count", []directory.AssignedPlan{{ServicePlanID: "9aaf7827-d63c-4b61-89c3-182f06f82e5c", CapabilityStatus: "Deleted"}}, ""},
		{"suspended plan does not count", []directory.AssignedPlan{{ServicePlanID: "efb87545-963c-4e0d-99df-69c6916d9eb0", CapabilityStatus: "Suspended"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := &directory.User{AssignedPlans: tc.plans}
			if got := c.mailboxPlan(u); got != tc.mbxPln {
				t.Errorf("mailboxPlan = %q, want %q", got, tc.mbxPln)
			}
		})
	}
}
