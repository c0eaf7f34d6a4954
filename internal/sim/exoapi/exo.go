// Package exoapi is the simulated Exchange Online admin API (InvokeCommand and $batch): the cmdlets the
// worker uses, their parameter binding and errors as the service words them, OPATH filters (opath.go), JSON
// records as the REST endpoint shapes them (exojson.go), and paging through @odata.nextLink.
package exoapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exo-worker/worker/internal/sim/entra"
	"github.com/exo-worker/worker/internal/sim/faults"
	"github.com/exo-worker/worker/internal/sim/reqlog"
	"github.com/exo-worker/worker/internal/sim/tenant"
)

// This file is the HTTP face of the simulated Exchange Online admin API (research §1–§2):
// POST /adminapi/beta/{tenant}/InvokeCommand and POST /adminapi/beta/{tenant}/$batch, with the real
// envelope, headers, paging by re-POSTing to @odata.nextLink, bearer checks on every call and sub-request,
// and the injected faults.

// exoAudience is the token audience the EXO admin API accepts (the global cloud's, also for overridden hosts).
const exoAudience = "https://outlook.office365.com"

// maxBatchRequests is the largest $batch the simulator accepts; research §1.7 (the module and CIPP use 10).
const maxBatchRequests = 10

const (
	exoContentType = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
	maxRequestBody = 4 << 20
	maxPageSize    = 1000
	// pageTokenTTL bounds how long a nextLink stays valid; the oldest tokens are also evicted past maxPageTokens.
	pageTokenTTL  = 30 * time.Minute
	maxPageTokens = 10000
	backendTarget = "CH2PR11MB4321.namprd11.prod.outlook.com"
)

// exoState holds the continuation state behind @odata.nextLink tokens. Tokens stay valid until they expire
// (not only once), so a client that lost a page to a dropped connection can ask for it again.
type exoState struct {
	mu    sync.Mutex
	pages map[string]*pageState
	queue []string
}

type pageState struct {
	canon   []byte // canonical CmdletInput the token belongs to
	body    []byte // the original body, replayed for GET on a nextLink
	pg      pageRequest
	sel     string
	created time.Time
}

func (x *exoState) store(st *pageState) string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	x.mu.Lock()
	defer x.mu.Unlock()
	now := time.Now()
	st.created = now
	for len(x.queue) > 0 && (len(x.queue) >= maxPageTokens || now.Sub(x.pages[x.queue[0]].created) > pageTokenTTL) {
		delete(x.pages, x.queue[0])
		x.queue = x.queue[1:]
	}
	x.pages[tok] = st
	x.queue = append(x.queue, tok)
	return tok
}

func (x *exoState) lookup(tok string) *pageState {
	x.mu.Lock()
	defer x.mu.Unlock()
	st := x.pages[tok]
	if st == nil || time.Since(st.created) > pageTokenTTL {
		return nil
	}
	return st
}

// Service is the simulated Exchange Online admin API of one tenant.
type Service struct {
	tenant          *tenant.Tenant
	faults          *faults.State
	stale           *faults.StaleReads
	auth            *entra.Authority
	log             *reqlog.RequestLog
	defaultEncoding string
	exo             *exoState
	rbac            *rbacState   // rbac.go: roles, scopes, role groups; enforced for app tokens
	org             *orgState    // remotedomain.go: remote domains
	linkPort        atomic.Value // string: the port nextLinks name (SetNextLinkPort)
}

// Config is what the EXO admin API works on: the tenant, the injected faults, the authority whose tokens it
// accepts, the request log ($batch sub-requests are recorded one by one) and how error details are encoded
// ("pipe", the default, or "json").
type Config struct {
	Tenant         *tenant.Tenant
	Faults         *faults.State
	Auth           *entra.Authority
	Log            *reqlog.RequestLog
	DetailEncoding string
}

// New returns the API over cfg; Register adds its routes.
func New(cfg Config) *Service {
	return &Service{tenant: cfg.Tenant, faults: cfg.Faults, stale: &faults.StaleReads{}, auth: cfg.Auth, log: cfg.Log,
		defaultEncoding: cfg.DetailEncoding, exo: &exoState{pages: map[string]*pageState{}}, rbac: newRBAC(), org: newOrg()}
}

// Register adds the EXO admin API routes. Patterns keep the literal "beta" segment so they never
// overlap the Entra routes (/{tenant}/oauth2/...).
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("/adminapi/beta/{tenant}/InvokeCommand", s.handleInvokeCommand)
	mux.HandleFunc("/adminapi/beta/{tenant}/$batch", s.handleBatch)
}

// isTenant accepts the tenant GUID or the initial domain, as the service does.
func (s *Service) isTenant(seg string) bool {
	for _, v := range []string{s.tenant.ID(), s.tenant.InitialDomain(), s.auth.Creds.TenantID, s.auth.Creds.TenantDomain} {
		if v != "" && strings.EqualFold(seg, v) {
			return true
		}
	}
	return false
}

// invokeInput is one InvokeCommand call, from the wire or from a $batch sub-request.
type invokeInput struct {
	ctx    context.Context
	method string
	url    *url.URL
	header http.Header
	body   []byte
	host   string // echoed in @odata.context and nextLink
	tenant string // the tenant path segment as sent
}

type invokeOutput struct {
	status int
	header http.Header
	body   []byte // nil: no body (401)
}

func (s *Service) handleInvokeCommand(w http.ResponseWriter, r *http.Request) {
	e := reqlog.RecordFrom(r.Context())
	tenant := r.PathValue("tenant")
	if !s.isTenant(tenant) {
		s.writeOut(w, s.plainOut(http.StatusNotFound, reqlog.NewRequestID(), r.Header,
			fmt.Sprintf("The tenant '%s' was not found. Use the tenant id or its initial *.onmicrosoft.com domain.", tenant)), e)
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST")
		s.writeOut(w, s.plainOut(http.StatusMethodNotAllowed, reqlog.NewRequestID(), r.Header,
			"InvokeCommand accepts POST (and GET on an @odata.nextLink)."), e)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		s.writeOut(w, s.plainOut(http.StatusRequestEntityTooLarge, reqlog.NewRequestID(), r.Header,
			fmt.Sprintf("The request body could not be read: %v.", err)), e)
		return
	}
	out := s.invoke(invokeInput{ctx: r.Context(), method: r.Method, url: r.URL, header: r.Header, body: body,
		host: r.Host, tenant: tenant}, &e.Entry)
	s.writeOut(w, out, e)
}

// invoke runs one call: bearer check, body decoding, nextLink validation, throttle and error faults, the
// cmdlet, and the envelope. It fills the log entry's cmdlet, identity, params, request id and fault.
func (s *Service) invoke(in invokeInput, e *reqlog.Entry) invokeOutput {
	out := s.invokeInner(in, e)
	s.stampRate(out.header)
	return out
}

func (s *Service) invokeInner(in invokeInput, e *reqlog.Entry) invokeOutput {
	reqID := reqlog.NewRequestID()
	e.RequestID = reqID
	if out, ok := s.checkBearer(in, reqID); !ok {
		return out
	}
	q := in.url.Query()
	var st *pageState
	if tok := q.Get("$skiptoken"); tok != "" {
		if st = s.exo.lookup(tok); st == nil {
			return s.errorOut(in, reqID, badRequest("The $skiptoken in the URL is not valid or has expired; run the query again without it."))
		}
	}
	body := in.body
	if in.method == http.MethodGet {
		if st == nil {
			return s.errorOut(in, reqID, badRequest("GET is only supported on an @odata.nextLink; POST the CmdletInput to InvokeCommand."))
		}
		body = st.body
	}
	call, cerr := parseCmdletInput(body)
	if cerr != nil {
		return s.errorOut(in, reqID, cerr)
	}
	e.Cmdlet = call.name
	if spec, ok := cmdlets[strings.ToLower(call.name)]; ok {
		e.Cmdlet = spec.name
	}
	e.Identity = call.identity
	e.Params = call.logParams()
	if out, ok := s.checkRBAC(in, reqID, call); !ok {
		return out
	}
	if st != nil && !bytes.Equal(st.canon, call.canon) {
		return s.errorOut(in, reqID, badRequest("The request body differs from the one that produced this @odata.nextLink; "+
			"re-POST the same CmdletInput body to the nextLink."))
	}
	if ok, wait := s.faults.Take(); !ok {
		e.Fault = "throttle"
		secs := int(math.Ceil(wait.Seconds()))
		secs = max(secs, 1)
		ce := &cmdletError{status: http.StatusTooManyRequests, plain: true, retryAfter: time.Duration(secs) * time.Second,
			message: fmt.Sprintf("The request was throttled because the tenant's request budget is used up. Retry after %d seconds.", secs)}
		return s.errorOut(in, reqID, ce)
	}
	if s.faults.Roll(faults.KindError) {
		e.Fault = "error"
		tf := faults.TransientFaults[s.faults.Pick(len(faults.TransientFaults))]
		return s.errorOut(in, reqID, &cmdletError{status: tf.Status, exceptionType: tf.ExceptionType, message: tf.Message})
	}

	pg := pageRequest{size: pageSize(in.header, st)}
	if st != nil {
		pg.after, pg.returned = st.pg.after, st.pg.returned
	}
	res, cerr := s.runCmdlet(call, pg)
	if cerr != nil {
		return s.errorOut(in, reqID, cerr)
	}
	sel := q.Get("$select")
	if sel == "" && st != nil {
		sel = st.sel
	}
	var fields []string
	for f := range strings.SplitSeq(sel, ",") {
		if f = strings.TrimSpace(f); f != "" {
			fields = append(fields, f)
		}
	}
	values := make([]record, len(res.values))
	for i, v := range res.values {
		values[i] = v.project(fields)
	}
	next := ""
	if res.next != nil {
		tok := s.exo.store(&pageState{canon: call.canon, body: body, pg: *res.next, sel: sel})
		next = "https://" + s.linkHost(in.host) + "/adminapi/beta/" + in.tenant + "/InvokeCommand?"
		if sel != "" {
			next += "$select=" + url.QueryEscape(sel) + "&"
		}
		next += "$skiptoken=" + tok
	}
	h := s.baseHeaders(reqID, in.header)
	h.Set("Preference-Applied", fmt.Sprintf(`odata.include-annotations="*",odata.maxpagesize=%d`, pg.size))
	return invokeOutput{status: http.StatusOK, header: h, body: envelope(in.host, in.tenant, res.warnings, values, next)}
}

// checkBearer verifies the token; a refusal is a 401 with an empty body (research §2.4) and a
// WWW-Authenticate challenge.
func (s *Service) checkBearer(in invokeInput, reqID string) (invokeOutput, bool) {
	r, err := http.NewRequestWithContext(in.ctx, in.method, in.url.String(), nil)
	if err != nil {
		r = &http.Request{Method: in.method, URL: in.url}
	}
	r.Header = in.header
	r.Host = in.host
	verr := s.auth.VerifyResource(r, exoAudience)
	if verr == nil {
		return invokeOutput{}, true
	}
	h := s.baseHeaders(reqID, in.header)
	h.Del("Content-Type")
	h.Set("WWW-Authenticate", fmt.Sprintf(`Bearer client_id="00000002-0000-0ff1-ce00-000000000000", `+
		`token_types="app_asserted_user_v1 service_asserted_app_v1", authorization_uri="%s/common/oauth2/authorize", error="invalid_token"`, s.auth.URL))
	h.Set("x-ms-diagnostics", `2000001;reason="`+headerSafe(verr.Error())+`";error_category="invalid_token"`)
	return invokeOutput{status: http.StatusUnauthorized, header: h}, false
}

func headerSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' || r > 0x7e {
			return ' '
		}
		return r
	}, s)
	return truncate(s, 300)
}

// pageSize reads `Prefer: odata.maxpagesize=N` (spaces tolerated, N clamped to 1..1000); a nextLink keeps
// the first page's size when the header is missing.
func pageSize(h http.Header, st *pageState) int {
	for _, v := range h.Values("Prefer") {
		for part := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == ';' || r == ',' }) {
			k, val, ok := strings.Cut(part, "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "odata.maxpagesize") {
				if n, err := strconv.Atoi(strings.TrimSpace(val)); err == nil {
					return min(max(n, 1), maxPageSize)
				}
			}
		}
	}
	if st != nil {
		return st.pg.size
	}
	return maxPageSize
}

// envelope renders the success body of research §2.1.
func envelope(host, tenant string, warnings []string, values []record, next string) []byte {
	b := []byte(`{"@odata.context":`)
	b = appendJSONString(b, "https://"+host+"/adminapi/beta/"+tenant+"/$metadata#Collection(Exchange.GenericHashTable)")
	b = append(b, `,"adminapi.warnings@odata.type":"#Collection(String)","@adminapi.warnings":`...)
	b = appendJSONAny(b, orEmpty(warnings), aNone)
	b = append(b, `,"value":`...)
	b = appendJSONAny(b, values, aNone)
	if next != "" {
		b = append(b, `,"@odata.nextLink":`...)
		b = appendJSONString(b, next)
	}
	return append(b, '}')
}

// baseHeaders are the headers every EXO answer carries (research §2.1).
func (s *Service) baseHeaders(reqID string, req http.Header) http.Header {
	h := http.Header{}
	h.Set("Content-Type", exoContentType)
	h.Set("OData-Version", "4.0")
	h.Set("request-id", reqID)
	if c := req.Get("client-request-id"); c != "" {
		h.Set("client-request-id", c)
	}
	h.Set("X-CalculatedBETarget", backendTarget)
	h.Set("X-ExchangeVersion", "Version 15.20 (Build 7587.36)")
	h.Set("X-ConcurrencyCount", "0")
	h.Set("X-CombinedAppOnlyConcurrencyCount", "0")
	h.Set("OrganizationStatus", "Active")
	return h
}

func (s *Service) stampRate(h http.Header) {
	if h == nil {
		return
	}
	limit, remaining, reset := s.faults.RateHeaders()
	h.Set("Rate-Limit-Limit", strconv.Itoa(limit))
	h.Set("Rate-Limit-Remaining", strconv.Itoa(remaining))
	h.Set("Rate-Limit-Reset", reset.UTC().Format("2006-01-02T15:04:05.000Z"))
}

// detailEncoding picks the error-detail encoding: Options.DetailEncoding, or the request's
// X-ResponseFormat when the option is "auto".
func (s *Service) detailEncoding(req http.Header) string {
	switch strings.ToLower(s.defaultEncoding) {
	case DetailJSON:
		return DetailJSON
	case DetailAuto:
		if strings.EqualFold(req.Get("X-ResponseFormat"), "json") {
			return DetailJSON
		}
	}
	return DetailPipe
}

func (s *Service) errorOut(in invokeInput, reqID string, ce *cmdletError) invokeOutput {
	h := s.baseHeaders(reqID, in.header)
	if !ce.plain {
		h.Set("X-ExceptionType", ce.exceptionShortName())
	}
	if ce.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(ce.retryAfter/time.Second)))
	}
	return invokeOutput{status: ce.status, header: h, body: ce.body(s.detailEncoding(in.header))}
}

func (s *Service) plainOut(status int, reqID string, req http.Header, msg string) invokeOutput {
	ce := &cmdletError{status: status, plain: true, message: msg}
	h := s.baseHeaders(reqID, req)
	s.stampRate(h)
	return invokeOutput{status: status, header: h, body: ce.body(DetailPipe)}
}

// writeOut sends a response, unless an injected fault drops the connection (the call already ran) or
// cuts the body in half.
// The log entry is committed first, so it is in the log by the time the client sees the outcome.
func (s *Service) writeOut(w http.ResponseWriter, out invokeOutput, e *reqlog.Record) {
	for k, v := range out.header {
		w.Header()[k] = v
	}
	if s.faults.Roll(faults.KindReset) {
		e.Fault = "reset"
		e.Commit(0)
		dropConnection(w)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(out.body)))
	if len(out.body) >= 2 && s.faults.Roll(faults.KindTruncate) {
		e.Fault = "truncate"
		e.Commit(out.status)
		w.WriteHeader(out.status)
		_, _ = w.Write(out.body[:len(out.body)/2])
		_ = http.NewResponseController(w).Flush()
		// ErrAbortHandler is net/http's documented way to abort a response: it closes the connection
		// (HTTP/1.1) or resets the stream (HTTP/2) without logging; the client sees a short body.
		panic(http.ErrAbortHandler)
	}
	e.Commit(out.status)
	w.WriteHeader(out.status)
	_, _ = w.Write(out.body)
}

// dropConnection closes the connection without a response: a TCP reset on HTTP/1.1 (hijack, linger 0),
// a stream reset on HTTP/2 (which cannot be hijacked).
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = raw.Close()
}

// batchRequest is one entry of a $batch body.
type batchRequest struct {
	ID      string                     `json:"id"`
	Method  string                     `json:"method"`
	URL     string                     `json:"url"`
	Headers map[string]json.RawMessage `json:"headers"`
	Body    json.RawMessage            `json:"body"`
}

func (s *Service) handleBatch(w http.ResponseWriter, r *http.Request) {
	e := reqlog.RecordFrom(r.Context())
	e.Cmdlet, e.Batch = "$batch", true
	tenant := r.PathValue("tenant")
	reqID := reqlog.NewRequestID()
	e.RequestID = reqID
	if !s.isTenant(tenant) {
		s.writeOut(w, s.plainOut(http.StatusNotFound, reqID, r.Header,
			fmt.Sprintf("The tenant '%s' was not found. Use the tenant id or its initial *.onmicrosoft.com domain.", tenant)), e)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.writeOut(w, s.plainOut(http.StatusMethodNotAllowed, reqID, r.Header, "$batch accepts POST only."), e)
		return
	}
	in := invokeInput{ctx: r.Context(), method: r.Method, url: r.URL, header: r.Header, host: r.Host, tenant: tenant}
	if out, ok := s.checkBearer(in, reqID); !ok {
		s.stampRate(out.header)
		s.writeOut(w, out, e)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		s.writeOut(w, s.plainOut(http.StatusRequestEntityTooLarge, reqID, r.Header, fmt.Sprintf("The request body could not be read: %v.", err)), e)
		return
	}
	var batch struct {
		Requests []batchRequest `json:"requests"`
	}
	if err := json.Unmarshal(body, &batch); err != nil {
		s.writeOut(w, s.plainOut(http.StatusBadRequest, reqID, r.Header,
			fmt.Sprintf("The $batch body is not valid JSON: %v. Send {\"requests\":[{\"id\",\"method\",\"url\",\"headers\",\"body\"}]}.", err)), e)
		return
	}
	switch n := len(batch.Requests); {
	case n == 0:
		s.writeOut(w, s.plainOut(http.StatusBadRequest, reqID, r.Header, "The $batch request contains no requests."), e)
		return
	case n > maxBatchRequests:
		s.writeOut(w, s.plainOut(http.StatusBadRequest, reqID, r.Header,
			fmt.Sprintf("The $batch request contains %d requests; at most %d are allowed. Split it into several $batch requests.", n, maxBatchRequests)), e)
		return
	}
	seen := map[string]bool{}
	for _, sub := range batch.Requests {
		if sub.ID == "" || seen[sub.ID] {
			s.writeOut(w, s.plainOut(http.StatusBadRequest, reqID, r.Header,
				fmt.Sprintf("The $batch request has a missing or duplicate id %q; every request needs a unique id.", sub.ID)), e)
			return
		}
		seen[sub.ID] = true
	}

	resp := []byte(`{"responses":[`)
	for i, sub := range batch.Requests {
		if i > 0 {
			resp = append(resp, ',')
		}
		se := &reqlog.Entry{Time: time.Now(), Method: strings.ToUpper(sub.Method), InBatch: true}
		out := s.invokeSub(r, sub, se)
		se.Status = out.status
		se.ClientRequestID = out.header.Get("client-request-id")
		s.log.Add(*se)
		resp = appendSubResponse(resp, sub.ID, out)
	}
	resp = append(resp, "]}"...)
	h := s.baseHeaders(reqID, r.Header)
	s.stampRate(h)
	s.writeOut(w, invokeOutput{status: http.StatusOK, header: h, body: resp}, e)
}

// invokeSub resolves a sub-request's URL, headers and body and runs it like a top-level call.
func (s *Service) invokeSub(r *http.Request, sub batchRequest, se *reqlog.Entry) invokeOutput {
	hdr := http.Header{}
	for k, raw := range sub.Headers {
		var one string
		if err := json.Unmarshal(raw, &one); err == nil {
			hdr.Add(k, one)
			continue
		}
		var many []string
		if err := json.Unmarshal(raw, &many); err == nil {
			for _, v := range many {
				hdr.Add(k, v)
			}
		}
	}
	reqID := reqlog.NewRequestID()
	fail := func(status int, msg string) invokeOutput {
		se.RequestID = reqID
		return s.plainOut(status, reqID, hdr, msg)
	}
	u, err := url.Parse(sub.URL)
	if err != nil || sub.URL == "" {
		return fail(http.StatusBadRequest, fmt.Sprintf("The url %q of $batch request %q is not valid.", sub.URL, sub.ID))
	}
	host := r.Host
	if u.Host != "" {
		host = u.Host
	}
	path := u.Path
	if !strings.HasPrefix(path, "/") {
		path = "/adminapi/beta/" + r.PathValue("tenant") + "/" + path
	}
	se.Path = path
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) != 4 || !strings.EqualFold(segs[0], "adminapi") || !strings.EqualFold(segs[1], "beta") ||
		!strings.EqualFold(segs[3], "InvokeCommand") {
		return fail(http.StatusBadRequest, fmt.Sprintf("$batch request %q must address /adminapi/beta/{tenant}/InvokeCommand, not %q.", sub.ID, path))
	}
	if !s.isTenant(segs[2]) {
		return fail(http.StatusNotFound, fmt.Sprintf("The tenant '%s' was not found.", segs[2]))
	}
	method := strings.ToUpper(sub.Method)
	if method == "" {
		method = http.MethodPost
	}
	se.Method = method
	if method != http.MethodPost && method != http.MethodGet {
		return fail(http.StatusMethodNotAllowed, fmt.Sprintf("$batch request %q uses method %s; InvokeCommand accepts POST.", sub.ID, method))
	}
	body := []byte(sub.Body)
	var asString string
	if err := json.Unmarshal(sub.Body, &asString); err == nil {
		body = []byte(asString) // a body sent as a JSON-encoded string
	}
	if bytes.Equal(bytes.TrimSpace(body), []byte("null")) {
		body = nil
	}
	return s.invoke(invokeInput{ctx: r.Context(), method: method, url: u, header: hdr, body: body, host: host, tenant: segs[2]}, se)
}

// subResponseHeaders are the headers a sub-response carries.
var subResponseHeaders = []string{"Content-Type", "request-id", "client-request-id", "Retry-After", "WWW-Authenticate", "X-ExceptionType"}

func appendSubResponse(b []byte, id string, out invokeOutput) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(out.status), 10)
	b = append(b, `,"headers":{`...)
	n := 0
	for _, k := range subResponseHeaders {
		v := out.header.Get(k)
		if v == "" || k == "Content-Type" && len(out.body) == 0 {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, v)
	}
	b = append(b, '}')
	if len(out.body) > 0 {
		b = append(b, `,"body":`...)
		b = append(b, out.body...)
	}
	return append(b, '}')
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
