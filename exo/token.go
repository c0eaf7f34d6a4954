package exo

// The bearer token: cached until shortly before expiry, dropped and fetched fresh (with a claims challenge)
// after a 401.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// tokenCache holds the current bearer token so that a 401 can drop it and force a new one. azidentity has
// its own cache and would hand back the refused token, so the refresh asks with a claims challenge: the
// service's own when its 401 carried one (Continuous Access Evaluation), else "issued not before now" in
// the same format, which makes MSAL skip its cache and the token endpoint issue a fresh token.
type tokenCache struct {
	cred   azcore.TokenCredential
	scope  string
	clock  Clock
	mu     sync.Mutex
	tok    azcore.AccessToken
	claims string
}

func (t *tokenCache) get(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok.Token != "" && t.clock.Now().Add(tokenEarlyRefresh).Before(t.tok.ExpiresOn) {
		return t.tok.Token, nil
	}
	opts := policy.TokenRequestOptions{Scopes: []string{t.scope}, Claims: t.claims}
	tok, err := t.cred.GetToken(ctx, opts)
	if err != nil && opts.Claims != "" && ctx.Err() == nil {
		// A credential that cannot pass claims still gets its chance to return a newer token.
		opts.Claims = ""
		tok, err = t.cred.GetToken(ctx, opts)
	}
	if err != nil {
		return "", err
	}
	t.tok, t.claims = tok, ""
	return tok.Token, nil
}

// invalidate drops the cached token; the next get asks for a fresh one with the given challenge.
func (t *tokenCache) invalidate(challenge string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tok = azcore.AccessToken{}
	t.claims = decodeClaims(challenge)
	if t.claims == "" {
		t.claims = fmt.Sprintf(`{"access_token":{"nbf":{"essential":true,"value":"%d"}}}`, t.clock.Now().Unix())
	}
}

// decodeClaims turns a WWW-Authenticate claims value (base64 of JSON, or JSON) into JSON, or "".
func decodeClaims(v string) string {
	if v == "" {
		return ""
	}
	if json.Valid([]byte(v)) {
		return v
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(v); err == nil && json.Valid(b) {
			return string(b)
		}
	}
	return ""
}
