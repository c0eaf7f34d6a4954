package exoapi

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/exo-worker/worker/internal/sim/entra"
	"github.com/exo-worker/worker/internal/sim/tenant"
)

// This file is Exchange Online's role-based access control as the admin API enforces it for an app
// (setup-protocol §1–§3, §7): service principals (New-ServicePrincipal), management roles derived from the
// built-in ones with their entries and parameters, management scopes with a recipient filter, role groups
// whose assignments carry a write scope, and direct assignments (New-ManagementRoleAssignment -App). The
// admin signed in with a delegated token manages them; an app's token is checked against them:
//
//   - a token without Exchange.ManageAsApp is refused (401);
//   - an app without any role (no group membership, no direct assignment) gets AuthZ-CmdletAccessDenied;
//   - a cmdlet no assigned role holds: "The term 'X' is not recognized as the name of a cmdlet...";
//   - a parameter the role entry does not list: "A parameter cannot be found that matches parameter name";
//   - a write to an object outside every write scope of the assignments granting the cmdlet:
//     "...out of the current user's write scope. '<x>' isn't within your current write scopes...".
//
// The simulated worker app of the token endpoint's Creds is treated as holding the Exchange Recipient
// Administrator directory role: unrestricted, as before RBAC was simulated.

type exoSP struct{ AppID, ObjectID, DisplayName string }

type roleEntry struct {
	Cmdlet string
	Params []string
}

type mgmtRole struct {
	Name, Parent string
	Builtin      bool
	Entries      []*roleEntry
}

func (r *mgmtRole) entry(cmdlet string) *roleEntry {
	for _, e := range r.Entries {
		if strings.EqualFold(e.Cmdlet, cmdlet) {
			return e
		}
	}
	return nil
}

type mgmtScope struct{ Name, Filter string }

type roleGroup struct {
	Name, Description string
	Members           []string // service principal object ids
}

type assignment struct {
	Name, Role  string
	Group, App  string // the role group name, or the service principal object id (-App)
	WriteScope  string // CustomRecipientWriteScope (role groups) or CustomResourceScope (-App)
	ResourceApp bool   // -App assignment: its scope is a CustomResourceScope
}

type rbacState struct {
	mu      sync.Mutex
	sps     []*exoSP
	roles   []*mgmtRole
	scopes  []*mgmtScope
	groups  []*roleGroup
	assigns []*assignment
}

// builtinRoleCmdlets are the built-in roles setup derives from, with the cmdlets each holds here (a subset
// of the service's; enough that trimming them is a real choice).
var builtinRoleCmdlets = map[string][]string{
	"Mail Recipients": {"Get-MailUser", "Set-MailUser", "New-MailUser", "Remove-MailUser", "Enable-MailUser", "Disable-MailUser",
		"Get-Mailbox", "Set-Mailbox", "Get-MailContact", "Set-MailContact", "Get-Recipient", "Get-User", "Set-User"},
	"View-Only Recipients":    {"Get-DistributionGroup", "Get-Recipient", "Get-Mailbox", "Get-MailUser", "Get-MailContact", "Get-User"},
	"View-Only Configuration": {"Get-AcceptedDomain", "Get-RemoteDomain", "Get-OrganizationConfig", "Get-TransportConfig"},
}

func newRBAC() *rbacState {
	st := &rbacState{}
	names := make([]string, 0, len(builtinRoleCmdlets))
	for n := range builtinRoleCmdlets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := &mgmtRole{Name: n, Builtin: true}
		for _, c := range builtinRoleCmdlets[n] {
			params := []string{"Identity"}
			if spec, ok := cmdlets[strings.ToLower(c)]; ok {
				params = slices.Clone(spec.params)
			}
			if strings.HasPrefix(n, "View-Only") && !strings.HasPrefix(c, "Get-") {
				continue
			}
			r.Entries = append(r.Entries, &roleEntry{Cmdlet: c, Params: params})
		}
		st.roles = append(st.roles, r)
	}
	return st
}

func findCI[T any](list []*T, name func(*T) string, key string) *T {
	for _, x := range list {
		if strings.EqualFold(name(x), key) {
			return x
		}
	}
	return nil
}

func (st *rbacState) role(n string) *mgmtRole {
	return findCI(st.roles, func(r *mgmtRole) string { return r.Name }, n)
}
func (st *rbacState) scope(n string) *mgmtScope {
	return findCI(st.scopes, func(r *mgmtScope) string { return r.Name }, n)
}
func (st *rbacState) group(n string) *roleGroup {
	return findCI(st.groups, func(r *roleGroup) string { return r.Name }, n)
}
func (st *rbacState) sp(id string) *exoSP {
	for _, x := range st.sps {
		if strings.EqualFold(x.AppID, id) || strings.EqualFold(x.ObjectID, id) || strings.EqualFold(x.DisplayName, id) {
			return x
		}
	}
	return nil
}

// --- enforcement ---

func cmdletAccessDenied(appID string) *cmdletError {
	return &cmdletError{status: http.StatusForbidden, exceptionType: "Microsoft.Exchange.Configuration.Tasks.CmdletAccessDeniedException",
		message: fmt.Sprintf("[FailureCategory=AuthZ-CmdletAccessDeniedException] The role assigned to application %s isn't supported in this scenario. "+
			"Please check online documentation for assigning correct Directory Roles to Azure AD Application for EXO App-Only Authentication.", appID)}
}

func writeScopeErr(identity string) *cmdletError {
	return &cmdletError{status: http.StatusBadRequest, exceptionType: "Microsoft.Exchange.Data.Directory.ADOperationException",
		message: fmt.Sprintf("The operation on Identity \"%s\" failed because it's out of the current user's write scope. "+
			"'%s' isn't within your current write scopes. Can't perform save operation.", identity, identity)}
}

// authorize checks an app token's call against RBAC; nil lets the call run. unauthorized is true when the
// answer must be a bare 401 (no Exchange.ManageAsApp in the token).
func (s *Service) authorize(c entra.Claims, call *cmdletCall) (ce *cmdletError, unauthorized bool) {
	if c.User || c.Builtin {
		return nil, false
	}
	if !slices.Contains(c.Roles, "Exchange.ManageAsApp") {
		return nil, true
	}
	st := s.rbac
	st.mu.Lock()
	defer st.mu.Unlock()
	sp := st.sp(c.AppID)
	var grants []*assignment
	if sp != nil {
		for _, a := range st.assigns {
			if strings.EqualFold(a.App, sp.ObjectID) {
				grants = append(grants, a)
				continue
			}
			if g := st.group(a.Group); g != nil && a.Group != "" && slices.ContainsFunc(g.Members, func(m string) bool { return strings.EqualFold(m, sp.ObjectID) }) {
				grants = append(grants, a)
			}
		}
	}
	if len(grants) == 0 {
		return cmdletAccessDenied(c.AppID), false
	}
	// The cmdlet and each parameter must be in an entry of an assigned role.
	var granting []*assignment
	var params []string
	for _, a := range grants {
		r := st.role(a.Role)
		if r == nil {
			continue
		}
		if e := r.entry(call.name); e != nil {
			granting = append(granting, a)
			params = append(params, e.Params...)
		}
	}
	if len(granting) == 0 {
		return commandNotFoundErr(call.name), false
	}
	keys := make([]string, 0, len(call.params))
	for k := range call.params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slices.ContainsFunc(params, func(p string) bool { return strings.EqualFold(p, k) }) ||
			slices.ContainsFunc(commonParams, func(p string) bool { return strings.EqualFold(p, k) }) {
			continue
		}
		return paramNotFoundErr(call.sent[k]), false
	}
	if !strings.HasPrefix(strings.ToLower(call.name), "set-") {
		return nil, false
	}
	// A write must land inside the write scope of one of the assignments granting the cmdlet; an
	// assignment without a scope writes anywhere the role reaches.
	var filters []*compiledFilter
	for _, a := range granting {
		if a.WriteScope == "" {
			return nil, false
		}
		if sc := st.scope(a.WriteScope); sc != nil {
			if f, err := compileFilter(sc.Filter, "Get-Recipient"); err == nil {
				filters = append(filters, f)
			}
		}
	}
	identity := call.identity
	t := s.tenant
	t.RLockFresh()
	defer t.RUnlock()
	for _, o := range t.ResolveLocked(identity) {
		if strings.EqualFold(call.name, "Set-MailUser") && !o.IsMailUser() {
			continue
		}
		if !slices.ContainsFunc(filters, func(f *compiledFilter) bool { return f.match(o) }) {
			return writeScopeErr(o.Name), false
		}
	}
	return nil, false
}

// --- the RBAC cmdlets ---

func init() {
	reg := func(name string, params []string, run func(s *Service, c *cmdletCall) (*cmdletOutput, *cmdletError)) {
		cmdlets[strings.ToLower(name)] = &cmdletSpec{name: name, params: params,
			run: func(s *Service, c *cmdletCall, _ pageRequest) (*cmdletOutput, *cmdletError) {
				s.rbac.mu.Lock()
				defer s.rbac.mu.Unlock()
				return run(s, c)
			}}
	}
	reg("New-ServicePrincipal", []string{"AppId", "ObjectId", "ServiceId", "DisplayName", "Organization"}, (*Service).newServicePrincipal)
	reg("Get-ServicePrincipal", []string{"Identity", "Organization"}, (*Service).getServicePrincipal)
	reg("Remove-ServicePrincipal", []string{"Identity"}, (*Service).removeServicePrincipal)
	reg("New-ManagementRole", []string{"Name", "Parent", "Description", "EnabledCmdlets"}, (*Service).newManagementRole)
	reg("Get-ManagementRole", []string{"Identity", "Cmdlet", "CmdletParameters", "RoleType"}, (*Service).getManagementRole)
	reg("Remove-ManagementRole", []string{"Identity", "Recurse", "UnScopedTopLevel"}, (*Service).removeManagementRole)
	reg("Get-ManagementRoleEntry", []string{"Identity", "Parameters", "PSSnapinName", "Type"}, (*Service).getManagementRoleEntry)
	reg("Add-ManagementRoleEntry", []string{"Identity", "Parameters", "ParentRoleEntry", "Role", "Type", "UnScopedTopLevel"}, (*Service).addManagementRoleEntry)
	reg("Remove-ManagementRoleEntry", []string{"Identity"}, (*Service).removeManagementRoleEntry)
	reg("Set-ManagementRoleEntry", []string{"Identity", "Parameters", "AddParameter", "RemoveParameter", "Description", "UnScopedTopLevel"}, (*Service).setManagementRoleEntry)
	reg("New-ManagementScope", []string{"Name", "RecipientRestrictionFilter", "RecipientRoot"}, (*Service).newManagementScope)
	reg("Get-ManagementScope", []string{"Identity", "Orphan", "Exclusive"}, (*Service).getManagementScope)
	reg("Set-ManagementScope", []string{"Identity", "Name", "RecipientRestrictionFilter", "RecipientRoot"}, (*Service).setManagementScope)
	reg("Remove-ManagementScope", []string{"Identity"}, (*Service).removeManagementScope)
	reg("New-RoleGroup", []string{"Name", "Roles", "Members", "Description", "CustomRecipientWriteScope", "ManagedBy", "DisplayName"}, (*Service).newRoleGroup)
	reg("Get-RoleGroup", []string{"Identity", "Filter", "ResultSize"}, (*Service).getRoleGroup)
	reg("Remove-RoleGroup", []string{"Identity", "BypassSecurityGroupManagerCheck"}, (*Service).removeRoleGroup)
	reg("Add-RoleGroupMember", []string{"Identity", "Member", "BypassSecurityGroupManagerCheck"}, (*Service).addRoleGroupMember)
	reg("Get-RoleGroupMember", []string{"Identity", "ResultSize"}, (*Service).getRoleGroupMember)
	reg("New-ManagementRoleAssignment", []string{"Name", "Role", "SecurityGroup", "App", "CustomRecipientWriteScope", "CustomResourceScope",
		"RecipientAdministrativeUnitScope", "RecipientGroupScope", "Delegating"}, (*Service).newManagementRoleAssignment)
	reg("Get-ManagementRoleAssignment", []string{"Identity", "Role", "RoleAssignee", "RoleAssigneeType"}, (*Service).getManagementRoleAssignment)
	reg("Set-ManagementRoleAssignment", []string{"Identity", "CustomRecipientWriteScope", "CustomResourceScope", "Enabled"}, (*Service).setManagementRoleAssignment)
	reg("Remove-ManagementRoleAssignment", []string{"Identity"}, (*Service).removeManagementRoleAssignment)
}

func required(c *cmdletCall, names ...string) (map[string]string, *cmdletError) {
	out := map[string]string{}
	var missing []string
	for _, n := range names {
		v, err := c.str(n)
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(v) == "" {
			missing = append(missing, n)
		}
		out[n] = strings.TrimSpace(v)
	}
	if len(missing) > 0 {
		return nil, bindingErr("Cannot process command because of one or more missing mandatory parameters: " + strings.Join(missing, " ") + ".")
	}
	return out, nil
}

func alreadyExists(kind, name string) *cmdletError {
	return &cmdletError{status: http.StatusBadRequest, exceptionType: "Microsoft.Exchange.Management.Tasks.ManagementObjectAlreadyExistsException",
		message: fmt.Sprintf("The %s \"%s\" already exists. Specify a different name.", kind, name)}
}

func invalidOp(msg string) *cmdletError {
	return &cmdletError{status: http.StatusBadRequest, exceptionType: "System.InvalidOperationException", message: msg}
}

func one(r record) *cmdletOutput { return &cmdletOutput{values: []record{r}} }
func none() *cmdletOutput        { return &cmdletOutput{values: []record{}} }

func spRecord(x *exoSP) record {
	return record{{name: "AppId", val: x.AppID}, {name: "ObjectId", val: x.ObjectID}, {name: "DisplayName", val: x.DisplayName},
		{name: "Identity", val: x.ObjectID}, {name: "Name", val: x.ObjectID}}
}

func (s *Service) newServicePrincipal(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "AppId", "ObjectId")
	if err != nil {
		return nil, err
	}
	name, _ := c.str("DisplayName")
	if s.rbac.sp(v["AppId"]) != nil || s.rbac.sp(v["ObjectId"]) != nil {
		return nil, alreadyExists("service principal", v["AppId"])
	}
	x := &exoSP{AppID: v["AppId"], ObjectID: v["ObjectId"], DisplayName: name}
	s.rbac.sps = append(s.rbac.sps, x)
	return one(spRecord(x)), nil
}

func (s *Service) getServicePrincipal(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	id, _ := c.str("Identity")
	if id == "" {
		out := none()
		for _, x := range s.rbac.sps {
			out.values = append(out.values, spRecord(x))
		}
		return out, nil
	}
	x := s.rbac.sp(id)
	if x == nil {
		return nil, notFoundErr(id)
	}
	return one(spRecord(x)), nil
}

func (s *Service) removeServicePrincipal(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Identity")
	if err != nil {
		return nil, err
	}
	x := s.rbac.sp(v["Identity"])
	if x == nil {
		return nil, notFoundErr(v["Identity"])
	}
	s.rbac.sps = slices.DeleteFunc(s.rbac.sps, func(y *exoSP) bool { return y == x })
	return none(), nil
}

func roleRecord(r *mgmtRole) record {
	t := "Custom"
	if r.Builtin {
		t = "BuiltIn"
	}
	return record{{name: "Name", val: r.Name}, {name: "Identity", val: r.Name}, {name: "Parent", val: r.Parent}, {name: "RoleType", val: t},
		{name: "IsRootRole", val: r.Builtin}}
}

func (s *Service) newManagementRole(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Name", "Parent")
	if err != nil {
		return nil, err
	}
	if len(v["Name"]) > 64 {
		return nil, bindingErr("Cannot validate argument on parameter 'Name'. The length of the argument is too long. Shorten the length of the argument to less than or equal to \"64\" and then try the command again.")
	}
	if s.rbac.role(v["Name"]) != nil {
		return nil, alreadyExists("management role", v["Name"])
	}
	parent := s.rbac.role(v["Parent"])
	if parent == nil {
		return nil, notFoundErr(v["Parent"])
	}
	r := &mgmtRole{Name: v["Name"], Parent: parent.Name}
	var enabled []string
	if c.has("EnabledCmdlets") {
		if enabled, err = c.stringList("EnabledCmdlets"); err != nil {
			return nil, err
		}
	}
	for _, e := range parent.Entries {
		if len(enabled) > 0 && !slices.ContainsFunc(enabled, func(x string) bool { return strings.EqualFold(x, e.Cmdlet) }) {
			continue
		}
		r.Entries = append(r.Entries, &roleEntry{Cmdlet: e.Cmdlet, Params: slices.Clone(e.Params)})
	}
	s.rbac.roles = append(s.rbac.roles, r)
	return one(roleRecord(r)), nil
}

func (s *Service) getManagementRole(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	id, _ := c.str("Identity")
	cmdlet, _ := c.str("Cmdlet")
	out := none()
	for _, r := range s.rbac.roles {
		if id != "" && !strings.EqualFold(r.Name, id) {
			continue
		}
		if cmdlet != "" && r.entry(cmdlet) == nil {
			continue
		}
		out.values = append(out.values, roleRecord(r))
	}
	if id != "" && len(out.values) == 0 {
		return nil, notFoundErr(id)
	}
	return out, nil
}

func (s *Service) removeManagementRole(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Identity")
	if err != nil {
		return nil, err
	}
	r := s.rbac.role(v["Identity"])
	if r == nil {
		return nil, notFoundErr(v["Identity"])
	}
	if r.Builtin {
		return nil, invalidOp(fmt.Sprintf("The management role \"%s\" is a built-in role and can't be removed.", r.Name))
	}
	if slices.ContainsFunc(s.rbac.assigns, func(a *assignment) bool { return strings.EqualFold(a.Role, r.Name) }) {
		return nil, invalidOp(fmt.Sprintf("The management role \"%s\" can't be removed because it has role assignments. Remove the assignments first.", r.Name))
	}
	s.rbac.roles = slices.DeleteFunc(s.rbac.roles, func(x *mgmtRole) bool { return x == r })
	return none(), nil
}

// splitEntry splits "Role\Cmdlet" (the cmdlet part may be * or end in *).
func (s *Service) splitEntry(identity string) (*mgmtRole, string, *cmdletError) {
	role, cmdlet, ok := strings.Cut(identity, `\`)
	if !ok || role == "" || cmdlet == "" {
		return nil, "", bindingErr(fmt.Sprintf("Cannot bind parameter 'Identity'. The value \"%s\" is not a role entry identity (Role\\Cmdlet).", identity))
	}
	r := s.rbac.role(role)
	if r == nil {
		return nil, "", notFoundErr(role)
	}
	return r, cmdlet, nil
}

func entryRecord(r *mgmtRole, e *roleEntry) record {
	return record{{name: "Name", val: e.Cmdlet}, {name: "Role", val: r.Name}, {name: "Identity", val: r.Name + `\` + e.Cmdlet},
		{name: "Parameters", ann: aStrings, val: slices.Clone(e.Params)}, {name: "Type", val: "Cmdlet"}}
}

func (s *Service) getManagementRoleEntry(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Identity")
	if err != nil {
		return nil, err
	}
	r, pat, cerr := s.splitEntry(v["Identity"])
	if cerr != nil {
		return nil, cerr
	}
	out := none()
	for _, e := range r.Entries {
		if p, wild := strings.CutSuffix(pat, "*"); (wild && strings.HasPrefix(strings.ToLower(e.Cmdlet), strings.ToLower(p))) || strings.EqualFold(e.Cmdlet, pat) {
			out.values = append(out.values, entryRecord(r, e))
		}
	}
	if !strings.Contains(pat, "*") && len(out.values) == 0 {
		return nil, notFoundErr(v["Identity"])
	}
	return out, nil
}

func (s *Service) addManagementRoleEntry(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Identity")
	if err != nil {
		return nil, err
	}
	r, cmdlet, cerr := s.splitEntry(v["Identity"])
	if cerr != nil {
		return nil, cerr
	}
	if r.Builtin {
		return nil, invalidOp("Built-in roles can't be changed.")
	}
	if r.entry(cmdlet) != nil {
		return nil, alreadyExists("role entry", v["Identity"])
	}
	parent := s.rbac.role(r.Parent)
	var pe *roleEntry
	if parent != nil {
		pe = parent.entry(cmdlet)
	}
	if pe == nil {
		return nil, invalidOp(fmt.Sprintf("The role entry \"%s\" can't be added because the parent role \"%s\" doesn't have the cmdlet %s.", v["Identity"], r.Parent, cmdlet))
	}
	e := &roleEntry{Cmdlet: pe.Cmdlet, Params: slices.Clone(pe.Params)}
	r.Entries = append(r.Entries, e)
	return one(entryRecord(r, e)), nil
}

func (s *Service) removeManagementRoleEntry(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Identity")
	if err != nil {
		return nil, err
	}
	r, cmdlet, cerr := s.splitEntry(v["Identity"])
	if cerr != nil {
		return nil, cerr
	}
	if r.Builtin {
		return nil, invalidOp("Built-in roles can't be changed.")
	}
	e := r.entry(cmdlet)
	if e == nil {
		return nil, notFoundErr(v["Identity"])
	}
	if len(r.Entries) == 1 {
		return nil, invalidOp(fmt.Sprintf("The role entry \"%s\" can't be removed: a role must keep at least one entry.", v["Identity"]))
	}
	r.Entries = slices.DeleteFunc(r.Entries, func(x *roleEntry) bool { return x == e })
	return none(), nil
}

func (s *Service) setManagementRoleEntry(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Identity")
	if err != nil {
		return nil, err
	}
	r, cmdlet, cerr := s.splitEntry(v["Identity"])
	if cerr != nil {
		return nil, cerr
	}
	if r.Builtin {
		return nil, invalidOp("Built-in roles can't be changed.")
	}
	e := r.entry(cmdlet)
	if e == nil {
		return nil, notFoundErr(v["Identity"])
	}
	params, err := c.stringList("Parameters")
	if err != nil {
		return nil, err
	}
	add, remove := c.has("AddParameter"), c.has("RemoveParameter")
	if add && remove {
		return nil, bindingErr("Parameter set cannot be resolved using the specified named parameters.")
	}
	parent := s.rbac.role(r.Parent)
	var pe *roleEntry
	if parent != nil {
		pe = parent.entry(cmdlet)
	}
	for _, p := range params {
		if !add && !remove || add {
			if pe == nil || !slices.ContainsFunc(pe.Params, func(x string) bool { return strings.EqualFold(x, p) }) {
				return nil, invalidOp(fmt.Sprintf("The parameter \"%s\" can't be added to role entry \"%s\" because it doesn't exist on the parent role entry.", p, v["Identity"]))
			}
		}
	}
	switch {
	case add:
		for _, p := range params {
			if !slices.ContainsFunc(e.Params, func(x string) bool { return strings.EqualFold(x, p) }) {
				e.Params = append(e.Params, p)
			}
		}
	case remove:
		e.Params = slices.DeleteFunc(e.Params, func(x string) bool {
			return slices.ContainsFunc(params, func(p string) bool { return strings.EqualFold(x, p) })
		})
	default:
		e.Params = slices.Clone(params) // without -AddParameter/-RemoveParameter the list replaces all
	}
	return none(), nil
}

func scopeRecord(sc *mgmtScope) record {
	return record{{name: "Name", val: sc.Name}, {name: "Identity", val: sc.Name}, {name: "RecipientFilter", val: sc.Filter},
		{name: "ScopeRestrictionType", val: "RecipientScope"}}
}

func (s *Service) newManagementScope(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Name", "RecipientRestrictionFilter")
	if err != nil {
		return nil, err
	}
	if s.rbac.scope(v["Name"]) != nil {
		return nil, alreadyExists("management scope", v["Name"])
	}
	if _, ferr := compileFilter(v["RecipientRestrictionFilter"], "Get-Recipient"); ferr != nil {
		return nil, bindingErr(strings.Replace(ferr.Error(), "'Filter'", "'RecipientRestrictionFilter'", 1))
	}
	sc := &mgmtScope{Name: v["Name"], Filter: v["RecipientRestrictionFilter"]}
	s.rbac.scopes = append(s.rbac.scopes, sc)
	return one(scopeRecord(sc)), nil
}

func (s *Service) getManagementScope(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	id, _ := c.str("Identity")
	out := none()
	for _, sc := range s.rbac.scopes {
		if id == "" || strings.EqualFold(sc.Name, id) {
			out.values = append(out.values, scopeRecord(sc))
		}
	}
	if id != "" && len(out.values) == 0 {
		return nil, notFoundErr(id)
	}
	return out, nil
}

func (s *Service) setManagementScope(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Identity")
	if err != nil {
		return nil, err
	}
	sc := s.rbac.scope(v["Identity"])
	if sc == nil {
		return nil, notFoundErr(v["Identity"])
	}
	if c.has("RecipientRestrictionFilter") {
		f, _ := c.str("RecipientRestrictionFilter")
		if _, ferr := compileFilter(f, "Get-Recipient"); ferr != nil {
			return nil, bindingErr(ferr.Error())
		}
		sc.Filter = f
	}
	return none(), nil
}

func (s *Service) removeManagementScope(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Identity")
	if err != nil {
		return nil, err
	}
	sc := s.rbac.scope(v["Identity"])
	if sc == nil {
		return nil, notFoundErr(v["Identity"])
	}
	if slices.ContainsFunc(s.rbac.assigns, func(a *assignment) bool { return strings.EqualFold(a.WriteScope, sc.Name) }) {
		return nil, invalidOp(fmt.Sprintf("The management scope \"%s\" can't be removed because it's used by role assignments.", sc.Name))
	}
	s.rbac.scopes = slices.DeleteFunc(s.rbac.scopes, func(x *mgmtScope) bool { return x == sc })
	return none(), nil
}

func (s *Service) groupRecord(g *roleGroup) record {
	var roles []string
	for _, a := range s.rbac.assigns {
		if strings.EqualFold(a.Group, g.Name) {
			roles = append(roles, a.Role)
		}
	}
	return record{{name: "Name", val: g.Name}, {name: "Identity", val: g.Name}, {name: "Description", val: g.Description},
		{name: "Roles", ann: aStrings, val: orNil(roles)}, {name: "Members", ann: aStrings, val: orNil(slices.Clone(g.Members))}}
}

func orNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func (s *Service) addAssignment(role, group, app, scope string, resource bool) (*assignment, *cmdletError) {
	r := s.rbac.role(role)
	if r == nil {
		return nil, notFoundErr(role)
	}
	if scope != "" && s.rbac.scope(scope) == nil {
		return nil, notFoundErr(scope)
	}
	who := group
	if who == "" {
		who = app
	}
	a := &assignment{Name: truncate(r.Name+"-"+who, 64), Role: r.Name, Group: group, App: app, WriteScope: scope, ResourceApp: resource}
	for findCI(s.rbac.assigns, func(x *assignment) string { return x.Name }, a.Name) != nil {
		a.Name += "1"
	}
	s.rbac.assigns = append(s.rbac.assigns, a)
	return a, nil
}

func (s *Service) newRoleGroup(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Name")
	if err != nil {
		return nil, err
	}
	if s.rbac.group(v["Name"]) != nil {
		return nil, alreadyExists("role group", v["Name"])
	}
	roles, err := c.stringList("Roles")
	if err != nil {
		return nil, err
	}
	scope, _ := c.str("CustomRecipientWriteScope")
	for _, r := range roles {
		if s.rbac.role(r) == nil {
			return nil, notFoundErr(r)
		}
	}
	if scope != "" && s.rbac.scope(scope) == nil {
		return nil, notFoundErr(scope)
	}
	desc, _ := c.str("Description")
	g := &roleGroup{Name: v["Name"], Description: desc}
	s.rbac.groups = append(s.rbac.groups, g)
	for _, r := range roles {
		if _, cerr := s.addAssignment(r, g.Name, "", scope, false); cerr != nil {
			return nil, cerr
		}
	}
	return one(s.groupRecord(g)), nil
}

func (s *Service) getRoleGroup(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	id, _ := c.str("Identity")
	out := none()
	for _, g := range s.rbac.groups {
		if id == "" || strings.EqualFold(g.Name, id) {
			out.values = append(out.values, s.groupRecord(g))
		}
	}
	if id != "" && len(out.values) == 0 {
		return nil, notFoundErr(id)
	}
	return out, nil
}

func (s *Service) removeRoleGroup(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Identity")
	if err != nil {
		return nil, err
	}
	g := s.rbac.group(v["Identity"])
	if g == nil {
		return nil, notFoundErr(v["Identity"])
	}
	s.rbac.assigns = slices.DeleteFunc(s.rbac.assigns, func(a *assignment) bool { return strings.EqualFold(a.Group, g.Name) })
	s.rbac.groups = slices.DeleteFunc(s.rbac.groups, func(x *roleGroup) bool { return x == g })
	return none(), nil
}

func (s *Service) addRoleGroupMember(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Identity", "Member")
	if err != nil {
		return nil, err
	}
	g := s.rbac.group(v["Identity"])
	if g == nil {
		return nil, notFoundErr(v["Identity"])
	}
	sp := s.rbac.sp(v["Member"])
	if sp == nil {
		// The member must be known to Exchange: a service principal needs New-ServicePrincipal first.
		return nil, notFoundErr(v["Member"])
	}
	if slices.Contains(g.Members, sp.ObjectID) {
		return nil, invalidOp(fmt.Sprintf("The recipient \"%s\" is already a member of the group \"%s\".", sp.ObjectID, g.Name))
	}
	g.Members = append(g.Members, sp.ObjectID)
	return none(), nil
}

func (s *Service) getRoleGroupMember(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Identity")
	if err != nil {
		return nil, err
	}
	g := s.rbac.group(v["Identity"])
	if g == nil {
		return nil, notFoundErr(v["Identity"])
	}
	out := none()
	for _, m := range g.Members {
		name := m
		if sp := s.rbac.sp(m); sp != nil {
			name = sp.DisplayName
		}
		out.values = append(out.values, record{{name: "Name", val: name}, {name: "Identity", val: m},
			{name: "ExternalDirectoryObjectId", val: m}, {name: "RecipientType", val: "ServicePrincipal"}})
	}
	return out, nil
}

func assignRecord(a *assignment) record {
	assignee, typ := a.Group, "RoleGroup"
	if a.App != "" {
		assignee, typ = a.App, "ServicePrincipal"
	}
	r := record{{name: "Name", val: a.Name}, {name: "Identity", val: a.Name}, {name: "Role", val: a.Role},
		{name: "RoleAssignee", val: assignee}, {name: "RoleAssigneeType", val: typ}}
	if a.ResourceApp {
		return append(r, field{name: "CustomResourceScope", val: a.WriteScope}, field{name: "CustomRecipientWriteScope", val: ""})
	}
	return append(r, field{name: "CustomRecipientWriteScope", val: a.WriteScope})
}

// newManagementRoleAssignment assigns a role to a role group (-SecurityGroup, with -CustomRecipientWriteScope)
// or to an app (-App; that parameter set takes -CustomResourceScope, not -CustomRecipientWriteScope,
// setup-protocol §1).
func (s *Service) newManagementRoleAssignment(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Role")
	if err != nil {
		return nil, err
	}
	group, _ := c.str("SecurityGroup")
	app, _ := c.str("App")
	wscope, _ := c.str("CustomRecipientWriteScope")
	rscope, _ := c.str("CustomResourceScope")
	switch {
	case (group == "") == (app == ""):
		return nil, bindingErr("Parameter set cannot be resolved using the specified named parameters.")
	case app != "" && wscope != "":
		return nil, bindingErr("Parameter set cannot be resolved using the specified named parameters. One or more parameters issued cannot be used together or an insufficient number of parameters were provided.")
	case group != "":
		if s.rbac.group(group) == nil {
			return nil, notFoundErr(group)
		}
		a, cerr := s.addAssignment(v["Role"], s.rbac.group(group).Name, "", wscope, false)
		if cerr != nil {
			return nil, cerr
		}
		return one(assignRecord(a)), nil
	}
	sp := s.rbac.sp(app)
	if sp == nil {
		return nil, notFoundErr(app)
	}
	a, cerr := s.addAssignment(v["Role"], "", sp.ObjectID, rscope, true)
	if cerr != nil {
		return nil, cerr
	}
	return one(assignRecord(a)), nil
}

func (s *Service) getManagementRoleAssignment(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	id, _ := c.str("Identity")
	role, _ := c.str("Role")
	assignee, _ := c.str("RoleAssignee")
	out := none()
	for _, a := range s.rbac.assigns {
		if id != "" && !strings.EqualFold(a.Name, id) || role != "" && !strings.EqualFold(a.Role, role) {
			continue
		}
		if assignee != "" && !strings.EqualFold(a.Group, assignee) && !strings.EqualFold(a.App, assignee) {
			if sp := s.rbac.sp(assignee); sp == nil || !strings.EqualFold(a.App, sp.ObjectID) {
				continue
			}
		}
		out.values = append(out.values, assignRecord(a))
	}
	if id != "" && len(out.values) == 0 {
		return nil, notFoundErr(id)
	}
	return out, nil
}

func (s *Service) setManagementRoleAssignment(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Identity")
	if err != nil {
		return nil, err
	}
	a := findCI(s.rbac.assigns, func(x *assignment) string { return x.Name }, v["Identity"])
	if a == nil {
		return nil, notFoundErr(v["Identity"])
	}
	for _, p := range []string{"CustomRecipientWriteScope", "CustomResourceScope"} {
		if !c.has(p) {
			continue
		}
		sc, _ := c.str(p)
		if sc != "" && s.rbac.scope(sc) == nil {
			return nil, notFoundErr(sc)
		}
		a.WriteScope = sc
	}
	return none(), nil
}

func (s *Service) removeManagementRoleAssignment(c *cmdletCall) (*cmdletOutput, *cmdletError) {
	v, err := required(c, "Identity")
	if err != nil {
		return nil, err
	}
	a := findCI(s.rbac.assigns, func(x *assignment) string { return x.Name }, v["Identity"])
	if a == nil {
		return nil, notFoundErr(v["Identity"])
	}
	s.rbac.assigns = slices.DeleteFunc(s.rbac.assigns, func(x *assignment) bool { return x == a })
	return none(), nil
}

// keep the tenant import used by authorize's resolution in one place
var _ = (*tenant.Object).IsMailUser

// checkRBAC runs authorize for the call's token and renders a refusal.
func (s *Service) checkRBAC(in invokeInput, reqID string, call *cmdletCall) (invokeOutput, bool) {
	r, err := http.NewRequestWithContext(in.ctx, in.method, in.url.String(), nil)
	if err != nil {
		r = &http.Request{Method: in.method, URL: in.url}
	}
	r.Header = in.header
	claims, err := s.auth.BearerClaims(r, exoAudience)
	if err != nil {
		return invokeOutput{}, true // checkBearer already accepted it
	}
	ce, unauthorized := s.authorize(claims, call)
	switch {
	case unauthorized:
		h := s.baseHeaders(reqID, in.header)
		h.Del("Content-Type")
		h.Set("x-ms-diagnostics", `2000003;reason="The token has no Exchange.ManageAsApp role: grant the application permission and admin consent";error_category="invalid_grant"`)
		return invokeOutput{status: http.StatusUnauthorized, header: h}, false
	case ce != nil:
		return s.errorOut(in, reqID, ce), false
	}
	return invokeOutput{}, true
}
