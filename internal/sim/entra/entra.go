// Package entra is the simulated Entra ID token endpoint: OIDC discovery, the v2.0 client-credentials token
// endpoint (secret, certificate and federated assertions), an App Service–style managed identity endpoint,
// and the bearer-token check the simulated Exchange and Graph APIs run on every request.
package entra

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// The simulated Entra ID: OIDC discovery, the v2.0 token endpoint for the client credentials grant (secret,
// certificate assertion, federated assertion) and an App Service–style managed identity endpoint. What the
// clients send and require was read from MSAL for Go v1.10.1 and azidentity v1.15.0 (research/graph-protocol.md
// §5.2–5.3): MSAL fetches {authority}/v2.0/.well-known/openid-configuration, requires issuer on the
// authority's scheme+host, then POSTs a form to token_endpoint with scope "<resource>/.default openid
// offline_access profile", client_info=1 and, for CAE, a claims parameter.

// Credentials are the values a worker needs to authenticate to the simulated tenant.
type Credentials struct {
	TenantID     string // a GUID
	TenantDomain string // e.g. contoso.onmicrosoft.com
	ClientID     string
	ClientSecret string
	// CertFile holds the client certificate and its unencrypted private key (PEM).
	CertFile string
	// PFXFile holds the same certificate and key as PKCS#12, protected by PFXPassword (written to PFXPasswordFile).
	PFXFile         string
	PFXPasswordFile string
	// SecretFile holds ClientSecret, for configs that read secrets from files.
	SecretFile string
	// FederatedTokenFile holds a federated token (valid 24h) for FederatedSubject, the workload identity the
	// app registration trusts; point WorkloadIdentityCredential's TokenFilePath at it.
	FederatedTokenFile string
	FederatedSubject   string
	// IdentityHeader is the X-IDENTITY-HEADER value the App Service–style managed identity endpoint
	// (ManagedIdentityEndpoint) requires: set IDENTITY_ENDPOINT and IDENTITY_HEADER to use it.
	IdentityHeader string
}

// Authority is the simulated Entra ID of one tenant: its token endpoint, the app registration it knows and the
// key its access tokens are signed with. The EXO and Graph APIs ask it (VerifyBearer) whether a request may
// proceed.
type Authority struct {
	// URL is the server's base URL; set it before serving (the issuer and token endpoint are built on it).
	URL string
	// Dir is where WriteCredentials writes the credential files.
	Dir string
	// Creds are the app registration the token endpoint accepts (filled by WriteCredentials).
	Creds Credentials
	// TokenTTL is the lifetime of issued access tokens; 0 means 3599s like Entra.
	TokenTTL time.Duration

	// Apps is the application directory (apps.go): app registrations setup creates, their service
	// principals and consent. Its apps get tokens by certificate with the roles granted to them.
	Apps *Directory
	// clockOffset (nanoseconds) shifts the authority's clock (Date headers and assertion time checks), to
	// seed a host whose clock is wrong relative to Entra; see SetClockOffset.
	clockOffset atomic.Int64

	tokenKey []byte
	entra    entraState
	device   deviceState
}

// New returns an authority with a fresh token signing key; call WriteCredentials, set URL, then Register.
func New(dir string, tokenTTL time.Duration) (*Authority, error) {
	a := &Authority{Dir: dir, TokenTTL: tokenTTL, tokenKey: make([]byte, 32), Apps: newDirectory()}
	if _, err := rand.Read(a.tokenKey); err != nil {
		return nil, err
	}
	return a, nil
}

// entraState is the app registration and token bookkeeping of one server.
type entraState struct {
	mu    sync.Mutex
	epoch int64 // bumped by ExpireTokens; tokens carry the epoch they were issued in

	cert              *x509.Certificate // the app's registered client certificate
	federatedSubjects []string          // subjects of the app's federated identity credentials
}

// Resources the token endpoint issues tokens for: EXO and Graph in every cloud, since a worker configured for a
// sovereign cloud keeps that cloud's scopes when its endpoints are pointed at the simulator.
var (
	exchangeResources = []string{"https://outlook.office365.com", "https://outlook.office.com", "https://outlook.office365.us",
		"https://outlook-dod.office365.us", "https://webmail.apps.mil", "https://partner.outlook.cn"}
	graphResources = []string{"https://graph.microsoft.com", "https://graph.microsoft.us", "https://dod-graph.microsoft.us",
		"https://microsoftgraph.chinacloudapi.cn"}
)

// normalizeResource drops the trailing slash managed identity's v1 "resource" form carries
// (https://outlook.office365.com/) and lower-cases the host, so both forms name one audience.
func normalizeResource(r string) string { return strings.ToLower(strings.TrimRight(r, "/")) }

func isExchangeResource(r string) bool { return contains(exchangeResources, normalizeResource(r)) }
func isGraphResource(r string) bool    { return contains(graphResources, normalizeResource(r)) }

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Register adds the Entra routes. The authority is the server root ({URL}/{tenant}), because MSAL takes
// the first path segment of the authority as the tenant.
func (s *Authority) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.handleOpenIDConfig)
	mux.HandleFunc("/{tenant}/oauth2/v2.0/token", s.handleToken)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", s.handleKeys)
	mux.HandleFunc("GET /common/discovery/instance", s.handleInstanceDiscovery)
	mux.HandleFunc("GET /msi/token", s.handleManagedIdentity)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/devicecode", s.handleDeviceCode)
}

// ManagedIdentityEndpoint is the URL to put in IDENTITY_ENDPOINT (with IDENTITY_HEADER = Creds.IdentityHeader)
// so azidentity's ManagedIdentityCredential takes its App Service path to the simulator.
func (s *Authority) ManagedIdentityEndpoint() string { return s.URL + "/msi/token" }

// tenantKind says how a tenant path segment relates to this tenant.
type tenantKind int

const (
	tenantUnknown tenantKind = iota
	tenantOurs               // the tenant GUID or its initial domain
	tenantMulti              // organizations / common / consumers
)

func (s *Authority) resolveTenant(seg string) tenantKind {
	switch {
	case strings.EqualFold(seg, s.Creds.TenantID), strings.EqualFold(seg, s.Creds.TenantDomain):
		return tenantOurs
	case strings.EqualFold(seg, "organizations"), strings.EqualFold(seg, "common"), strings.EqualFold(seg, "consumers"):
		return tenantMulti
	}
	return tenantUnknown
}

// issuer is the v2.0 issuer of tenant on this server; MSAL requires its scheme+host to equal the authority's.
func (s *Authority) issuer(tenant string) string { return s.URL + "/" + tenant + "/v2.0" }

func (s *Authority) handleOpenIDConfig(w http.ResponseWriter, r *http.Request) {
	s.stampDate(w)
	seg := r.PathValue("tenant")
	var issuerTenant, pathTenant string
	switch s.resolveTenant(seg) {
	case tenantOurs:
		// Entra answers with the GUID whichever name the tenant was asked by.
		issuerTenant, pathTenant = s.Creds.TenantID, s.Creds.TenantID
	case tenantMulti:
		issuerTenant, pathTenant = "{tenantid}", seg
	default:
		s.entraError(w, r, http.StatusBadRequest, "invalid_tenant", 90002, tenantNotFound(seg))
		return
	}
	base := s.URL + "/" + pathTenant
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                s.issuer(issuerTenant),
		"request_uri_parameter_supported":       false,
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
		"cloud_graph_host_name":                 "graph.windows.net",
		"msgraph_host":                          "graph.microsoft.com",
	})
}

// handleKeys publishes an empty key set: access tokens are HMAC-signed and only the simulator reads them.
func (s *Authority) handleKeys(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"keys": []any{}})
}

// handleInstanceDiscovery answers MSAL's instance discovery for clients that leave it on and route
// login.microsoftonline.com here: the simulator is its own single alias.
func (s *Authority) handleInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	host := strings.TrimPrefix(s.URL, "https://")
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": s.URL + "/common/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host, "preferred_cache": host, "aliases": []string{host},
		}},
	})
}

const jwtBearerType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// scopeResource extracts the one resource of a client-credentials scope ("<resource>/.default"), ignoring the
// OIDC scopes MSAL always adds. A non-nil *tokenError is the answer Entra gives.
func scopeResource(scope string) (string, *tokenError) {
	var resources []string
	for _, sc := range strings.Fields(scope) {
		switch sc {
		case "openid", "offline_access", "profile", "email":
			continue
		}
		resources = append(resources, sc)
	}
	switch {
	case len(resources) == 0:
		return "", &tokenError{http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)}
	case len(resources) > 1:
		return "", &tokenError{http.StatusBadRequest, "invalid_scope", 28000, fmt.Sprintf("Provided value for the input parameter scope '%s' is not valid because it contains more than one resource. Scope %s is not valid.", scope, scope)}
	}
	res, ok := strings.CutSuffix(resources[0], "/.default")
	if !ok {
		return "", &tokenError{http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", resources[0])}
	}
	return res, nil
}

// tokenError is an Entra OAuth error answer.
type tokenError struct {
	status int
	code   string // the OAuth "error"
	aadsts int
	text   string // error_description without the AADSTS prefix and trace lines
}

func (s *Authority) handleToken(w http.ResponseWriter, r *http.Request) {
	s.stampDate(w)
	if err := s.token(w, r); err != nil {
		s.entraError(w, r, err.status, err.code, err.aadsts, err.text)
	}
}

// token serves one token request; it writes the token itself and returns the error to answer otherwise.
func (s *Authority) token(w http.ResponseWriter, r *http.Request) *tokenError {
	if r.Method != http.MethodPost {
		return &tokenError{http.StatusBadRequest, "invalid_request", 900561, fmt.Sprintf("The endpoint only accepts POST requests. Received a %s request.", r.Method)}
	}
	seg := r.PathValue("tenant")
	switch s.resolveTenant(seg) {
	case tenantUnknown:
		return &tokenError{http.StatusBadRequest, "invalid_request", 90002, tenantNotFound(seg)}
	case tenantMulti:
		// The client credentials grant is app-only: Entra needs a concrete tenant to find the app in.
		return &tokenError{http.StatusBadRequest, "invalid_request", 50059, "No tenant-identifying information found in either the request or implied by any provided credentials."}
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		return &tokenError{http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'."}
	}
	f := r.PostForm
	if gt := f.Get("grant_type"); gt == "" {
		return missingParam("grant_type")
	} else if gt == deviceCodeGrant || gt == "device_code" || gt == "refresh_token" {
		return s.delegatedToken(w, r, f)
	} else if gt != "client_credentials" {
		return &tokenError{http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", gt)}
	}
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	if id, pw, ok := r.BasicAuth(); ok { // client_secret_basic
		clientID, secret = id, pw
	}
	if clientID == "" {
		return missingParam("client_id")
	}
	// An app of the directory (one worker setup created) authenticates with its certificates and gets the
	// roles granted to it.
	appCerts, _, isDirApp := s.Apps.appCerts(clientID)
	if isDirApp && !strings.EqualFold(clientID, s.Creds.ClientID) {
		if secret != "" {
			return &tokenError{http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID)}
		}
	} else if !strings.EqualFold(clientID, s.Creds.ClientID) {
		return &tokenError{http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, s.Creds.TenantDomain)}
	}
	assertion := f.Get("client_assertion")
	switch {
	case secret != "" && assertion != "":
		return &tokenError{http.StatusBadRequest, "invalid_request", 9002313, "Invalid request. Request is malformed or invalid: send either client_secret or client_assertion, not both."}
	case secret != "":
		if subtle.ConstantTimeCompare([]byte(secret), []byte(s.Creds.ClientSecret)) != 1 {
			return &tokenError{http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", s.Creds.ClientID)}
		}
	case assertion != "":
		if t := f.Get("client_assertion_type"); t != jwtBearerType {
			return &tokenError{http.StatusBadRequest, "invalid_request", 50027, fmt.Sprintf("JWT token is invalid or malformed. client_assertion_type must be '%s', got '%s'.", jwtBearerType, t)}
		}
		if err := s.verifyAssertion(r, clientID, assertion, appCerts, isDirApp); err != nil {
			return err
		}
	default:
		return &tokenError{http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}
	}
	if f.Get("scope") == "" {
		return missingParam("scope")
	}
	resource, terr := scopeResource(f.Get("scope"))
	if terr != nil {
		return terr
	}
	if !isExchangeResource(resource) && !isGraphResource(resource) {
		return &tokenError{http.StatusBadRequest, "invalid_resource", 500011, fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", resource, s.Creds.TenantDomain)}
	}
	if c := f.Get("claims"); c != "" && !json.Valid([]byte(c)) {
		return &tokenError{http.StatusBadRequest, "invalid_request", 50006, "The claims parameter is not valid JSON."}
	}
	ttl := s.tokenTTL()
	secs := int64(ttl / time.Second)
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   s.issueFor(resource, clientID, isDirApp, ttl),
	})
	return nil
}

func missingParam(name string) *tokenError {
	return &tokenError{http.StatusBadRequest, "invalid_request", 900144, fmt.Sprintf("The request body must contain the following parameter: '%s'.", name)}
}

func tenantNotFound(seg string) string {
	return fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", seg)
}

// verifyAssertion checks a client_assertion: a certificate-signed JWT (PS256/RS256, the registered certificate
// named by its x5t#S256 or x5t header) or a federated token (HS256 from FederatedToken) for one of the app's
// federated subjects. Messages follow Entra's AADSTS texts for the same failures.
func (s *Authority) verifyAssertion(r *http.Request, clientID, assertion string, appCerts []*x509.Certificate, dirApp bool) *tokenError {
	malformed := func(why string) *tokenError {
		return &tokenError{http.StatusBadRequest, "invalid_request", 50027, "JWT token is invalid or malformed. " + why}
	}
	hdr, payload, sig, signing, err := splitJWS(assertion)
	if err != nil {
		return malformed(err.Error())
	}
	now := s.now()
	timeRange := func(nbf, exp int64) *tokenError {
		if exp != 0 && now.Before(time.Unix(exp, 0).Add(clockSkew)) && !time.Unix(nbf, 0).After(now.Add(clockSkew)) {
			return nil
		}
		return &tokenError{http.StatusUnauthorized, "invalid_client", 700024, fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
			now.UTC().Format("2006-01-02T15:04:05.0000000Z"), time.Unix(nbf, 0).UTC().Format("2006-01-02T15:04:05.0000000Z"), time.Unix(exp, 0).UTC().Format("2006-01-02T15:04:05.0000000Z"))}
	}

	if hdr.Alg == "HS256" { // a federated token (workload identity)
		var c federatedClaims
		if err := verifyHS256(s.tokenKey, assertion, &c); err != nil {
			if errors.Is(err, ErrBearerSignature) {
				return &tokenError{http.StatusUnauthorized, "invalid_client", 700027, "Client assertion failed signature validation."}
			}
			return malformed(err.Error())
		}
		s.entra.mu.Lock()
		subjects := s.entra.federatedSubjects
		s.entra.mu.Unlock()
		switch {
		case c.Iss != federationIssuer:
			return &tokenError{http.StatusBadRequest, "invalid_request", 700211, fmt.Sprintf("No matching federated identity record found for presented assertion issuer '%s'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.", c.Iss)}
		case c.Aud != federationAudience:
			return &tokenError{http.StatusBadRequest, "invalid_request", 700212, fmt.Sprintf("No matching federated identity record found for presented assertion audience '%s'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.", c.Aud)}
		case !contains(subjects, c.Sub):
			return &tokenError{http.StatusBadRequest, "invalid_request", 700213, fmt.Sprintf("No matching federated identity record found for presented assertion subject '%s'. Please note that the matching is done using a case-sensitive comparison. Check your federated identity credential Subject, Audience and Issuer against the presented assertion.", c.Sub)}
		}
		return timeRange(c.Nbf, c.Exp)
	}

	s.entra.mu.Lock()
	cert := s.entra.cert
	s.entra.mu.Unlock()
	presented := hdr.X5tS256
	if presented == "" {
		presented = hdr.X5t
	}
	if dirApp {
		cert = nil
		for _, c := range appCerts {
			if x5t, x5tS256 := thumbprints(c); presented == x5t || presented == x5tS256 {
				cert = c
			}
		}
	}
	x5t, x5tS256 := "", ""
	if cert != nil {
		x5t, x5tS256 = thumbprints(cert)
	}
	if presented == "" || cert == nil || (presented != x5tS256 && presented != x5t) {
		return &tokenError{http.StatusUnauthorized, "invalid_client", 700027, fmt.Sprintf("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments if you are not using the global cloud.]", hexThumbprint(presented), clientID)}
	}
	if err := verifyRSAAssertion(hdr, signing, sig, cert); err != nil {
		return &tokenError{http.StatusUnauthorized, "invalid_client", 700027, "Client assertion contains an invalid signature. [Reason - " + err.Error() + "]"}
	}
	var c struct {
		Aud string `json:"aud"`
		Iss string `json:"iss"`
		Sub string `json:"sub"`
		Nbf int64  `json:"nbf"`
		Exp int64  `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return malformed("The claims are not JSON.")
	}
	if c.Iss != clientID || c.Sub != clientID {
		return &tokenError{http.StatusUnauthorized, "invalid_client", 700021, "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials ."}
	}
	if !s.isTokenEndpoint(c.Aud) {
		return &tokenError{http.StatusUnauthorized, "invalid_client", 700024, fmt.Sprintf("Client assertion audience claim does not match Realm issuer. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials . Audience '%s' is not this token endpoint (%s).", c.Aud, s.URL+r.URL.Path)}
	}
	return timeRange(c.Nbf, c.Exp)
}

// isTokenEndpoint accepts the token endpoint URL of this tenant under any of its names (MSAL puts the
// token_endpoint from discovery, which names the GUID, into aud).
func (s *Authority) isTokenEndpoint(aud string) bool {
	rest, ok := strings.CutPrefix(aud, s.URL+"/")
	if !ok {
		return false
	}
	seg, tail, _ := strings.Cut(rest, "/")
	return s.resolveTenant(seg) == tenantOurs && (tail == "oauth2/v2.0/token" || tail == "oauth2/token")
}

// handleManagedIdentity is the App Service managed identity endpoint (api-version 2019-08-01) as MSAL calls it:
// GET ?api-version=2019-08-01&resource=<resource>[&client_id=...] with X-IDENTITY-HEADER. The app registration
// doubles as the identity, so its client id (or none, system-assigned) is accepted.
func (s *Authority) handleManagedIdentity(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg string) {
		writeJSON(w, status, map[string]any{"statusCode": status, "message": msg, "correlationId": correlationID(r)})
	}
	if h := r.Header.Get("X-IDENTITY-HEADER"); subtle.ConstantTimeCompare([]byte(h), []byte(s.Creds.IdentityHeader)) != 1 {
		fail(http.StatusUnauthorized, "The X-IDENTITY-HEADER is missing or does not match IDENTITY_HEADER.")
		return
	}
	q := r.URL.Query()
	if v := q.Get("api-version"); v != "2019-08-01" {
		fail(http.StatusBadRequest, fmt.Sprintf("api-version %q is not supported; use 2019-08-01.", v))
		return
	}
	resource := q.Get("resource")
	if !isExchangeResource(resource) && !isGraphResource(resource) {
		fail(http.StatusBadRequest, fmt.Sprintf("AADSTS500011: The resource principal named %s was not found in the tenant named %s.", resource, s.Creds.TenantDomain))
		return
	}
	if id := q.Get("client_id"); id != "" && !strings.EqualFold(id, s.Creds.ClientID) {
		fail(http.StatusBadRequest, fmt.Sprintf("Unable to load the proper Managed Identity: no identity with client_id %s is assigned to this resource.", id))
		return
	}
	ttl := s.tokenTTL()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": s.IssueToken(resource, s.Creds.ClientID, ttl),
		"expires_on":   strconv.FormatInt(time.Now().Add(ttl).Unix(), 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    s.Creds.ClientID,
	})
}

// entraError writes an Entra OAuth error: error, error_description ("AADSTS<n>: text" plus the trace lines
// Entra appends), error_codes, timestamp, trace_id, correlation_id (echoing client-request-id), error_uri.
func (s *Authority) entraError(w http.ResponseWriter, r *http.Request, status int, code string, aadsts int, text string) {
	now := time.Now().UTC()
	trace, corr := newUUID(), correlationID(r)
	desc := fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", aadsts, text, trace, corr, now.Format("2006-01-02 15:04:05Z"))
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": desc,
		"error_codes":       []int{aadsts},
		"timestamp":         now.Format("2006-01-02 15:04:05Z"),
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         s.URL + "/error?code=" + strconv.Itoa(aadsts),
	})
}

func correlationID(r *http.Request) string {
	if id := r.Header.Get("client-request-id"); id != "" {
		return id
	}
	return newUUID()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// --- the app registration ---

// clientKey is one RSA key for every simulated app in the process: generating a 2048-bit key costs up to a
// few hundred milliseconds on a small machine, and tests start many servers.
var clientKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

// defaultFederatedSubject is the service account the app trusts by default (Kubernetes naming).
const defaultFederatedSubject = "system:serviceaccount:exo-worker:worker"

// WriteCredentials registers the simulated app and writes its credentials under s.Dir: the tenant and client ids
// (the client id derived from the scenario seed, so a seed always gives the same app; the caller passes the
// tenant the scenario yields, so the Entra and EXO sides agree on the GUID and domain), a random client secret, a
// self-signed client certificate as PEM (certificate + key) and as PKCS#12 with a password file, and a
// federated token. It fills s.Creds.
func (s *Authority) WriteCredentials(tenantID, tenantDomain string, seed int64) error {
	c := Credentials{
		TenantID:         tenantID,
		TenantDomain:     tenantDomain,
		ClientID:         seededUUID("client", seed),
		ClientSecret:     newClientSecret(),
		FederatedSubject: defaultFederatedSubject,
		IdentityHeader:   randomID(24),
	}
	key, err := clientKey()
	if err != nil {
		return fmt.Errorf("sim: client key: %w", err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "exo-worker (simulated app " + c.ClientID + ")"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("sim: client certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("sim: client certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("sim: client key: %w", err)
	}
	pemData := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})...)
	pfxPassword := randomID(12)
	// LegacyDES (3DES, SHA-1 MAC) because azidentity.ParseCertificates decodes PFX with x/crypto/pkcs12, which
	// reads nothing newer.
	pfx, err := pkcs12.LegacyDES.Encode(key, cert, nil, pfxPassword)
	if err != nil {
		return fmt.Errorf("sim: encode PFX: %w", err)
	}

	c.CertFile = filepath.Join(s.Dir, "client.pem")
	c.PFXFile = filepath.Join(s.Dir, "client.pfx")
	c.PFXPasswordFile = filepath.Join(s.Dir, "client.pfx.password")
	c.SecretFile = filepath.Join(s.Dir, "client.secret")
	c.FederatedTokenFile = filepath.Join(s.Dir, "federated-token")
	s.Creds = c // FederatedToken and issuer read s.Creds
	files := []struct {
		path string
		data []byte
	}{
		{c.CertFile, pemData},
		{c.PFXFile, pfx},
		{c.PFXPasswordFile, []byte(pfxPassword)},
		{c.SecretFile, []byte(c.ClientSecret)},
		{c.FederatedTokenFile, []byte(s.FederatedToken(c.FederatedSubject, 24*time.Hour))},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return fmt.Errorf("sim: write credentials: %w", err)
		}
	}
	s.entra.mu.Lock()
	s.entra.cert = cert
	s.entra.federatedSubjects = []string{c.FederatedSubject}
	s.entra.mu.Unlock()
	return nil
}

// AddFederatedSubject registers another federated identity credential subject on the app, so tests can present
// tokens for a second service account.
func (s *Authority) AddFederatedSubject(subject string) {
	s.entra.mu.Lock()
	defer s.entra.mu.Unlock()
	s.entra.federatedSubjects = append(s.entra.federatedSubjects, subject)
}

// seededUUID derives a version-4-shaped GUID from a label and the scenario seed.
func seededUUID(label string, seed int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(seed))
	sum := sha256.Sum256(append([]byte("exo-sim/"+label+"/"), b[:]...))
	return formatUUID(sum[:16])
}

// servicePrincipalID is the object id of the app's service principal in the tenant (the token's oid).
func servicePrincipalID(tenantID, clientID string) string {
	sum := sha256.Sum256([]byte("exo-sim/sp/" + tenantID + "/" + clientID))
	return formatUUID(sum[:16])
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return formatUUID(b[:])
}

func formatUUID(b []byte) string {
	u := make([]byte, 16)
	copy(u, b)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// newClientSecret returns a secret shaped like Entra's (40 characters, "8Q~" after the first three).
func newClientSecret() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.~"
	b := make([]byte, 37)
	_, _ = rand.Read(b)
	out := make([]byte, 0, 40)
	for i, x := range b {
		if i == 3 {
			out = append(out, "8Q~"...)
		}
		out = append(out, alphabet[int(x)%len(alphabet)])
	}
	return string(out)
}
