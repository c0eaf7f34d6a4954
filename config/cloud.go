package config

import (
	"fmt"
	"net/url"
	"strings"
)

// Clouds.
const (
	CloudGlobal    = "global"     // worldwide and GCC
	CloudUSGovHigh = "usgov-high" // GCC High
	CloudUSGovDoD  = "usgov-dod"  // DoD
	CloudChina     = "china"      // operated by 21Vianet
)

// Clouds lists the cloud names tenant.cloud accepts.
var Clouds = []string{CloudGlobal, CloudUSGovHigh, CloudUSGovDoD, CloudChina}

// Endpoints are where the worker sends its requests and which token scopes it asks for.
type Endpoints struct {
	// Cloud is the cloud name (one of Clouds).
	Cloud string
	// Authority is the Entra authority host with a trailing slash (azcore's ActiveDirectoryAuthorityHost form),
	// e.g. https://login.microsoftonline.com/.
	Authority string
	// GraphURL is the Graph root without the version, e.g. https://graph.microsoft.com (append /v1.0).
	GraphURL string
	// ExchangeURL is the EXO front door, e.g. https://outlook.office365.com (the exo client's BaseURL).
	ExchangeURL string
	// GraphScope and ExchangeScope are the client-credentials scopes (<resource>/.default). They stay the
	// cloud's when the hosts are overridden: the token audience is the resource, not the host.
	GraphScope    string
	ExchangeScope string
	// CustomAuthority is true when tenant.endpoints.authority replaced the cloud's authority: azidentity must
	// then skip instance discovery, which would ask login.microsoftonline.com about an unknown host.
	CustomAuthority bool
}

// cloudEndpoints holds each cloud's hosts (research: graph-protocol §5.4, exo-protocol §1.8).
var cloudEndpoints = map[string]Endpoints{
	CloudGlobal: {
		Authority: "https://login.microsoftonline.com/", GraphURL: "https://graph.microsoft.com",
		ExchangeURL: "https://outlook.office365.com",
	},
	CloudUSGovHigh: {
		Authority: "https://login.microsoftonline.us/", GraphURL: "https://graph.microsoft.us",
		ExchangeURL: "https://outlook.office365.us",
	},
	CloudUSGovDoD: {
		Authority: "https://login.microsoftonline.us/", GraphURL: "https://dod-graph.microsoft.us",
		ExchangeURL: "https://outlook-dod.office365.us",
	},
	CloudChina: {
		Authority: "https://login.chinacloudapi.cn/", GraphURL: "https://microsoftgraph.chinacloudapi.cn",
		ExchangeURL: "https://partner.outlook.cn",
	},
}

// Resolve returns the tenant's endpoints: the cloud's, with tenant.endpoints overriding hosts.
func (t Tenant) Resolve() (Endpoints, error) {
	name := strings.ToLower(strings.TrimSpace(t.Cloud))
	if name == "" {
		name = CloudGlobal
	}
	ep, ok := cloudEndpoints[name]
	if !ok {
		return Endpoints{}, fmt.Errorf("tenant.cloud: %q is not a cloud; use one of %s", Clip(t.Cloud), strings.Join(Clouds, ", "))
	}
	ep.Cloud = name
	ep.GraphScope = ep.GraphURL + "/.default"
	ep.ExchangeScope = ep.ExchangeURL + "/.default"
	overrides := []struct {
		path, value string
		dst         *string
	}{
		{"tenant.endpoints.authority", t.Endpoints.Authority, &ep.Authority},
		{"tenant.endpoints.graph", t.Endpoints.Graph, &ep.GraphURL},
		{"tenant.endpoints.exchange", t.Endpoints.Exchange, &ep.ExchangeURL},
	}
	for _, o := range overrides {
		if strings.TrimSpace(o.value) == "" {
			continue
		}
		u, err := checkEndpoint(o.value)
		if err != nil {
			return Endpoints{}, fmt.Errorf("%s: %w", o.path, err)
		}
		*o.dst = u
	}
	if strings.TrimSpace(t.Endpoints.Authority) != "" {
		ep.Authority += "/"
		ep.CustomAuthority = true
	}
	return ep, nil
}

// checkEndpoint accepts an https URL of a host (optionally with a port), and returns it without a trailing
// slash. A path is refused: MSAL reads the first path segment of the authority as the tenant, and the exo
// and Graph clients add their own paths.
func checkEndpoint(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not a URL; write it as https://host[:port]", Clip(raw))
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("%q must use https (azidentity refuses other authorities, and tokens must not travel in clear); write it as https://%s", Clip(raw), Clip(u.Host))
	}
	if p := strings.Trim(u.Path, "/"); p != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q has a path, query or user part; give only the host: https://%s", Clip(raw), Clip(u.Host))
	}
	return "https://" + u.Host, nil
}
