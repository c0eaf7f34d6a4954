package setup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Graph is the small Microsoft Graph client setup needs: applications, servicePrincipals and app role
// assignments, as plain JSON over net/http with an azidentity credential. It is not msgraph-sdk-go on purpose:
// four endpoints do not justify the SDK's five-minute cold build in every package that imports setup (the
// rule is that only internal/graph compiles it), and setup's requests and answers are small and flat.
type Graph struct {
	// BaseURL is the Graph root without the version (https://graph.microsoft.com); /v1.0 is appended.
	BaseURL string
	// Scopes are the delegated scopes to ask the credential for.
	Scopes     []string
	Credential azcore.TokenCredential
	HTTPClient *http.Client
}

// GraphError is a refused Graph request, with Graph's error code and text and the request id support asks for.
type GraphError struct {
	Method, Path string
	Status       int
	Code         string
	Message      string
	RequestID    string
}

func (e *GraphError) Error() string {
	return fmt.Sprintf("graph %s %s: %d %s: %s (request-id %s)", e.Method, e.Path, e.Status, e.Code, e.Message, e.RequestID)
}

// maxGraphBody bounds what setup reads of one answer; its answers are a few kilobytes.
const maxGraphBody = 8 << 20

// do sends one request; in is JSON-encoded when non-nil, out decoded when non-nil.
func (g *Graph) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(g.BaseURL, "/")+"/v1.0"+path, body)
	if err != nil {
		return err
	}
	tok, err := g.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: g.Scopes})
	if err != nil {
		return fmt.Errorf("graph sign-in: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := g.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("graph %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxGraphBody))
	if err != nil {
		return fmt.Errorf("graph %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		ge := &GraphError{Method: method, Path: path, Status: resp.StatusCode, RequestID: resp.Header.Get("request-id")}
		var env struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &env) == nil && env.Error.Code != "" {
			ge.Code, ge.Message = env.Error.Code, env.Error.Message
		} else {
			ge.Code, ge.Message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(raw))
		}
		return ge
	}
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("graph %s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// list GETs a collection, following @odata.nextLink within the same host.
func list[T any](ctx context.Context, g *Graph, path string) ([]T, error) {
	var all []T
	for path != "" {
		var page struct {
			Value    []T    `json:"value"`
			NextLink string `json:"@odata.nextLink"`
		}
		if err := g.do(ctx, http.MethodGet, path, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Value...)
		path = ""
		if page.NextLink != "" {
			u, err := url.Parse(page.NextLink)
			base, _ := url.Parse(g.BaseURL)
			if err != nil || base == nil || !strings.EqualFold(u.Hostname(), base.Hostname()) {
				return nil, fmt.Errorf("graph: next page link %q is not on %s", page.NextLink, g.BaseURL)
			}
			path = strings.TrimPrefix(u.RequestURI(), "/v1.0")
		}
	}
	return all, nil
}

// filterPath builds path?$filter=... with the OData string literal quoted.
func filterPath(path, prop, value string, sel ...string) string {
	q := url.Values{}
	q.Set("$filter", prop+" eq '"+strings.ReplaceAll(value, "'", "''")+"'")
	if len(sel) > 0 {
		q.Set("$select", strings.Join(sel, ","))
	}
	return path + "?" + q.Encode()
}

// The Graph shapes setup reads and writes (graph-docs-contrib application, servicePrincipal, appRoleAssignment).
type (
	application struct {
		ID                     string                   `json:"id,omitempty"`
		AppID                  string                   `json:"appId,omitempty"`
		DisplayName            string                   `json:"displayName,omitempty"`
		SignInAudience         string                   `json:"signInAudience,omitempty"`
		Tags                   []string                 `json:"tags,omitempty"`
		KeyCredentials         []keyCredential          `json:"keyCredentials,omitempty"`
		RequiredResourceAccess []requiredResourceAccess `json:"requiredResourceAccess,omitempty"`
	}
	keyCredential struct {
		KeyID               string `json:"keyId,omitempty"`
		Type                string `json:"type"`
		Usage               string `json:"usage"`
		Key                 string `json:"key,omitempty"`
		DisplayName         string `json:"displayName,omitempty"`
		CustomKeyIdentifier string `json:"customKeyIdentifier,omitempty"`
	}
	requiredResourceAccess struct {
		ResourceAppID  string           `json:"resourceAppId"`
		ResourceAccess []resourceAccess `json:"resourceAccess"`
	}
	resourceAccess struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	servicePrincipal struct {
		ID          string    `json:"id,omitempty"`
		AppID       string    `json:"appId,omitempty"`
		DisplayName string    `json:"displayName,omitempty"`
		AppRoles    []appRole `json:"appRoles,omitempty"`
	}
	appRole struct {
		ID                 string   `json:"id"`
		Value              string   `json:"value"`
		AllowedMemberTypes []string `json:"allowedMemberTypes"`
		IsEnabled          bool     `json:"isEnabled"`
	}
	appRoleAssignment struct {
		ID          string `json:"id,omitempty"`
		PrincipalID string `json:"principalId"`
		ResourceID  string `json:"resourceId"`
		AppRoleID   string `json:"appRoleId"`
	}
)
