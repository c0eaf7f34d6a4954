package exo

// Transport: one logical call sent until it succeeds or fails for good — concurrency slot, rate limiter,
// token, headers (research §1.4), redirects within the EXO host, retries (research §7) and classification.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// request is one logical HTTP call that send() may transmit several times.
type request struct {
	cmdlet, identity string
	url              string
	cost             int  // sub-requests it carries, for the rate limiter
	batch            bool // a $batch: counts SubRequests
	clientRequestID  string
	// idempotent: the request may be sent again after an unknown outcome (see Idempotent). readOnly: it
	// changes nothing, so an incomplete answer is merely transient.
	idempotent, readOnly bool
	// build returns the body for a given bearer token ($batch sub-requests carry the token inside the body).
	build  func(token string) ([]byte, error)
	header func(http.Header)
	// parse handles a 2xx response; a non-nil *Error that is Retryable is retried.
	parse func(status int, h http.Header, body []byte) *Error

	sentAt time.Time // of the last transmission
	// unknown is set once a transmission was sent and got no complete answer: it may have run.
	unknown bool
}

// send transmits r until it succeeds, fails for good, or the retry budget is spent. It owns the rules of
// research §7: Retry-After on 429, capped exponential backoff with jitter on 5xx/transient/reset/truncation
// (both by internal/retry's policy),
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
		if e.Kind == KindOutcomeUnknown {
			if r.readOnly {
				e.Kind = KindTransient
			} else {
				r.unknown = true
			}
		}
		if e.Err != nil && ctx.Err() != nil {
			err := fmt.Errorf("%s: %w", callName(r.cmdlet, r.identity), ctx.Err())
			if r.unknown {
				// Cancelled after the request went out: it may have run all the same.
				return unknownOutcome(err, r.cmdlet, r.identity)
			}
			return err
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
		if !e.Retryable() || attempt > c.opts.MaxRetries || (r.unknown && !r.idempotent) {
			if r.unknown {
				return unknownOutcome(e.public(), r.cmdlet, r.identity)
			}
			return e.public()
		}
		// The shared policy (internal/retry): the service's Retry-After up to MaxRetryWait, else backoff; a
		// longer Retry-After ends the call with the service's error.
		var retryAfter time.Duration
		if e.HTTPStatus == http.StatusTooManyRequests || e.Kind == KindThrottled {
			retryAfter = e.RetryAfter
		}
		wait, ok := c.retry.Wait(attempt, retryAfter)
		if !ok {
			if r.unknown {
				return unknownOutcome(e.public(), r.cmdlet, r.identity)
			}
			return e.public()
		}
		c.retries.Add(1)
		if e.HTTPStatus == http.StatusTooManyRequests {
			// The limiter pauses every sender until then and lowers the pace; wait there.
			c.lim.throttled(r.sentAt, wait)
			wait = 0
		}
		c.log.Debug("exo: retrying", zap.String("cmdlet", r.cmdlet), zap.String("identity", r.identity),
			zap.Int("attempt", attempt), zap.String("kind", e.Kind.String()), zap.Int("status", e.HTTPStatus),
			zap.Duration("wait", wait), zap.String("reason", e.Message))
		if err := c.clock.Sleep(ctx, wait); err != nil {
			err = fmt.Errorf("%s: %w", callName(r.cmdlet, r.identity), err)
			if r.unknown {
				return unknownOutcome(err, r.cmdlet, r.identity)
			}
			return err
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
	// Whether the request left: a failure before it was written (refused, DNS, TLS) is safe to retry; after
	// it, the cmdlet may have run and the outcome is unknown.
	var wrote atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	}))
	resp, err := c.hc.Do(req)
	if err != nil {
		e := transportError(err)
		if wrote.Load() && e.Kind == KindTransient {
			e.Kind = KindOutcomeUnknown
			e.Message = fmt.Sprintf("the request was sent, then the connection failed before a complete answer (%v)", err)
		}
		return &sendError{Error: e}
	}
	b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	_ = resp.Body.Close()
	c.lim.observe(resp.Header)
	// A $batch's sub-responses say how many of its sub-requests the service accepted; runChunk records them.
	if resp.StatusCode != http.StatusTooManyRequests && (!r.batch || resp.StatusCode >= 300) {
		c.lim.record(r.cost)
	}
	if rerr != nil {
		kind := KindTransient
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			kind = KindOutcomeUnknown // the cmdlet ran; what it did was in the part that never arrived
		}
		return &sendError{Error: &Error{Kind: kind, HTTPStatus: resp.StatusCode, RequestID: resp.Header.Get("request-id"),
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
			e.redirect = onBasePort(loc, c.base).String()
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

// sameOrSubHost compares host names (case-insensitively; a regional sub-host of the base is the same
// service) with the default ports treated as equal.
func sameOrSubHost(u, base *url.URL) bool {
	h, b := strings.ToLower(u.Hostname()), strings.ToLower(base.Hostname())
	if h != b && !strings.HasSuffix(h, "."+b) {
		return false
	}
	return u.Port() == base.Port() || defaultPort(u.Port())
}

// defaultPort reports the ports that name the service's default endpoint: none, 443, and 446, which the
// service is known to put in @odata.nextLink and redirect Location URLs (research exo-protocol §8; an
// open-source client of the same API rewrites :446 to :443).
func defaultPort(p string) bool { return p == "" || p == "443" || p == "446" }

// onBasePort rewrites a link on a default port to the port the client was configured with (none for the
// real service, the simulator's listen port in tests), so a ":446" link is followed on the endpoint that
// answers.
func onBasePort(u, base *url.URL) *url.URL {
	if !defaultPort(u.Port()) || u.Port() == base.Port() {
		return u
	}
	c := *u
	c.Host = u.Hostname()
	if p := base.Port(); p != "" {
		c.Host += ":" + p
	}
	return &c
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
