// Package exo is a client of the Exchange Online admin REST API (the "adminapi" InvokeCommand endpoint the
// ExchangeOnlineManagement module uses): cmdlets over HTTPS, $batch, paging, throttling that learns the
// tenant's budget, typed errors, and an OPATH filter builder. The wire facts it relies on are collected in
// research/exo-protocol.md; section numbers in comments refer to that file.
package exo

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
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
	// Clock is the time source of every wait; default the wall clock.
	Clock Clock
}

// Client calls the Exchange Online admin API of one tenant. It is safe for concurrent use; all its calls
// share one concurrency bound and one learning rate limiter, since the service budgets per tenant.
type Client struct {
	opts      Options
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

// Pages runs a command and yields its output page by page, following @odata.nextLink by POSTing the same
// body again (what the module does, research §1.3). Iteration stops at the first error, which is yielded.
// Nothing is read ahead: a caller that stops early sends no further request.
func (c *Client) Pages(ctx context.Context, cmd Command) iter.Seq2[*Response, error] {
	return func(yield func(*Response, error) bool) {
		body, err := cmd.body()
		if err != nil {
			yield(nil, err)
			return
		}
		u, err := c.commandURL(cmd.Select)
		if err != nil {
			yield(nil, &Error{Kind: KindBadRequest, Cmdlet: cmd.Name, Identity: cmd.identity(), Message: err.Error()})
			return
		}
		crid := uuid.NewString()
		seen := map[string]bool{}
		for page := 1; ; page++ {
			resp, err := c.invokeOnce(ctx, cmd, u, body, crid)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(resp, nil) || resp.NextLink == "" {
				return
			}
			next, err := c.checkNextLink(resp.NextLink)
			if err == nil && seen[next] {
				err = fmt.Errorf("the service returned the same next page link twice (%s)", next)
			}
			if err != nil {
				yield(nil, &Error{Kind: KindServer, Cmdlet: cmd.Name, Identity: cmd.identity(), RequestID: resp.RequestID,
					Message: fmt.Sprintf("cannot follow to page %d: %v", page+1, err)})
				return
			}
			seen[next] = true
			u = next
		}
	}
}

// Values runs a command and yields each output object decoded as T, across all pages. A decoding failure is
// yielded for that object and iteration goes on if the caller continues; a call failure ends it.
func Values[T any](ctx context.Context, c *Client, cmd Command) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for page, err := range c.Pages(ctx, cmd) {
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, raw := range page.Values {
				v, err := Decode[T](raw)
				if err != nil {
					err = fmt.Errorf("%s: %w", cmd.Name, err)
				}
				if !yield(v, err) {
					return
				}
			}
		}
	}
}

// MailUsers lists mail users matching an OPATH filter ("" = all), streaming page by page. sel trims the
// properties returned ($select); the fields of MailUser not selected stay zero.
func (c *Client) MailUsers(ctx context.Context, filter string, sel ...string) iter.Seq2[MailUser, error] {
	params := map[string]any{"ResultSize": "Unlimited"}
	if filter != "" {
		params["Filter"] = filter
	}
	return Values[MailUser](ctx, c, Command{Name: "Get-MailUser", Params: params, Select: sel})
}

// GetMailUser reads one mail user by identity (ExternalDirectoryObjectId, GUID, address, alias). A missing
// object is an *Error of KindNotFound.
func (c *Client) GetMailUser(ctx context.Context, identity string, sel ...string) (MailUser, error) {
	cmd := Command{Name: "Get-MailUser", Params: map[string]any{"Identity": identity}, Select: sel}
	resp, err := c.Invoke(ctx, cmd)
	if err != nil {
		return MailUser{}, err
	}
	if len(resp.Values) == 0 {
		return MailUser{}, &Error{Kind: KindNotFound, HTTPStatus: resp.HTTPStatus, Cmdlet: cmd.Name, Identity: identity,
			RequestID: resp.RequestID, Message: "the service returned no object for this identity"}
	}
	mu, err := Decode[MailUser](resp.Values[0])
	if err != nil {
		return MailUser{}, fmt.Errorf("Get-MailUser %q: %w", identity, err)
	}
	return mu, nil
}

// body is the InvokeCommand request body. A command whose Identity is present but empty is refused here:
// Get-* with a null Identity returns every object (research §3), which no caller means.
func (cmd Command) body() ([]byte, error) {
	if strings.TrimSpace(cmd.Name) == "" {
		return nil, &Error{Kind: KindBadRequest, Message: "command has no cmdlet name"}
	}
	params := cmd.Params
	if params == nil {
		params = map[string]any{}
	}
	for k, v := range params {
		if strings.EqualFold(k, "Identity") && (v == nil || fmt.Sprint(v) == "") {
			return nil, &Error{Kind: KindBadRequest, Cmdlet: cmd.Name,
				Message: "Identity is empty; refusing to send it (an empty Identity would address every object)"}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	in := map[string]any{"CmdletInput": map[string]any{"CmdletName": cmd.Name, "Parameters": params}}
	if err := enc.Encode(in); err != nil {
		return nil, &Error{Kind: KindBadRequest, Cmdlet: cmd.Name, Identity: cmd.identity(),
			Message: fmt.Sprintf("cannot encode the parameters as JSON: %v", err)}
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// identity is the command's -Identity as text, for error messages.
func (cmd Command) identity() string {
	for k, v := range cmd.Params {
		if strings.EqualFold(k, "Identity") && v != nil {
			if s, ok := v.(string); ok {
				return s
			}
			return fmt.Sprint(v)
		}
	}
	return ""
}

// commandURL is the InvokeCommand URL with $select; property names are checked so that nothing but names
// reaches the query string.
func (c *Client) commandURL(sel []string) (string, error) {
	if len(sel) == 0 {
		return c.invokeURL, nil
	}
	for _, s := range sel {
		if !validProperty(s) {
			return "", fmt.Errorf("$select property %q is not a property name (letters and digits only)", s)
		}
	}
	q := url.Values{"$select": {strings.Join(sel, ",")}}
	return c.invokeURL + "?" + q.Encode(), nil
}

// checkNextLink accepts a next page link only on the host the client talks to, so that the bearer token is
// never sent elsewhere. A relative link is resolved against the base URL.
func (c *Client) checkNextLink(link string) (string, error) {
	u, err := url.Parse(link)
	if err != nil {
		return "", fmt.Errorf("next page link %q: %w", link, err)
	}
	if !u.IsAbs() {
		u = c.base.ResolveReference(u)
	}
	if !sameOrSubHost(u, c.base) {
		return "", fmt.Errorf("next page link %q points outside %s", link, c.base.Host)
	}
	return u.String(), nil
}

// invokeOnce sends one InvokeCommand (or next page) request with retries and decodes the envelope.
func (c *Client) invokeOnce(ctx context.Context, cmd Command, u string, body []byte, crid string) (*Response, error) {
	var out *Response
	r := request{
		cmdlet: cmd.Name, identity: cmd.identity(), url: u, cost: 1, clientRequestID: crid,
		build: func(string) ([]byte, error) { return body, nil },
		header: func(h http.Header) {
			h.Set("X-CmdletName", cmd.Name)
			h.Set("Prefer", fmt.Sprintf("odata.maxpagesize=%d", c.opts.PageSize))
		},
		parse: func(status int, h http.Header, b []byte) *Error {
			resp, e := parseEnvelope(status, h, b)
			if e != nil {
				return e
			}
			out = resp
			return nil
		},
	}
	if err := c.send(ctx, &r); err != nil {
		return nil, err
	}
	for _, w := range out.Warnings {
		c.log.Debug("exo: warning", zap.String("cmdlet", cmd.Name), zap.String("identity", cmd.identity()),
			zap.String("warning", w), zap.String("request_id", out.RequestID))
	}
	return out, nil
}

// parseEnvelope decodes a success body: 200 with value, 200 without, or 204. Invalid JSON on a 200 means the
// body was cut short (research: truncated bodies happen), so it is a transient failure. A non-empty
// @adminapi.errors (non-terminating cmdlet errors) fails the call.
func parseEnvelope(status int, h http.Header, b []byte) (*Response, *Error) {
	resp := &Response{HTTPStatus: status, RequestID: h.Get("request-id"), BETarget: h.Get("X-CalculatedBETarget")}
	b = bytes.TrimSpace(maybeGunzip(b))
	if status == http.StatusNoContent || len(b) == 0 {
		return resp, nil
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, &Error{Kind: KindTransient, HTTPStatus: status, RequestID: resp.RequestID, BETarget: resp.BETarget,
			Message: fmt.Sprintf("the response body is not valid JSON (%d bytes; truncated?)", len(b)), Err: err}
	}
	get := func(keys ...string) json.RawMessage {
		for _, k := range keys {
			if v, ok := env[k]; ok {
				return v
			}
		}
		for k, v := range env {
			for _, want := range keys {
				if strings.EqualFold(k, want) {
					return v
				}
			}
		}
		return nil
	}
	if v := get("value"); len(v) > 0 && string(v) != "null" {
		if err := json.Unmarshal(v, &resp.Values); err != nil {
			// A single object instead of a collection: keep it as the one value.
			if bytes.HasPrefix(bytes.TrimSpace(v), []byte("{")) {
				resp.Values = []json.RawMessage{v}
			} else {
				return nil, &Error{Kind: KindServer, HTTPStatus: status, RequestID: resp.RequestID,
					Message: "the response's value member is neither a collection nor an object"}
			}
		}
	}
	resp.Warnings = stringList(get("@adminapi.warnings", "adminapi.warnings"))
	if link := get("@odata.nextLink", "odata.nextLink"); len(link) > 0 {
		var s string
		if json.Unmarshal(link, &s) == nil {
			resp.NextLink = s
		}
	}
	if errs := stringList(get("@adminapi.errors", "adminapi.errors")); len(errs) > 0 {
		e := &Error{HTTPStatus: status, RequestID: resp.RequestID, BETarget: resp.BETarget}
		var msgs []string
		for _, s := range errs {
			d := parseDetail(s)
			if e.ExceptionType == "" && e.ErrorID == "" {
				e.ErrorID, e.ExceptionType = d.errorID, d.exceptionType
			}
			msgs = append(msgs, d.message)
		}
		e.Message = truncate(strings.Join(msgs, "; "))
		e.Kind = classify(0, e.ExceptionType, e.Message)
		if e.Kind == KindUnknown {
			e.Kind = KindBadRequest
		}
		return nil, e
	}
	return resp, nil
}

// stringList decodes a JSON array of strings, tolerating non-string items and a single string.
func stringList(raw json.RawMessage) []string {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		var s string
		if json.Unmarshal(raw, &s) == nil && s != "" {
			return []string{s}
		}
		return nil
	}
	var out []string
	for _, it := range items {
		var s string
		if json.Unmarshal(it, &s) != nil {
			s = string(it)
		}
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// request is one logical HTTP call that send() may transmit several times.
type request struct {
	cmdlet, identity string
	url              string
	cost             int  // sub-requests it carries, for the rate limiter
	batch            bool // a $batch: counts SubRequests
	clientRequestID  string
	// build returns the body for a given bearer token ($batch sub-requests carry the token inside the body).
	build  func(token string) ([]byte, error)
	header func(http.Header)
	// parse handles a 2xx response; a non-nil *Error that is Retryable is retried.
	parse func(status int, h http.Header, body []byte) *Error

	sentAt time.Time // of the last transmission
}

// send transmits r until it succeeds, fails for good, or the retry budget is spent. It owns the rules of
// research §7: Retry-After on 429, capped exponential backoff with jitter on 5xx/transient/reset/truncation,
// one token refresh on 401, the concurrency bound and the rate limiter.
func (c *Client) send(ctx context.Context, r *request) error {
	refreshed := false
	redirects := 0
	u := r.url
	for attempt := 1; ; attempt++ {
		e := c.transmit(ctx, r, u)
		if e == nil {
			return nil
		}
		if e.Err != nil && ctx.Err() != nil {
			return fmt.Errorf("%s: %w", callName(r.cmdlet, r.identity), ctx.Err())
		}
		e.Cmdlet, e.Identity, e.Attempts = r.cmdlet, r.identity, attempt
		if e.HTTPStatus >= 300 && e.HTTPStatus < 400 && e.redirect != "" && redirects < maxRedirects {
			redirects++
			u = e.redirect
			attempt--
			continue
		}
		if e.Kind == KindUnauthorized && e.HTTPStatus == http.StatusUnauthorized && !refreshed {
			// The token may have expired early or been revoked: drop it, fetch a new one, try once more.
			refreshed = true
			c.tok.invalidate(e.claims)
			c.refreshes.Add(1)
			c.retries.Add(1)
			c.log.Debug("exo: 401, refreshing the token and retrying once", zap.String("cmdlet", r.cmdlet),
				zap.String("request_id", e.RequestID))
			attempt--
			continue
		}
		if !e.Retryable() || attempt > c.opts.MaxRetries {
			return e.public()
		}
		c.retries.Add(1)
		wait := c.backoff(attempt)
		if e.HTTPStatus == http.StatusTooManyRequests {
			// The limiter pauses every sender until Retry-After and lowers the pace; wait there.
			if e.RetryAfter > 0 {
				wait = e.RetryAfter
			}
			c.lim.throttled(r.sentAt, wait)
			wait = 0
		} else if e.Kind == KindThrottled && e.RetryAfter > 0 {
			wait = e.RetryAfter
		}
		c.log.Debug("exo: retrying", zap.String("cmdlet", r.cmdlet), zap.String("identity", r.identity),
			zap.Int("attempt", attempt), zap.String("kind", e.Kind.String()), zap.Int("status", e.HTTPStatus),
			zap.Duration("wait", wait), zap.String("reason", e.Message))
		if err := c.clock.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("%s: %w", callName(r.cmdlet, r.identity), err)
		}
	}
}

// sendError is an *Error plus what send() needs to act on it.
type sendError struct {
	*Error
	redirect string // Location of a 3xx within the EXO host
	claims   string // claims challenge of a 401, for the token request
}

func (e *sendError) public() *Error { return e.Error }

// transmit sends r once: concurrency slot, rate limiter, token, HTTP, body, classification.
func (c *Client) transmit(ctx context.Context, r *request, u string) *sendError {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return &sendError{Error: &Error{Kind: KindUnknown, Err: ctx.Err()}}
	}
	defer func() { <-c.sem }()
	if err := c.lim.wait(ctx, r.cost); err != nil {
		return &sendError{Error: &Error{Kind: KindUnknown, Err: err}}
	}
	token, err := c.tok.get(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return &sendError{Error: &Error{Kind: KindUnknown, Err: ctx.Err()}}
		}
		return &sendError{Error: &Error{Kind: KindUnauthorized, Err: err,
			Message: fmt.Sprintf("could not get an access token for %s: %v", c.opts.Scope, err)}}
	}
	body, err := r.build(token)
	if err != nil {
		return &sendError{Error: &Error{Kind: KindBadRequest, Err: err, Message: err.Error()}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return &sendError{Error: &Error{Kind: KindBadRequest, Err: err, Message: err.Error()}}
	}
	c.setHeaders(req.Header, token, r.clientRequestID)
	if r.header != nil {
		r.header(req.Header)
	}
	c.requests.Add(1)
	if r.batch {
		c.subRequests.Add(int64(r.cost))
	}
	r.sentAt = c.clock.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return &sendError{Error: transportError(err)}
	}
	b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	_ = resp.Body.Close()
	c.lim.observe(resp.Header)
	// A $batch's sub-responses say how many of its sub-requests the service accepted; runChunk records them.
	if resp.StatusCode != http.StatusTooManyRequests && (!r.batch || resp.StatusCode >= 300) {
		c.lim.record(r.cost)
	}
	if rerr != nil {
		return &sendError{Error: &Error{Kind: KindTransient, HTTPStatus: resp.StatusCode, RequestID: resp.Header.Get("request-id"),
			Message: fmt.Sprintf("the response body was cut short after %d bytes: %v", len(b), rerr), Err: rerr}}
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if e := r.parse(resp.StatusCode, resp.Header, b); e != nil {
			return &sendError{Error: e}
		}
		return nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		e := &sendError{Error: &Error{Kind: KindUnknown, HTTPStatus: resp.StatusCode, RequestID: resp.Header.Get("request-id")}}
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err == nil && loc.Scheme == "https" && sameOrSubHost(loc, c.base) {
			e.redirect = loc.String()
		}
		e.Message = fmt.Sprintf("Exchange Online redirected to %q, which is not within %s; set the tenant's exchange endpoint to the regional host",
			resp.Header.Get("Location"), c.base.Host)
		return e
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		c.throttled.Add(1)
	}
	e := &sendError{Error: parseErrorResponse(resp.StatusCode, resp.Header, b)}
	if e.Kind == KindThrottled && resp.StatusCode != http.StatusTooManyRequests {
		c.throttled.Add(1)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		e.claims = claimsChallenge(resp.Header.Values("WWW-Authenticate"))
	}
	return e
}

// setHeaders sets what the module sends on every request (research §1.4).
func (c *Client) setHeaders(h http.Header, token, crid string) {
	h.Set("Authorization", "Bearer "+token)
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	h.Set("X-ResponseFormat", "json")
	h.Set("X-AnchorMailbox", c.anchor)
	h.Set("connection-id", c.connID)
	h.Set("client-request-id", crid)
	h.Set("X-ClientApplication", "exo-worker")
	// Asking for gzip ourselves stops net/http from decoding transparently, so a body mislabeled as gzip
	// (seen on EXO error responses) reaches the parser instead of failing in the transport.
	h.Set("Accept-Encoding", "gzip")
}

// backoff is capped exponential with jitter: base·2^(attempt-1), capped, then a random 50–100 % of it.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.opts.RetryBaseDelay
	for i := 1; i < attempt && d < c.opts.RetryMaxDelay; i++ {
		d *= 2
	}
	d = min(d, c.opts.RetryMaxDelay)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// transportError classifies a failed round trip: certificate problems are permanent, everything else
// (reset, refused, timeout, EOF) is worth another try.
func transportError(err error) *Error {
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		certErr   *tls.CertificateVerificationError
		dnsErr    *net.DNSError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &certErr):
		return &Error{Kind: KindUnknown, Err: err,
			Message: fmt.Sprintf("TLS verification failed: %v; if a proxy or a test server signs the certificate, add its CA (tenant.ca_file)", err)}
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return &Error{Kind: KindUnknown, Err: err, Message: fmt.Sprintf("cannot resolve the Exchange host: %v", err)}
	}
	return &Error{Kind: KindTransient, Err: err, Message: fmt.Sprintf("connection failed: %v", err)}
}

// claimsChallenge extracts the claims parameter of a Bearer challenge (Continuous Access Evaluation).
func claimsChallenge(values []string) string {
	for _, v := range values {
		i := strings.Index(v, `claims="`)
		if i < 0 {
			continue
		}
		rest := v[i+len(`claims="`):]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			return rest[:j]
		}
	}
	return ""
}

func callName(cmdlet, identity string) string {
	if identity != "" {
		return fmt.Sprintf("%s %q", cmdlet, identity)
	}
	return cmdlet
}

func sameOrSubHost(u, base *url.URL) bool {
	h, b := strings.ToLower(u.Host), strings.ToLower(base.Host)
	return h == b || strings.HasSuffix(h, "."+b)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

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
