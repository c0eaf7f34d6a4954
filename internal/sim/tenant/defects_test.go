package tenant

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func seeded(t *testing.T, m DefectMix) *Tenant {
	t.Helper()
	sc := DefaultScenario()
	sc.Defects = &m
	return NewTenant(sc)
}

func TestDefectsGroundTruthMatchesTheMix(t *testing.T) {
	m := DefaultDefects()
	tn := seeded(t, m)
	perRule := map[string]int{}
	for _, e := range tn.GroundTruth() {
		perRule[e.Rule]++
		if _, ok := tn.Object(e.ObjectID); !ok {
			t.Errorf("ground truth names %s, which the tenant does not hold", e.ObjectID)
		}
		if (e.Attribute == "") != (e.Action == "") || (e.Attribute == "") != (e.Value == "") {
			t.Errorf("%s on %s: a fix needs attribute, action and value together: %+v", e.Rule, e.ObjectID, e)
		}
	}
	want := map[string]int{
		ruleUPNUnverified:     m.UPNUnverified + m.UPNAndOnMicrosoft,
		ruleOnMicrosoft:       m.OnMicrosoftPrimary + m.UPNAndOnMicrosoft,
		rulePrimaryNotMail:    m.PrimaryNotMail,
		ruleConflictUPN:       m.DuplicateUPN,
		ruleConflictProxy:     m.DuplicateProxy,
		ruleLicenseOnMailUser: m.LicensedMailUser,
		ruleMailboxMissing:    m.MailboxNotProvisioned,
		ruleMEUNoTarget:       m.MEUNoTarget,
		ruleMEUTenantTarget:   m.MEUTargetTenant,
		ruleMEUMXCutover:      m.MEUTargetMXCutover,
	}
	if !reflect.DeepEqual(perRule, want) {
		t.Errorf("ground truth per rule %v, want %v", perRule, want)
	}
	if len(tn.Traps()) < 12 {
		t.Errorf("%d traps, want every trap of the issue", len(tn.Traps()))
	}
	base := NewTenant(DefaultScenario())
	if len(base.GroundTruth()) != 0 || len(base.Traps()) != 0 {
		t.Error("a scenario without Defects has ground truth")
	}
}

func TestDefectsAreDeterministic(t *testing.T) {
	a, b := seeded(t, DefaultDefects()), seeded(t, DefaultDefects())
	if !reflect.DeepEqual(a.GroundTruth(), b.GroundTruth()) || !reflect.DeepEqual(a.Traps(), b.Traps()) {
		t.Error("the same seed seeded different defects")
	}
	oa, ob := a.Objects(), b.Objects()
	if len(oa) != len(ob) {
		t.Fatalf("%d vs %d objects", len(oa), len(ob))
	}
	for i := range oa {
		if !reflect.DeepEqual(oa[i], ob[i]) {
			t.Fatalf("object %d differs between two runs of one seed:\n%+v\n%+v", i, oa[i], ob[i])
		}
		if !reflect.DeepEqual(a.GraphExtras(oa[i].ID), b.GraphExtras(ob[i].ID)) {
			t.Fatalf("Graph extras of %s differ between two runs of one seed", oa[i].ID)
		}
	}
}

// TestDefectsLookAsTheCloudShowsThem checks each defect's shape against DESIGN.md "What the cloud can show".
func TestDefectsLookAsTheCloudShowsThem(t *testing.T) {
	tn := seeded(t, DefaultDefects())
	for _, e := range tn.GroundTruth() {
		o, _ := tn.Object(e.ObjectID)
		x := tn.GraphExtras(e.ObjectID)
		switch e.Rule {
		case ruleUPNUnverified:
			if !strings.HasSuffix(o.OnPremisesUserPrincipalName, ".local") || !strings.HasSuffix(o.UserPrincipalName, "@"+tn.InitialDomain()) {
				t.Errorf("%s: on-prem UPN %s, cloud UPN %s: the cloud UPN must have fallen back to the initial domain", e.ObjectID, o.OnPremisesUserPrincipalName, o.UserPrincipalName)
			}
		case ruleOnMicrosoft:
			if !strings.HasPrefix(o.ProxyAddresses[0], "SMTP:") || !strings.HasSuffix(o.ProxyAddresses[0], "@"+tn.InitialDomain()) || o.PrimarySmtpAddress != o.Mail {
				t.Errorf("%s: proxies %v, mail %s: primary must be the MOERA, as in EXO", e.ObjectID, o.ProxyAddresses, o.Mail)
			}
		case rulePrimaryNotMail:
			if strings.EqualFold("SMTP:"+o.Mail, o.ProxyAddresses[0]) {
				t.Errorf("%s: mail equals the primary", e.ObjectID)
			}
		case ruleConflictUPN, ruleConflictProxy:
			if len(x.OnPremisesProvisioningErrors) != 1 || x.OnPremisesProvisioningErrors[0].Category != "PropertyConflict" {
				t.Errorf("%s: provisioning errors %+v", e.ObjectID, x.OnPremisesProvisioningErrors)
			}
			if e.Rule == ruleConflictProxy {
				v := strings.TrimPrefix(x.OnPremisesProvisioningErrors[0].Value, "smtp:")
				if slices.ContainsFunc(o.ProxyAddresses, func(p string) bool { return strings.EqualFold(p[5:], v) }) {
					t.Errorf("%s: the quarantined address %s is still on the object", e.ObjectID, v)
				}
			}
		case ruleLicenseOnMailUser:
			if !o.InScopeMEU() || len(o.AssignedPlans) == 0 {
				t.Errorf("%s: a licensed mail user must stay a MailUser in EXO: %s", e.ObjectID, o.RecipientTypeDetails)
			}
		case ruleMailboxMissing:
			if o.RecipientType != "" || len(x.ServiceProvisioningErrors) != 1 || x.ServiceProvisioningErrors[0].IsResolved {
				t.Errorf("%s: recipient type %q, service errors %+v", e.ObjectID, o.RecipientType, x.ServiceProvisioningErrors)
			}
		case ruleMEUNoTarget:
			if !o.InScopeMEU() || o.ExternalEmailAddress != "" {
				t.Errorf("%s: target %q", e.ObjectID, o.ExternalEmailAddress)
			}
		case ruleMEUMXCutover:
			d := strings.ToLower(o.ExternalEmailAddress[strings.IndexByte(o.ExternalEmailAddress, '@')+1:])
			mx := tn.MXRecords()[d]
			if len(mx) != 1 || !strings.HasSuffix(mx[0], ".mail.protection.outlook.com") {
				t.Errorf("%s: target domain %s has MX %v", e.ObjectID, d, mx)
			}
		}
	}
}

func TestMXRecords(t *testing.T) {
	tn := seeded(t, DefaultDefects())
	want := map[string][]string{
		"contoso.com":    {"mail.contoso.com"},
		"eu.contoso.com": {"eu-contoso-com.mail.protection.outlook.com"},
	}
	if got := tn.MXRecords(); !reflect.DeepEqual(got, want) {
		t.Errorf("MX %v, want %v", got, want)
	}
	accepted := false
	for _, d := range tn.AcceptedDomains() {
		accepted = accepted || d.DomainName == "eu.contoso.com"
	}
	verified := false
	for _, d := range tn.GraphDomains() {
		verified = verified || (d.ID == "eu.contoso.com" && d.IsVerified)
	}
	if !accepted || !verified {
		t.Errorf("the cut-over domain must be accepted in EXO (%v) and verified in Entra (%v)", accepted, verified)
	}
	if got := NewTenant(DefaultScenario()).MXRecords(); !reflect.DeepEqual(got, map[string][]string{"contoso.com": {"mail.contoso.com"}}) {
		t.Errorf("without defects MX %v", got)
	}
}
