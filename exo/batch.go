package exo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
)

// BatchResult is the outcome of one command of a Batch.
type BatchResult struct {
	Command  Command
	Response *Response // nil when Err is set
	Err      error     // an *Error for service refusals; a context error when cancelled
}

// Batch runs the commands through $batch, at most BatchLimit per request, several requests at once within
// MaxConcurrency. It returns one result per command, in input order; one command's failure never affects
// another's. Throttled and transient sub-requests are sent again (in a smaller batch) within the retry budget,
// and a 429 or 5xx of the whole request retries the whole request. Batch is meant for commands with
// single-page output (Set-*, Get-* by Identity): a sub-response's NextLink is returned, not followed.
func (c *Client) Batch(ctx context.Context, cmds []Command) []BatchResult {
	results := make([]BatchResult, len(cmds))
	var items []*batchItem
	for i, cmd := range cmds {
		results[i].Command = cmd
		body, err := cmd.body()
		if err == nil {
			var u string
			if u, err = c.commandURL(cmd.Select); err != nil {
				err = &Error{Kind: KindBadRequest, Cmdlet: cmd.Name, Identity: cmd.identity(), Message: err.Error()}
			} else {
				items = append(items, &batchItem{index: i, cmd: cmd, body: body, url: u, crid: uuid.NewString()})
				continue
			}
		}
		results[i].Err = err
	}
	var chunks [][]*batchItem
	for len(items) > 0 {
		n := min(BatchLimit, len(items))
		chunks = append(chunks, items[:n])
		items = items[n:]
	}
	work := make(chan []*batchItem)
	var wg sync.WaitGroup
	for range min(c.opts.MaxConcurrency, len(chunks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for chunk := range work {
				c.runChunk(ctx, chunk, results)
			}
		}()
	}
	for _, ch := range chunks {
		work <- ch
	}
	close(work)
	wg.Wait()
	return results
}

type batchItem struct {
	index    int
	cmd      Command
	body     []byte
	url      string
	crid     string
	attempts int // sub-request transmissions so far
	// unknown: a transmission carrying this command got no complete answer, so it may have run; a later
	// failure that does not say otherwise leaves its outcome unknown.
	unknown bool
}

// runChunk sends up to BatchLimit commands as one $batch and re-sends the sub-requests worth retrying until
// each has a final result. Each result is written to its own slot, so chunks need no locking.
func (c *Client) runChunk(ctx context.Context, chunk []*batchItem, results []BatchResult) {
	pending := chunk
	refreshed := false
	for len(pending) > 0 {
		subs, sentAt, unknown, err := c.sendBatch(ctx, pending)
		if unknown {
			for _, it := range pending {
				it.unknown = !readOnly(it.cmd.Name)
			}
		}
		if err != nil {
			// The whole request failed after its own retries: every command in it failed the same way.
			for _, it := range pending {
				results[it.index].Err = itemErr(forItem(err, it), it)
			}
			return
		}
		var retry []*batchItem
		var wait, throttleWait int64 // nanoseconds
		throttledHere, accepted := false, 0
		needRefresh := false
		for i, it := range pending {
			it.attempts++
			sr, ok := subs[strconv.Itoa(i)]
			var e *Error
			if !ok {
				e = &Error{Kind: KindOutcomeUnknown, Message: "the $batch response has no sub-response for this command (it may have run)"}
			} else {
				var resp *Response
				resp, e = sr.result()
				if e == nil {
					accepted++
					results[it.index].Response = resp
					for _, w := range resp.Warnings {
						c.log.Debug("exo: warning", zap.String("cmdlet", it.cmd.Name), zap.String("identity", it.cmd.identity()),
							zap.String("warning", w), zap.String("request_id", resp.RequestID))
					}
					continue
				}
				if sr.Status == http.StatusTooManyRequests {
					c.throttled.Add(1)
					throttledHere = true
					if e.RetryAfter <= c.opts.MaxRetryWait {
						throttleWait = max(throttleWait, int64(e.RetryAfter))
					}
				} else {
					accepted++
				}
			}
			e.Cmdlet, e.Identity, e.Attempts = it.cmd.Name, it.cmd.identity(), it.attempts
			if e.Kind == KindOutcomeUnknown {
				if readOnly(it.cmd.Name) {
					e.Kind = KindTransient
				} else {
					it.unknown = true
				}
			}
			switch {
			case e.HTTPStatus == http.StatusUnauthorized && !refreshed:
				needRefresh = true
				it.attempts-- // the refresh retry is not part of the retry budget
				retry = append(retry, it)
			case e.RetryAfter > c.opts.MaxRetryWait:
				// The service asked for longer than the policy waits (internal/retry): report it.
				results[it.index].Err = itemErr(e, it)
			case e.Retryable() && it.attempts <= c.opts.MaxRetries && (!it.unknown || Idempotent(it.cmd.Name)):
				if sr == nil || sr.Status != http.StatusTooManyRequests {
					wait = max(wait, int64(c.retry.Backoff(it.attempts)))
				}
				retry = append(retry, it)
			default:
				results[it.index].Err = itemErr(e, it)
			}
		}
		c.lim.record(accepted)
		if needRefresh {
			refreshed = true
			c.tok.invalidate("")
			c.refreshes.Add(1)
		}
		if len(retry) == 0 {
			return
		}
		c.retries.Add(int64(len(retry)))
		if throttledHere {
			d := throttleWait
			if d == 0 {
				d = int64(c.retry.Backoff(retry[0].attempts))
			}
			c.lim.throttled(sentAt, time.Duration(d))
		}
		if wait > 0 {
			c.log.Debug("exo: retrying sub-requests", zap.Int("count", len(retry)), zap.Duration("wait", time.Duration(wait)))
			if err := c.clock.Sleep(ctx, time.Duration(wait)); err != nil {
				for _, it := range retry {
					results[it.index].Err = itemErr(fmt.Errorf("%s: %w", callName(it.cmd.Name, it.cmd.identity()), err), it)
				}
				return
			}
		}
		pending = retry
	}
}

// itemErr is the final error of a command: of unknown outcome when an earlier transmission of it may have
// run and this failure does not say otherwise.
func itemErr(err error, it *batchItem) error {
	if !it.unknown {
		return err
	}
	return unknownOutcome(err, it.cmd.Name, it.cmd.identity())
}

// sendBatch sends one $batch request (retrying the whole request on 429/5xx, and on resets when every command
// in it is idempotent) and returns the sub-responses by id. unknown reports that a transmission got no
// complete answer, so its commands may have run.
func (c *Client) sendBatch(ctx context.Context, items []*batchItem) (subs map[string]*subResponse, sentAt time.Time, unknown bool, err error) {
	crid := uuid.NewString()
	idem, ro := true, true
	for _, it := range items {
		idem = idem && Idempotent(it.cmd.Name)
		ro = ro && readOnly(it.cmd.Name)
	}
	r := request{
		idempotent:      idem,
		readOnly:        ro,
		cmdlet:          "$batch",
		url:             c.batchURL,
		cost:            len(items),
		batch:           true,
		clientRequestID: crid,
		build:           func(token string) ([]byte, error) { return c.batchBody(items, token) },
		header: func(h http.Header) {
			h.Set("Prefer", "odata.continue-on-error")
		},
		parse: func(status int, h http.Header, b []byte) *Error {
			m, err := parseBatchResponse(maybeGunzip(b), h)
			if err != nil {
				return &Error{Kind: KindOutcomeUnknown, HTTPStatus: status, RequestID: h.Get("request-id"),
					Message: fmt.Sprintf("the $batch response is not valid JSON (%d bytes; truncated?)", len(b)), Err: err}
			}
			subs = m
			return nil
		},
	}
	if len(items) == 1 {
		r.cmdlet, r.identity = items[0].cmd.Name, items[0].cmd.identity()
	}
	if err := c.send(ctx, &r); err != nil {
		return nil, r.sentAt, r.unknown, err
	}
	return subs, r.sentAt, r.unknown, nil
}

// batchBody builds the $batch request: absolute sub-URLs, ids "0".."n-1", the full header set per
// sub-request including Authorization (research §1.7).
func (c *Client) batchBody(items []*batchItem, token string) ([]byte, error) {
	type subRequest struct {
		ID      string            `json:"id"`
		Method  string            `json:"method"`
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
	}
	reqs := make([]subRequest, len(items))
	for i, it := range items {
		h := http.Header{}
		c.setHeaders(h, token, it.crid)
		h.Del("Accept-Encoding")
		h.Set("X-CmdletName", it.cmd.Name)
		h.Set("Prefer", fmt.Sprintf("odata.maxpagesize=%d", c.opts.PageSize))
		hm := make(map[string]string, len(h))
		for k, v := range h {
			hm[k] = strings.Join(v, ", ")
		}
		reqs[i] = subRequest{ID: strconv.Itoa(i), Method: http.MethodPost, URL: it.url, Headers: hm, Body: it.body}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{"requests": reqs}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// subResponse is one entry of the $batch response's responses[].
type subResponse struct {
	ID      string
	Status  int
	Headers http.Header
	Body    []byte
	outer   http.Header
}

// result turns a sub-response into a Response or an *Error, exactly as a lone InvokeCommand would.
func (s *subResponse) result() (*Response, *Error) {
	h := s.Headers
	if h.Get("request-id") == "" && s.outer != nil {
		h = h.Clone()
		h.Set("request-id", s.outer.Get("request-id"))
	}
	if s.Status >= 200 && s.Status < 300 {
		return parseEnvelope(s.Status, h, s.Body)
	}
	return nil, parseErrorResponse(s.Status, h, s.Body)
}

// parseBatchResponse decodes {"responses":[{id,status,headers,body}]}. Sub-response bodies may arrive as
// JSON, as a JSON string holding JSON, or base64 (OData JSON batch allows it for non-JSON media types).
func parseBatchResponse(b []byte, outer http.Header) (map[string]*subResponse, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimSpace(b), &top); err != nil {
		return nil, err
	}
	var raw json.RawMessage
	for k, v := range top {
		if strings.EqualFold(k, "responses") {
			raw = v
		}
	}
	if raw == nil {
		return nil, fmt.Errorf("no responses member")
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, err
	}
	out := make(map[string]*subResponse, len(list))
	for _, item := range list {
		sr := &subResponse{Headers: http.Header{}, outer: outer}
		for k, v := range item {
			switch strings.ToLower(k) {
			case "id":
				var s string
				if json.Unmarshal(v, &s) != nil {
					var n json.Number
					if json.Unmarshal(v, &n) != nil {
						continue
					}
					s = n.String()
				}
				sr.ID = s
			case "status":
				var n int
				if json.Unmarshal(v, &n) != nil {
					var s string
					if json.Unmarshal(v, &s) == nil {
						n, _ = strconv.Atoi(s)
					}
				}
				sr.Status = n
			case "headers":
				var hm map[string]any
				if json.Unmarshal(v, &hm) == nil {
					for hk, hv := range hm {
						switch x := hv.(type) {
						case string:
							sr.Headers.Add(hk, x)
						case []any:
							for _, e := range x {
								sr.Headers.Add(hk, stringOf(e))
							}
						default:
							sr.Headers.Add(hk, stringOf(x))
						}
					}
				}
			case "body":
				sr.Body = subBody(v)
			}
		}
		if sr.ID != "" {
			out[sr.ID] = sr
		}
	}
	return out, nil
}

func subBody(v json.RawMessage) []byte {
	t := bytes.TrimSpace(v)
	if len(t) == 0 || string(t) == "null" {
		return nil
	}
	if t[0] != '"' {
		return t
	}
	var s string
	if json.Unmarshal(t, &s) != nil {
		return t
	}
	if js := strings.TrimSpace(s); strings.HasPrefix(js, "{") || strings.HasPrefix(js, "[") {
		return []byte(js)
	}
	if dec, err := base64.StdEncoding.DecodeString(s); err == nil {
		return dec
	}
	return []byte(s)
}

// forItem copies a whole-request failure onto one command, naming it.
func forItem(err error, it *batchItem) error {
	if e, ok := err.(*Error); ok {
		cp := *e
		cp.Cmdlet, cp.Identity = it.cmd.Name, it.cmd.identity()
		return &cp
	}
	return fmt.Errorf("%s: %w", callName(it.cmd.Name, it.cmd.identity()), err)
}
