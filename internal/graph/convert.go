package graph

import (
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/microsoftgraph/msgraph-sdk-go/models"

	"github.com/exo-worker/worker/internal/directory"
)

// The explicit $select of each read: every property the directory structs hold, and nothing else. Most of
// them are not in Graph's default set (research §1.1), so without $select they would silently be empty.
var (
	userSelect = []string{"id", "userPrincipalName", "mail", "mailNickname", "displayName", "proxyAddresses",
		"onPremisesSyncEnabled", "onPremisesImmutableId", "onPremisesUserPrincipalName", "onPremisesSamAccountName",
		"onPremisesDistinguishedName", "onPremisesProvisioningErrors", "serviceProvisioningErrors",
		"assignedLicenses", "assignedPlans", "accountEnabled", "userType", "creationType"}
	groupSelect = []string{"id", "displayName", "mail", "mailNickname", "mailEnabled", "securityEnabled", "groupTypes",
		"proxyAddresses", "onPremisesSyncEnabled", "onPremisesSamAccountName", "onPremisesSecurityIdentifier",
		"onPremisesProvisioningErrors"}
	contactSelect = []string{"id", "displayName", "mail", "mailNickname", "proxyAddresses", "onPremisesSyncEnabled",
		"onPremisesProvisioningErrors"}
	domainSelect = []string{"id", "isVerified", "isDefault", "isInitial", "authenticationType", "supportedServices"}
	skuSelect    = []string{"skuId", "skuPartNumber", "servicePlans"}
)

func uuidString(u *uuid.UUID) string {
	if u == nil {
		return ""
	}
	return u.String()
}

func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func boolPtr(p *bool) *bool {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// removed reports whether a delta item is a removal ("@removed": {"reason": ...}). The SDK has no field for
// the annotation; it lands in the additional data.
func removed(additional map[string]any) bool {
	_, ok := additional["@removed"]
	return ok
}

func provisioningErrors(in []models.OnPremisesProvisioningErrorable) []directory.ProvisioningError {
	if len(in) == 0 {
		return nil
	}
	out := make([]directory.ProvisioningError, 0, len(in))
	for _, e := range in {
		if e == nil {
			continue
		}
		out = append(out, directory.ProvisioningError{
			Category: deref(e.GetCategory()), PropertyCausingError: deref(e.GetPropertyCausingError()),
			Value: deref(e.GetValue()), OccurredDateTime: timeOf(e.GetOccurredDateTime()),
		})
	}
	return out
}

func toUser(u models.Userable) directory.User {
	out := directory.User{
		ID:                           strings.ToLower(deref(u.GetId())),
		UserPrincipalName:            deref(u.GetUserPrincipalName()),
		Mail:                         deref(u.GetMail()),
		MailNickname:                 deref(u.GetMailNickname()),
		DisplayName:                  deref(u.GetDisplayName()),
		ProxyAddresses:               slices.Clone(u.GetProxyAddresses()),
		OnPremisesSyncEnabled:        boolPtr(u.GetOnPremisesSyncEnabled()),
		OnPremisesImmutableID:        deref(u.GetOnPremisesImmutableId()),
		OnPremisesUserPrincipalName:  deref(u.GetOnPremisesUserPrincipalName()),
		OnPremisesSamAccountName:     deref(u.GetOnPremisesSamAccountName()),
		OnPremisesDistinguishedName:  deref(u.GetOnPremisesDistinguishedName()),
		OnPremisesProvisioningErrors: provisioningErrors(u.GetOnPremisesProvisioningErrors()),
		AccountEnabled:               deref(u.GetAccountEnabled()),
		UserType:                     deref(u.GetUserType()),
		CreationType:                 deref(u.GetCreationType()),
	}
	for _, e := range u.GetServiceProvisioningErrors() {
		if e == nil {
			continue
		}
		se := directory.ServiceProvisioningError{ServiceInstance: deref(e.GetServiceInstance()),
			IsResolved: deref(e.GetIsResolved()), CreatedDateTime: timeOf(e.GetCreatedDateTime())}
		// Exchange writes serviceProvisioningXmlError; the SDK builds that type from @odata.type.
		if x, ok := e.(models.ServiceProvisioningXmlErrorable); ok {
			se.ErrorDetail = deref(x.GetErrorDetail())
		}
		out.ServiceProvisioningErrors = append(out.ServiceProvisioningErrors, se)
	}
	for _, l := range u.GetAssignedLicenses() {
		if l == nil {
			continue
		}
		al := directory.AssignedLicense{SkuID: uuidString(l.GetSkuId())}
		for _, d := range l.GetDisabledPlans() {
			al.DisabledPlans = append(al.DisabledPlans, d.String())
		}
		out.AssignedLicenses = append(out.AssignedLicenses, al)
	}
	for _, p := range u.GetAssignedPlans() {
		if p == nil {
			continue
		}
		out.AssignedPlans = append(out.AssignedPlans, directory.AssignedPlan{
			ServicePlanID: uuidString(p.GetServicePlanId()), Service: deref(p.GetService()),
			CapabilityStatus: deref(p.GetCapabilityStatus()), AssignedDateTime: timeOf(p.GetAssignedDateTime()),
		})
	}
	return out
}

func toGroup(g models.Groupable) directory.Group {
	return directory.Group{
		ID:                           strings.ToLower(deref(g.GetId())),
		DisplayName:                  deref(g.GetDisplayName()),
		Mail:                         deref(g.GetMail()),
		MailNickname:                 deref(g.GetMailNickname()),
		MailEnabled:                  deref(g.GetMailEnabled()),
		SecurityEnabled:              deref(g.GetSecurityEnabled()),
		GroupTypes:                   slices.Clone(g.GetGroupTypes()),
		ProxyAddresses:               slices.Clone(g.GetProxyAddresses()),
		OnPremisesSyncEnabled:        boolPtr(g.GetOnPremisesSyncEnabled()),
		OnPremisesSamAccountName:     deref(g.GetOnPremisesSamAccountName()),
		OnPremisesSecurityIdentifier: deref(g.GetOnPremisesSecurityIdentifier()),
		OnPremisesProvisioningErrors: provisioningErrors(g.GetOnPremisesProvisioningErrors()),
	}
}

func toContact(c models.OrgContactable) directory.Contact {
	return directory.Contact{
		ID:                           strings.ToLower(deref(c.GetId())),
		DisplayName:                  deref(c.GetDisplayName()),
		Mail:                         deref(c.GetMail()),
		MailNickname:                 deref(c.GetMailNickname()),
		ProxyAddresses:               slices.Clone(c.GetProxyAddresses()),
		OnPremisesSyncEnabled:        boolPtr(c.GetOnPremisesSyncEnabled()),
		OnPremisesProvisioningErrors: provisioningErrors(c.GetOnPremisesProvisioningErrors()),
	}
}

func toDomain(d models.Domainable) directory.Domain {
	return directory.Domain{
		ID:                 deref(d.GetId()),
		IsVerified:         deref(d.GetIsVerified()),
		IsDefault:          deref(d.GetIsDefault()),
		IsInitial:          deref(d.GetIsInitial()),
		AuthenticationType: deref(d.GetAuthenticationType()),
		SupportedServices:  slices.Clone(d.GetSupportedServices()),
	}
}

func toSKU(s models.SubscribedSkuable) directory.SubscribedSKU {
	out := directory.SubscribedSKU{SkuID: uuidString(s.GetSkuId()), SkuPartNumber: deref(s.GetSkuPartNumber())}
	for _, p := range s.GetServicePlans() {
		if p == nil {
			continue
		}
		out.ServicePlans = append(out.ServicePlans, directory.ServicePlan{ServicePlanID: uuidString(p.GetServicePlanId()),
			ServicePlanName: deref(p.GetServicePlanName()), AppliesTo: deref(p.GetAppliesTo())})
	}
	return out
}

// Deep copies, so a snapshot handed out never shares slices with the client's live state.

func cloneUser(u directory.User) directory.User {
	u.ProxyAddresses = slices.Clone(u.ProxyAddresses)
	u.OnPremisesSyncEnabled = boolPtr(u.OnPremisesSyncEnabled)
	u.OnPremisesProvisioningErrors = slices.Clone(u.OnPremisesProvisioningErrors)
	u.ServiceProvisioningErrors = slices.Clone(u.ServiceProvisioningErrors)
	u.AssignedPlans = slices.Clone(u.AssignedPlans)
	lic := slices.Clone(u.AssignedLicenses)
	for i := range lic {
		lic[i].DisabledPlans = slices.Clone(lic[i].DisabledPlans)
	}
	u.AssignedLicenses = lic
	return u
}

func cloneGroup(g directory.Group) directory.Group {
	g.GroupTypes = slices.Clone(g.GroupTypes)
	g.ProxyAddresses = slices.Clone(g.ProxyAddresses)
	g.OnPremisesSyncEnabled = boolPtr(g.OnPremisesSyncEnabled)
	g.OnPremisesProvisioningErrors = slices.Clone(g.OnPremisesProvisioningErrors)
	return g
}

func cloneContact(c directory.Contact) directory.Contact {
	c.ProxyAddresses = slices.Clone(c.ProxyAddresses)
	c.OnPremisesSyncEnabled = boolPtr(c.OnPremisesSyncEnabled)
	c.OnPremisesProvisioningErrors = slices.Clone(c.OnPremisesProvisioningErrors)
	return c
}
