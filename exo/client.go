// Package exo is a client of the Exchange Online admin REST API (the "adminapi" InvokeCommand endpoint the
// ExchangeOnlineManagement module uses): cmdlets over HTTPS, $batch, paging, throttling that learns the
// tenant's budget, typed errors, and an OPATH filter builder. The wire facts it relies on are collected in
// research/exo-protocol.md; section numbers in comments refer to that file.
package exo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/exo-worker/worker/internal/retry"
	"github.com/google/uuid"
	"go.uber.org/zap"
)

// anchorMailbox is the routing hint current app-only clients send (research §1.5); the tenant is appended.
const anchorMailbox = "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@"

// DefaultScope is the token scope of the global cloud's Exchange Online.
const DefaultScope = "https://outlook.office365.com/.default"

const (
	defaultConcurrency = 3 // research §7: about 3 concurrent requests per app and tenant; each may be a $batch of 10
	defaultMaxRetries  = 5
	defaultPageSize    = 1000
	maxPageSize        = 1000
	// BatchLimit is the most sub-requests one $batch carries: what the module and CIPP use (research §1.7).
	BatchLimit        = 10
	defaultRetryBase  = time.Second
	defaultRetryMax   = 30 * time.Second
	maxBodyBytes      = 256 << 20
	maxRedirects      = 3
	tokenEarlyRefresh = 2 * time.Minute
)

// Options configure a Client. Zero values get the documented defaults.
type Options struct {
	// BaseURL is the scheme and host of the EXO front door, e.g. https://outlook.office365.com.
	BaseURL string
	// Tenant is the tenant GUID or a tenant domain (contoso.onmicrosoft.com); it goes in the URL path and
	// the X-AnchorMailbox header.
	Tenant string
	// Credential obtains the bearer token (azidentity: certificate, secret, workload or managed identity).
	Credential azcore.TokenCredential
	// Scope of the token; default DefaultScope. Sovereign clouds have their own (research §1.8).
	Scope string
	// HTTPClient sends the requests; default a client with the system roots. Its redirect policy is not used:
	// the client follows redirects itself so that the bearer token is re-attached only within the EXO host.
	HTTPClient *http.Client
	// MaxConcurrency bounds in-flight HTTP requests to the tenant; default 3.
	MaxConcurrency int
	// RequestsPerSecond is the initial pace in sub-requests per second; 0 means unlimited until the first 429,
	// after which the client learns the tenant's budget.
	RequestsPerSecond float64
	// MaxRetries is how many times a failed request is re-sent (throttling, 5xx, transient exceptions, resets);
	// default 5; negative means never.
	MaxRetries int
	// PageSize is sent as Prefer: odata.maxpagesize; 1..1000, default 1000.
	PageSize int
	// Logger receives debug logs (warnings, retries) and throttling notices; nil means none.
	Logger *zap.Logger

	// RetryBaseDelay and RetryMaxDelay shape the capped exponential backoff (with jitter) between retries
	// that have no Retry-After; defaults 1 s and 30 s.
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
	// MaxRetryWait is the longest Retry-After the client waits; when the service asks for longer, the call
	// ends with its error (RetryAfter says how long) instead. Default 5 minutes. See internal/retry.
	MaxRetryWait time.Duration
	// Clock is the time source of every wait; default the wall clock.
	Clock Clock
}

// Client calls the Exchange Online admin API of one tenant. It is safe for concurrent use; all its calls
// share one concurrency bound and one learning rate limiter, since the service budgets per tenant.
type Client struct {
	opts      Options
	retry     retry.Policy
	base      *url.URL
	invokeURL string
	batchURL  string
	anchor    string
	connID    string
	hc        *http.Client
	sem       chan struct{}
	lim       *limiter
	log       *zap.Logger
	clock     Clock
	tok       tokenCache

	requests, subRequests, throttled, retries, refreshes atomic.Int64
}

// Stats are counters since the client was created.
type Stats struct {
	Requests    int64 // HTTP requests sent (a $batch counts once)
	SubRequests int64 // sub-requests carried inside $batch requests
	Throttled   int64 // 429 answers, whole requests and sub-responses
	Retries     int64 // re-sent requests and sub-requests
	// TokenRefreshes counts tokens fetched again after a 401.
	TokenRefreshes int64
	// Rate is the current pace in sub-requests per second; 0 = unlimited (no 429 seen, none configured).
	Rate float64
}

// Command is one cmdlet invocation.
type Command struct {
	Name   string         // e.g. Get-MailUser
	Params map[string]any // cmdlet parameters; JSON-encoded as given
	Select []string       // properties to return ($select); empty = all
}

// Response is one page of a cmdlet's output.
type Response struct {
	Values     []json.RawMessage // the objects (property bags with @odata annotations)
	Warnings   []string          // @adminapi.warnings, e.g. the no-op "no settings ... have been modified"
	RequestID  string            // response header request-id
	NextLink   string            // @odata.nextLink; empty on the last page
	HTTPStatus int
	BETarget   string // X-CalculatedBETarget
}

// New validates the options and returns a Client. It sends nothing.
func New(o Options) (*Client, error) {
	if o.BaseURL == "" {
		return nil, errors.New("exo: BaseURL is empty; set it to the Exchange Online host, e.g. https://outlook.office365.com")
	}
	u, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("exo: BaseURL %q is not an absolute http(s) URL such as https://outlook.office365.com", o.BaseURL)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("exo: BaseURL %q uses plain http; bearer tokens are only sent over https", o.BaseURL)
	}
	if strings.TrimSpace(o.Tenant) == "" {
		return nil, errors.New("exo: Tenant is empty; set the tenant id (GUID) or its onmicrosoft.com domain")
	}
	if o.Credential == nil {
		return nil, errors.New("exo: Credential is nil")
	}
	if o.Scope == "" {
		o.Scope = DefaultScope
	}
	switch {
	case o.MaxConcurrency < 0:
		return nil, fmt.Errorf("exo: MaxConcurrency %d is negative", o.MaxConcurrency)
	case o.MaxConcurrency == 0:
		o.MaxConcurrency = defaultConcurrency
	}
	switch {
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	case o.MaxRetries == 0:
		o.MaxRetries = defaultMaxRetries
	}
	switch {
	case o.PageSize == 0:
		o.PageSize = defaultPageSize
	case o.PageSize < 0 || o.PageSize > maxPageSize:
		return nil, fmt.Errorf("exo: PageSize %d is out of range; Exchange accepts 1 to %d", o.PageSize, maxPageSize)
	}
	if o.RequestsPerSecond < 0 {
		return nil, fmt.Errorf("exo: RequestsPerSecond %g is negative; use 0 for unlimited", o.RequestsPerSecond)
	}
	if o.RetryBaseDelay <= 0 {
		o.RetryBaseDelay = defaultRetryBase
	}
	if o.RetryMaxDelay <= 0 {
		o.RetryMaxDelay = defaultRetryMax
	}
	if o.RetryMaxDelay < o.RetryBaseDelay {
		o.RetryMaxDelay = o.RetryBaseDelay
	}
	if o.MaxRetryWait <= 0 {
		o.MaxRetryWait = retry.DefaultMaxWait
	}
	if o.Clock == nil {
		o.Clock = wallClock{}
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	hc := &http.Client{}
	if o.HTTPClient != nil {
		cp := *o.HTTPClient
		hc = &cp
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	tenantSeg := url.PathEscape(o.Tenant)
	root := u.Scheme + "://" + u.Host + strings.TrimRight(u.Path, "/") + "/adminapi/beta/" + tenantSeg
	c := &Client{
		opts:      o,
		retry:     retry.Policy{Base: o.RetryBaseDelay, Max: o.RetryMaxDelay, MaxWait: o.MaxRetryWait},
		base:      u,
		invokeURL: root + "/InvokeCommand",
		batchURL:  root + "/$batch",
		anchor:    anchorMailbox + o.Tenant,
		connID:    uuid.NewString(),
		hc:        hc,
		sem:       make(chan struct{}, o.MaxConcurrency),
		lim:       newLimiter(o.RequestsPerSecond, BatchLimit, o.Clock, log),
		log:       log,
		clock:     o.Clock,
		tok:       tokenCache{cred: o.Credential, scope: o.Scope, clock: o.Clock},
	}
	return c, nil
}

// CloseIdleConnections closes the keep-alive connections of the HTTP client, e.g. before shutting down an
// in-process simulator, whose Close waits for open connections.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Stats returns the counters so far.
func (c *Client) Stats() Stats {
	return Stats{
		Requests:       c.requests.Load(),
		SubRequests:    c.subRequests.Load(),
		Throttled:      c.throttled.Load(),
		Retries:        c.retries.Load(),
		TokenRefreshes: c.refreshes.Load(),
		Rate:           c.lim.rate(),
	}
}

// Invoke runs one command and returns its first page. Use Pages (or MailUsers) to read everything.
func (c *Client) Invoke(ctx context.Context, cmd Command) (*Response, error) {
	for resp, err := range c.Pages(ctx, cmd) {
		return resp, err
	}
	return nil, errors.New("exo: no response") // unreachable: Pages always yields at least once
}
