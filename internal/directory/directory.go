// Package directory holds the plain Go view of Entra directory objects that audits read: users, groups,
// contacts, domains and subscribed SKUs. internal/graph fills these from Microsoft Graph; jobs read them.
// Keeping them here (and not in internal/graph) is what lets jobs, exo and config build and test without
// compiling msgraph-sdk-go.
package directory

import "time"

// User is a Graph user with the properties audits need (always read with an explicit $select).
type User struct {
	ID                           string
	UserPrincipalName            string
	Mail                         string
	MailNickname                 string
	DisplayName                  string
	ProxyAddresses               []string
	OnPremisesSyncEnabled        *bool // nil: never synced; false: was synced once
	OnPremisesImmutableID        string
	OnPremisesUserPrincipalName  string
	OnPremisesSamAccountName     string
	OnPremisesProvisioningErrors []ProvisioningError
	ServiceProvisioningErrors    []ServiceProvisioningError
	AssignedLicenses             []AssignedLicense
	AssignedPlans                []AssignedPlan
	AccountEnabled               bool
	UserType                     string // Member or Guest
	CreationType                 string

	// OnPremisesDistinguishedName is the AD DN (Graph onPremisesDistinguishedName); reports use it to
	// address the object in LDIF when it is known.
	OnPremisesDistinguishedName string
}

// Synced reports whether Entra Connect currently masters the object.
func (u User) Synced() bool { return u.OnPremisesSyncEnabled != nil && *u.OnPremisesSyncEnabled }

// Group is a Graph group (distribution, mail-enabled security, Microsoft 365, security).
type Group struct {
	ID                           string
	DisplayName                  string
	Mail                         string
	MailNickname                 string
	MailEnabled                  bool
	SecurityEnabled              bool
	GroupTypes                   []string
	ProxyAddresses               []string
	OnPremisesSyncEnabled        *bool
	OnPremisesSamAccountName     string
	OnPremisesProvisioningErrors []ProvisioningError

	// OnPremisesSecurityIdentifier is the AD objectSid (Graph onPremisesSecurityIdentifier): reports address
	// a group by it (<SID=...>), since Graph shows no objectGUID for groups.
	OnPremisesSecurityIdentifier string
}

// Synced reports whether Entra Connect currently masters the object.
func (g Group) Synced() bool { return g.OnPremisesSyncEnabled != nil && *g.OnPremisesSyncEnabled }

// Contact is a Graph orgContact.
type Contact struct {
	ID                           string
	DisplayName                  string
	Mail                         string
	MailNickname                 string
	ProxyAddresses               []string
	OnPremisesSyncEnabled        *bool
	OnPremisesProvisioningErrors []ProvisioningError
}

// Synced reports whether Entra Connect currently masters the object.
func (c Contact) Synced() bool { return c.OnPremisesSyncEnabled != nil && *c.OnPremisesSyncEnabled }

// ProvisioningError is an onPremisesProvisioningError: a sync conflict Entra quarantined.
type ProvisioningError struct {
	Category             string // PropertyConflict
	PropertyCausingError string // UserPrincipalName or ProxyAddress
	Value                string
	OccurredDateTime     time.Time
}

// ServiceProvisioningError is a serviceProvisioningError (for Exchange: a serviceProvisioningXmlError).
type ServiceProvisioningError struct {
	ServiceInstance string // e.g. exchange/NAMPRD09-001-01
	IsResolved      bool
	ErrorDetail     string // XML, for serviceProvisioningXmlError
	CreatedDateTime time.Time
}

// AssignedLicense is one licence of a user.
type AssignedLicense struct {
	SkuID         string
	DisabledPlans []string
}

// AssignedPlan is one service plan a user's licences grant.
type AssignedPlan struct {
	ServicePlanID    string
	Service          string // e.g. exchange
	CapabilityStatus string // Enabled, Warning, Suspended, Deleted, LockedOut
	AssignedDateTime time.Time
}

// Domain is a tenant domain.
type Domain struct {
	ID                 string // the domain name
	IsVerified         bool
	IsDefault          bool
	IsInitial          bool
	AuthenticationType string
	SupportedServices  []string
}

// SubscribedSKU is a licence SKU the tenant owns, with its service plans.
type SubscribedSKU struct {
	SkuID         string
	SkuPartNumber string
	ServicePlans  []ServicePlan
}

// ServicePlan is one service plan of a SKU.
type ServicePlan struct {
	ServicePlanID   string
	ServicePlanName string
	AppliesTo       string
}

// Snapshot is everything Graph showed at one moment.
type Snapshot struct {
	Users    []User
	Groups   []Group
	Contacts []Contact
	Domains  []Domain
	SKUs     []SubscribedSKU

	// MX holds the MX records of the tenant's verified domains, keyed by lower-case domain name. It is not
	// Graph data: audit.WithMX fills it right after the Graph read, so that audits can tell where a domain's
	// mail goes without doing I/O while planning. nil when no resolver ran.
	MX map[string]MX
}

// MX is the outcome of one MX lookup.
type MX struct {
	// Hosts are the exchanger names, lower case, without the trailing dot, by preference.
	Hosts []string
	// Err says why the lookup failed ("" on success; a domain without MX records is a success with no hosts).
	Err string
}
