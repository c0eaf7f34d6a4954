// Package graphapi is the simulated Microsoft Graph v1.0 the audits read: users, groups, contacts, domains
// and subscribedSkus with $select, $filter (graphfilter.go), $count, paging, delta rounds (graphdelta.go),
// $batch, its own throttle bucket and injectable faults (GraphFault).
package graphapi

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/exo-worker/worker/internal/sim/entra"
	"github.com/exo-worker/worker/internal/sim/faults"
	"github.com/exo-worker/worker/internal/sim/reqlog"
	"github.com/exo-worker/worker/internal/sim/tenant"
)

// This file is the HTTP face of the simulated Microsoft Graph v1.0 (research/graph-protocol.md §1–§3, §7):
// /users, /groups, /contacts, /domains, /subscribedSkus with $select, $top, $count and $skiptoken paging; their
// delta functions (graphdelta.go); $batch; the error body the SDK parses; bearer checks; throttling.

// graphAudience is the token audience Graph accepts (the global cloud's, also for overridden hosts).
const graphAudience = "https://graph.microsoft.com"

const (
	graphMaxBatch        = 20
	graphMaxTop          = 999
	graphDefaultPageSize = 100
	graphMaxBody         = 4 << 20
)

// GraphRequest describes a Graph request to a GraphFault's Match: Path is below /v1.0 (e.g. "/users/delta()"),
// Query the decoded query ($select, $skiptoken, ...).
type GraphRequest struct {
	Method  string
	Path    string
	Query   url.Values
	InBatch bool
}

// GraphFault answers matching Graph requests with an error instead of serving them, for tests that need a
// failure at an exact point (the second page of /users, the first delta round trip, ...).
type GraphFault struct {
	// Match selects the requests; nil matches every Graph request.
	Match func(GraphRequest) bool
	// Status is the HTTP status, e.g. 429, 503, 403.
	Status int
	// Code and Message are error.code and error.message; empty means the usual ones for Status.
	Code, Message string
	// RetryAfter is sent as Retry-After (whole seconds, at least 1) when positive.
	RetryAfter time.Duration
	// Times is how many matching requests it answers; 0 means once.
	Times int
}

// graphFront is the per-server state of the Graph front end: its own throttle bucket (Graph and Exchange are
// throttled separately; it follows the server's faults.Faults), injected faults and the page size. Of the server's
// faults.Faults, RTT (applied to every request by logged), ThrottleBudget/ThrottleBurst and ErrorRate (503 with
// Retry-After) apply to Graph; ResetRate and TruncateRate are EXO-only.
type graphFront struct {
	mu       sync.Mutex
	faults   *faults.State
	mirrored faults.Faults
	injected []*GraphFault
	pageSize int
}

// Service is the simulated Microsoft Graph (v1.0) of one tenant.
type Service struct {
	tenant *tenant.Tenant
	faults *faults.State
	auth   *entra.Authority
	log    *reqlog.RequestLog
	front  *graphFront
}

// Config is what the Graph API works on: the tenant, the server's faults (mirrored into Graph's own
// throttle bucket), the authority whose tokens it accepts and the request log ($batch items).
type Config struct {
	Tenant *tenant.Tenant
	Faults *faults.State
	Auth   *entra.Authority
	Log    *reqlog.RequestLog
}

// New returns the API over cfg; Register adds its routes.
func New(cfg Config) *Service {
	return &Service{tenant: cfg.Tenant, faults: cfg.Faults, auth: cfg.Auth, log: cfg.Log,
		front: &graphFront{faults: faults.NewState(faults.Faults{}), pageSize: graphDefaultPageSize}}
}

func (s *Service) graph() *graphFront { return s.front }

// faultsFor returns the Graph throttle state, re-armed whenever the server's faults.Faults changed (SetFaults).
func (gf *graphFront) faultsFor(cur faults.Faults) *faults.State {
	gf.mu.Lock()
	defer gf.mu.Unlock()
	if cur != gf.mirrored {
		gf.mirrored = cur
		gf.faults.Set(cur)
	}
	return gf.faults
}

func (gf *graphFront) size() int {
	gf.mu.Lock()
	defer gf.mu.Unlock()
	return gf.pageSize
}

// injectedFor returns the first injected fault matching r and uses one of its answers.
func (gf *graphFront) injectedFor(r GraphRequest) *GraphFault {
	gf.mu.Lock()
	defer gf.mu.Unlock()
	for i, f := range gf.injected {
		if f.Match != nil && !f.Match(r) {
			continue
		}
		f.Times--
		if f.Times <= 0 {
			gf.injected = slices.Delete(gf.injected, i, i+1)
		}
		return f
	}
	return nil
}

// InjectGraphFault arms f: the next f.Times Graph requests (or $batch items) it matches are answered with its
// error. faults.Faults are checked in the order they were injected.
func (s *Service) InjectGraphFault(f GraphFault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	gf := s.graph()
	gf.mu.Lock()
	defer gf.mu.Unlock()
	gf.injected = append(gf.injected, &f)
}

// SetGraphPageSize sets the page size of Graph collections read without $top and of delta rounds (default
// 100, like the service), so tests can page through a small tenant.
func (s *Service) SetGraphPageSize(n int) {
	gf := s.graph()
	gf.mu.Lock()
	defer gf.mu.Unlock()
	gf.pageSize = min(max(n, 1), graphMaxTop)
}

// GraphFaultStats reports the faults the Graph front end injected from the server's faults.Faults (throttling,
// errors); injected GraphFaults are not counted.
func (s *Service) GraphFaultStats() faults.FaultStats {
	return s.graph().faultsFor(s.faults.Get()).Snapshot()
}

// Register adds the Graph routes. Each entity set has its own literal patterns: a catch-all "/v1.0/"
// would overlap the Entra patterns (/{tenant}/oauth2/...), which ServeMux refuses.
func (s *Service) Register(mux *http.ServeMux) {
	for _, set := range []string{"users", "groups", "contacts", "domains", "subscribedSkus"} {
		mux.HandleFunc("/v1.0/"+set, s.handleGraph)
		mux.HandleFunc("/v1.0/"+set+"/{rest...}", s.handleGraph)
	}
	mux.HandleFunc("/v1.0/$batch", s.handleGraphBatch)
	mux.HandleFunc("/v1.0/{segment}", s.handleGraph)
	s.registerApps(mux)
}

// graphReq is one Graph request, from the wire or from a $batch item.
type graphReq struct {
	base     string // https://host[:port] the client called: links point back at the same host
	method   string
	path     string // below /v1.0, decoded, e.g. /users/delta()
	rawQuery string
	query    url.Values // keys lower-cased ($select → $select, $Top → $top)
	header   http.Header
	inBatch  bool
	body     []byte // the request body of a write (decompressed), nil for reads
}

// graphResp is the answer to one graphReq.
type graphResp struct {
	status int
	header http.Header
	body   any    // JSON-encodable; nil with text == "" means no body
	text   string // text/plain answers ($count)
}

// graphErr is a Graph error answer: status, error.code and error.message.
type graphErr struct {
	status     int
	code, msg  string
	retryAfter time.Duration
	header     map[string]string
}

func (e *graphErr) resp(reqID, clientReqID string) graphResp {
	h := http.Header{}
	for k, v := range e.header {
		h.Set(k, v)
	}
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(e.retryAfter.Seconds()))))
	}
	// error.code and error.message are always present: the SDK's ODataError.Error() dereferences the
	// message, and the SDK only parses an ODataError from a body with a JSON Content-Type.
	return graphResp{status: e.status, header: h, body: jobj{{"error", jobj{
		{"code", e.code}, {"message", e.msg},
		{"innerError", jobj{{"date", time.Now().UTC().Format("2006-01-02T15:04:05")}, {"request-id", reqID}, {"client-request-id", clientReqID}}},
	}}}}
}

func parseGraphQuery(raw string) (url.Values, *graphErr) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, &graphErr{status: 400, code: "BadRequest", msg: "The query specified in the URI is not valid. " + err.Error()}
	}
	out := make(url.Values, len(v))
	for k, vals := range v {
		lk := strings.ToLower(k)
		out[lk] = append(out[lk], vals...)
	}
	return out, nil
}

func (s *Service) handleGraph(w http.ResponseWriter, r *http.Request) {
	reqID := reqlog.NewRequestID()
	clientReqID := r.Header.Get("client-request-id")
	lr := reqlog.RecordFrom(r.Context())
	lr.Service, lr.Query, lr.RequestID = "graph", r.URL.RawQuery, reqID
	lr.Header = loggedHeader(r.Header)
	if err := s.auth.VerifyResource(r, graphAudience); err != nil {
		s.writeGraph(w, lr, graphAuthError(err).resp(reqID, clientReqID), reqID, clientReqID)
		return
	}
	if gerr := s.authorizeRead(r); gerr != nil {
		s.writeGraph(w, lr, gerr.resp(reqID, clientReqID), reqID, clientReqID)
		return
	}
	q, qerr := parseGraphQuery(r.URL.RawQuery)
	if qerr != nil {
		s.writeGraph(w, lr, qerr.resp(reqID, clientReqID), reqID, clientReqID)
		return
	}
	body, berr := readWriteBody(r)
	if berr != nil {
		s.writeGraph(w, lr, berr.resp(reqID, clientReqID), reqID, clientReqID)
		return
	}
	resp := s.serveGraph(graphReq{base: s.requestBase(r), method: r.Method, path: strings.TrimPrefix(r.URL.Path, "/v1.0"),
		rawQuery: r.URL.RawQuery, query: q, header: r.Header, body: body}, reqID, clientReqID, &lr.Entry)
	s.writeGraph(w, lr, resp, reqID, clientReqID)
}

// requestBase is the scheme and host the client called. Graph's links point back at the host that was
// called; a client trusting only that host with its token (the SDK's valid hosts) must get links to it.
func (s *Service) requestBase(r *http.Request) string {
	if r.Host == "" {
		return s.auth.URL
	}
	return "https://" + r.Host
}

// loggedHeader keeps the request headers for the log without the credential.
func loggedHeader(h http.Header) http.Header {
	c := h.Clone()
	if c.Get("Authorization") != "" {
		c.Set("Authorization", "Bearer (redacted)")
	}
	return c
}

func graphAuthError(err error) *graphErr {
	challenge := `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`
	msg := "Access token validation failure. " + err.Error()
	switch {
	case errors.Is(err, entra.ErrBearerMissing):
		msg = "Access token is empty."
	case errors.Is(err, entra.ErrBearerExpired) && strings.Contains(err.Error(), "revoked"):
		// A token revoked before its expiry (Server.ExpireTokens): Graph answers CAE-capable clients (the SDK
		// declares capability CP1) with a claims challenge; the SDK then fetches a new token with those claims,
		// bypassing its cache, and retries once.
		claims := fmt.Sprintf(`{"access_token":{"nbf":{"essential":true,"value":"%d"}}}`, time.Now().Unix())
		challenge += `, error="insufficient_claims", claims="` + base64.StdEncoding.EncodeToString([]byte(claims)) + `"`
		msg = "Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp"
	}
	return &graphErr{status: 401, code: "InvalidAuthenticationToken", msg: msg, header: map[string]string{"WWW-Authenticate": challenge}}
}

// writeGraph writes the answer. The log entry is committed before the body goes out, so a client that has
// read a response always finds its entry in the log.
func (s *Service) writeGraph(w http.ResponseWriter, lr *reqlog.Record, resp graphResp, reqID, clientReqID string) {
	h := w.Header()
	for k, v := range resp.header {
		h[k] = v
	}
	h.Set("request-id", reqID)
	if clientReqID != "" {
		h.Set("client-request-id", clientReqID)
	}
	h.Set("x-ms-ags-diagnostic", `{"ServerInfo":{"DataCenter":"Simulated","Slice":"E","Ring":"1","ScaleUnit":"000","RoleInstance":"SIM"}}`)
	switch {
	case resp.text != "":
		h.Set("Content-Type", "text/plain")
		lr.Commit(resp.status)
		w.WriteHeader(resp.status)
		_, _ = io.WriteString(w, resp.text)
	case resp.body != nil:
		b, err := json.Marshal(resp.body)
		if err != nil {
			b, _ = json.Marshal(jobj{{"error", jobj{{"code", "generalException"}, {"message", err.Error()}}}})
			resp.status = 500
		}
		h.Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
		lr.Commit(resp.status)
		w.WriteHeader(resp.status)
		_, _ = w.Write(b)
	default:
		lr.Commit(resp.status)
		w.WriteHeader(resp.status)
	}
}

// serveGraph answers one request (a wire request or a $batch item): injected faults, throttling, then routing.
func (s *Service) serveGraph(req graphReq, reqID, clientReqID string, e *reqlog.Entry) graphResp {
	gf := s.graph()
	if f := gf.injectedFor(GraphRequest{Method: req.method, Path: req.path, Query: req.query, InBatch: req.inBatch}); f != nil {
		if e != nil {
			e.Fault = "injected"
		}
		return injectedError(f).resp(reqID, clientReqID)
	}
	fs := gf.faultsFor(s.faults.Get())
	if ok, wait := fs.Take(); !ok {
		if e != nil {
			e.Fault = "throttle"
		}
		return (&graphErr{status: 429, code: "Request_ThrottledTemporarily", msg: "Your request is throttled temporarily. Please try after the duration in Retry-After.",
			retryAfter: max(wait, time.Second), header: map[string]string{
				"x-ms-throttle-scope":       "Tenant_Application/ReadWrite/" + s.auth.Creds.ClientID + "/" + s.auth.Creds.TenantID,
				"x-ms-throttle-information": "ResourceUnitLimitExceeded",
			}}).resp(reqID, clientReqID)
	}
	if fs.Roll(faults.KindError) {
		if e != nil {
			e.Fault = "error"
		}
		return (&graphErr{status: 503, code: "serviceNotAvailable", msg: "The service is temporarily unavailable. Please retry after some time.",
			retryAfter: time.Second}).resp(reqID, clientReqID)
	}
	resp, gerr := s.routeGraph(req)
	if gerr != nil {
		return gerr.resp(reqID, clientReqID)
	}
	return resp
}

func injectedError(f *GraphFault) *graphErr {
	code, msg := f.Code, f.Message
	if code == "" || msg == "" {
		dc, dm := defaultGraphError(f.Status)
		code, msg = orDefault(code, dc), orDefault(msg, dm)
	}
	return &graphErr{status: f.Status, code: code, msg: msg, retryAfter: f.RetryAfter}
}

func orDefault(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func defaultGraphError(status int) (string, string) {
	switch status {
	case 400:
		return "Request_BadRequest", "Invalid request."
	case 401:
		return "InvalidAuthenticationToken", "Access token validation failure."
	case 403:
		return "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
	case 404:
		return "Request_ResourceNotFound", "Resource does not exist or one of its queried reference-property objects are not present."
	case 429:
		return "Request_ThrottledTemporarily", "Your request is throttled temporarily. Please try after the duration in Retry-After."
	case 503:
		return "serviceNotAvailable", "The service is temporarily unavailable. Please retry after some time."
	case 504:
		return "gatewayTimeout", "The gateway did not receive a timely response from the upstream server."
	}
	return "generalException", "An error occurred on the server."
}

// routeGraph dispatches by path. Writes are refused the way Graph refuses an app with read permissions only.
func (s *Service) routeGraph(req graphReq) (graphResp, *graphErr) {
	segs := strings.Split(strings.Trim(req.path, "/"), "/")
	if len(segs) == 0 || segs[0] == "" {
		return graphResp{}, &graphErr{status: 400, code: "BadRequest", msg: "Invalid request: the resource segment is missing."}
	}
	// Every request served is time passing for the licensing service (group-based licensing lags).
	s.tenant.LicensingTick(1)
	if resp, gerr, ok := s.routeMembership(req, segs); ok {
		return resp, gerr
	}
	if req.method != http.MethodGet {
		return graphResp{}, &graphErr{status: 403, code: "Authorization_RequestDenied",
			msg: "Insufficient privileges to complete the operation. (The simulated app holds read permissions only.)"}
	}
	var ent *gentity
	switch strings.ToLower(segs[0]) {
	case "users":
		ent = userEntity
	case "groups":
		ent = groupEntity
	case "contacts":
		ent = contactEntity
	case "domains":
		if len(segs) > 1 {
			return s.graphDomain(req, segs[1])
		}
		return s.graphDomains(req)
	case "organization":
		if len(segs) > 1 {
			return graphResp{}, notFoundSegment(segs[1])
		}
		return s.graphOrganization(req)
	case "subscribedskus":
		if len(segs) > 1 {
			return graphResp{}, notFoundSegment(segs[1])
		}
		return s.graphSKUs(req)
	default:
		return graphResp{}, notFoundSegment(segs[0])
	}
	switch {
	case len(segs) == 1:
		return s.graphList(req, ent)
	case len(segs) == 2 && (strings.EqualFold(segs[1], "delta") || strings.EqualFold(segs[1], "delta()")):
		return s.graphDelta(req, ent, segs[1] != "delta" && strings.HasSuffix(segs[1], "()"))
	case len(segs) == 2 && segs[1] == "$count":
		return s.graphCount(req, ent)
	case len(segs) == 2:
		return s.graphGet(req, ent, segs[1])
	}
	return graphResp{}, notFoundSegment(segs[2])
}

func notFoundSegment(seg string) *graphErr {
	return &graphErr{status: 400, code: "BadRequest", msg: fmt.Sprintf("Resource not found for the segment '%s'.", seg)}
}

// advanced reports whether the request is an advanced query: ConsistencyLevel: eventual (research §1.6).
func advanced(req graphReq) bool {
	return strings.EqualFold(strings.TrimSpace(req.header.Get("ConsistencyLevel")), "eventual")
}

// unsupportedOptions refuses the query options the simulator does not evaluate, rather than ignoring them and
// answering with more objects than the service would.
func unsupportedOptions(req graphReq, opts ...string) *graphErr {
	for _, o := range opts {
		if _, ok := req.query[o]; ok {
			return &graphErr{status: 400, code: "Request_UnsupportedQuery",
				msg: fmt.Sprintf("The simulated tenant does not support the query option '%s' on this resource.", o)}
		}
	}
	return nil
}

func parseTop(req graphReq, def int) (int, *graphErr) {
	raw := req.query.Get("$top")
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > graphMaxTop {
		return 0, &graphErr{status: 400, code: "Request_BadRequest",
			msg: fmt.Sprintf("Invalid page size specified: '%s'. Must be between 1 and %d inclusive.", raw, graphMaxTop)}
	}
	return n, nil
}

// listToken is the $skiptoken of a collection page: the Guid (the tenant's stable order) of the last object
// returned.
func encodeListToken(after string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("L1:" + after))
}

func decodeListToken(tok string) (string, *graphErr) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !bytes.HasPrefix(b, []byte("L1:")) {
		return "", &graphErr{status: 400, code: "Request_BadRequest", msg: "The specified page token value has expired or is invalid."}
	}
	return string(b[3:]), nil
}

// nextLink is the request's own URL on the simulator's host with every query option kept in its original
// text and $skiptoken replaced, the way Graph builds @odata.nextLink.
func nextLink(base, path, rawQuery, token string) string {
	var parts []string
	for _, p := range strings.Split(rawQuery, "&") {
		if p == "" {
			continue
		}
		k, _, _ := strings.Cut(p, "=")
		if dk, err := url.QueryUnescape(k); err == nil && strings.EqualFold(dk, "$skiptoken") {
			continue
		}
		parts = append(parts, p)
	}
	parts = append(parts, "$skiptoken="+token)
	return base + "/v1.0" + path + "?" + strings.Join(parts, "&")
}

func (s *Service) view(o *tenant.Object, x tenant.GraphExtras) *gview {
	return &gview{o: o, x: x, domain: s.tenant.Domain(), tenantID: s.tenant.ID()}
}

// graphList serves GET /users, /groups, /contacts: $select, $top, $skiptoken, $count with ConsistencyLevel.
func (s *Service) graphList(req graphReq, ent *gentity) (graphResp, *graphErr) {
	if err := unsupportedOptions(req, "$search", "$orderby", "$expand", "$skip"); err != nil {
		return graphResp{}, err
	}
	sel, err := parseSelect(ent.typ, ent.propNames(), req.query.Get("$select"))
	if err != nil {
		return graphResp{}, err
	}
	match, err := s.listFilter(req, ent)
	if err != nil {
		return graphResp{}, err
	}
	top, err := parseTop(req, s.graph().size())
	if err != nil {
		return graphResp{}, err
	}
	after := ""
	if tok := req.query.Get("$skiptoken"); tok != "" {
		if after, err = decodeListToken(tok); err != nil {
			return graphResp{}, err
		}
	}
	// Keyset paging over the tenant's Guid order: objects added or removed between pages never shift the
	// pages that follow. The page starts at the cursor (a binary search); one object past it tells whether
	// there is a next one.
	keep := func(o *tenant.Object) bool { return o.Kind == ent.kind && (match == nil || match(o)) }
	page := s.tenant.SelectAfter(after, top+1, keep)
	total := 0
	if strings.EqualFold(req.query.Get("$count"), "true") && advanced(req) {
		total = s.tenant.Count(keep)
	}
	more := len(page) > top
	if more {
		page = page[:top]
	}
	xs := s.tenant.GraphSide().ExtrasFor(page)
	values := make([]jobj, 0, len(page))
	for i := range page {
		values = append(values, ent.project(s.view(&page[i], xs[page[i].ID]), sel, false))
	}
	body := jobj{{"@odata.context", ent.context(req.base, sel)}}
	// $count=true counts only in an advanced query; without ConsistencyLevel the service ignores it silently.
	if strings.EqualFold(req.query.Get("$count"), "true") && advanced(req) {
		body = append(body, jkv{"@odata.count", total})
	}
	if more {
		body = append(body, jkv{"@odata.nextLink", nextLink(req.base, req.path, req.rawQuery, encodeListToken(page[len(page)-1].Guid))})
	}
	body = append(body, jkv{"value", values})
	return graphResp{status: 200, body: body}, nil
}

// listFilter compiles $filter into a predicate over the tenant's objects (nil without $filter). Operators that
// need an advanced query are refused without ConsistencyLevel: eventual and $count=true, with the service's
// message (research §1.6).
func (s *Service) listFilter(req graphReq, ent *gentity) (func(*tenant.Object) bool, *graphErr) {
	raw, ok := req.query["$filter"]
	if !ok {
		return nil, nil
	}
	f, adv, err := parseFilter(strings.Join(raw, " and "), ent.typ, ent.propNames())
	if err != nil {
		return nil, err
	}
	if adv != "" && !(advanced(req) && strings.EqualFold(req.query.Get("$count"), "true")) {
		return nil, &graphErr{status: 400, code: "Request_UnsupportedQuery", msg: fmt.Sprintf("Operator '%s' is not supported "+
			"because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual "+
			"header. Refer to https://aka.ms/graph-docs/advanced-queries for more information", adv)}
	}
	// The predicate runs under the tenant's lock, so the extras are copied first (observe takes the two locks
	// in the other order).
	xs := s.tenant.GraphSide().AllExtras()
	all := selection(ent.propNames())
	return func(o *tenant.Object) bool { return f.eval(ent.project(s.view(o, xs[o.ID]), all, false), nil) }, nil
}

// graphCount serves GET /users/$count, which needs the advanced-query header.
func (s *Service) graphCount(req graphReq, ent *gentity) (graphResp, *graphErr) {
	if !advanced(req) {
		return graphResp{}, &graphErr{status: 400, code: "Request_BadRequest", msg: "$count is not currently supported."}
	}
	n := len(s.tenant.Select(func(o *tenant.Object) bool { return o.Kind == ent.kind }))
	return graphResp{status: 200, text: strconv.Itoa(n)}, nil
}

// graphGet serves GET /users/{id | userPrincipalName}, /groups/{id}, /contacts/{id}.
func (s *Service) graphGet(req graphReq, ent *gentity, key string) (graphResp, *graphErr) {
	sel, err := parseSelect(ent.typ, ent.propNames(), req.query.Get("$select"))
	if err != nil {
		return graphResp{}, err
	}
	found := s.tenant.Select(func(o *tenant.Object) bool {
		return o.Kind == ent.kind && (strings.EqualFold(o.ID, key) || ent.kind == tenant.KindUser && strings.EqualFold(o.UserPrincipalName, key))
	})
	if len(found) == 0 {
		return graphResp{}, &graphErr{status: 404, code: "Request_ResourceNotFound",
			msg: fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", key)}
	}
	o := &found[0]
	body := jobj{{"@odata.context", ent.context(req.base, sel) + "/$entity"}}
	body = append(body, ent.project(s.view(o, s.tenant.GraphExtras(o.ID)), sel, false)...)
	return graphResp{status: 200, body: body}, nil
}

func (s *Service) graphDomains(req graphReq) (graphResp, *graphErr) {
	if err := unsupportedOptions(req, "$filter", "$search", "$orderby", "$expand"); err != nil {
		return graphResp{}, err
	}
	sel, err := parseSelect("microsoft.graph.domain", domainProps, req.query.Get("$select"))
	if err != nil {
		return graphResp{}, err
	}
	doms := s.tenant.GraphDomains()
	values := make([]jobj, 0, len(doms))
	for _, d := range doms {
		values = append(values, selectKeys(domainJSON(d), sel))
	}
	ctx := req.base + "/v1.0/$metadata#domains"
	if sel != nil {
		ctx += "(" + strings.Join(sel, ",") + ")"
	}
	return graphResp{status: 200, body: jobj{{"@odata.context", ctx}, {"value", values}}}, nil
}

func (s *Service) graphDomain(req graphReq, name string) (graphResp, *graphErr) {
	sel, err := parseSelect("microsoft.graph.domain", domainProps, req.query.Get("$select"))
	if err != nil {
		return graphResp{}, err
	}
	for _, d := range s.tenant.GraphDomains() {
		if strings.EqualFold(d.ID, name) {
			body := append(jobj{{"@odata.context", req.base + "/v1.0/$metadata#domains/$entity"}}, selectKeys(domainJSON(d), sel)...)
			return graphResp{status: 200, body: body}, nil
		}
	}
	return graphResp{}, &graphErr{status: 404, code: "Request_ResourceNotFound",
		msg: fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", name)}
}

// graphSKUs serves GET /subscribedSkus; consumedUnits counts the users holding each SKU now. The service
// supports only $select here (research §1.5).
func (s *Service) graphSKUs(req graphReq) (graphResp, *graphErr) {
	if _, ok := req.query["$filter"]; ok {
		return graphResp{}, &graphErr{status: 400, code: "Request_UnsupportedQuery", msg: "The $filter query option is not supported on subscribedSkus."}
	}
	sel, err := parseSelect("microsoft.graph.subscribedSku", skuProps, req.query.Get("$select"))
	if err != nil {
		return graphResp{}, err
	}
	consumed := map[string]int{}
	s.tenant.Select(func(o *tenant.Object) bool {
		if o.Kind != tenant.KindUser {
			return false // a licensing group's licences are consumed by its members, not by the group
		}
		for _, l := range o.AssignedLicenses {
			consumed[strings.ToLower(l.SkuID)]++
		}
		return false
	})
	account := strings.SplitN(s.tenant.InitialDomain(), ".", 2)[0]
	skus := s.tenant.SubscribedSKUs()
	values := make([]jobj, 0, len(skus))
	for _, k := range skus {
		values = append(values, selectKeys(skuJSON(s.tenant.ID(), account, k, consumed[strings.ToLower(k.SkuID)]), sel))
	}
	ctx := req.base + "/v1.0/$metadata#subscribedSkus"
	if sel != nil {
		ctx += "(" + strings.Join(sel, ",") + ")"
	}
	return graphResp{status: 200, body: jobj{{"@odata.context", ctx}, {"value", values}}}, nil
}

// graphBatchItem is one entry of a Graph $batch body (research §3.1).
type graphBatchItem struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	Body      json.RawMessage   `json:"body"`
	DependsOn []string          `json:"dependsOn"`
}

// handleGraphBatch serves POST /v1.0/$batch: gzip bodies (the SDK compresses every request body), at most 20
// items, unique ids, percent-encoded inner URLs (%24select), dependsOn with 424, each item throttled and logged
// on its own.
func (s *Service) handleGraphBatch(w http.ResponseWriter, r *http.Request) {
	reqID := reqlog.NewRequestID()
	clientReqID := r.Header.Get("client-request-id")
	lr := reqlog.RecordFrom(r.Context())
	lr.Service, lr.Query, lr.RequestID, lr.Batch, lr.Cmdlet = "graph", r.URL.RawQuery, reqID, true, "$batch"
	lr.Header = loggedHeader(r.Header)
	fail := func(ge *graphErr) { s.writeGraph(w, lr, ge.resp(reqID, clientReqID), reqID, clientReqID) }
	if err := s.auth.VerifyResource(r, graphAudience); err != nil {
		fail(graphAuthError(err))
		return
	}
	if r.Method != http.MethodPost {
		fail(&graphErr{status: 405, code: "Request_BadRequest", msg: "The $batch endpoint accepts POST only."})
		return
	}
	var body io.Reader = io.LimitReader(r.Body, graphMaxBody)
	if strings.EqualFold(strings.TrimSpace(r.Header.Get("Content-Encoding")), "gzip") {
		zr, err := gzip.NewReader(body)
		if err != nil {
			fail(&graphErr{status: 400, code: "BadRequest", msg: "The request body is not valid gzip: " + err.Error()})
			return
		}
		defer func() { _ = zr.Close() }()
		body = io.LimitReader(zr, graphMaxBody)
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		fail(&graphErr{status: 400, code: "BadRequest", msg: "The request body could not be read: " + err.Error()})
		return
	}
	var in struct {
		Requests []graphBatchItem `json:"requests"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		fail(&graphErr{status: 400, code: "BadRequest", msg: "Invalid batch payload format: " + err.Error()})
		return
	}
	switch {
	case len(in.Requests) == 0:
		fail(&graphErr{status: 400, code: "BadRequest", msg: "Invalid batch payload format: the batch holds no requests."})
		return
	case len(in.Requests) > graphMaxBatch:
		fail(&graphErr{status: 400, code: "BadRequest", msg: fmt.Sprintf("Number of batch request steps exceeds the maximum of %d.", graphMaxBatch)})
		return
	}
	seen := map[string]bool{}
	for _, it := range in.Requests {
		k := strings.ToLower(it.ID)
		if k == "" || seen[k] {
			fail(&graphErr{status: 400, code: "BadRequest", msg: fmt.Sprintf("Batch request ids must be unique and non-empty; '%s' is not.", it.ID)})
			return
		}
		seen[k] = true
	}
	status := map[string]int{}
	responses := make([]jobj, 0, len(in.Requests))
	for _, it := range in.Requests {
		resp := s.serveBatchItem(s.requestBase(r), it, status, clientReqID)
		status[strings.ToLower(it.ID)] = resp.status
		hdr := jobj{}
		// The SDK looks the inner Content-Type up by this exact key.
		if resp.body != nil {
			hdr = append(hdr, jkv{"Content-Type", "application/json"})
		}
		for k, v := range resp.header {
			hdr = append(hdr, jkv{k, strings.Join(v, ",")})
		}
		item := jobj{{"id", it.ID}, {"status", resp.status}, {"headers", hdr}}
		switch {
		case resp.body != nil:
			item = append(item, jkv{"body", resp.body})
		case resp.text != "":
			item = append(item, jkv{"body", resp.text})
		}
		responses = append(responses, item)
	}
	s.writeGraph(w, lr, graphResp{status: 200, body: jobj{{"responses", responses}}}, reqID, clientReqID)
}

// serveBatchItem runs one $batch item and logs it as its own entry (InBatch).
func (s *Service) serveBatchItem(base string, it graphBatchItem, status map[string]int, clientReqID string) graphResp {
	reqID := reqlog.NewRequestID()
	se := &reqlog.Entry{Time: time.Now(), Method: strings.ToUpper(it.Method), Service: "graph", InBatch: true, RequestID: reqID, ClientRequestID: clientReqID}
	defer func() { s.log.Add(*se) }()
	for _, dep := range it.DependsOn {
		if st, ok := status[strings.ToLower(dep)]; !ok || st >= 400 {
			se.Status = http.StatusFailedDependency
			return (&graphErr{status: http.StatusFailedDependency, code: "BadRequest",
				msg: fmt.Sprintf("The request depends on '%s', which failed or did not run.", dep)}).resp(reqID, clientReqID)
		}
	}
	u, err := url.Parse(strings.TrimSpace(it.URL))
	if err != nil {
		se.Status = 400
		return (&graphErr{status: 400, code: "BadRequest", msg: fmt.Sprintf("Invalid request URL '%s': %v", it.URL, err)}).resp(reqID, clientReqID)
	}
	// Inner URLs are relative to the version root ("/users?%24select=id"); accept absolute ones too.
	path := u.Path
	if u.IsAbs() {
		path = strings.TrimPrefix(path, "/v1.0")
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	se.Path, se.Query = "/v1.0"+path, u.RawQuery
	hdr := http.Header{}
	for k, v := range it.Headers {
		hdr.Set(k, v)
	}
	se.Header = hdr
	q, qerr := parseGraphQuery(u.RawQuery)
	if qerr != nil {
		se.Status = qerr.status
		return qerr.resp(reqID, clientReqID)
	}
	var body []byte
	if len(it.Body) > 0 && string(it.Body) != "null" {
		body = it.Body
	}
	resp := s.serveGraph(graphReq{base: base, method: strings.ToUpper(it.Method), path: path, rawQuery: u.RawQuery, query: q, header: hdr, inBatch: true, body: body},
		reqID, clientReqID, se)
	se.Status = resp.status
	return resp
}

// graphOrganization serves GET /organization: the tenant's one organization object, with the end of the
// last directory sync cycle (what the worker's on-sync trigger polls). $select picks properties.
func (s *Service) graphOrganization(req graphReq) (graphResp, *graphErr) {
	if err := unsupportedOptions(req, "$filter", "$search", "$orderby", "$expand", "$top"); err != nil {
		return graphResp{}, err
	}
	sel, err := parseSelect("microsoft.graph.organization", []string{"id", "displayName", "onPremisesSyncEnabled", "onPremisesLastSyncDateTime"},
		req.query.Get("$select"))
	if err != nil {
		return graphResp{}, err
	}
	var last any
	if t := s.tenant.LastSync(); !t.IsZero() {
		last = t.UTC().Format(time.RFC3339Nano)
	}
	org := jobj{{"id", s.tenant.ID()}, {"displayName", s.tenant.Domain()}, {"onPremisesSyncEnabled", true},
		{"onPremisesLastSyncDateTime", last}}
	ctx := req.base + "/v1.0/$metadata#organization"
	if sel != nil {
		ctx += "(" + strings.Join(sel, ",") + ")"
	}
	return graphResp{status: 200, body: jobj{{"@odata.context", ctx}, {"value", []jobj{selectKeys(org, sel)}}}}, nil
}
