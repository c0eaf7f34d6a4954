package entra

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/exo-worker/worker/internal/sim/tenant"
)

const (
	exoResource   = "https://outlook.office365.com"
	graphResource = "https://graph.microsoft.com"
)

// Options configure a test authority.
type Options struct {
	TokenTTL time.Duration
	Seed     int64 // the scenario seed the tenant and client ids derive from
}

// testServer is an Authority served over HTTPS by httptest, closed when the test ends.
type testServer struct {
	*Authority
	srv *httptest.Server
}

func (s *testServer) HTTPClient() *http.Client { return s.srv.Client() }

// Credential is a real azidentity client-secret credential for the app registration.
func (s *testServer) Credential() (azcore.TokenCredential, error) {
	return azidentity.NewClientSecretCredential(s.Creds.TenantID, s.Creds.ClientID, s.Creds.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: clientOptions(s), DisableInstanceDiscovery: true})
}

// startEntra starts an authority (its tenant as the scenario of opts.Seed yields it) and closes it when the
// test ends.
func startEntra(t *testing.T, opts Options) *testServer {
	t.Helper()
	a, err := New(t.TempDir(), opts.TokenTTL)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	sc := tenant.Scenario{Seed: opts.Seed}.WithDefaults()
	if err := a.WriteCredentials(sc.TenantID, sc.TenantDomain, sc.Seed); err != nil {
		t.Fatalf("WriteCredentials: %v", err)
	}
	mux := http.NewServeMux()
	a.Register(mux)
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return &testServer{Authority: a, srv: srv}
}

func clientOptions(s *testServer) policy.ClientOptions {
	return policy.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: s.URL + "/"},
		Transport: s.HTTPClient(),
	}
}

func getJSON(t *testing.T, s *testServer, path string) (int, map[string]any) {
	t.Helper()
	resp, err := s.HTTPClient().Get(s.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("GET %s: body is not JSON: %v", path, err)
	}
	return resp.StatusCode, m
}

func postToken(t *testing.T, s *testServer, tenant string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := s.HTTPClient().PostForm(s.URL+"/"+tenant+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatalf("POST token: %v", err)
	}
	defer resp.Body.Close()
	var m map[string]any
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("token answer is not JSON: %v: %s", err, body)
	}
	return resp.StatusCode, m
}

func TestOpenIDConfiguration(t *testing.T) {
	s := startEntra(t, Options{})
	tests := []struct {
		name       string
		tenant     string
		wantStatus int
		wantIssuer string
		wantToken  string
	}{
		{"tenant GUID", s.Creds.TenantID, 200, s.URL + "/" + s.Creds.TenantID + "/v2.0", s.URL + "/" + s.Creds.TenantID + "/oauth2/v2.0/token"},
		{"initial domain answers with the GUID", s.Creds.TenantDomain, 200, s.URL + "/" + s.Creds.TenantID + "/v2.0", s.URL + "/" + s.Creds.TenantID + "/oauth2/v2.0/token"},
		{"domain case-insensitive", strings.ToUpper(s.Creds.TenantDomain), 200, s.URL + "/" + s.Creds.TenantID + "/v2.0", s.URL + "/" + s.Creds.TenantID + "/oauth2/v2.0/token"},
		{"organizations", "organizations", 200, s.URL + "/{tenantid}/v2.0", s.URL + "/organizations/oauth2/v2.0/token"},
		{"unknown tenant", "fabrikam.onmicrosoft.com", 400, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, m := getJSON(t, s, "/"+tc.tenant+"/v2.0/.well-known/openid-configuration")
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %v", status, tc.wantStatus, m)
			}
			if tc.wantStatus != 200 {
				if m["error"] != "invalid_tenant" || !strings.HasPrefix(m["error_description"].(string), "AADSTS90002: Tenant 'fabrikam.onmicrosoft.com' not found") {
					t.Errorf("error body %v, want invalid_tenant AADSTS90002 naming the tenant", m)
				}
				return
			}
			if m["issuer"] != tc.wantIssuer || m["token_endpoint"] != tc.wantToken {
				t.Errorf("issuer %v token_endpoint %v, want %s %s", m["issuer"], m["token_endpoint"], tc.wantIssuer, tc.wantToken)
			}
			if m["authorization_endpoint"] == "" || m["authorization_endpoint"] == nil {
				t.Error("authorization_endpoint missing: MSAL requires it")
			}
		})
	}
}

func TestCredentialGetsTokenTheEXOSideAccepts(t *testing.T) {
	s := startEntra(t, Options{})
	cred, err := s.Credential()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{exoResource + "/.default"}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if d := time.Until(tok.ExpiresOn); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("token expires in %v, want about an hour", d)
	}
	req := bearerRequest(tok.Token)
	if err := s.VerifyBearer(req, exoResource); err != nil {
		t.Errorf("VerifyBearer(EXO): %v", err)
	}
	if err := s.VerifyBearer(req, exoResource+"/"); err != nil {
		t.Errorf("VerifyBearer(EXO with trailing slash): %v", err)
	}
	if err := s.VerifyBearer(req, graphResource); !errors.Is(err, ErrBearerAudience) {
		t.Errorf("VerifyBearer(Graph) = %v, want ErrBearerAudience", err)
	}
	var c accessClaims
	if err := verifyHS256(s.tokenKey, tok.Token, &c); err != nil {
		t.Fatal(err)
	}
	if c.AppID != s.Creds.ClientID || c.Tid != s.Creds.TenantID || len(c.Roles) != 1 || c.Roles[0] != "Exchange.ManageAsApp" {
		t.Errorf("claims %+v: want appid, tid of the sim and roles [Exchange.ManageAsApp]", c)
	}
}

func bearerRequest(tok string) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, "https://127.0.0.1/adminapi/beta/x/InvokeCommand", nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}

func TestVerifyBearer(t *testing.T) {
	s := startEntra(t, Options{})
	good := s.IssueToken(exoResource, s.Creds.ClientID, time.Hour)
	now := time.Now()
	claims := func(mod func(*accessClaims)) string {
		c := accessClaims{Aud: exoResource, Tid: s.Creds.TenantID, AppID: s.Creds.ClientID, Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(time.Hour).Unix()}
		mod(&c)
		return signHS256(s.tokenKey, c)
	}
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + b64.EncodeToString([]byte(`{"aud":"https://outlook.office365.com","exp":9999999999}`)) + "." + parts[2]
	noneAlg := b64.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + "."
	tests := []struct {
		name   string
		header string
		want   error
	}{
		{"valid", "Bearer " + good, nil},
		{"scheme case-insensitive", "bearer " + good, nil},
		{"missing", "", ErrBearerMissing},
		{"basic scheme", "Basic dXNlcjpwdw==", ErrBearerMalformed},
		{"bearer without token", "Bearer ", ErrBearerMalformed},
		{"not a JWT", "Bearer abc", ErrBearerMalformed},
		{"payload not base64", "Bearer " + parts[0] + ".%%%." + parts[2], ErrBearerMalformed},
		{"tampered claims", "Bearer " + tampered, ErrBearerSignature},
		{"alg none", "Bearer " + noneAlg, ErrBearerSignature},
		{"signed with another key", "Bearer " + signHS256([]byte("another key"), accessClaims{Aud: exoResource}), ErrBearerSignature},
		{"expired", "Bearer " + claims(func(c *accessClaims) { c.Exp = now.Add(-time.Minute).Unix() }), ErrBearerExpired},
		{"not yet valid", "Bearer " + claims(func(c *accessClaims) { c.Nbf = now.Add(time.Hour).Unix() }), ErrBearerNotYet},
		{"wrong audience", "Bearer " + claims(func(c *accessClaims) { c.Aud = graphResource }), ErrBearerAudience},
		{"other tenant", "Bearer " + claims(func(c *accessClaims) { c.Tid = "00000000-0000-0000-0000-000000000001" }), ErrBearerTenant},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bearerRequest("")
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			err := s.VerifyBearer(r, exoResource)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("VerifyBearer = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifyBearer = %v, want %v", err, tc.want)
			}
			// Each reason is distinct, so handlers and logs can say exactly why a call was refused.
			for _, other := range []error{ErrBearerMissing, ErrBearerMalformed, ErrBearerSignature, ErrBearerExpired, ErrBearerNotYet, ErrBearerAudience, ErrBearerTenant} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("error %v also matches %v", err, other)
				}
			}
		})
	}

	t.Run("ExpireTokens revokes issued tokens only", func(t *testing.T) {
		s.ExpireTokens()
		if err := s.VerifyBearer(bearerRequest(good), exoResource); !errors.Is(err, ErrBearerExpired) {
			t.Fatalf("old token after ExpireTokens: %v, want ErrBearerExpired", err)
		}
		fresh := s.IssueToken(exoResource, s.Creds.ClientID, time.Hour)
		if err := s.VerifyBearer(bearerRequest(fresh), exoResource); err != nil {
			t.Fatalf("token issued after ExpireTokens: %v", err)
		}
	})
}

func TestTokenEndpointErrors(t *testing.T) {
	s := startEntra(t, Options{})
	base := func(mod func(url.Values)) url.Values {
		v := url.Values{
			"grant_type":    {"client_credentials"},
			"client_id":     {s.Creds.ClientID},
			"client_secret": {s.Creds.ClientSecret},
			"scope":         {exoResource + "/.default openid offline_access profile"},
			"client_info":   {"1"},
			"claims":        {`{"access_token":{"xms_cc":{"values":["CP1"]}}}`},
		}
		if mod != nil {
			mod(v)
		}
		return v
	}
	tests := []struct {
		name       string
		tenant     string
		form       url.Values
		wantStatus int
		wantError  string
		wantCode   int
		wantText   string
	}{
		{"ok by GUID", s.Creds.TenantID, base(nil), 200, "", 0, ""},
		{"ok by domain, graph", s.Creds.TenantDomain, base(func(v url.Values) { v.Set("scope", graphResource+"/.default") }), 200, "", 0, ""},
		{"wrong secret", s.Creds.TenantID, base(func(v url.Values) { v.Set("client_secret", "nope") }), 401, "invalid_client", 7000215, "Invalid client secret provided"},
		{"unknown client", s.Creds.TenantID, base(func(v url.Values) { v.Set("client_id", "11111111-2222-3333-4444-555555555555") }), 400, "unauthorized_client", 700016, "Application with identifier '11111111-2222-3333-4444-555555555555' was not found in the directory '" + s.Creds.TenantDomain + "'"},
		{"unknown tenant", "fabrikam.onmicrosoft.com", base(nil), 400, "invalid_request", 90002, "Tenant 'fabrikam.onmicrosoft.com' not found"},
		{"organizations", "organizations", base(nil), 400, "invalid_request", 50059, "No tenant-identifying information"},
		{"no credential", s.Creds.TenantID, base(func(v url.Values) { v.Del("client_secret") }), 401, "invalid_client", 7000218, "'client_assertion' or 'client_secret'"},
		{"no scope", s.Creds.TenantID, base(func(v url.Values) { v.Del("scope") }), 400, "invalid_request", 900144, "'scope'"},
		{"scope without .default", s.Creds.TenantID, base(func(v url.Values) { v.Set("scope", exoResource+"/Exchange.Manage") }), 400, "invalid_scope", 1002012, "/.default"},
		{"two resources", s.Creds.TenantID, base(func(v url.Values) { v.Set("scope", exoResource+"/.default "+graphResource+"/.default") }), 400, "invalid_scope", 28000, "more than one resource"},
		{"unknown resource", s.Creds.TenantID, base(func(v url.Values) { v.Set("scope", "https://example.com/.default") }), 400, "invalid_resource", 500011, "https://example.com was not found"},
		{"grant type", s.Creds.TenantID, base(func(v url.Values) { v.Set("grant_type", "password") }), 400, "unsupported_grant_type", 70003, "'password'"},
		{"no client id", s.Creds.TenantID, base(func(v url.Values) { v.Del("client_id") }), 400, "invalid_request", 900144, "'client_id'"},
		{"bad claims", s.Creds.TenantID, base(func(v url.Values) { v.Set("claims", "{") }), 400, "invalid_request", 50006, "claims"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, m := postToken(t, s, tc.tenant, tc.form)
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %v", status, tc.wantStatus, m)
			}
			if tc.wantStatus == 200 {
				if m["token_type"] != "Bearer" || m["access_token"] == "" || m["expires_in"].(float64) != 3599 {
					t.Errorf("token answer %v", m)
				}
				return
			}
			assertEntraError(t, m, tc.wantError, tc.wantCode, tc.wantText)
		})
	}

	t.Run("GET is refused", func(t *testing.T) {
		status, m := getJSON(t, s, "/"+s.Creds.TenantID+"/oauth2/v2.0/token")
		if status != 400 {
			t.Fatalf("status %d", status)
		}
		assertEntraError(t, m, "invalid_request", 900561, "only accepts POST")
	})

	t.Run("correlation id echoes client-request-id", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/"+s.Creds.TenantID+"/oauth2/v2.0/token",
			strings.NewReader(base(func(v url.Values) { v.Set("client_secret", "x") }).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("client-request-id", "c0ffee00-0000-4000-8000-000000000001")
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		if m["correlation_id"] != "c0ffee00-0000-4000-8000-000000000001" {
			t.Errorf("correlation_id %v", m["correlation_id"])
		}
	})
}

func assertEntraError(t *testing.T, m map[string]any, wantError string, wantCode int, wantText string) {
	t.Helper()
	if m["error"] != wantError {
		t.Errorf("error %v, want %s", m["error"], wantError)
	}
	codes, _ := m["error_codes"].([]any)
	if len(codes) != 1 || codes[0].(float64) != float64(wantCode) {
		t.Errorf("error_codes %v, want [%d]", m["error_codes"], wantCode)
	}
	desc, _ := m["error_description"].(string)
	if !strings.HasPrefix(desc, "AADSTS") || !strings.Contains(desc, wantText) || !strings.Contains(desc, "\r\nTrace ID: ") {
		t.Errorf("error_description %q, want AADSTS%d text containing %q and the trace lines", desc, wantCode, wantText)
	}
	for _, k := range []string{"timestamp", "trace_id", "correlation_id"} {
		if v, _ := m[k].(string); v == "" {
			t.Errorf("%s missing", k)
		}
	}
}

func TestCertificateCredential(t *testing.T) {
	s := startEntra(t, Options{})
	pemData, err := os.ReadFile(s.Creds.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pfx, err := os.ReadFile(s.Creds.PFXFile)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := os.ReadFile(s.Creds.PFXPasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		data, pw []byte
		sendX5C  bool
	}{
		{"PEM", pemData, nil, false},
		{"PFX with password", pfx, pw, false},
		{"PEM with x5c", pemData, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			certs, key, err := azidentity.ParseCertificates(tc.data, tc.pw)
			if err != nil {
				t.Fatalf("ParseCertificates: %v", err)
			}
			cred, err := azidentity.NewClientCertificateCredential(s.Creds.TenantDomain, s.Creds.ClientID, certs, key,
				&azidentity.ClientCertificateCredentialOptions{ClientOptions: clientOptions(s), DisableInstanceDiscovery: true, SendCertificateChain: tc.sendX5C})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{exoResource + "/.default"}})
			if err != nil {
				t.Fatalf("GetToken: %v", err)
			}
			if err := s.VerifyBearer(bearerRequest(tok.Token), exoResource); err != nil {
				t.Errorf("VerifyBearer: %v", err)
			}
		})
	}
	t.Run("wrong password fails to parse", func(t *testing.T) {
		if _, _, err := azidentity.ParseCertificates(pfx, []byte("wrong")); err == nil {
			t.Error("PFX opened with a wrong password")
		}
	})
}

// assertion builds a client assertion like MSAL's, with knobs to break it.
type assertion struct {
	alg       string // PS256 or RS256
	key       *rsa.PrivateKey
	x5tS256   string
	iss, sub  string
	aud       string
	nbf, exp  time.Time
	corruptSg bool
}

func (a assertion) sign(t *testing.T) string {
	t.Helper()
	hdr, _ := json.Marshal(map[string]any{"alg": a.alg, "typ": "JWT", "x5t#S256": a.x5tS256})
	claims, _ := json.Marshal(map[string]any{"aud": a.aud, "iss": a.iss, "sub": a.sub, "jti": "j", "nbf": a.nbf.Unix(), "exp": a.exp.Unix()})
	signing := b64.EncodeToString(hdr) + "." + b64.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signing))
	var sig []byte
	var err error
	if a.alg == "RS256" {
		sig, err = rsa.SignPKCS1v15(rand.Reader, a.key, crypto.SHA256, digest[:])
	} else {
		sig, err = rsa.SignPSS(rand.Reader, a.key, crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	}
	if err != nil {
		t.Fatal(err)
	}
	if a.corruptSg {
		sig[0] ^= 0xff
	}
	return signing + "." + b64.EncodeToString(sig)
}

func TestClientAssertions(t *testing.T) {
	s := startEntra(t, Options{})
	key, err := clientKey()
	if err != nil {
		t.Fatal(err)
	}
	_, x5tS256 := thumbprints(s.entra.cert)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tokenURL := s.URL + "/" + s.Creds.TenantID + "/oauth2/v2.0/token"
	good := assertion{alg: "PS256", key: key, x5tS256: x5tS256, iss: s.Creds.ClientID, sub: s.Creds.ClientID, aud: tokenURL, nbf: now, exp: now.Add(10 * time.Minute)}
	mod := func(f func(*assertion)) assertion { a := good; f(&a); return a }
	tests := []struct {
		name      string
		a         assertion
		wantCode  int // 0 = accepted
		wantText  string
		assertion string // raw, overrides a
	}{
		{name: "PS256 accepted", a: good},
		{name: "RS256 accepted", a: mod(func(a *assertion) { a.alg = "RS256" })},
		{name: "aud by domain accepted", a: mod(func(a *assertion) { a.aud = s.URL + "/" + s.Creds.TenantDomain + "/oauth2/v2.0/token" })},
		{name: "unknown thumbprint", a: mod(func(a *assertion) { a.x5tS256 = base64.StdEncoding.EncodeToString(make([]byte, 32)) }), wantCode: 700027, wantText: "not registered on application"},
		{name: "signed by another key", a: mod(func(a *assertion) { a.key = otherKey }), wantCode: 700027, wantText: "invalid signature"},
		{name: "corrupt signature", a: mod(func(a *assertion) { a.corruptSg = true }), wantCode: 700027, wantText: "invalid signature"},
		{name: "expired", a: mod(func(a *assertion) { a.exp = now.Add(-time.Minute); a.nbf = now.Add(-11 * time.Minute) }), wantCode: 700024, wantText: "valid time range"},
		{name: "not yet valid", a: mod(func(a *assertion) { a.nbf = now.Add(time.Hour) }), wantCode: 700024, wantText: "valid time range"},
		{name: "iss is not the client", a: mod(func(a *assertion) { a.iss = "someone" }), wantCode: 700021, wantText: "doesn't match 'client_id'"},
		{name: "aud is another host", a: mod(func(a *assertion) {
			a.aud = "https://login.microsoftonline.com/" + s.Creds.TenantID + "/oauth2/v2.0/token"
		}), wantCode: 700024, wantText: "audience"},
		{name: "not a JWT", assertion: "abc", wantCode: 50027, wantText: "malformed"},
		{name: "alg none", assertion: b64.EncodeToString([]byte(`{"alg":"none","x5t#S256":"`+x5tS256+`"}`)) + ".e30.", wantCode: 700027, wantText: "invalid signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as := tc.assertion
			if as == "" {
				as = tc.a.sign(t)
			}
			status, m := postToken(t, s, s.Creds.TenantID, url.Values{
				"grant_type":            {"client_credentials"},
				"client_id":             {s.Creds.ClientID},
				"client_assertion_type": {jwtBearerType},
				"client_assertion":      {as},
				"scope":                 {exoResource + "/.default"},
			})
			if tc.wantCode == 0 {
				if status != 200 {
					t.Fatalf("status %d: %v", status, m)
				}
				return
			}
			if status == 200 {
				t.Fatalf("assertion accepted, want AADSTS%d", tc.wantCode)
			}
			codes, _ := m["error_codes"].([]any)
			if len(codes) != 1 || codes[0].(float64) != float64(tc.wantCode) || !strings.Contains(m["error_description"].(string), tc.wantText) {
				t.Errorf("got %v %v, want AADSTS%d containing %q", m["error_codes"], m["error_description"], tc.wantCode, tc.wantText)
			}
		})
	}
}

func TestWorkloadIdentity(t *testing.T) {
	s := startEntra(t, Options{})
	newCred := func(t *testing.T, tokenFile string) *azidentity.WorkloadIdentityCredential {
		t.Helper()
		cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: clientOptions(s), ClientID: s.Creds.ClientID, TenantID: s.Creds.TenantID,
			TokenFilePath: tokenFile, DisableInstanceDiscovery: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		return cred
	}
	scopes := policy.TokenRequestOptions{Scopes: []string{graphResource + "/.default"}}

	t.Run("token file written at start", func(t *testing.T) {
		tok, err := newCred(t, s.Creds.FederatedTokenFile).GetToken(context.Background(), scopes)
		if err != nil {
			t.Fatalf("GetToken: %v", err)
		}
		if err := s.VerifyBearer(bearerRequest(tok.Token), graphResource); err != nil {
			t.Errorf("VerifyBearer: %v", err)
		}
	})
	tests := []struct {
		name, token, want string
	}{
		{"unregistered subject", s.FederatedToken("system:serviceaccount:other:sa", time.Hour), "AADSTS700213"},
		{"expired", s.FederatedToken(s.Creds.FederatedSubject, -time.Minute), "AADSTS700024"},
		{"forged", signHS256([]byte("not the key"), federatedClaims{Aud: federationAudience, Iss: federationIssuer, Sub: s.Creds.FederatedSubject, Exp: time.Now().Add(time.Hour).Unix()}), "AADSTS700027"},
		{"wrong audience", signHS256(s.tokenKey, federatedClaims{Aud: "api://other", Iss: federationIssuer, Sub: s.Creds.FederatedSubject, Exp: time.Now().Add(time.Hour).Unix()}), "AADSTS700212"},
		{"wrong issuer", signHS256(s.tokenKey, federatedClaims{Aud: federationAudience, Iss: "https://evil", Sub: s.Creds.FederatedSubject, Exp: time.Now().Add(time.Hour).Unix()}), "AADSTS700211"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := t.TempDir() + "/token"
			if err := os.WriteFile(f, []byte(tc.token), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := newCred(t, f).GetToken(context.Background(), scopes)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("GetToken error %v, want %s", err, tc.want)
			}
		})
	}
	t.Run("added subject", func(t *testing.T) {
		s.AddFederatedSubject("system:serviceaccount:ops:runner")
		f := t.TempDir() + "/token"
		if err := os.WriteFile(f, []byte(s.FederatedToken("system:serviceaccount:ops:runner", time.Hour)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := newCred(t, f).GetToken(context.Background(), scopes); err != nil {
			t.Fatalf("GetToken: %v", err)
		}
	})
}

// TestManagedIdentityAppService drives the unmodified ManagedIdentityCredential through its App Service path
// (IDENTITY_ENDPOINT + IDENTITY_HEADER). t.Setenv makes it sequential, as the environment is process-wide.
// MSAL caches managed identity tokens process-wide per identity and resource, so the failing cases ask for a
// resource no succeeding case has fetched (else a cached token would hide the failure).
func TestManagedIdentityAppService(t *testing.T) {
	s := startEntra(t, Options{})
	tests := []struct {
		name     string
		header   string
		id       azidentity.ManagedIDKind
		resource string
		wantErr  string
	}{
		{"system-assigned", s.Creds.IdentityHeader, nil, exoResource, ""},
		{"user-assigned by client id", s.Creds.IdentityHeader, azidentity.ClientID(s.Creds.ClientID), exoResource, ""},
		{"unknown client id", s.Creds.IdentityHeader, azidentity.ClientID("99999999-0000-0000-0000-000000000000"), graphResource, "Unable to load the proper Managed Identity"},
		{"wrong identity header", "wrong", nil, graphResource, "X-IDENTITY-HEADER"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("IDENTITY_ENDPOINT", s.ManagedIdentityEndpoint())
			t.Setenv("IDENTITY_HEADER", tc.header)
			cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
				ClientOptions: policy.ClientOptions{Transport: s.HTTPClient(), Retry: policy.RetryOptions{MaxRetries: -1}},
				ID:            tc.id,
			})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{tc.resource + "/.default"}})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("GetToken error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetToken: %v", err)
			}
			if err := s.VerifyBearer(bearerRequest(tok.Token), tc.resource); err != nil {
				t.Errorf("VerifyBearer: %v", err)
			}
		})
	}
}

func TestTokenTTLOption(t *testing.T) {
	s := startEntra(t, Options{TokenTTL: 90 * time.Second})
	status, m := postToken(t, s, s.Creds.TenantID, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {s.Creds.ClientID},
		"client_secret": {s.Creds.ClientSecret}, "scope": {exoResource + "/.default"},
	})
	if status != 200 || m["expires_in"].(float64) != 90 {
		t.Fatalf("status %d expires_in %v, want 200 and 90", status, m["expires_in"])
	}
	var c accessClaims
	if err := verifyHS256(s.tokenKey, m["access_token"].(string), &c); err != nil {
		t.Fatal(err)
	}
	if d := c.Exp - c.Iat; d != 90 {
		t.Errorf("exp-iat = %d, want 90", d)
	}
}

func TestWriteCredentials(t *testing.T) {
	a := startEntra(t, Options{Seed: 7})
	b := startEntra(t, Options{Seed: 7})
	c := startEntra(t, Options{Seed: 8})
	if a.Creds.TenantID != b.Creds.TenantID || a.Creds.ClientID != b.Creds.ClientID {
		t.Errorf("same seed, different ids: %+v %+v", a.Creds, b.Creds)
	}
	if a.Creds.TenantID == c.Creds.TenantID || a.Creds.ClientID == c.Creds.ClientID {
		t.Errorf("different seeds, same ids")
	}
	if a.Creds.ClientSecret == b.Creds.ClientSecret {
		t.Errorf("client secrets repeat across servers")
	}
	if len(a.Creds.ClientSecret) != 40 || a.Creds.ClientSecret[3:6] != "8Q~" {
		t.Errorf("secret %q is not shaped like an Entra secret", a.Creds.ClientSecret)
	}
	if a.Creds.TenantDomain == "" {
		t.Error("no tenant domain")
	}
	for _, f := range []string{a.Creds.CertFile, a.Creds.PFXFile, a.Creds.PFXPasswordFile, a.Creds.SecretFile, a.Creds.FederatedTokenFile} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600 (it holds a secret)", f, st.Mode().Perm())
		}
	}
	secret, _ := os.ReadFile(a.Creds.SecretFile)
	if string(secret) != a.Creds.ClientSecret {
		t.Error("secret file does not hold ClientSecret")
	}
	pemData, _ := os.ReadFile(a.Creds.CertFile)
	certs, _, err := azidentity.ParseCertificates(pemData, nil)
	if err != nil || len(certs) != 1 {
		t.Fatalf("cert file: %v", err)
	}
	if !certs[0].Equal(a.entra.cert) {
		t.Error("cert file holds another certificate than the one registered")
	}
	if _, ok := certs[0].PublicKey.(*rsa.PublicKey); !ok {
		t.Error("client certificate key is not RSA (MSAL signs PS256)")
	}
	if certs[0].KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		t.Error("client certificate cannot sign")
	}
}

// FuzzVerifyBearer feeds arbitrary Authorization headers to VerifyBearer: it must never panic and never accept
// anything but a token the server signed.
func FuzzVerifyBearer(f *testing.F) {
	s := &Authority{tokenKey: []byte("0123456789abcdef0123456789abcdef"), Creds: Credentials{TenantID: "t", ClientID: "c"}}
	valid := s.IssueToken(exoResource, "c", time.Hour)
	for _, seed := range []string{"", "Bearer " + valid, "Bearer a.b.c", "Bearer ..", "Basic x", "Bearer e30.e30.", "bearer " + valid + "x", "Bearer " + strings.Repeat(".", 5)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := bearerRequest("")
		r.Header.Set("Authorization", header)
		err := s.VerifyBearer(r, exoResource)
		if err == nil {
			_, tok, _ := strings.Cut(header, " ")
			tok = strings.TrimSpace(tok)
			var c accessClaims
			if verifyHS256(s.tokenKey, tok, &c) != nil {
				t.Fatalf("accepted a token the server did not sign: %q", header)
			}
		}
	})
}

// FuzzClientAssertion feeds arbitrary client assertions to the token endpoint's verifier: no panic, no token.
func FuzzClientAssertion(f *testing.F) {
	s := &Authority{tokenKey: []byte("0123456789abcdef0123456789abcdef"), URL: "https://127.0.0.1:1", Dir: f.TempDir()}
	if err := s.WriteCredentials("t", "t.onmicrosoft.com", 3); err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"", "a.b.c", "e30.e30.e30", s.FederatedToken("x", time.Hour),
		b64.EncodeToString([]byte(`{"alg":"PS256","x5t#S256":"AAAA"}`)) + ".e30.AAAA",
		b64.EncodeToString([]byte(`{"alg":"RS256"}`)) + ".e30."} {
		f.Add(seed)
	}
	r, _ := http.NewRequest(http.MethodPost, s.URL+"/t/oauth2/v2.0/token", nil)
	f.Fuzz(func(t *testing.T, as string) {
		if err := s.verifyAssertion(r, s.Creds.ClientID, as, nil, false); err == nil && as != "" {
			// Only a correctly signed federated token for a registered subject may pass; the fuzzer cannot forge one.
			var c federatedClaims
			if verifyHS256(s.tokenKey, as, &c) != nil {
				t.Fatalf("accepted %q", as)
			}
		}
	})
}
