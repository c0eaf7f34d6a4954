package setup

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Well-known resource applications (the same app ids in every tenant): the APIs whose application
// permissions setup grants. Permission ids are never written here: setup resolves each permission by its
// value from the resource's servicePrincipal (appRoles), as the Entra portal does.
const (
	GraphResourceAppID    = "00000003-0000-0000-c000-000000000000" // Microsoft Graph
	ExchangeResourceAppID = "00000002-0000-0ff1-ce00-000000000000" // Office 365 Exchange Online
)

// SetupTag marks the app registrations setup creates; --remove refuses to delete an app without it.
const SetupTag = "exo-worker-setup"

// builtinRoles are the Exchange Online built-in management roles setup derives its roles from, in order
// of preference, with the cmdlets of each that the worker may call (a fact of Exchange, not of a job; check
// with `Get-ManagementRole -Cmdlet <name>`). A cmdlet is taken from the first role that holds it: writes
// come from Mail Recipients, which is where Set-MailUser lives; reads that Mail Recipients lacks come from
// the view-only roles.
var builtinRoles = []struct {
	name    string
	cmdlets []string
}{
	{"Mail Recipients", []string{"Get-MailUser", "Set-MailUser", "Get-Mailbox", "Set-Mailbox", "Get-MailContact",
		"Set-MailContact", "Get-Recipient", "Get-User", "Set-User"}},
	{"View-Only Recipients", []string{"Get-DistributionGroup", "Get-Recipient", "Get-Mailbox", "Get-MailUser",
		"Get-MailContact", "Get-User"}},
	{"View-Only Configuration", []string{"Get-AcceptedDomain", "Get-RemoteDomain", "Get-OrganizationConfig"}},
}

// Role is one custom management role setup derives from a built-in parent.
type Role struct {
	Name   string
	Parent string
	// Cmdlets the role keeps; a cmdlet mapped to nil keeps every parameter of the parent's entry.
	Cmdlets map[string][]string
}

// CmdletNames returns the role's cmdlets, sorted.
func (r Role) CmdletNames() []string {
	out := make([]string, 0, len(r.Cmdlets))
	for c := range r.Cmdlets {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Desired is what setup builds for one tenant.
type Desired struct {
	Tenant string
	// Name is the display name of the app registration, the Exchange service principal and the role group;
	// the roles and the scope are named after it.
	Name      string
	Req       Requirements
	Roles     []Role
	ScopeName string
	// CertDER is the public certificate uploaded to the app (the private key never leaves the machine).
	CertDER []byte
}

// maxRoleName is Exchange's limit on management role names.
const maxRoleName = 64

// NewDesired derives the roles, scope and names from the requirements.
func NewDesired(tenant, name string, req Requirements, certDER []byte) (Desired, error) {
	if strings.TrimSpace(name) == "" {
		name = "exo-worker"
	}
	d := Desired{Tenant: tenant, Name: name, Req: req, CertDER: certDER, ScopeName: name + " write scope"}
	byParent := map[string]*Role{}
	for _, c := range req.CmdletNames() {
		parent := ""
		for _, b := range builtinRoles {
			if slices.ContainsFunc(b.cmdlets, func(x string) bool { return strings.EqualFold(x, c) }) {
				parent = b.name
				break
			}
		}
		if parent == "" {
			return Desired{}, fmt.Errorf("setup: no built-in Exchange role known to hold %s; find one with `Get-ManagementRole -Cmdlet %s` and add it to setup's list", c, c)
		}
		r := byParent[parent]
		if r == nil {
			r = &Role{Name: name + " " + parent, Parent: parent, Cmdlets: map[string][]string{}}
			if len(r.Name) > maxRoleName {
				return Desired{}, fmt.Errorf("setup: role name %q is longer than Exchange's %d characters; choose a shorter --name", r.Name, maxRoleName)
			}
			byParent[parent] = r
		}
		r.Cmdlets[c] = req.Cmdlets[c]
	}
	for _, b := range builtinRoles {
		if r := byParent[b.name]; r != nil {
			d.Roles = append(d.Roles, *r)
		}
	}
	return d, nil
}

// RoleNames lists the custom roles.
func (d Desired) RoleNames() []string {
	out := make([]string, len(d.Roles))
	for i, r := range d.Roles {
		out[i] = r.Name
	}
	return out
}
