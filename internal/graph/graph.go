// Package graph reads the directory (users, groups, org contacts, domains, subscribed SKUs) from Microsoft
// Graph v1.0 through msgraph-sdk-go, into the plain structs of internal/directory. It is the only package in
// the module that imports the SDK: a cold build of the SDK takes minutes and gigabytes, so jobs, exo and config
// depend on small interfaces it satisfies (jobs.DirectoryReader), never on it.
//
// The SDK's traps (research/graph-protocol.md §0) and how this package avoids them:
//   - tokens are attached only for "valid hosts": the configured host is added to the Graph hosts;
//   - the PageIterator neither copies headers to page 2+ nor maps page-2+ errors to ODataError: pages are
//     followed here with the generated request builders (WithUrl), which send the same headers and use the
//     generated error mappings on every page;
//   - ODataError.Error() panics on a body without error.message: errors are read field by field (mapError);
//   - kiota's retry handler panics without ShouldRetry and truncates Retry-After: it is left out, and a
//     bounded retry transport below the middleware honours Retry-After (retry.go);
//   - request bodies are gzipped by the compression middleware ($batch): the simulator decodes them.
package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/exo-worker/worker/internal/retry"
	khttp "github.com/microsoft/kiota-http-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	msgraphauth "github.com/microsoftgraph/msgraph-sdk-go-core/authentication"
	"go.uber.org/zap"
)

// DefaultBaseURL is the global cloud's Graph root.
const DefaultBaseURL = "https://graph.microsoft.com"

// graphHosts are the hosts msgraph-sdk-go trusts with a token by default (research gotcha 1).
var graphHosts = []string{"graph.microsoft.com", "graph.microsoft.us", "dod-graph.microsoft.us", "graph.microsoft.de",
	"microsoftgraph.chinacloudapi.cn", "canary.graph.microsoft.com"}

// Options configure a Client.
type Options struct {
	// BaseURL is the Graph root, e.g. https://graph.microsoft.com, https://graph.microsoft.us or the simulator's
	// URL; "/v1.0" is added. Default DefaultBaseURL. It must be https: the SDK sends tokens over https only.
	BaseURL string
	// Scopes requested for tokens; default https://graph.microsoft.com/.default. A national cloud needs its own
	// (https://graph.microsoft.us/.default, ...).
	Scopes []string
	// Credential gets the tokens (an azidentity credential).
	Credential azcore.TokenCredential
	// HTTPClient supplies the transport (TLS roots, proxy). Its Timeout bounds each request including retries;
	// 0 leaves it to the caller's context.
	HTTPClient *http.Client
	// Logger receives retries and resyncs; default a no-op logger.
	Logger *zap.Logger
	// PageSize is $top for collection reads, 1..999; default 999 (fewest round trips).
	PageSize int
	// MaxRetries bounds retries of one request on 429, 503, 504 and connection errors; default 5.
	MaxRetries int
	// MaxRetryWait caps one wait; a Retry-After longer than this fails the request instead (its RetryAfter
	// says how long Graph asked for). Default retry.DefaultMaxWait (5 minutes), as the Exchange client.
	MaxRetryWait time.Duration
	// ValidHosts are further hosts the token may be sent to (the BaseURL host always may).
	ValidHosts []string
	// State, if set, keeps the directory and the delta links between Snapshots and across processes, so that
	// each Snapshot after the first is a delta round (see StateStore and the request plan in delta.go). Without
	// it every Snapshot lists the directory through pages of PageSize and keeps nothing.
	State StateStore
}

// Client reads the directory from Graph. It is safe for concurrent use; Snapshot calls run one at a time.
type Client struct {
	sdk      *msgraphsdk.GraphServiceClient
	adapter  *msgraphsdk.GraphRequestAdapter
	log      *zap.Logger
	pageSize int32
	state    StateStore
	rt       *retryTransport
	pages    atomic.Int64

	mu       sync.Mutex // serialises Snapshot; guards the delta state below
	users    *deltaState[userItem]
	groups   *deltaState[groupItem]
	contacts *deltaState[contactItem]
}

// New builds a Client. It does no I/O: the first token and request happen on the first read.
func New(opts Options) (*Client, error) {
	if opts.Credential == nil {
		return nil, errors.New("graph: no credential: set Options.Credential (an azidentity credential for the app registration)")
	}
	base := strings.TrimRight(strings.TrimSpace(opts.BaseURL), "/")
	if base == "" {
		base = DefaultBaseURL
	}
	base = strings.TrimSuffix(base, "/v1.0")
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("graph: base URL %q is not an absolute URL like https://graph.microsoft.com", opts.BaseURL)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("graph: base URL %q must use https: the SDK attaches tokens to https requests only", opts.BaseURL)
	}
	scopes := opts.Scopes
	if len(scopes) == 0 {
		scopes = []string{DefaultBaseURL + "/.default"}
	}
	// Without the configured host here the SDK sends every request without a token and never says why.
	hosts := append(append([]string{}, graphHosts...), u.Hostname())
	for _, h := range opts.ValidHosts {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	auth, err := msgraphauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(opts.Credential, scopes, hosts)
	if err != nil {
		return nil, fmt.Errorf("graph: token provider: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	var parent http.RoundTripper
	var timeout time.Duration
	if opts.HTTPClient != nil {
		parent, timeout = opts.HTTPClient.Transport, opts.HTTPClient.Timeout
	}
	if parent == nil {
		parent = khttp.GetDefaultTransport()
	}
	rt := &retryTransport{next: parent, maxRetries: opts.MaxRetries, log: log,
		policy: retry.Policy{Base: 500 * time.Millisecond, Max: 30 * time.Second, MaxWait: opts.MaxRetryWait}}
	if rt.maxRetries <= 0 {
		rt.maxRetries = 5
	}
	hc := &http.Client{
		Transport: khttp.NewCustomTransportWithParentTransport(rt, middlewares()...),
		// As kiota's default client: redirects are the redirect middleware's job.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       timeout,
	}
	adapter, err := msgraphsdk.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, nil, nil, hc)
	if err != nil {
		return nil, fmt.Errorf("graph: request adapter: %w", err)
	}
	adapter.SetBaseUrl(base + "/v1.0")
	ps := opts.PageSize
	if ps <= 0 || ps > 999 {
		ps = 999
	}
	return &Client{
		sdk: msgraphsdk.NewGraphServiceClient(adapter), adapter: adapter, log: log,
		pageSize: int32(ps), state: opts.State, rt: rt,
		users: newDeltaState[userItem]("users"), groups: newDeltaState[groupItem]("groups"),
		contacts: newDeltaState[contactItem]("contacts"),
	}, nil
}

// middlewares is the SDK's default pipeline minus its retry handler, in a fixed order (kiota builds its
// default list by ranging over a map, so its order changes from run to run).
func middlewares() []khttp.Middleware {
	opts := msgraphsdk.GetDefaultClientOptions()
	return []khttp.Middleware{
		msgraphcore.NewGraphTelemetryHandler(&opts),
		khttp.NewUrlReplaceHandler(true, msgraphcore.ReplacementPairs),
		khttp.NewRedirectHandler(),
		khttp.NewCompressionHandler(),
		khttp.NewParametersNameDecodingHandler(),
		khttp.NewUserAgentHandler(),
		khttp.NewHeadersInspectionHandler(),
	}
}

// Stats are the client's cumulative counters since New.
type Stats struct {
	Requests  int64 // HTTP round trips, retries and $batch envelopes included
	Retries   int64 // requests sent again after 429, 503, 504 or a connection error
	Throttled int64 // 429 answers seen (including those a retry then got past)
	Pages     int64 // collection and delta pages read
}

// Stats returns the cumulative counters.
func (c *Client) Stats() Stats {
	return Stats{Requests: c.rt.requests.Load(), Retries: c.rt.retries.Load(), Throttled: c.rt.throttled.Load(), Pages: c.pages.Load()}
}

func (s Stats) sub(o Stats) Stats {
	return Stats{Requests: s.Requests - o.Requests, Retries: s.Retries - o.Retries, Throttled: s.Throttled - o.Throttled, Pages: s.Pages - o.Pages}
}

func ctxErr(ctx context.Context, resource string) error {
	if err := ctx.Err(); err != nil {
		return &Error{Resource: resource, cause: err}
	}
	return nil
}
