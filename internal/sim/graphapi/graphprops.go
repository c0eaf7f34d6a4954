package graphapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/exo-worker/worker/internal/sim/tenant"
)

// The Graph representation of directory objects: per entity type, its properties in the service's order,
// which of them come back without $select, and how each is derived from the shared Object and GraphExtras.

// jobj is a JSON object that keeps its key order (Graph answers properties in metadata order; tests and
// people reading dumps find that easier than Go's sorted map keys).
type jobj []jkv

type jkv struct {
	k string
	v any
}

func (o jobj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, kv := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(kv.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// gview is what a property getter reads: the object, its Graph-only extras and tenant-level facts.
type gview struct {
	o        *tenant.Object
	x        tenant.GraphExtras
	domain   string // the tenant's vanity domain (derived DNs)
	tenantID string // derived SIDs
}

type gprop struct {
	name string
	def  bool // returned when the request has no $select
	get  func(v *gview) any
}

// gentity describes one entity set: users, groups, contacts.
type gentity struct {
	set   string // users
	typ   string // microsoft.graph.user
	kind  tenant.ObjectKind
	props []gprop
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func strs(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

func gtime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

func syncEnabled(v *gview) any {
	switch {
	case v.o.OnPremisesSyncEnabled:
		return true
	case v.x.SyncStopped:
		return false
	}
	return nil
}

func onPrem(v *gview, s string) any {
	if !v.o.OnPremisesSyncEnabled && !v.x.SyncStopped {
		return nil
	}
	return nullable(s)
}

func lastSync(v *gview) any {
	if !v.o.OnPremisesSyncEnabled {
		return nil
	}
	return gtime(v.o.WhenCreated)
}

func onPremErrors(v *gview) any {
	out := make([]jobj, 0, len(v.x.OnPremisesProvisioningErrors))
	for _, e := range v.x.OnPremisesProvisioningErrors {
		out = append(out, jobj{{"category", nullable(e.Category)}, {"occurredDateTime", gtime(e.OccurredDateTime)},
			{"propertyCausingError", nullable(e.PropertyCausingError)}, {"value", nullable(e.Value)}})
	}
	return out
}

func serviceErrors(v *gview) any {
	out := make([]jobj, 0, len(v.x.ServiceProvisioningErrors))
	for _, e := range v.x.ServiceProvisioningErrors {
		o := jobj{}
		if e.ErrorDetail != "" {
			// The SDK picks the derived type (and so reads errorDetail) only from @odata.type.
			o = append(o, jkv{"@odata.type", "#microsoft.graph.serviceProvisioningXmlError"})
		}
		o = append(o, jkv{"createdDateTime", gtime(e.CreatedDateTime)}, jkv{"isResolved", e.IsResolved},
			jkv{"serviceInstance", nullable(e.ServiceInstance)})
		if e.ErrorDetail != "" {
			o = append(o, jkv{"errorDetail", e.ErrorDetail})
		}
		out = append(out, o)
	}
	return out
}

// provisionedPlans derives one entry per assigned plan: Success, since the generator only licenses users whose
// service provisioned. GraphExtras.ProvisionedPlans replaces the list for seeded failures.
func provisionedPlans(v *gview) any {
	src := v.x.ProvisionedPlans
	if src == nil {
		for _, p := range v.o.AssignedPlans {
			src = append(src, tenant.ProvisionedPlan{CapabilityStatus: p.CapabilityStatus, ProvisioningStatus: "Success", Service: p.Service})
		}
	}
	out := make([]jobj, 0, len(src))
	for _, p := range src {
		out = append(out, jobj{{"capabilityStatus", nullable(p.CapabilityStatus)},
			{"provisioningStatus", nullable(p.ProvisioningStatus)}, {"service", nullable(p.Service)}})
	}
	return out
}

func assignedLicenses(v *gview) any {
	out := make([]jobj, 0, len(v.o.AssignedLicenses))
	for _, l := range v.o.AssignedLicenses {
		out = append(out, jobj{{"disabledPlans", strs(l.DisabledPlans)}, {"skuId", l.SkuID}})
	}
	return out
}

var userEntity = &gentity{set: "users", typ: "microsoft.graph.user", kind: tenant.KindUser, props: []gprop{
	{"id", true, func(v *gview) any { return v.o.ID }},
	{"businessPhones", true, func(v *gview) any { return []string{} }},
	{"displayName", true, func(v *gview) any { return nullable(v.o.DisplayName) }},
	{"givenName", true, func(v *gview) any { return nullable(v.o.GivenName) }},
	{"jobTitle", true, func(v *gview) any { return nil }},
	{"mail", true, func(v *gview) any { return nullable(v.o.Mail) }},
	{"mobilePhone", true, func(v *gview) any { return nil }},
	{"officeLocation", true, func(v *gview) any { return nil }},
	{"preferredLanguage", true, func(v *gview) any { return nil }},
	{"surname", true, func(v *gview) any { return nullable(v.o.Surname) }},
	{"userPrincipalName", true, func(v *gview) any { return nullable(v.o.UserPrincipalName) }},
	{"accountEnabled", false, func(v *gview) any { return v.o.AccountEnabled }},
	{"assignedLicenses", false, assignedLicenses},
	{"assignedPlans", false, func(v *gview) any {
		out := make([]jobj, 0, len(v.o.AssignedPlans))
		for _, p := range v.o.AssignedPlans {
			out = append(out, jobj{{"assignedDateTime", gtime(p.AssignedDateTime)}, {"capabilityStatus", nullable(p.CapabilityStatus)},
				{"service", nullable(p.Service)}, {"servicePlanId", p.ServicePlanID}})
		}
		return out
	}},
	{"createdDateTime", false, func(v *gview) any { return gtime(v.o.WhenCreated) }},
	{"creationType", false, func(v *gview) any {
		if v.x.CreationType != "" {
			return v.x.CreationType
		}
		if v.o.UserType == "Guest" {
			return "Invitation"
		}
		return nil
	}},
	{"deletedDateTime", false, func(v *gview) any { return nil }},
	{"externalUserState", false, func(v *gview) any {
		if v.o.UserType == "Guest" {
			return "Accepted"
		}
		return nil
	}},
	{"mailNickname", false, func(v *gview) any { return nullable(v.o.MailNickname) }},
	{"onPremisesDistinguishedName", false, func(v *gview) any { return nullable(tenant.OnPremisesDN(*v.o, v.x, v.domain)) }},
	{"onPremisesImmutableId", false, func(v *gview) any { return onPrem(v, v.o.OnPremisesImmutableID) }},
	{"onPremisesLastSyncDateTime", false, lastSync},
	{"onPremisesProvisioningErrors", false, onPremErrors},
	{"onPremisesSamAccountName", false, func(v *gview) any { return onPrem(v, v.o.OnPremisesSamAccountName) }},
	{"onPremisesSecurityIdentifier", false, func(v *gview) any { return nullable(tenant.OnPremisesSID(*v.o, v.x, v.tenantID)) }},
	{"onPremisesSyncEnabled", false, syncEnabled},
	{"onPremisesUserPrincipalName", false, func(v *gview) any { return onPrem(v, v.o.OnPremisesUserPrincipalName) }},
	{"otherMails", false, func(v *gview) any { return []string{} }},
	{"provisionedPlans", false, provisionedPlans},
	{"proxyAddresses", false, func(v *gview) any { return strs(v.o.ProxyAddresses) }},
	{"serviceProvisioningErrors", false, serviceErrors},
	{"showInAddressList", false, func(v *gview) any { return nil }},
	{"userType", false, func(v *gview) any { return nullable(v.o.UserType) }},
}}

var groupEntity = &gentity{set: "groups", typ: "microsoft.graph.group", kind: tenant.KindGroup, props: []gprop{
	{"id", true, func(v *gview) any { return v.o.ID }},
	{"createdDateTime", true, func(v *gview) any { return gtime(v.o.WhenCreated) }},
	{"deletedDateTime", true, func(v *gview) any { return nil }},
	{"description", true, func(v *gview) any { return nil }},
	{"displayName", true, func(v *gview) any { return nullable(v.o.DisplayName) }},
	{"groupTypes", true, func(v *gview) any { return strs(v.o.GroupTypes) }},
	{"mail", true, func(v *gview) any { return nullable(v.o.Mail) }},
	{"mailEnabled", true, func(v *gview) any { return v.o.MailEnabled }},
	{"mailNickname", true, func(v *gview) any { return nullable(v.o.MailNickname) }},
	{"onPremisesLastSyncDateTime", true, lastSync},
	{"onPremisesProvisioningErrors", true, onPremErrors},
	{"onPremisesSamAccountName", true, func(v *gview) any { return onPrem(v, v.o.OnPremisesSamAccountName) }},
	{"onPremisesSecurityIdentifier", true, func(v *gview) any { return nullable(tenant.OnPremisesSID(*v.o, v.x, v.tenantID)) }},
	{"onPremisesSyncEnabled", true, syncEnabled},
	{"proxyAddresses", true, func(v *gview) any { return strs(v.o.ProxyAddresses) }},
	{"securityEnabled", true, func(v *gview) any { return v.o.SecurityEnabled }},
	{"serviceProvisioningErrors", true, serviceErrors},
	{"visibility", true, func(v *gview) any { return nil }},
	{"assignedLicenses", false, assignedLicenses},
}}

var contactEntity = &gentity{set: "contacts", typ: "microsoft.graph.orgContact", kind: tenant.KindContact, props: []gprop{
	{"id", true, func(v *gview) any { return v.o.ID }},
	{"addresses", true, func(v *gview) any { return []string{} }},
	{"companyName", true, func(v *gview) any { return nil }},
	{"department", true, func(v *gview) any { return nil }},
	{"displayName", true, func(v *gview) any { return nullable(v.o.DisplayName) }},
	{"givenName", true, func(v *gview) any { return nullable(v.o.GivenName) }},
	{"jobTitle", true, func(v *gview) any { return nil }},
	{"mail", true, func(v *gview) any { return nullable(v.o.Mail) }},
	{"mailNickname", true, func(v *gview) any { return nullable(v.o.MailNickname) }},
	{"onPremisesLastSyncDateTime", true, lastSync},
	{"onPremisesProvisioningErrors", true, onPremErrors},
	{"onPremisesSyncEnabled", true, syncEnabled},
	{"phones", true, func(v *gview) any { return []string{} }},
	{"proxyAddresses", true, func(v *gview) any { return strs(v.o.ProxyAddresses) }},
	{"serviceProvisioningErrors", true, serviceErrors},
	{"surname", true, func(v *gview) any { return nullable(v.o.Surname) }},
}}

// selection is a parsed $select: the canonical property names to return, nil for the default set.
type selection []string

// parseSelect validates $select against the entity's properties (case-insensitively, as the service does) and
// returns the canonical names; an unknown property is the service's 400.
func parseSelect(typ string, props []string, raw string) (selection, *graphErr) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, nil
	}
	var out selection
	for _, p := range strings.Split(raw, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		found := ""
		for _, name := range props {
			if strings.EqualFold(name, p) {
				found = name
				break
			}
		}
		if found == "" {
			return nil, &graphErr{status: 400, code: "Request_BadRequest",
				msg: fmt.Sprintf("Could not find a property named '%s' on type '%s'.", p, typ)}
		}
		if !containsFold(out, found) {
			out = append(out, found)
		}
	}
	return out, nil
}

func containsFold(list []string, v string) bool {
	for _, e := range list {
		if strings.EqualFold(e, v) {
			return true
		}
	}
	return false
}

func (e *gentity) propNames() []string {
	out := make([]string, len(e.props))
	for i, p := range e.props {
		out[i] = p.name
	}
	return out
}

// project renders the object with the selected properties (the default set when sel is nil). Delta answers
// always carry id, even when $select leaves it out.
func (e *gentity) project(v *gview, sel selection, forceID bool) jobj {
	out := make(jobj, 0, len(e.props))
	if forceID && sel != nil && !containsFold(sel, "id") {
		out = append(out, jkv{"id", v.o.ID})
	}
	for _, p := range e.props {
		if sel == nil && !p.def || sel != nil && !containsFold(sel, p.name) {
			continue
		}
		out = append(out, jkv{p.name, p.get(v)})
	}
	return out
}

// context is the @odata.context of a collection answer.
func (e *gentity) context(base string, sel selection) string {
	c := base + "/v1.0/$metadata#" + e.set
	if sel != nil {
		c += "(" + strings.Join(sel, ",") + ")"
	}
	return c
}

func domainJSON(d tenant.GraphDomain) jobj {
	return jobj{{"authenticationType", nullable(d.AuthenticationType)}, {"availabilityStatus", nil}, {"id", d.ID},
		{"isAdminManaged", d.IsAdminManaged}, {"isDefault", d.IsDefault}, {"isInitial", d.IsInitial}, {"isRoot", d.IsRoot},
		{"isVerified", d.IsVerified}, {"passwordNotificationWindowInDays", nil}, {"passwordValidityPeriodInDays", nil},
		{"supportedServices", strs(d.SupportedServices)}, {"state", nil}}
}

var domainProps = []string{"authenticationType", "availabilityStatus", "id", "isAdminManaged", "isDefault", "isInitial",
	"isRoot", "isVerified", "passwordNotificationWindowInDays", "passwordValidityPeriodInDays", "supportedServices", "state"}

func skuJSON(tenantID, accountName string, s tenant.SubscribedSKU, consumed int) jobj {
	plans := make([]jobj, 0, len(s.ServicePlans))
	for _, p := range s.ServicePlans {
		plans = append(plans, jobj{{"servicePlanId", p.ServicePlanID}, {"servicePlanName", p.ServicePlanName},
			{"provisioningStatus", nullable(p.ProvisioningStatus)}, {"appliesTo", nullable(p.AppliesTo)}})
	}
	return jobj{{"accountName", accountName}, {"accountId", tenantID}, {"appliesTo", nullable(s.AppliesTo)},
		{"capabilityStatus", nullable(s.CapabilityStatus)}, {"consumedUnits", consumed}, {"id", tenantID + "_" + s.SkuID},
		{"skuId", s.SkuID}, {"skuPartNumber", s.SkuPartNumber}, {"subscriptionIds", []string{tenant.DerivedGUID(tenantID+"/"+s.SkuID, 7)}},
		{"prepaidUnits", jobj{{"enabled", s.PrepaidEnabled}, {"suspended", 0}, {"warning", 0}, {"lockedOut", 0}}},
		{"servicePlans", plans}}
}

var skuProps = []string{"accountName", "accountId", "appliesTo", "capabilityStatus", "consumedUnits", "id", "skuId",
	"skuPartNumber", "subscriptionIds", "prepaidUnits", "servicePlans"}

// selectKeys keeps the selected keys of a rendered object (domains and SKUs are small: render, then project).
func selectKeys(o jobj, sel selection) jobj {
	if sel == nil {
		return o
	}
	out := make(jobj, 0, len(sel))
	for _, kv := range o {
		if containsFold(sel, kv.k) {
			out = append(out, kv)
		}
	}
	return out
}
