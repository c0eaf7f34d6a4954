package entra

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// This file is the admin's side of the simulated Entra ID: the device-code flow (RFC 8628 as Entra speaks it,
// entra-docs v2-oauth2-device-code.md) and refresh tokens for public clients, issuing delegated tokens to the
// tenant's administrator; app tokens for directory apps (roles from their consent); the authority's clock
// offset; and the claims the APIs read from a bearer token.

// deviceCodeGrant is RFC 8628's grant type; MSAL sends the short form "device_code", which Entra accepts too.
const deviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code"

// deviceState holds the outstanding device codes and the refresh tokens issued.
type deviceState struct {
	mu      sync.Mutex
	codes   map[string]*deviceCode
	refresh map[string]string // refresh token → client id
	// Decline makes every pending device code answer authorization_declined (a tenant whose Conditional
	// Access blocks the device-code flow).
	decline bool
}

type deviceCode struct {
	clientID string
	userCode string
	expires  time.Time
}

// AdminUPN is the administrator every device-code sign-in signs in as.
func (s *Authority) AdminUPN() string { return "admin@" + s.Creds.TenantDomain }

func (s *Authority) adminOID() string {
	sum := sha256.Sum256([]byte("exo-sim/admin/" + s.Creds.TenantID))
	return formatUUID(sum[:16])
}

// DeclineDeviceCodes makes device-code sign-ins fail with authorization_declined (true) or succeed (false).
func (s *Authority) DeclineDeviceCodes(v bool) {
	s.device.mu.Lock()
	s.device.decline = v
	s.device.mu.Unlock()
}

func (s *Authority) now() time.Time { return time.Now().Add(time.Duration(s.clockOffset.Load())) }

// SetClockOffset shifts the authority's clock by d.
func (s *Authority) SetClockOffset(d time.Duration) { s.clockOffset.Store(int64(d)) }

// stampDate sets the Date header from the authority's clock (net/http keeps an explicit Date).
func (s *Authority) stampDate(w http.ResponseWriter) {
	w.Header().Set("Date", s.now().UTC().Format(http.TimeFormat))
}

// handleDeviceCode starts a device-code sign-in. The simulated admin signs in at once: the first poll of the
// token endpoint gets the tokens (unless DeclineDeviceCodes is set).
func (s *Authority) handleDeviceCode(w http.ResponseWriter, r *http.Request) {
	s.stampDate(w)
	if s.resolveTenant(r.PathValue("tenant")) == tenantUnknown {
		s.entraError(w, r, http.StatusBadRequest, "invalid_request", 90002, tenantNotFound(r.PathValue("tenant")))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("client_id") == "" {
		s.entraError(w, r, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
		return
	}
	if _, terr := delegatedResource(r.PostForm.Get("scope")); terr != nil {
		s.entraError(w, r, terr.status, terr.code, terr.aadsts, terr.text)
		return
	}
	dc := &deviceCode{clientID: r.PostForm.Get("client_id"), userCode: strings.ToUpper(randomID(6))[:8], expires: time.Now().Add(15 * time.Minute)}
	code := randomID(32)
	s.device.mu.Lock()
	if s.device.codes == nil {
		s.device.codes, s.device.refresh = map[string]*deviceCode{}, map[string]string{}
	}
	s.device.codes[code] = dc
	s.device.mu.Unlock()
	verify := s.URL + "/devicelogin"
	writeJSON(w, http.StatusOK, map[string]any{
		"user_code": dc.userCode, "device_code": code, "verification_uri": verify, "expires_in": 900, "interval": 1,
		"message": fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", verify, dc.userCode),
	})
}

// delegatedResource reads the one resource of a delegated scope list ("https://graph.microsoft.com/X
// https://graph.microsoft.com/Y openid profile offline_access") and the scopes asked of it.
func delegatedResource(scope string) ([]string, *tokenError) {
	resource := ""
	var scopes []string
	for _, sc := range strings.Fields(scope) {
		switch sc {
		case "openid", "offline_access", "profile", "email":
			continue
		}
		u, err := url.Parse(sc)
		if err != nil || u.Host == "" {
			return nil, &tokenError{http.StatusBadRequest, "invalid_scope", 70011, fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", sc)}
		}
		res := u.Scheme + "://" + u.Host
		if resource != "" && !strings.EqualFold(resource, res) {
			return nil, &tokenError{http.StatusBadRequest, "invalid_scope", 28000, fmt.Sprintf("Provided value for the input parameter scope '%s' is not valid because it contains more than one resource.", scope)}
		}
		resource = res
		scopes = append(scopes, strings.TrimPrefix(u.Path, "/"))
	}
	if resource == "" || (!isGraphResource(resource) && !isExchangeResource(resource)) {
		return nil, &tokenError{http.StatusBadRequest, "invalid_resource", 500011, fmt.Sprintf("The resource principal named %s was not found in the tenant.", resource)}
	}
	return append([]string{resource}, scopes...), nil
}

// delegatedToken answers the device-code and refresh-token grants with a delegated token for the admin.
func (s *Authority) delegatedToken(w http.ResponseWriter, r *http.Request, f url.Values) *tokenError {
	clientID := f.Get("client_id")
	s.device.mu.Lock()
	switch f.Get("grant_type") {
	case deviceCodeGrant, "device_code":
		dc := s.device.codes[f.Get("device_code")]
		switch {
		case dc == nil || dc.clientID != clientID:
			s.device.mu.Unlock()
			return &tokenError{http.StatusBadRequest, "bad_verification_code", 70019, "Verification code is invalid or has already been used."}
		case time.Now().After(dc.expires):
			s.device.mu.Unlock()
			return &tokenError{http.StatusBadRequest, "expired_token", 70020, "The provided authorization code or refresh token has expired due to inactivity."}
		case s.device.decline:
			s.device.mu.Unlock()
			return &tokenError{http.StatusBadRequest, "authorization_declined", 70000, "The user denied the authorization request (Conditional Access blocks the device code flow in this tenant)."}
		}
		delete(s.device.codes, f.Get("device_code"))
	default:
		if s.device.refresh[f.Get("refresh_token")] != clientID {
			s.device.mu.Unlock()
			return &tokenError{http.StatusBadRequest, "invalid_grant", 9002313, "Invalid request. The refresh token is invalid or was issued to another client."}
		}
	}
	refresh := randomID(48)
	if s.device.refresh == nil {
		s.device.refresh = map[string]string{}
	}
	s.device.refresh[refresh] = clientID
	s.device.mu.Unlock()

	rs, terr := delegatedResource(f.Get("scope"))
	if terr != nil {
		return terr
	}
	resource, scopes := rs[0], rs[1:]
	asked := slices.Clone(scopes)
	if slices.Contains(scopes, ".default") {
		scopes = []string{"Exchange.Manage"}
		if isGraphResource(resource) {
			scopes = []string{"Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All", "Directory.Read.All"}
		}
	}
	now := time.Now()
	ttl := s.tokenTTL()
	c := accessClaims{Aud: normalizeResource(resource), Iss: s.issuer(s.Creds.TenantID), Iat: now.Unix(), Nbf: now.Unix(),
		Exp: now.Add(ttl).Unix(), AppID: clientID, IdTyp: "user", Oid: s.adminOID(), Sub: s.adminOID(), Tid: s.Creds.TenantID,
		Scp: strings.Join(scopes, " "), UPN: s.AdminUPN(), UTI: randomID(16), Ver: "1.0", Epoch: s.tokenEpoch()}
	idTok := signHS256(s.tokenKey, map[string]any{"aud": clientID, "iss": s.issuer(s.Creds.TenantID), "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(), "oid": s.adminOID(), "sub": s.adminOID(), "tid": s.Creds.TenantID,
		"preferred_username": s.AdminUPN(), "name": "Tenant Admin", "ver": "2.0"})
	info := b64.EncodeToString([]byte(fmt.Sprintf(`{"uid":%q,"utid":%q}`, s.adminOID(), s.Creds.TenantID)))
	// The scope answer names what was asked (MSAL Go treats an asked scope missing from it as declined,
	// .default included) and what it stands for.
	var granted []string
	for _, sc := range append(asked, scopes...) {
		if g := resource + "/" + sc; !slices.Contains(granted, g) {
			granted = append(granted, g)
		}
	}
	secs := int64(ttl / time.Second)
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "scope": strings.Join(append(granted, "openid", "profile", "offline_access"), " "),
		"expires_in": secs, "ext_expires_in": secs, "access_token": signHS256(s.tokenKey, c),
		"refresh_token": refresh, "id_token": idTok, "client_info": info,
	})
	return nil
}

// issueFor issues the client-credentials token of clientID: the worker app's fixed grants, or a directory
// app's consented roles.
func (s *Authority) issueFor(resource, clientID string, dirApp bool, ttl time.Duration) string {
	if !dirApp {
		return s.IssueToken(resource, s.Creds.ClientID, ttl)
	}
	roles, spID := s.Apps.grantedRoles(clientID, resource)
	now := time.Now()
	c := accessClaims{Aud: normalizeResource(resource), Iss: s.issuer(s.Creds.TenantID), Iat: now.Unix(), Nbf: now.Unix(),
		Exp: now.Add(ttl).Unix(), AppID: clientID, IdTyp: "app", Oid: spID, Sub: spID, Tid: s.Creds.TenantID,
		Roles: roles, UTI: randomID(16), Ver: "1.0", Epoch: s.tokenEpoch()}
	return signHS256(s.tokenKey, c)
}

// Claims are what an API learns from a verified bearer token.
type Claims struct {
	AppID string
	// User is true for a delegated (admin) token, false for an app token.
	User bool
	// Builtin is true for the simulated worker app of Creds, which holds fixed grants and an unrestricted
	// Exchange role.
	Builtin bool
	Roles   []string
	Scopes  []string
	// ObjectID is the service principal's (app) or the user's object id.
	ObjectID string
}

// BearerClaims verifies r's bearer token like VerifyBearer and returns its claims.
func (s *Authority) BearerClaims(r *http.Request, audience string) (Claims, error) {
	if err := s.VerifyResource(r, audience); err != nil {
		return Claims{}, err
	}
	_, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	var c accessClaims
	if err := verifyHS256(s.tokenKey, strings.TrimSpace(tok), &c); err != nil {
		return Claims{}, err
	}
	return Claims{AppID: c.AppID, User: c.IdTyp == "user", Builtin: c.IdTyp != "user" && strings.EqualFold(c.AppID, s.Creds.ClientID),
		Roles: c.Roles, Scopes: strings.Fields(c.Scp), ObjectID: c.Oid}, nil
}

// ExchangeAudiences and GraphAudiences are the token audiences of the Exchange Online and Microsoft Graph
// resources in every cloud (global, GCC High, DoD, China): a worker configured for a sovereign cloud asks
// for its cloud's audience even when its endpoints point at the simulator.
func ExchangeAudiences() []string { return append([]string(nil), exchangeResources...) }

// GraphAudiences: see ExchangeAudiences.
func GraphAudiences() []string { return append([]string(nil), graphResources...) }

// VerifyBearerAny is VerifyBearer accepting any of audiences; a wrong-audience error names the first.
func (s *Authority) VerifyBearerAny(r *http.Request, audiences []string) (string, error) {
	var first error
	for _, a := range audiences {
		err := s.VerifyBearer(r, a)
		if err == nil {
			return a, nil
		}
		if !errors.Is(err, ErrBearerAudience) {
			return "", err
		}
		if first == nil {
			first = err
		}
	}
	return "", first
}

// VerifyResource is VerifyBearer accepting the audience of the same API in any cloud.
func (s *Authority) VerifyResource(r *http.Request, audience string) error {
	family := []string{audience}
	switch {
	case isExchangeResource(audience):
		family = exchangeResources
	case isGraphResource(audience):
		family = graphResources
	}
	_, err := s.VerifyBearerAny(r, family)
	return err
}
