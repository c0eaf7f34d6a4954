package setup

import (
	"context"
	"crypto/sha1" //nolint:gosec // certificate thumbprints are SHA-1 by definition (Entra's customKeyIdentifier)
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/exo-worker/worker/exo"
)

// Invoker runs one Exchange Online cmdlet; *exo.Client implements it.
type Invoker interface {
	Invoke(ctx context.Context, cmd exo.Command) (*exo.Response, error)
}

// Step is one change setup makes (or, in a dry run, would make). Op and Subject identify it: the same pair
// appears in the PowerShell script, which is how the golden test keeps the two in step.
type Step struct {
	Op      string `json:"op"`
	Subject string `json:"subject"`
	Summary string `json:"summary"`
	// Done is true once applied; false in a dry run.
	Done bool `json:"done"`
	// ID is the id of the object the step created, when it has one.
	ID string `json:"id,omitempty"`
}

// The operations setup knows, in the order a first run performs them.
const (
	OpAppCreate        = "app.create"
	OpAppKey           = "app.key"
	OpAppPermissions   = "app.permissions"
	OpSPCreate         = "sp.create"
	OpGrantAdd         = "grant.add"
	OpGrantRemove      = "grant.remove"
	OpEXOSPCreate      = "exo.sp.create"
	OpRoleCreate       = "role.create"
	OpRoleTrim         = "role.trim"
	OpRoleAdd          = "role.add"
	OpRoleParams       = "role.params"
	OpScopeCreate      = "scope.create"
	OpScopeFilter      = "scope.filter"
	OpGroupCreate      = "group.create"
	OpAssignmentAdd    = "assignment.add"
	OpAssignmentScope  = "assignment.scope"
	OpAssignmentRemove = "assignment.remove"
	OpGroupMember      = "group.member"

	OpGroupRemove = "group.remove"
	OpRoleRemove  = "role.remove"
	OpScopeRemove = "scope.remove"
	OpEXOSPRemove = "exo.sp.remove"
	OpAppRemove   = "app.remove"
)

// Outcome is what a setup run found, made or would make.
type Outcome struct {
	Steps []Step `json:"steps"`
	// AppID is the application (client) id; AppObjectID the app registration's object id; SPObjectID the
	// enterprise application's (service principal's) object id. Empty when a dry run would create them.
	AppID       string   `json:"app_id,omitempty"`
	AppObjectID string   `json:"app_object_id,omitempty"`
	SPObjectID  string   `json:"sp_object_id,omitempty"`
	Roles       []string `json:"roles"`
	Scope       string   `json:"scope,omitempty"`
	RoleGroup   string   `json:"role_group"`
	Grants      []string `json:"grants"`
}

// Runner applies a Desired state to a tenant through Graph (delegated admin) and the Exchange admin API.
type Runner struct {
	Graph *Graph
	EXO   Invoker
	// DryRun plans without writing: every step is reported with Done false.
	DryRun bool
	// OnStep, if set, is told of each step as it is done (or planned).
	OnStep func(Step)
}

// run is the state of one reconcile.
type run struct {
	*Runner
	d   Desired
	out *Outcome
}

func (r *run) step(ctx context.Context, op, subject, summary string, apply func(ctx context.Context) (string, error)) error {
	s := Step{Op: op, Subject: subject, Summary: summary}
	if !r.DryRun {
		id, err := apply(ctx)
		if err != nil {
			return fmt.Errorf("%s %s: %w", op, subject, err)
		}
		s.Done, s.ID = true, id
	}
	r.out.Steps = append(r.out.Steps, s)
	if r.OnStep != nil {
		r.OnStep(s)
	}
	return nil
}

// resource is a resource API's service principal with its application permissions by value.
type resource struct {
	name  string
	appID string
	sp    servicePrincipal
	roles map[string]string // value → app role id
}

func (r *run) resource(ctx context.Context, name, appID string, values []string) (*resource, error) {
	sps, err := list[servicePrincipal](ctx, r.Graph, filterPath("/servicePrincipals", "appId", appID, "id", "appId", "displayName", "appRoles"))
	if err != nil {
		return nil, fmt.Errorf("find the %s service principal: %w", name, err)
	}
	if len(sps) == 0 {
		return nil, fmt.Errorf("the tenant has no service principal for %s (appId %s); it exists in every tenant with the service, so check the cloud and the tenant", name, appID)
	}
	res := &resource{name: name, appID: appID, sp: sps[0], roles: map[string]string{}}
	for _, v := range values {
		for _, ar := range res.sp.AppRoles {
			if ar.Value == v && slices.Contains(ar.AllowedMemberTypes, "Application") {
				res.roles[v] = ar.ID
			}
		}
		if res.roles[v] == "" {
			return nil, fmt.Errorf("%s has no application permission %q; check the job's declaration", name, v)
		}
	}
	return res, nil
}

// Thumbprint is the SHA-1 thumbprint of a DER certificate, upper-case hex as Entra shows it.
func Thumbprint(der []byte) string {
	sum := sha1.Sum(der) //nolint:gosec // thumbprints are SHA-1
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// hasKey reports whether the app holds the certificate: Graph returns customKeyIdentifier as the thumbprint,
// in base64 of the SHA-1 or as hex, depending on how the key was added.
func hasKey(app application, der []byte) bool {
	sum := sha1.Sum(der) //nolint:gosec // thumbprints are SHA-1
	for _, k := range app.KeyCredentials {
		id := k.CustomKeyIdentifier
		if strings.EqualFold(id, hex.EncodeToString(sum[:])) {
			return true
		}
		if b, err := base64.StdEncoding.DecodeString(id); err == nil && string(b) == string(sum[:]) {
			return true
		}
		if k.Key != "" {
			if b, err := base64.StdEncoding.DecodeString(k.Key); err == nil && string(b) == string(der) {
				return true
			}
		}
	}
	return false
}

func (r *run) keyCredential() keyCredential {
	sum := sha1.Sum(r.d.CertDER) //nolint:gosec // thumbprints are SHA-1
	return keyCredential{Type: "AsymmetricX509Cert", Usage: "Verify", Key: base64.StdEncoding.EncodeToString(r.d.CertDER),
		DisplayName: "CN=" + r.d.Name, CustomKeyIdentifier: base64.StdEncoding.EncodeToString(sum[:])}
}

func (r *run) requiredAccess(graph, exch *resource) []requiredResourceAccess {
	var out []requiredResourceAccess
	for _, x := range []struct {
		res    *resource
		values []string
	}{{graph, r.d.Req.GraphRoles}, {exch, r.d.Req.ExchangeRoles}} {
		if len(x.values) == 0 {
			continue
		}
		rra := requiredResourceAccess{ResourceAppID: x.res.appID}
		for _, v := range x.values {
			rra.ResourceAccess = append(rra.ResourceAccess, resourceAccess{ID: x.res.roles[v], Type: "Role"})
		}
		out = append(out, rra)
	}
	return out
}

func sameAccess(a, b []requiredResourceAccess) bool {
	key := func(l []requiredResourceAccess) []string {
		var k []string
		for _, r := range l {
			for _, x := range r.ResourceAccess {
				k = append(k, strings.ToLower(r.ResourceAppID+"/"+x.ID+"/"+x.Type))
			}
		}
		sort.Strings(k)
		return k
	}
	return slices.Equal(key(a), key(b))
}

// findApp finds setup's app registration by display name; one without setup's tag is someone else's and is
// never touched.
func (r *run) findApp(ctx context.Context) (*application, error) {
	apps, err := list[application](ctx, r.Graph, filterPath("/applications", "displayName", r.d.Name,
		"id", "appId", "displayName", "tags", "keyCredentials", "requiredResourceAccess"))
	if err != nil {
		return nil, fmt.Errorf("look for the app registration %q: %w", r.d.Name, err)
	}
	var ours []application
	for _, a := range apps {
		if slices.Contains(a.Tags, SetupTag) {
			ours = append(ours, a)
		}
	}
	switch {
	case len(ours) > 1:
		return nil, fmt.Errorf("%d app registrations named %q carry the tag %s; delete the extra ones in the Entra admin center", len(ours), r.d.Name, SetupTag)
	case len(ours) == 1:
		return &ours[0], nil
	case len(apps) > 0:
		return nil, fmt.Errorf("an app registration named %q exists that worker setup did not create (no tag %s); choose another --name or delete it", r.d.Name, SetupTag)
	}
	return nil, nil
}

// Apply creates or repairs everything the Desired state names and reports each step.
func (rn *Runner) Apply(ctx context.Context, d Desired) (*Outcome, error) {
	r := &run{Runner: rn, d: d, out: &Outcome{RoleGroup: d.Name, Roles: d.RoleNames()}}
	if d.Req.Writes() {
		r.out.Scope = d.ScopeName
	}
	if err := r.entra(ctx); err != nil {
		return r.out, err
	}
	if len(d.Req.Cmdlets) > 0 {
		if err := r.exchange(ctx); err != nil {
			return r.out, err
		}
	}
	return r.out, nil
}

// entra makes the app registration, its certificate, its declared permissions, its service principal and
// the admin consent (app role assignments), and removes grants of the two APIs it no longer needs.
func (r *run) entra(ctx context.Context) error {
	graph, err := r.resource(ctx, "Microsoft Graph", GraphResourceAppID, r.d.Req.GraphRoles)
	if err != nil {
		return err
	}
	exch, err := r.resource(ctx, "Office 365 Exchange Online", ExchangeResourceAppID, r.d.Req.ExchangeRoles)
	if err != nil {
		return err
	}
	app, err := r.findApp(ctx)
	if err != nil {
		return err
	}
	access := r.requiredAccess(graph, exch)
	if app == nil {
		app = &application{}
		err = r.step(ctx, OpAppCreate, r.d.Name, fmt.Sprintf("create app registration %q with certificate %s and %d permissions", r.d.Name, Thumbprint(r.d.CertDER), len(r.d.Req.GraphRoles)+len(r.d.Req.ExchangeRoles)),
			func(ctx context.Context) (string, error) {
				body := application{DisplayName: r.d.Name, SignInAudience: "AzureADMyOrg", Tags: []string{SetupTag},
					KeyCredentials: []keyCredential{r.keyCredential()}, RequiredResourceAccess: access}
				if err := r.Graph.do(ctx, http.MethodPost, "/applications", body, app); err != nil {
					return "", err
				}
				return app.ID, nil
			})
		if err != nil {
			return err
		}
	} else {
		if !hasKey(*app, r.d.CertDER) {
			err := r.step(ctx, OpAppKey, r.d.Name, fmt.Sprintf("put certificate %s on app %s (replaces its keys: the app is setup's own)", Thumbprint(r.d.CertDER), app.AppID),
				func(ctx context.Context) (string, error) {
					return "", r.Graph.do(ctx, http.MethodPatch, "/applications/"+app.ID, map[string]any{"keyCredentials": []keyCredential{r.keyCredential()}}, nil)
				})
			if err != nil {
				return err
			}
		}
		if !sameAccess(app.RequiredResourceAccess, access) {
			err := r.step(ctx, OpAppPermissions, r.d.Name, "set the app's requested permissions to what the jobs declare",
				func(ctx context.Context) (string, error) {
					return "", r.Graph.do(ctx, http.MethodPatch, "/applications/"+app.ID, map[string]any{"requiredResourceAccess": access}, nil)
				})
			if err != nil {
				return err
			}
		}
	}
	r.out.AppID, r.out.AppObjectID = app.AppID, app.ID

	var sp *servicePrincipal
	if app.AppID != "" {
		sps, err := list[servicePrincipal](ctx, r.Graph, filterPath("/servicePrincipals", "appId", app.AppID, "id", "appId", "displayName"))
		if err != nil {
			return fmt.Errorf("look for the app's service principal: %w", err)
		}
		if len(sps) > 0 {
			sp = &sps[0]
		}
	}
	if sp == nil {
		sp = &servicePrincipal{}
		err := r.step(ctx, OpSPCreate, r.d.Name, fmt.Sprintf("create the enterprise application (service principal) of %q", r.d.Name),
			func(ctx context.Context) (string, error) {
				if err := r.Graph.do(ctx, http.MethodPost, "/servicePrincipals", map[string]string{"appId": app.AppID}, sp); err != nil {
					return "", err
				}
				return sp.ID, nil
			})
		if err != nil {
			return err
		}
	}
	r.out.SPObjectID = sp.ID

	var have []appRoleAssignment
	if sp.ID != "" {
		if have, err = list[appRoleAssignment](ctx, r.Graph, "/servicePrincipals/"+sp.ID+"/appRoleAssignments"); err != nil {
			return fmt.Errorf("read the app's granted permissions: %w", err)
		}
	}
	for _, x := range []struct {
		res    *resource
		values []string
	}{{graph, r.d.Req.GraphRoles}, {exch, r.d.Req.ExchangeRoles}} {
		for _, v := range x.values {
			roleID := x.res.roles[v]
			subject := x.res.name + "/" + v
			r.out.Grants = append(r.out.Grants, subject)
			if slices.ContainsFunc(have, func(a appRoleAssignment) bool {
				return strings.EqualFold(a.ResourceID, x.res.sp.ID) && strings.EqualFold(a.AppRoleID, roleID)
			}) {
				continue
			}
			err := r.step(ctx, OpGrantAdd, subject, fmt.Sprintf("grant admin consent for %s application permission %s", x.res.name, v),
				func(ctx context.Context) (string, error) {
					var got appRoleAssignment
					err := r.Graph.do(ctx, http.MethodPost, "/servicePrincipals/"+x.res.sp.ID+"/appRoleAssignedTo",
						appRoleAssignment{PrincipalID: sp.ID, ResourceID: x.res.sp.ID, AppRoleID: roleID}, &got)
					return got.ID, err
				})
			if err != nil {
				return err
			}
		}
		// Grants of this API that no job needs any longer: least privilege means taking them back.
		for _, a := range have {
			if !strings.EqualFold(a.ResourceID, x.res.sp.ID) {
				continue
			}
			value := ""
			for v, id := range x.res.roles {
				if strings.EqualFold(id, a.AppRoleID) {
					value = v
				}
			}
			if value != "" {
				continue
			}
			for _, ar := range x.res.sp.AppRoles {
				if strings.EqualFold(ar.ID, a.AppRoleID) {
					value = ar.Value
				}
			}
			err := r.step(ctx, OpGrantRemove, x.res.name+"/"+value, fmt.Sprintf("revoke %s permission %s, which no enabled job needs", x.res.name, value),
				func(ctx context.Context) (string, error) {
					return "", r.Graph.do(ctx, http.MethodDelete, "/servicePrincipals/"+x.res.sp.ID+"/appRoleAssignedTo/"+a.ID, nil, nil)
				})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// invoke runs a cmdlet and decodes its values into out (nil: ignore them).
func (r *run) invoke(ctx context.Context, name string, params map[string]any, out any) error {
	resp, err := r.EXO.Invoke(ctx, exo.Command{Name: name, Params: params})
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	b, err := json.Marshal(resp.Values)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// get runs a Get-* by identity; found is false on NotFound.
func (r *run) get(ctx context.Context, name, identity string, out any) (bool, error) {
	var vals []json.RawMessage
	err := r.invoke(ctx, name, map[string]any{"Identity": identity}, &vals)
	if errors.Is(err, exo.KindNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if len(vals) == 0 {
		return false, nil
	}
	return true, json.Unmarshal(vals[0], out)
}

// Exchange objects as Get-* returns them (the properties setup reads).
type (
	exoServicePrincipal struct {
		AppID       string `json:"AppId"`
		ObjectID    string `json:"ObjectId"`
		DisplayName string `json:"DisplayName"`
		Identity    string `json:"Identity"`
	}
	exoRole struct {
		Name   string `json:"Name"`
		Parent string `json:"Parent"`
	}
	exoRoleEntry struct {
		Name       string   `json:"Name"`
		Role       string   `json:"Role"`
		Parameters []string `json:"Parameters"`
	}
	exoScope struct {
		Name            string `json:"Name"`
		RecipientFilter string `json:"RecipientFilter"`
	}
	exoRoleGroup struct {
		Name  string   `json:"Name"`
		Roles []string `json:"Roles"`
	}
	exoAssignment struct {
		Name                      string `json:"Name"`
		Role                      string `json:"Role"`
		RoleAssignee              string `json:"RoleAssignee"`
		CustomRecipientWriteScope string `json:"CustomRecipientWriteScope"`
	}
	exoMember struct {
		Name                      string `json:"Name"`
		Identity                  string `json:"Identity"`
		ExternalDirectoryObjectID string `json:"ExternalDirectoryObjectId"`
	}
)

// roleEntries reads the entries of role (or of its parent when the role does not exist yet, for a dry run).
func (r *run) roleEntries(ctx context.Context, role string) ([]exoRoleEntry, error) {
	var entries []exoRoleEntry
	if err := r.invoke(ctx, "Get-ManagementRoleEntry", map[string]any{"Identity": role + `\*`}, &entries); err != nil {
		return nil, fmt.Errorf("read the entries of role %q: %w", role, err)
	}
	return entries, nil
}

// exchange makes the Exchange service principal, the derived roles, the write scope and the role group
// that ties them to the service principal.
func (r *run) exchange(ctx context.Context) error {
	d := r.d
	appID, spID := r.out.AppID, r.out.SPObjectID
	var esp exoServicePrincipal
	found := false
	if appID != "" {
		var err error
		if found, err = r.get(ctx, "Get-ServicePrincipal", appID, &esp); err != nil {
			return fmt.Errorf("look for the Exchange service principal: %w", err)
		}
	}
	if !found {
		err := r.step(ctx, OpEXOSPCreate, d.Name, fmt.Sprintf("register the service principal in Exchange Online (New-ServicePrincipal, object id %s)", orPending(spID)),
			func(ctx context.Context) (string, error) {
				return spID, r.invoke(ctx, "New-ServicePrincipal", map[string]any{"AppId": appID, "ObjectId": spID, "DisplayName": d.Name}, nil)
			})
		if err != nil {
			return err
		}
	}

	for _, role := range d.Roles {
		var cur exoRole
		exists, err := r.get(ctx, "Get-ManagementRole", role.Name, &cur)
		if err != nil {
			return fmt.Errorf("look for management role %q: %w", role.Name, err)
		}
		source := role.Name
		if exists && !strings.EqualFold(cur.Parent, role.Parent) && cur.Parent != "" {
			return fmt.Errorf("management role %q exists with parent %q, setup derives it from %q; remove it (worker setup --remove) or choose another --name", role.Name, cur.Parent, role.Parent)
		}
		if !exists {
			source = role.Parent
			err := r.step(ctx, OpRoleCreate, role.Name, fmt.Sprintf("create management role %q from %q", role.Name, role.Parent),
				func(ctx context.Context) (string, error) {
					return "", r.invoke(ctx, "New-ManagementRole", map[string]any{"Name": role.Name, "Parent": role.Parent}, nil)
				})
			if err != nil {
				return err
			}
		}
		entries, err := r.roleEntries(ctx, source)
		if err != nil {
			return err
		}
		if err := r.fixEntries(ctx, role, entries); err != nil {
			return err
		}
	}

	if d.Req.Writes() {
		var sc exoScope
		exists, err := r.get(ctx, "Get-ManagementScope", d.ScopeName, &sc)
		if err != nil {
			return fmt.Errorf("look for management scope %q: %w", d.ScopeName, err)
		}
		switch {
		case !exists:
			err = r.step(ctx, OpScopeCreate, d.ScopeName, fmt.Sprintf("create management scope %q: %s", d.ScopeName, d.Req.WriteFilter),
				func(ctx context.Context) (string, error) {
					return "", r.invoke(ctx, "New-ManagementScope", map[string]any{"Name": d.ScopeName, "RecipientRestrictionFilter": d.Req.WriteFilter}, nil)
				})
		case !sameFilter(sc.RecipientFilter, d.Req.WriteFilter):
			err = r.step(ctx, OpScopeFilter, d.ScopeName, fmt.Sprintf("set the filter of scope %q to %s (was %s)", d.ScopeName, d.Req.WriteFilter, sc.RecipientFilter),
				func(ctx context.Context) (string, error) {
					return "", r.invoke(ctx, "Set-ManagementScope", map[string]any{"Identity": d.ScopeName, "RecipientRestrictionFilter": d.Req.WriteFilter}, nil)
				})
		}
		if err != nil {
			return err
		}
	}

	var grp exoRoleGroup
	exists, err := r.get(ctx, "Get-RoleGroup", d.Name, &grp)
	if err != nil {
		return fmt.Errorf("look for role group %q: %w", d.Name, err)
	}
	if !exists {
		params := map[string]any{"Name": d.Name, "Roles": d.RoleNames(), "Description": "Created by worker setup: the exo-worker app's Exchange permissions. Remove with worker setup --remove."}
		if d.Req.Writes() {
			params["CustomRecipientWriteScope"] = d.ScopeName
		}
		err := r.step(ctx, OpGroupCreate, d.Name, fmt.Sprintf("create role group %q with roles %s, write scope %q", d.Name, strings.Join(d.RoleNames(), ", "), d.ScopeName),
			func(ctx context.Context) (string, error) { return "", r.invoke(ctx, "New-RoleGroup", params, nil) })
		if err != nil {
			return err
		}
	} else if err := r.fixAssignments(ctx); err != nil {
		return err
	}

	var members []exoMember
	if exists {
		if err := r.invoke(ctx, "Get-RoleGroupMember", map[string]any{"Identity": d.Name}, &members); err != nil {
			return fmt.Errorf("read the members of role group %q: %w", d.Name, err)
		}
	}
	isMember := slices.ContainsFunc(members, func(m exoMember) bool {
		return spID != "" && (strings.EqualFold(m.ExternalDirectoryObjectID, spID) || strings.EqualFold(m.Identity, spID) || strings.EqualFold(m.Name, spID))
	})
	if !isMember {
		err := r.step(ctx, OpGroupMember, d.Name, fmt.Sprintf("add the service principal %s to role group %q", orPending(spID), d.Name),
			func(ctx context.Context) (string, error) {
				return "", r.invoke(ctx, "Add-RoleGroupMember", map[string]any{"Identity": d.Name, "Member": spID}, nil)
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// fixEntries trims a role to the cmdlets it should keep and the written parameters of each write cmdlet.
func (r *run) fixEntries(ctx context.Context, role Role, entries []exoRoleEntry) error {
	var extra []string
	have := map[string]exoRoleEntry{}
	for _, e := range entries {
		have[strings.ToLower(e.Name)] = e
		if _, keep := role.Cmdlets[e.Name]; !keep && !slices.ContainsFunc(role.CmdletNames(), func(c string) bool { return strings.EqualFold(c, e.Name) }) {
			extra = append(extra, e.Name)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		err := r.step(ctx, OpRoleTrim, role.Name, fmt.Sprintf("remove %d entries from %q, keeping %s", len(extra), role.Name, strings.Join(role.CmdletNames(), ", ")),
			func(ctx context.Context) (string, error) {
				for _, c := range extra {
					if err := r.invoke(ctx, "Remove-ManagementRoleEntry", map[string]any{"Identity": role.Name + `\` + c, "Confirm": false}, nil); err != nil {
						return "", err
					}
				}
				return "", nil
			})
		if err != nil {
			return err
		}
	}
	for _, c := range role.CmdletNames() {
		e, ok := have[strings.ToLower(c)]
		if !ok {
			err := r.step(ctx, OpRoleAdd, role.Name+`\`+c, fmt.Sprintf("add %s back to %q from its parent", c, role.Name),
				func(ctx context.Context) (string, error) {
					return "", r.invoke(ctx, "Add-ManagementRoleEntry", map[string]any{"Identity": role.Name + `\` + c}, nil)
				})
			if err != nil {
				return err
			}
		}
		want := role.Cmdlets[c]
		if want == nil {
			continue
		}
		if ok && sameSet(e.Parameters, want) {
			continue
		}
		err := r.step(ctx, OpRoleParams, role.Name+`\`+c, fmt.Sprintf("limit %s in %q to the parameters %s", c, role.Name, strings.Join(want, ", ")),
			func(ctx context.Context) (string, error) {
				return "", r.invoke(ctx, "Set-ManagementRoleEntry", map[string]any{"Identity": role.Name + `\` + c, "Parameters": want}, nil)
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// fixAssignments makes the role group's assignments exactly the desired roles, each with the write scope.
func (r *run) fixAssignments(ctx context.Context) error {
	d := r.d
	var as []exoAssignment
	if err := r.invoke(ctx, "Get-ManagementRoleAssignment", map[string]any{"RoleAssignee": d.Name}, &as); err != nil {
		return fmt.Errorf("read the role assignments of %q: %w", d.Name, err)
	}
	scope := ""
	if d.Req.Writes() {
		scope = d.ScopeName
	}
	for _, role := range d.RoleNames() {
		i := slices.IndexFunc(as, func(a exoAssignment) bool { return strings.EqualFold(a.Role, role) })
		if i < 0 {
			params := map[string]any{"SecurityGroup": d.Name, "Role": role}
			if scope != "" {
				params["CustomRecipientWriteScope"] = scope
			}
			err := r.step(ctx, OpAssignmentAdd, role, fmt.Sprintf("assign role %q to role group %q", role, d.Name),
				func(ctx context.Context) (string, error) {
					return "", r.invoke(ctx, "New-ManagementRoleAssignment", params, nil)
				})
			if err != nil {
				return err
			}
			continue
		}
		if !strings.EqualFold(as[i].CustomRecipientWriteScope, scope) {
			a := as[i]
			err := r.step(ctx, OpAssignmentScope, role, fmt.Sprintf("set the write scope of assignment %q to %q (was %q)", a.Name, scope, a.CustomRecipientWriteScope),
				func(ctx context.Context) (string, error) {
					return "", r.invoke(ctx, "Set-ManagementRoleAssignment", map[string]any{"Identity": a.Name, "CustomRecipientWriteScope": scope}, nil)
				})
			if err != nil {
				return err
			}
		}
	}
	for _, a := range as {
		if slices.ContainsFunc(d.RoleNames(), func(n string) bool { return strings.EqualFold(n, a.Role) }) {
			continue
		}
		err := r.step(ctx, OpAssignmentRemove, a.Role, fmt.Sprintf("remove assignment %q of role %q, which no enabled job needs", a.Name, a.Role),
			func(ctx context.Context) (string, error) {
				return "", r.invoke(ctx, "Remove-ManagementRoleAssignment", map[string]any{"Identity": a.Name, "Confirm": false}, nil)
			})
		if err != nil {
			return err
		}
	}
	return nil
}

func orPending(id string) string {
	if id == "" {
		return "(to be created)"
	}
	return id
}

func sameSet(a, b []string) bool {
	norm := func(l []string) []string {
		out := make([]string, len(l))
		for i, s := range l {
			out[i] = strings.ToLower(s)
		}
		sort.Strings(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}

// sameFilter compares OPATH filters ignoring case and redundant spaces and parentheses, which Exchange
// normalises when it stores a scope.
func sameFilter(a, b string) bool {
	norm := func(s string) string {
		s = strings.NewReplacer("(", " ", ")", " ").Replace(strings.ToLower(s))
		return strings.Join(strings.Fields(s), " ")
	}
	return norm(a) == norm(b)
}
