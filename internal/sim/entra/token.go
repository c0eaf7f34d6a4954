package entra

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // RS256 assertions carry a SHA-1 x5t thumbprint; not used for security here
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The simulator's access tokens are JWTs signed with HMAC-SHA256 under s.tokenKey. Real Entra signs RS256 with
// keys published at jwks_uri, but clients treat access tokens as opaque, so only the simulator itself has to
// read them back; a symmetric key keeps that cheap and still makes a forged or altered token fail.

// Token verification failures. VerifyBearer wraps exactly one of these, so the EXO and Graph handlers (and tests)
// can tell with errors.Is why a request was refused; all of them answer 401.
var (
	ErrBearerMissing   = errors.New("no bearer token: the Authorization header is missing")
	ErrBearerMalformed = errors.New("malformed bearer token")
	ErrBearerSignature = errors.New("bearer token signature is invalid")
	ErrBearerExpired   = errors.New("bearer token has expired")
	ErrBearerNotYet    = errors.New("bearer token is not yet valid")
	ErrBearerAudience  = errors.New("bearer token audience is wrong")
	ErrBearerTenant    = errors.New("bearer token was issued for another tenant")
)

// clockSkew is the leeway for nbf/exp checks, as token validators allow (Microsoft.IdentityModel uses 5 min;
// a smaller value keeps expiry tests quick).
const clockSkew = 5 * time.Second

// defaultTokenTTL matches Entra's usual app-only token lifetime (expires_in 3599).
const defaultTokenTTL = 3599 * time.Second

// accessClaims are the claims of an app-only access token, named as in real v1 Entra app tokens.
type accessClaims struct {
	Aud   string   `json:"aud"`
	Iss   string   `json:"iss"`
	Iat   int64    `json:"iat"`
	Nbf   int64    `json:"nbf"`
	Exp   int64    `json:"exp"`
	AppID string   `json:"appid"`
	IdTyp string   `json:"idtyp"`
	Oid   string   `json:"oid"`
	Sub   string   `json:"sub"`
	Tid   string   `json:"tid"`
	Roles []string `json:"roles,omitempty"`
	// Scp and UPN are set on delegated (user) tokens.
	Scp string `json:"scp,omitempty"`
	UPN string `json:"upn,omitempty"`
	UTI string `json:"uti"`
	Ver string `json:"ver"`
	// Epoch lets ExpireTokens invalidate every token issued so far, whatever its exp (a private claim; real
	// tokens have none, clients never read it).
	Epoch int64 `json:"xms_sim_epoch"`
}

// federatedClaims are the claims of a federated (workload identity) token, as a Kubernetes projected service
// account token carries them.
type federatedClaims struct {
	Aud string `json:"aud"`
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Iat int64  `json:"iat"`
	Nbf int64  `json:"nbf"`
	Exp int64  `json:"exp"`
}

// federationAudience is the audience Entra requires of federated credentials.
const federationAudience = "api://AzureADTokenExchange"

// rolesFor returns the application roles a token for resource carries: what the app registration of the
// README quickstart is granted.
func rolesFor(resource string) []string {
	switch {
	case isExchangeResource(resource):
		return []string{"Exchange.ManageAsApp"}
	case isGraphResource(resource):
		return []string{"User.Read.All", "Group.Read.All", "OrgContact.Read.All", "Organization.Read.All", "Domain.Read.All"}
	}
	return nil
}

// rolesOf is rolesFor, plus what the README quickstart grants the simulated worker app for the jobs that
// write through Graph (mailbox-license's membership writes); other apps hold the read roles only.
func (s *Authority) rolesOf(clientID, resource string) []string {
	roles := rolesFor(resource)
	if clientID == s.Creds.ClientID && isGraphResource(resource) {
		roles = append(roles, "GroupMember.ReadWrite.All")
	}
	return roles
}

// IssueToken returns a signed access token for audience (a resource such as https://outlook.office365.com)
// issued to clientID in this tenant, valid for ttl (0 = the server's token TTL).
func (s *Authority) IssueToken(audience, clientID string, ttl time.Duration) string {
	if ttl <= 0 {
		ttl = s.tokenTTL()
	}
	now := time.Now()
	aud := normalizeResource(audience)
	c := accessClaims{
		Aud:   aud,
		Iss:   s.issuer(s.Creds.TenantID),
		Iat:   now.Unix(),
		Nbf:   now.Unix(),
		Exp:   now.Add(ttl).Unix(),
		AppID: clientID,
		IdTyp: "app",
		Oid:   servicePrincipalID(s.Creds.TenantID, clientID),
		Sub:   servicePrincipalID(s.Creds.TenantID, clientID),
		Tid:   s.Creds.TenantID,
		Roles: s.rolesOf(clientID, aud),
		UTI:   randomID(16),
		Ver:   "1.0",
		Epoch: s.tokenEpoch(),
	}
	return signHS256(s.tokenKey, c)
}

// FederatedToken returns a federated identity token for subject (e.g.
// "system:serviceaccount:exo-worker:worker"), as a Kubernetes cluster would project into a pod. The token
// endpoint accepts it as a client_assertion for Creds.ClientID when subject is one of the app's federated
// credentials (FederatedSubject is registered by default). Tests write it to a file for
// WorkloadIdentityCredential.
func (s *Authority) FederatedToken(subject string, ttl time.Duration) string {
	now := time.Now()
	return signHS256(s.tokenKey, federatedClaims{
		Aud: federationAudience,
		Iss: federationIssuer,
		Sub: subject,
		Iat: now.Unix(),
		Nbf: now.Unix(),
		Exp: now.Add(ttl).Unix(),
	})
}

// federationIssuer is the issuer of federated tokens (the cluster's OIDC issuer). It does not depend on the
// listen address, which is not known yet when the token file is written at start.
const federationIssuer = "https://kubernetes.default.svc.cluster.local/exo-sim"

// VerifyBearer checks the Authorization header of r: a Bearer token this server issued, for audience (compared
// without a trailing slash), for this tenant, within its lifetime and not revoked by ExpireTokens. It returns
// nil when the request may proceed, else an error wrapping one of the ErrBearer* values.
func (s *Authority) VerifyBearer(r *http.Request, audience string) error {
	h := r.Header.Get("Authorization")
	if h == "" {
		return ErrBearerMissing
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return fmt.Errorf("%w: the Authorization header is not \"Bearer <token>\"", ErrBearerMalformed)
	}
	var c accessClaims
	if err := verifyHS256(s.tokenKey, strings.TrimSpace(tok), &c); err != nil {
		return err
	}
	now := time.Now()
	if c.Exp == 0 || now.After(time.Unix(c.Exp, 0).Add(clockSkew)) {
		return fmt.Errorf("%w: it expired at %s", ErrBearerExpired, time.Unix(c.Exp, 0).UTC().Format(time.RFC3339))
	}
	if c.Epoch < s.tokenEpoch() {
		return fmt.Errorf("%w: it was revoked (the simulator expired all tokens issued before now)", ErrBearerExpired)
	}
	if time.Unix(c.Nbf, 0).After(now.Add(clockSkew)) {
		return fmt.Errorf("%w: it is valid from %s", ErrBearerNotYet, time.Unix(c.Nbf, 0).UTC().Format(time.RFC3339))
	}
	if want := normalizeResource(audience); c.Aud != want {
		return fmt.Errorf("%w: it is for %q, this API needs %q", ErrBearerAudience, c.Aud, want)
	}
	if c.Tid != s.Creds.TenantID {
		return fmt.Errorf("%w: tid %q, this tenant is %q", ErrBearerTenant, c.Tid, s.Creds.TenantID)
	}
	return nil
}

// ExpireTokens makes every access token issued so far fail VerifyBearer as expired, as if the clock had jumped
// past their exp. Clients holding a cached token then get a 401 and must fetch a new one; that is how tests
// exercise token refresh without waiting an hour.
func (s *Authority) ExpireTokens() {
	s.entra.mu.Lock()
	s.entra.epoch++
	s.entra.mu.Unlock()
}

func (s *Authority) tokenEpoch() int64 {
	s.entra.mu.Lock()
	defer s.entra.mu.Unlock()
	return s.entra.epoch
}

func (s *Authority) tokenTTL() time.Duration {
	if s.TokenTTL > 0 {
		return s.TokenTTL
	}
	return defaultTokenTTL
}

// --- compact JWS helpers ---

var b64 = base64.RawURLEncoding

type jwsHeader struct {
	Alg     string   `json:"alg"`
	Typ     string   `json:"typ,omitempty"`
	X5t     string   `json:"x5t,omitempty"`
	X5tS256 string   `json:"x5t#S256,omitempty"`
	X5c     []string `json:"x5c,omitempty"`
	Kid     string   `json:"kid,omitempty"`
}

func signHS256(key []byte, claims any) string {
	hdr, _ := json.Marshal(jwsHeader{Alg: "HS256", Typ: "JWT"})
	body, _ := json.Marshal(claims)
	signing := b64.EncodeToString(hdr) + "." + b64.EncodeToString(body)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signing))
	return signing + "." + b64.EncodeToString(mac.Sum(nil))
}

// splitJWS decodes the three parts of a compact JWS; it fails on anything that is not one.
func splitJWS(tok string) (hdr jwsHeader, payload, sig []byte, signing string, err error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return hdr, nil, nil, "", fmt.Errorf("%w: a JWT has 3 dot-separated parts, this has %d", ErrBearerMalformed, len(parts))
	}
	h, err := b64.DecodeString(parts[0])
	if err != nil {
		return hdr, nil, nil, "", fmt.Errorf("%w: header is not base64url: %v", ErrBearerMalformed, err)
	}
	if err := json.Unmarshal(h, &hdr); err != nil {
		return hdr, nil, nil, "", fmt.Errorf("%w: header is not JSON: %v", ErrBearerMalformed, err)
	}
	payload, err = b64.DecodeString(parts[1])
	if err != nil {
		return hdr, nil, nil, "", fmt.Errorf("%w: payload is not base64url: %v", ErrBearerMalformed, err)
	}
	sig, err = b64.DecodeString(parts[2])
	if err != nil {
		return hdr, nil, nil, "", fmt.Errorf("%w: signature is not base64url: %v", ErrBearerMalformed, err)
	}
	return hdr, payload, sig, parts[0] + "." + parts[1], nil
}

// verifyHS256 checks an HS256 JWS under key and decodes its payload into claims.
func verifyHS256(key []byte, tok string, claims any) error {
	hdr, payload, sig, signing, err := splitJWS(tok)
	if err != nil {
		return err
	}
	if hdr.Alg != "HS256" {
		// Accepting the alg the token names is the classic JWT hole ("none", or RS/HS confusion).
		return fmt.Errorf("%w: alg %q, the simulator signs HS256", ErrBearerSignature, hdr.Alg)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signing))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return ErrBearerSignature
	}
	if err := json.Unmarshal(payload, claims); err != nil {
		return fmt.Errorf("%w: claims are not JSON: %v", ErrBearerMalformed, err)
	}
	return nil
}

// verifyRSAAssertion checks a PS256 or RS256 client assertion against cert's public key. MSAL signs PS256 with
// an x5t#S256 header for Entra authorities and RS256 with x5t only for ADFS/dSTS (MSAL v1.10.1
// accesstokens.go); both are accepted here because Entra accepts both.
func verifyRSAAssertion(hdr jwsHeader, signing string, sig []byte, cert *x509.Certificate) error {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return errors.New("the registered certificate has no RSA key")
	}
	digest := sha256.Sum256([]byte(signing))
	switch hdr.Alg {
	case "PS256":
		return rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	case "RS256":
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
	default:
		return fmt.Errorf("alg %q is not supported for client assertions (use PS256 or RS256)", hdr.Alg)
	}
}

// thumbprints returns the base64 (standard encoding, as MSAL writes them) SHA-1 and SHA-256 thumbprints of cert.
func thumbprints(cert *x509.Certificate) (x5t, x5tS256 string) {
	s1 := sha1.Sum(cert.Raw) //nolint:gosec // the x5t header is defined as SHA-1
	s256 := sha256.Sum256(cert.Raw)
	return base64.StdEncoding.EncodeToString(s1[:]), base64.StdEncoding.EncodeToString(s256[:])
}

// hexThumbprint is the upper-case hex SHA-1 thumbprint Entra prints in AADSTS700027.
func hexThumbprint(b64std string) string {
	raw, err := base64.StdEncoding.DecodeString(b64std)
	if err != nil {
		raw, err = base64.RawURLEncoding.DecodeString(b64std)
		if err != nil {
			return b64std
		}
	}
	return strings.ToUpper(hex.EncodeToString(raw))
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b64.EncodeToString(b)
}

// VerifyToken checks an access token the way the simulated APIs do (see VerifyBearer), for tests of other
// packages that obtain tokens through azidentity and want to know the simulator would accept them.
func (s *Authority) VerifyToken(token, audience string) error {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return s.VerifyBearer(r, audience)
}
