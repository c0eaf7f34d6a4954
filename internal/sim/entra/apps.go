package entra

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// This file is the tenant's application directory as Graph shows it: app registrations (with their
// certificates), service principals (the resource APIs' and the apps'), and app role assignments (admin
// consent). The token endpoint reads it to authenticate an app setup created and to put its granted roles
// in its tokens; internal/sim/graphapi serves it as /applications, /servicePrincipals and
// /appRoleAssignedTo. The simulated worker app of Creds is not in it: it keeps its fixed grants.

// Well-known resource apps and their application permissions (ids as published in every tenant; research
// setup-protocol §1, §4). A few permissions no job needs are listed so that "exactly what is declared" is
// tested against a real choice.
const (
	GraphAppID    = "00000003-0000-0000-c000-000000000000"
	ExchangeAppID = "00000002-0000-0ff1-ce00-000000000000"
)

var resourceRoles = map[string][][2]string{
	GraphAppID: {
		{"df021288-bdef-4463-88db-98f22de89214", "User.Read.All"},
		{"5b567255-7703-4780-807c-7be8301ae99b", "Group.Read.All"},
		{"e1a88a34-94c4-4418-be12-c87b00e26bea", "OrgContact.Read.All"},
		{"dbb9058a-0e50-45d7-ae91-66909b5d4664", "Domain.Read.All"},
		{"498476ce-e0fe-48b0-b801-37ba7e2685c6", "Organization.Read.All"},
		{"dbaae8cf-10b5-4b86-a4a1-f871c94c6695", "GroupMember.ReadWrite.All"},
		{"1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9", "Application.ReadWrite.All"},
	},
	ExchangeAppID: {
		{"dc50a0fb-09a3-484d-be87-e023b12c6440", "Exchange.ManageAsApp"},
		{"dc890d15-9560-4a4c-9b7f-a736ec74ec40", "full_access_as_app"},
	},
}

// KeyCredential is a certificate on an app registration.
type KeyCredential struct {
	KeyID               string `json:"keyId"`
	Type                string `json:"type"`
	Usage               string `json:"usage"`
	Key                 string `json:"key"` // base64 DER on input; Graph returns null on reads
	DisplayName         string `json:"displayName"`
	CustomKeyIdentifier string `json:"customKeyIdentifier"`
	StartDateTime       string `json:"startDateTime"`
	EndDateTime         string `json:"endDateTime"`
	cert                *x509.Certificate
}

// ResourceAccess is one permission an app requests.
type ResourceAccess struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// RequiredResourceAccess is what an app requests of one resource API.
type RequiredResourceAccess struct {
	ResourceAppID  string           `json:"resourceAppId"`
	ResourceAccess []ResourceAccess `json:"resourceAccess"`
}

// Application is an app registration.
type Application struct {
	ID                     string                   `json:"id"`
	AppID                  string                   `json:"appId"`
	DisplayName            string                   `json:"displayName"`
	SignInAudience         string                   `json:"signInAudience"`
	Tags                   []string                 `json:"tags"`
	KeyCredentials         []KeyCredential          `json:"keyCredentials"`
	RequiredResourceAccess []RequiredResourceAccess `json:"requiredResourceAccess"`
	CreatedDateTime        string                   `json:"createdDateTime"`
}

// AppRole is an application permission a resource offers.
type AppRole struct {
	ID                 string   `json:"id"`
	Value              string   `json:"value"`
	DisplayName        string   `json:"displayName"`
	AllowedMemberTypes []string `json:"allowedMemberTypes"`
	IsEnabled          bool     `json:"isEnabled"`
}

// ServicePrincipal is an app's (or a resource API's) instance in the tenant.
type ServicePrincipal struct {
	ID          string    `json:"id"`
	AppID       string    `json:"appId"`
	DisplayName string    `json:"displayName"`
	AppRoles    []AppRole `json:"appRoles"`
}

// AppRoleAssignment grants an app role of a resource to a principal (admin consent for an application).
type AppRoleAssignment struct {
	ID                   string `json:"id"`
	PrincipalID          string `json:"principalId"`
	PrincipalDisplayName string `json:"principalDisplayName"`
	PrincipalType        string `json:"principalType"`
	ResourceID           string `json:"resourceId"`
	ResourceDisplayName  string `json:"resourceDisplayName"`
	AppRoleID            string `json:"appRoleId"`
	CreatedDateTime      string `json:"createdDateTime"`
}

// Directory holds the tenant's applications, service principals and app role assignments.
type Directory struct {
	mu      sync.Mutex
	apps    map[string]*Application
	sps     map[string]*ServicePrincipal
	assigns map[string]*AppRoleAssignment
}

func newDirectory() *Directory {
	d := &Directory{apps: map[string]*Application{}, sps: map[string]*ServicePrincipal{}, assigns: map[string]*AppRoleAssignment{}}
	for appID, name := range map[string]string{GraphAppID: "Microsoft Graph", ExchangeAppID: "Office 365 Exchange Online"} {
		sp := &ServicePrincipal{ID: newUUID(), AppID: appID, DisplayName: name}
		for _, r := range resourceRoles[appID] {
			sp.AppRoles = append(sp.AppRoles, AppRole{ID: r[0], Value: r[1], DisplayName: r[1], AllowedMemberTypes: []string{"Application"}, IsEnabled: true})
		}
		d.sps[sp.ID] = sp
	}
	return d
}

// Errors the Graph front end maps to its answers.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

func stamp() string { return time.Now().UTC().Format("2006-01-02T15:04:05Z") }

// parseKeys decodes the certificates of key credentials; a key that is not a DER certificate is refused as
// Graph refuses it.
func parseKeys(in []KeyCredential) ([]KeyCredential, error) {
	out := make([]KeyCredential, 0, len(in))
	for _, k := range in {
		if k.Type != "AsymmetricX509Cert" {
			return nil, fmt.Errorf("%w: keyCredentials type %q; only AsymmetricX509Cert is supported", ErrInvalid, k.Type)
		}
		der, err := base64.StdEncoding.DecodeString(k.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: keyCredentials key is not base64: %v", ErrInvalid, err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: Key credential key is invalid: %v", ErrInvalid, err)
		}
		x5t, _ := thumbprints(cert)
		k.cert = cert
		k.KeyID = newUUID()
		k.CustomKeyIdentifier = x5t
		k.StartDateTime = cert.NotBefore.UTC().Format("2006-01-02T15:04:05Z")
		k.EndDateTime = cert.NotAfter.UTC().Format("2006-01-02T15:04:05Z")
		out = append(out, k)
	}
	return out, nil
}

// view returns a copy of an app as Graph shows it (key material is never returned).
func (a *Application) view() Application {
	c := *a
	c.Tags = slices.Clone(a.Tags)
	c.RequiredResourceAccess = slices.Clone(a.RequiredResourceAccess)
	c.KeyCredentials = make([]KeyCredential, len(a.KeyCredentials))
	for i, k := range a.KeyCredentials {
		k.Key = ""
		k.cert = nil
		c.KeyCredentials[i] = k
	}
	return c
}

// CreateApp registers an application.
func (d *Directory) CreateApp(a Application) (Application, error) {
	if strings.TrimSpace(a.DisplayName) == "" {
		return Application{}, fmt.Errorf("%w: Property displayName is required", ErrInvalid)
	}
	keys, err := parseKeys(a.KeyCredentials)
	if err != nil {
		return Application{}, err
	}
	a.KeyCredentials = keys
	a.ID, a.AppID, a.CreatedDateTime = newUUID(), newUUID(), stamp()
	if a.SignInAudience == "" {
		a.SignInAudience = "AzureADMyOrg"
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.apps[a.ID] = &a
	return a.view(), nil
}

// Apps lists applications, filtered by keep.
func (d *Directory) Apps(keep func(Application) bool) []Application {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Application
	for _, a := range d.apps {
		if v := a.view(); keep == nil || keep(v) {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedDateTime+out[i].ID < out[j].CreatedDateTime+out[j].ID })
	return out
}

// App returns an application by object id.
func (d *Directory) App(id string) (Application, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.apps[strings.ToLower(id)]
	if !ok {
		return Application{}, ErrNotFound
	}
	return a.view(), nil
}

// PatchApp updates the given properties (keyCredentials replaces all keys, as Graph's PATCH does).
func (d *Directory) PatchApp(id string, patch map[string]any, keys []KeyCredential, access []RequiredResourceAccess) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.apps[strings.ToLower(id)]
	if !ok {
		return ErrNotFound
	}
	if _, ok := patch["keyCredentials"]; ok {
		k, err := parseKeys(keys)
		if err != nil {
			return err
		}
		a.KeyCredentials = k
	}
	if _, ok := patch["requiredResourceAccess"]; ok {
		a.RequiredResourceAccess = access
	}
	if v, ok := patch["displayName"].(string); ok && v != "" {
		a.DisplayName = v
	}
	return nil
}

// DeleteApp deletes an application with its service principal and that principal's assignments.
func (d *Directory) DeleteApp(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.apps[strings.ToLower(id)]
	if !ok {
		return ErrNotFound
	}
	delete(d.apps, a.ID)
	for spID, sp := range d.sps {
		if sp.AppID == a.AppID {
			delete(d.sps, spID)
			for aid, x := range d.assigns {
				if x.PrincipalID == spID || x.ResourceID == spID {
					delete(d.assigns, aid)
				}
			}
		}
	}
	return nil
}

// CreateSP creates the service principal of a registered application.
func (d *Directory) CreateSP(appID string) (ServicePrincipal, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var app *Application
	for _, a := range d.apps {
		if strings.EqualFold(a.AppID, appID) {
			app = a
		}
	}
	if app == nil {
		return ServicePrincipal{}, fmt.Errorf("%w: The appId '%s' of the service principal does not reference a valid application object.", ErrInvalid, appID)
	}
	for _, sp := range d.sps {
		if strings.EqualFold(sp.AppID, appID) {
			return ServicePrincipal{}, fmt.Errorf("%w: Another object with the same value for property servicePrincipalNames already exists.", ErrConflict)
		}
	}
	sp := &ServicePrincipal{ID: newUUID(), AppID: app.AppID, DisplayName: app.DisplayName, AppRoles: []AppRole{}}
	d.sps[sp.ID] = sp
	return *sp, nil
}

// SPs lists service principals, filtered by keep.
func (d *Directory) SPs(keep func(ServicePrincipal) bool) []ServicePrincipal {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []ServicePrincipal
	for _, sp := range d.sps {
		if keep == nil || keep(*sp) {
			out = append(out, *sp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// SP returns a service principal by object id.
func (d *Directory) SP(id string) (ServicePrincipal, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	sp, ok := d.sps[strings.ToLower(id)]
	if !ok {
		return ServicePrincipal{}, ErrNotFound
	}
	return *sp, nil
}

// Assign grants appRoleID of resource to principal (POST /servicePrincipals/{resource}/appRoleAssignedTo).
func (d *Directory) Assign(resourceID string, a AppRoleAssignment) (AppRoleAssignment, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	res, ok := d.sps[strings.ToLower(resourceID)]
	if !ok {
		return AppRoleAssignment{}, ErrNotFound
	}
	if !strings.EqualFold(a.ResourceID, res.ID) {
		return AppRoleAssignment{}, fmt.Errorf("%w: resourceId must be the service principal in the URL", ErrInvalid)
	}
	p, ok := d.sps[strings.ToLower(a.PrincipalID)]
	if !ok {
		return AppRoleAssignment{}, fmt.Errorf("%w: Resource '%s' does not exist or one of its queried reference-property objects are not present.", ErrNotFound, a.PrincipalID)
	}
	if !slices.ContainsFunc(res.AppRoles, func(r AppRole) bool { return strings.EqualFold(r.ID, a.AppRoleID) }) {
		return AppRoleAssignment{}, fmt.Errorf("%w: Permission being assigned was not found on application '%s'.", ErrInvalid, res.AppID)
	}
	for _, x := range d.assigns {
		if x.PrincipalID == p.ID && x.ResourceID == res.ID && strings.EqualFold(x.AppRoleID, a.AppRoleID) {
			return AppRoleAssignment{}, fmt.Errorf("%w: Permission being assigned already exists on the object", ErrConflict)
		}
	}
	n := &AppRoleAssignment{ID: base64.RawURLEncoding.EncodeToString([]byte(newUUID()))[:43], PrincipalID: p.ID, PrincipalDisplayName: p.DisplayName,
		PrincipalType: "ServicePrincipal", ResourceID: res.ID, ResourceDisplayName: res.DisplayName, AppRoleID: strings.ToLower(a.AppRoleID), CreatedDateTime: stamp()}
	d.assigns[n.ID] = n
	return *n, nil
}

// Assignments lists the app role assignments granted to principal (or of resource when byResource).
func (d *Directory) Assignments(spID string, byResource bool) []AppRoleAssignment {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []AppRoleAssignment
	for _, x := range d.assigns {
		if (!byResource && strings.EqualFold(x.PrincipalID, spID)) || (byResource && strings.EqualFold(x.ResourceID, spID)) {
			out = append(out, *x)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedDateTime+out[i].ID < out[j].CreatedDateTime+out[j].ID })
	return out
}

// Unassign removes an assignment of resource.
func (d *Directory) Unassign(resourceID, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	x, ok := d.assigns[id]
	if !ok || !strings.EqualFold(x.ResourceID, resourceID) {
		return ErrNotFound
	}
	delete(d.assigns, id)
	return nil
}

// appCerts returns the certificates of the registered app with appID (nil, false when there is none).
func (d *Directory) appCerts(appID string) ([]*x509.Certificate, string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range d.apps {
		if strings.EqualFold(a.AppID, appID) {
			var out []*x509.Certificate
			for _, k := range a.KeyCredentials {
				out = append(out, k.cert)
			}
			return out, a.AppID, true
		}
	}
	return nil, "", false
}

// grantedRoles returns the role values granted to appID's service principal on the resource API whose
// audience is resource (Graph or Exchange), and the principal's object id.
func (d *Directory) grantedRoles(appID, resource string) (roles []string, spID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	resApp := ""
	switch {
	case isGraphResource(resource):
		resApp = GraphAppID
	case isExchangeResource(resource):
		resApp = ExchangeAppID
	}
	for _, sp := range d.sps {
		if strings.EqualFold(sp.AppID, appID) {
			spID = sp.ID
		}
	}
	for _, x := range d.assigns {
		if x.PrincipalID != spID || spID == "" {
			continue
		}
		res := d.sps[x.ResourceID]
		if res == nil || res.AppID != resApp {
			continue
		}
		for _, r := range res.AppRoles {
			if strings.EqualFold(r.ID, x.AppRoleID) {
				roles = append(roles, r.Value)
			}
		}
	}
	sort.Strings(roles)
	return roles, spID
}
