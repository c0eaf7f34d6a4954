package jobs

import (
	"context"
	"fmt"
)

// Kind says whether a job changes the tenant or only reports.
type Kind string

const (
	// KindRemediate jobs return changes for the executor to apply.
	KindRemediate Kind = "remediate"
	// KindAudit jobs return findings only.
	KindAudit Kind = "audit"
)

// Description is the job's contract: what `worker jobs` shows, what `worker setup` and `worker doctor`
// build and check the identity from, and what the executor enforces (Validate at registration, Allows for
// every planned change).
type Description struct {
	Summary string
	Kind    Kind
	// Writes are every write the job may plan (none for an audit).
	Writes []Write
	// Reads lists the tenant queries the executor must load into the snapshot before Plan.
	Reads []Query
	// NeedsDirectory asks the executor for Graph's view of the directory (Tenant.Directory).
	NeedsDirectory bool
	// GroupMembers are groups (object ids) whose direct members the executor reads into
	// Tenant.GroupMembers before Plan, through Microsoft Graph (mailbox-license reads its licensing group).
	GroupMembers []string
	// Permissions are the application permissions (app roles) the job's identity needs.
	Permissions []Permission
	// Needs are other things the job depends on, for people (DNS lookups of MX records).
	Needs []string
}

// Query is one server-side read: a Get-* cmdlet with an OPATH filter and the properties to select.
type Query struct {
	Cmdlet string
	Filter string
	Select []string
}

// Job is one unit of the library. Plan must be deterministic and free of I/O.
type Job interface {
	Name() string
	Describe() Description
	Plan(ctx context.Context, t *Tenant) (Plan, error)
}

// ObjectRef names a directory object. ID is the ExternalDirectoryObjectId (the Entra object id): it joins
// EXO and Graph and is unambiguous as -Identity.
type ObjectRef struct {
	ID          string
	DisplayName string
	// Address is what a person recognises the object by (its primary SMTP address).
	Address string

	// The fields below are filled by audits: reports use them to address the object in on-premises AD
	// (Set-ADUser -Identity, LDIF dn), where the Entra object id means nothing.

	// Kind is the directory class: user, group, contact (or domain for tenant-wide findings).
	Kind string `json:",omitempty"`
	// OnPremisesImmutableID is the sourceAnchor; by default the base64 of the AD objectGUID.
	OnPremisesImmutableID string `json:",omitempty"`
	// OnPremisesSamAccountName is the AD sAMAccountName (users and groups).
	OnPremisesSamAccountName string `json:",omitempty"`
	// OnPremisesUserPrincipalName is the UPN as AD holds it (the cloud UPN may differ).
	OnPremisesUserPrincipalName string `json:",omitempty"`
	// OnPremisesDistinguishedName is the AD distinguished name when Graph shows it.
	OnPremisesDistinguishedName string `json:",omitempty"`
	// OnPremisesSecurityIdentifier is the AD objectSid (groups: Graph shows no objectGUID for them).
	OnPremisesSecurityIdentifier string `json:",omitempty"`
	// Mail is the object's mail attribute (contacts are found by it on-premises).
	Mail string `json:",omitempty"`
}

// Object kinds an ObjectRef names.
const (
	ObjectUser    = "user"
	ObjectGroup   = "group"
	ObjectContact = "contact"
	ObjectDomain  = "domain"
)

func (o ObjectRef) String() string {
	switch {
	case o.Address != "" && o.DisplayName != "":
		return fmt.Sprintf("%s <%s>", o.DisplayName, o.Address)
	case o.Address != "":
		return o.Address
	case o.DisplayName != "":
		return o.DisplayName
	}
	return o.ID
}

// Plan is what a job wants: the changes to make and the findings to report.
type Plan struct {
	// InScope counts the objects the job considered (the denominator of max_change_percent).
	InScope  int
	Changes  []Change
	Findings []Finding
}

// Severity orders findings.
type Severity string

// Severities, most severe first.
const (
	SeverityHigh   Severity = "high"
	SeverityMedium Severity = "medium"
	SeverityLow    Severity = "low"
	SeverityInfo   Severity = "info"
)

// Finding is something an audit saw that a person must fix, usually on-premises.
type Finding struct {
	Rule string
	// Job is the job that reported the finding when a suite runs several (set by the suite); empty means the
	// run's own job. Exceptions naming that job cover the finding.
	Job      string `json:",omitempty"`
	Severity Severity
	Object   ObjectRef
	Detail   string
	OnPrem   *OnPremFix
}

// OnPremFix is the Active Directory change that fixes a finding at its source.
type OnPremFix struct {
	Attribute string // e.g. proxyAddresses
	Value     string // e.g. SMTP:jane@contoso.com
	Action    string // add | replace | remove
}
