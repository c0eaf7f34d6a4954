package graphapi_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/internal/sim/simtest"
	"github.com/exo-worker/worker/internal/sim/tenant"
)

// graphAudience is the token audience Graph accepts.
const graphAudience = "https://graph.microsoft.com"

// Wire-level tests of the Graph front end: raw HTTPS requests, so they pin down the bytes the simulator sends
// (internal/graph tests the same server through msgraph-sdk-go).

type graphCaller struct {
	t     *testing.T
	srv   *sim.Server
	hc    *http.Client
	token string
}

func newGraphCaller(t *testing.T, s *sim.Server) *graphCaller {
	t.Helper()
	return &graphCaller{t: t, srv: s, hc: s.HTTPClient(), token: s.IssueToken(graphAudience, 0)}
}

type graphResult struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

// get sends GET to path (below the server root, or an absolute link) with optional extra headers.
func (c *graphCaller) get(path string, hdr ...string) graphResult {
	c.t.Helper()
	u := path
	if !strings.HasPrefix(u, "https://") {
		u = c.srv.URL + path
	}
	return c.send(http.MethodGet, u, nil, hdr...)
}

func (c *graphCaller) send(method, u string, body []byte, hdr ...string) graphResult {
	c.t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := graphResult{status: res.StatusCode, header: res.Header, raw: raw}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			c.t.Fatalf("%s %s: body is not JSON: %v\n%s", method, u, err, raw)
		}
	}
	return r
}

func values(t *testing.T, r graphResult) []map[string]any {
	t.Helper()
	raw, ok := r.body["value"].([]any)
	if !ok {
		t.Fatalf("no value array in %s", r.raw)
	}
	out := make([]map[string]any, len(raw))
	for i, v := range raw {
		out[i] = v.(map[string]any)
	}
	return out
}

// wantGraphError checks the error shape the SDK needs: JSON Content-Type, error.code, error.message and
// innerError.request-id.
func wantGraphError(t *testing.T, r graphResult, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("error Content-Type %q, want application/json", r.header.Get("Content-Type"))
	}
	e, _ := r.body["error"].(map[string]any)
	if e == nil || e["code"] != code || e["message"] == nil || e["message"] == "" {
		t.Fatalf("error body %s, want code %q with a message", r.raw, code)
	}
	inner, _ := e["innerError"].(map[string]any)
	if inner == nil || inner["request-id"] != r.header.Get("request-id") {
		t.Fatalf("innerError %v does not carry the request-id header %q", inner, r.header.Get("request-id"))
	}
}

func countKind(s *sim.Server, k tenant.ObjectKind) int {
	return len(s.Tenant().Select(func(o *tenant.Object) bool { return o.Kind == k }))
}

func TestGraphListPagingSelectAndDefaults(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := newGraphCaller(t, s)
	want := countKind(s, tenant.KindUser)

	// Default property set: no proxyAddresses, no onPremises* without $select.
	r := c.get("/v1.0/users?$top=5")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	first := values(t, r)[0]
	if _, ok := first["proxyAddresses"]; ok {
		t.Errorf("proxyAddresses returned without $select: %v", first)
	}
	for _, k := range []string{"id", "displayName", "userPrincipalName", "mail"} {
		if _, ok := first[k]; !ok {
			t.Errorf("default property %s missing: %v", k, first)
		}
	}

	// $select (case-insensitive names, %24-encoded option) across pages until no nextLink.
	seen := map[string]bool{}
	link := "/v1.0/users?%24select=ID,proxyAddresses,onPremisesSyncEnabled&$top=7&$count=true"
	pages := 0
	for link != "" {
		r := c.get(link, "ConsistencyLevel", "eventual")
		if r.status != 200 {
			t.Fatalf("page %d: status %d: %s", pages, r.status, r.raw)
		}
		if n, _ := r.body["@odata.count"].(float64); int(n) != want {
			t.Fatalf("@odata.count %v, want %d", r.body["@odata.count"], want)
		}
		for _, u := range values(t, r) {
			if len(u) != 3 {
				t.Fatalf("selected 3 properties, got %v", u)
			}
			id := u["id"].(string)
			if seen[id] {
				t.Fatalf("user %s on two pages", id)
			}
			seen[id] = true
		}
		pages++
		link, _ = r.body["@odata.nextLink"].(string)
		if link != "" && (!strings.HasPrefix(link, s.URL+"/v1.0/users?") || !strings.Contains(link, "$skiptoken=")) {
			t.Fatalf("nextLink %q is not an absolute link on the simulator with $skiptoken", link)
		}
	}
	if len(seen) != want || pages != (want+6)/7 {
		t.Fatalf("read %d users in %d pages, want %d in %d", len(seen), pages, want, (want+6)/7)
	}

	// $count=true without ConsistencyLevel is silently ignored.
	r = c.get("/v1.0/users?$count=true&$top=1")
	if _, ok := r.body["@odata.count"]; ok || r.status != 200 {
		t.Fatalf("$count without ConsistencyLevel: status %d, count %v", r.status, r.body["@odata.count"])
	}
}

func TestGraphErrors(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := newGraphCaller(t, s)
	tests := []struct {
		name   string
		path   string
		hdr    []string
		status int
		code   string
	}{
		{"top too large", "/v1.0/users?$top=1000", nil, 400, "Request_BadRequest"},
		{"top zero", "/v1.0/groups?$top=0", nil, 400, "Request_BadRequest"},
		{"unknown property", "/v1.0/users?$select=id,nosuch", nil, 400, "Request_BadRequest"},
		{"unknown segment", "/v1.0/widgets", nil, 400, "BadRequest"},
		{"missing user", "/v1.0/users/00000000-0000-0000-0000-000000000000", nil, 404, "Request_ResourceNotFound"},
		{"count without header", "/v1.0/users/$count", nil, 400, "Request_BadRequest"},
		{"top on delta", "/v1.0/users/delta()?$top=5", nil, 400, "Request_UnsupportedQuery"},
		{"bad skiptoken", "/v1.0/users?$skiptoken=nonsense", nil, 400, "Request_BadRequest"},
		{"bad deltatoken", "/v1.0/users/delta?$deltatoken=nonsense", nil, 400, "Request_BadRequest"},
		{"search not simulated", "/v1.0/users?$search=%22displayName:ada%22", []string{"ConsistencyLevel", "eventual"}, 400, "Request_UnsupportedQuery"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantGraphError(t, c.get(tc.path, tc.hdr...), tc.status, tc.code)
		})
	}
	t.Run("writes refused", func(t *testing.T) {
		wantGraphError(t, c.send(http.MethodPatch, s.URL+"/v1.0/users/x", []byte(`{}`)), 403, "Authorization_RequestDenied")
	})
	t.Run("bearer", func(t *testing.T) {
		for name, tok := range map[string]string{
			"missing":        "",
			"exo audience":   s.IssueToken(simtest.ExoAudience, 0),
			"not our issuer": "e30.e30.sig",
		} {
			cc := *c
			cc.token = tok
			r := cc.get("/v1.0/users")
			wantGraphError(t, r, 401, "InvalidAuthenticationToken")
			if r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", name)
			}
		}
	})
	t.Run("revoked token gets a claims challenge", func(t *testing.T) {
		cc := *c
		cc.token = s.IssueToken(graphAudience, 0)
		s.ExpireTokens()
		r := cc.get("/v1.0/domains")
		wantGraphError(t, r, 401, "InvalidAuthenticationToken")
		if h := r.header.Get("WWW-Authenticate"); !strings.Contains(h, `error="insufficient_claims"`) || !strings.Contains(h, `claims="`) {
			t.Fatalf("WWW-Authenticate %q", h)
		}
		c.token = s.IssueToken(graphAudience, 0) // later subtests need a valid token
	})
	t.Run("count with header", func(t *testing.T) {
		r := c.get("/v1.0/users/$count", "ConsistencyLevel", "eventual")
		if r.status != 200 || string(r.raw) != strconv.Itoa(countKind(s, tenant.KindUser)) {
			t.Fatalf("status %d body %q", r.status, r.raw)
		}
	})
}

func TestGraphDomainsSKUsAndModel(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := newGraphCaller(t, s)
	doms := values(t, c.get("/v1.0/domains"))
	byID := map[string]map[string]any{}
	for _, d := range doms {
		byID[d["id"].(string)] = d
	}
	if d := byID[s.Tenant().Domain()]; d == nil || d["isVerified"] != true || d["isDefault"] != true {
		t.Fatalf("vanity domain %s: %v", s.Tenant().Domain(), d)
	}
	if d := byID[s.Tenant().InitialDomain()]; d == nil || d["isVerified"] != true || d["isInitial"] != true {
		t.Fatalf("initial domain: %v", d)
	}
	s.Tenant().SetGraphDomain(tenant.GraphDomain{ID: "unverified.example", AuthenticationType: "Managed"})
	if n := len(values(t, c.get("/v1.0/domains"))); n != len(doms)+1 {
		t.Fatalf("%d domains after adding one, want %d", n, len(doms)+1)
	}

	mailboxes := s.Tenant().Select(func(o *tenant.Object) bool { return o.RecipientTypeDetails == tenant.RTDUserMailbox })
	skus := values(t, c.get("/v1.0/subscribedSkus"))
	var e3, ems map[string]any
	for _, k := range skus {
		switch k["skuPartNumber"] {
		case "ENTERPRISEPACK":
			e3 = k
		case "EMSPREMIUM":
			ems = k
		}
	}
	if e3 == nil || ems == nil {
		t.Fatalf("want ENTERPRISEPACK and EMSPREMIUM, got %v", skus)
	}
	if n := int(e3["consumedUnits"].(float64)); n != len(mailboxes) {
		t.Errorf("E3 consumedUnits %d, want one per mailbox (%d)", n, len(mailboxes))
	}
	planNames := func(k map[string]any) []string {
		var out []string
		for _, p := range k["servicePlans"].([]any) {
			out = append(out, p.(map[string]any)["servicePlanName"].(string))
		}
		return out
	}
	if !slices.Contains(planNames(e3), "EXCHANGE_S_ENTERPRISE") || !slices.Contains(planNames(ems), "EXCHANGE_S_FOUNDATION") ||
		slices.Contains(planNames(ems), "EXCHANGE_S_ENTERPRISE") {
		t.Errorf("plans: E3 %v, EMS %v", planNames(e3), planNames(ems))
	}

	// Model rule: a mailbox is a licensed synced user with an Exchange plan; an MEU is unlicensed; a guest is
	// a Guest user; contacts are orgContacts; groups are mail-enabled.
	mb := mailboxes[0]
	u := c.get("/v1.0/users/" + mb.ID + "?$select=assignedPlans,assignedLicenses,onPremisesSyncEnabled,userType,onPremisesDistinguishedName,onPremisesSecurityIdentifier").body
	plans := u["assignedPlans"].([]any)
	if u["onPremisesSyncEnabled"] != true || len(plans) == 0 || plans[0].(map[string]any)["service"] != "exchange" {
		t.Errorf("mailbox user in Graph: %v", u)
	}
	if dn, _ := u["onPremisesDistinguishedName"].(string); !strings.HasPrefix(dn, "CN=") || !strings.HasSuffix(dn, ",DC=contoso,DC=com") {
		t.Errorf("onPremisesDistinguishedName %q", dn)
	}
	if sid, _ := u["onPremisesSecurityIdentifier"].(string); !strings.HasPrefix(sid, "S-1-5-21-") {
		t.Errorf("onPremisesSecurityIdentifier %q", sid)
	}
	meu := s.Tenant().InScopeMEUs()[0]
	u = c.get("/v1.0/users/" + meu.ID + "?$select=assignedLicenses,userType").body
	if len(u["assignedLicenses"].([]any)) != 0 || u["userType"] != "Member" {
		t.Errorf("MEU in Graph: %v", u)
	}
	guest := s.Tenant().Select(func(o *tenant.Object) bool { return o.RecipientTypeDetails == tenant.RTDGuestMailUser })[0]
	u = c.get("/v1.0/users/" + guest.ID + "?$select=userType,creationType,onPremisesSyncEnabled").body
	if u["userType"] != "Guest" || u["creationType"] != "Invitation" || u["onPremisesSyncEnabled"] != nil {
		t.Errorf("guest in Graph: %v", u)
	}
	if n := len(values(t, c.get("/v1.0/contacts?$top=999"))); n != countKind(s, tenant.KindContact) {
		t.Errorf("%d contacts, want %d", n, countKind(s, tenant.KindContact))
	}
	for _, g := range values(t, c.get("/v1.0/groups")) {
		if g["mailEnabled"] != true || g["mail"] == nil {
			t.Errorf("group not mail-enabled: %v", g)
		}
	}

	// Seeded Graph-only state: a licence and a provisioning error.
	if err := s.Tenant().AssignLicense(meu.ID, tenant.SkuEMSPremium); err != nil {
		t.Fatal(err)
	}
	if err := s.Tenant().UpdateGraphExtras(meu.ID, func(x *tenant.GraphExtras) {
		x.ServiceProvisioningErrors = []tenant.ServiceProvisioningError{{ServiceInstance: "exchange/namprd11-001-01", ErrorDetail: "<ServiceInstance/>"}}
	}); err != nil {
		t.Fatal(err)
	}
	u = c.get("/v1.0/users/" + meu.ID + "?$select=assignedPlans,serviceProvisioningErrors").body
	var planIDs []string
	for _, p := range u["assignedPlans"].([]any) {
		planIDs = append(planIDs, p.(map[string]any)["servicePlanId"].(string))
	}
	spe := u["serviceProvisioningErrors"].([]any)
	if !slices.Contains(planIDs, tenant.PlanExchangeFoundation) || len(spe) != 1 ||
		spe[0].(map[string]any)["@odata.type"] != "#microsoft.graph.serviceProvisioningXmlError" {
		t.Errorf("after seeding: %v", u)
	}
	if err := s.Tenant().UpdateGraphExtras("no-such-id", func(*tenant.GraphExtras) {}); err == nil {
		t.Error("UpdateGraphExtras on a missing object succeeded")
	}
}

// deltaRound follows one delta round from link and returns the items and the deltaLink.
func (c *graphCaller) deltaRound(link string) (items []map[string]any, deltaLink string, pages int) {
	c.t.Helper()
	for {
		r := c.get(link)
		if r.status != 200 {
			c.t.Fatalf("delta %s: status %d: %s", link, r.status, r.raw)
		}
		items = append(items, values(c.t, r)...)
		pages++
		if next, _ := r.body["@odata.nextLink"].(string); next != "" {
			link = next
			continue
		}
		d, _ := r.body["@odata.deltaLink"].(string)
		if d == "" {
			c.t.Fatalf("delta page with neither nextLink nor deltaLink: %s", r.raw)
		}
		return items, d, pages
	}
}

func TestGraphDelta(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	s.SetGraphPageSize(50)
	c := newGraphCaller(t, s)
	users := countKind(s, tenant.KindUser)

	items, link, pages := c.deltaRound("/v1.0/users/delta()?$select=displayName,mail")
	if len(items) != users || pages != (users+49)/50 {
		t.Fatalf("initial round: %d items in %d pages, want %d in %d", len(items), pages, users, (users+49)/50)
	}
	if len(items[0]) != 3 { // id is always there
		t.Fatalf("delta item %v: want id, displayName, mail", items[0])
	}
	if !strings.HasPrefix(link, s.URL+"/v1.0/users/delta()?$deltatoken=") {
		t.Fatalf("deltaLink %q", link)
	}

	// Unchanged tenant: one empty page. An EXO-only change (rich text) is not a Graph change.
	meus := s.Tenant().InScopeMEUs()
	if err := s.Tenant().SetUseMapiRichTextFormat(meus[0].ID, tenant.RichTextNever); err != nil {
		t.Fatal(err)
	}
	items, link2, pages := c.deltaRound(link)
	if len(items) != 0 || pages != 1 {
		t.Fatalf("unchanged tenant: %d items in %d pages", len(items), pages)
	}

	// A change, a removal, an addition; the $select of the initial query still applies.
	s.Tenant().Update(meus[1].ID, func(o *tenant.Object) { o.DisplayName = "Renamed" })
	s.Tenant().Delete(meus[2].ID)
	added := meus[3]
	added.ID, added.Guid, added.ExchangeObjectID, added.Name, added.Alias = "0a0a0a0a-0000-4000-8000-000000000001", "", "", "", "added"
	if err := s.Tenant().Add(added); err != nil {
		t.Fatal(err)
	}
	items, link3, _ := c.deltaRound(link2)
	got := map[string]map[string]any{}
	for _, it := range items {
		got[it["id"].(string)] = it
	}
	if len(items) != 3 || got[meus[1].ID]["displayName"] != "Renamed" || got[added.ID] == nil {
		t.Fatalf("changes: %v", items)
	}
	if rm, _ := got[meus[2].ID]["@removed"].(map[string]any); rm == nil || rm["reason"] != "changed" {
		t.Fatalf("removal: %v", got[meus[2].ID])
	}
	if _, ok := got[meus[1].ID]["proxyAddresses"]; ok {
		t.Fatalf("unselected property in a change: %v", got[meus[1].ID])
	}

	// $deltatoken=latest: no data, a deltaLink from now.
	r := c.get("/v1.0/groups/delta?$deltatoken=latest")
	if len(values(t, r)) != 0 || r.body["@odata.deltaLink"] == nil {
		t.Fatalf("latest: %s", r.raw)
	}

	// Every expired shape, each answered with a JSON error the SDK parses.
	for _, shape := range tenant.DeltaExpiries() {
		t.Run(string(shape), func(t *testing.T) {
			s.Tenant().ExpireDeltaTokens(shape)
			r := c.get(link3)
			want := map[tenant.DeltaExpiry]struct {
				status int
				code   string
			}{
				tenant.DeltaExpiredGone:                  {410, "Gone"},
				tenant.DeltaExpiredSyncStateNotFound:     {400, "syncStateNotFound"},
				tenant.DeltaExpiredSyncStateNotFoundGone: {410, "SyncStateNotFound"},
				tenant.DeltaExpiredResyncRequired:        {400, "resyncRequired"},
				tenant.DeltaExpiredSyncStateInvalid:      {400, "SyncStateInvalid"},
			}[shape]
			wantGraphError(t, r, want.status, want.code)
			if shape == tenant.DeltaExpiredGone {
				loc := r.header.Get("Location")
				if !strings.HasSuffix(loc, "$deltatoken=") || !strings.Contains(loc, "$select=displayName,mail") {
					t.Fatalf("Location %q", loc)
				}
				// Following it starts a new initial round with the same $select.
				items, l, _ := c.deltaRound(loc)
				if len(items) != countKind(s, tenant.KindUser) || len(items[0]) != 3 {
					t.Fatalf("restart from Location: %d items, first %v", len(items), items[0])
				}
				link3 = l
			} else {
				_, link3, _ = c.deltaRound("/v1.0/users/delta?$select=displayName,mail")
			}
		})
	}

	// Contacts and groups delta, with and without parentheses.
	for _, p := range []string{"/v1.0/contacts/delta", "/v1.0/groups/delta()"} {
		items, _, _ := c.deltaRound(p)
		if len(items) == 0 {
			t.Errorf("%s: no items", p)
		}
	}
}

func TestGraphBatch(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := newGraphCaller(t, s)
	gz := func(v any) []byte {
		raw, _ := json.Marshal(v)
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write(raw)
		_ = zw.Close()
		return b.Bytes()
	}
	item := func(id, u string, dep ...string) map[string]any {
		return map[string]any{"id": id, "method": "GET", "url": u, "headers": map[string]string{"ConsistencyLevel": "eventual"}, "dependsOn": dep}
	}
	s.InjectGraphFault(sim.GraphFault{Match: func(r sim.GraphRequest) bool { return r.InBatch && r.Path == "/domains" }, Status: 429, RetryAfter: 2 * time.Second})
	body := map[string]any{"requests": []any{
		item("1", "/users?%24select=id,mail&%24top=3&%24count=true"),
		item("2", "/subscribedSkus"),
		item("3", "/domains"),
		item("4", "/users?$top=1", "3"),
	}}
	s.Log.Reset()
	r := c.send(http.MethodPost, s.URL+"/v1.0/$batch", gz(body), "Content-Type", "application/json", "Content-Encoding", "gzip")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	got := map[string]map[string]any{}
	for _, it := range r.body["responses"].([]any) {
		m := it.(map[string]any)
		got[m["id"].(string)] = m
	}
	status := func(id string) int { return int(got[id]["status"].(float64)) }
	if status("1") != 200 || status("2") != 200 || status("3") != 429 || status("4") != 424 {
		t.Fatalf("statuses: %v", r.raw)
	}
	b1 := got["1"]["body"].(map[string]any)
	if len(b1["value"].([]any)) != 3 || b1["@odata.count"] == nil || got["1"]["headers"].(map[string]any)["Content-Type"] != "application/json" {
		t.Fatalf("item 1: %v", got["1"])
	}
	if ra := got["3"]["headers"].(map[string]any)["Retry-After"]; ra != "2" {
		t.Fatalf("inner 429 Retry-After %v", ra)
	}
	if n := s.Log.Count(func(e sim.Entry) bool { return e.InBatch && e.Service == "graph" }); n != 4 {
		t.Fatalf("%d batch items logged, want 4", n)
	}

	tooMany := make([]any, 21)
	for i := range tooMany {
		tooMany[i] = item(strconv.Itoa(i), "/domains")
	}
	wantGraphError(t, c.send(http.MethodPost, s.URL+"/v1.0/$batch", gz(map[string]any{"requests": tooMany}), "Content-Encoding", "gzip"), 400, "BadRequest")
	dup := map[string]any{"requests": []any{item("a", "/domains"), item("A", "/domains")}}
	wantGraphError(t, c.send(http.MethodPost, s.URL+"/v1.0/$batch", gz(dup), "Content-Encoding", "gzip"), 400, "BadRequest")
}

func TestGraphThrottleAndInjectedFaults(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{Faults: sim.Faults{ThrottleBudget: 1, ThrottleBurst: 1}})
	c := newGraphCaller(t, s)
	if r := c.get("/v1.0/domains"); r.status != 200 {
		t.Fatalf("first call: %d", r.status)
	}
	r := c.get("/v1.0/domains")
	wantGraphError(t, r, 429, "Request_ThrottledTemporarily")
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if st := s.GraphFaultStats(); st.Throttled != 1 {
		t.Fatalf("graph throttled %d, want 1", st.Throttled)
	}
	if st := s.FaultStats(); st.Throttled != 0 {
		t.Fatalf("Graph throttling spent the EXO bucket: %+v", st)
	}
	s.SetFaults(sim.Faults{})
	s.InjectGraphFault(sim.GraphFault{Match: func(r sim.GraphRequest) bool { return r.Query.Get("$skiptoken") != "" }, Status: 503, Times: 2})
	first := c.get("/v1.0/users?$top=2")
	next := first.body["@odata.nextLink"].(string)
	for range 2 {
		wantGraphError(t, c.get(next), 503, "serviceNotAvailable")
	}
	if r := c.get(next); r.status != 200 {
		t.Fatalf("after the injected faults: %d", r.status)
	}
	if _, err := url.Parse(next); err != nil {
		t.Fatal(err)
	}
}

func TestGraphFilterAndAdvancedQueries(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := newGraphCaller(t, s)
	tn := s.Tenant()
	odd := tenant.Object{ID: "0d0d0d0d-0000-4000-8000-000000000001", Kind: tenant.KindUser, DisplayName: "Ciara D'Angelo, Jr.",
		UserPrincipalName: "ciara@contoso.com", Mail: "ciara@contoso.com", UserType: "Member", AccountEnabled: true}
	if err := tn.Add(odd); err != nil {
		t.Fatal(err)
	}
	users := func(keep func(*tenant.Object) bool) int {
		return len(tn.Select(func(o *tenant.Object) bool { return o.Kind == tenant.KindUser && keep(o) }))
	}
	mailbox := tn.Select(func(o *tenant.Object) bool { return o.RecipientTypeDetails == tenant.RTDUserMailbox })[0]
	adv := []string{"ConsistencyLevel", "eventual"}
	tests := []struct {
		name     string
		filter   string
		advanced bool
		want     int
	}{
		{"eq", "mail eq '" + strings.ToUpper(mailbox.Mail) + "'", false, 1},
		{"escaped quote", "displayName eq 'Ciara D''Angelo, Jr.'", false, 1},
		{"startsWith", "startsWith(displayName,'ada')", false, users(func(o *tenant.Object) bool { return strings.HasPrefix(o.DisplayName, "Ada") })},
		{"synced", "onPremisesSyncEnabled eq true", false, users(func(o *tenant.Object) bool { return o.OnPremisesSyncEnabled })},
		{"in", "userType in ('Guest','Nobody')", false, users(func(o *tenant.Object) bool { return o.UserType == "Guest" })},
		{"and/or", "(userType eq 'Guest' or userType eq 'Member') and accountEnabled eq true", false, users(func(o *tenant.Object) bool { return true })},
		{"any on strings", "proxyAddresses/any(p:startsWith(p,'smtp:" + mailbox.MailNickname + "@'))", false, 1},
		{"any on objects", "assignedLicenses/any(x:x/skuId eq " + tenant.SkuEnterprisePack + ")", false,
			users(func(o *tenant.Object) bool { return len(o.AssignedLicenses) > 0 })},
		{"endsWith", "endsWith(mail,'@contoso.com')", true, users(func(o *tenant.Object) bool { return strings.HasSuffix(o.Mail, "@contoso.com") })},
		{"ne", "onPremisesSyncEnabled ne true", true, users(func(o *tenant.Object) bool { return !o.OnPremisesSyncEnabled })},
		{"not", "not(userType eq 'Guest')", true, users(func(o *tenant.Object) bool { return o.UserType != "Guest" })},
		{"$count", "assignedLicenses/$count eq 0", true, users(func(o *tenant.Object) bool { return len(o.AssignedLicenses) == 0 })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := "/v1.0/users?$top=999&$select=id&$filter=" + url.QueryEscape(tc.filter)
			if tc.advanced {
				// Without the advanced-query parameters the service refuses the operator.
				wantGraphError(t, c.get(q), 400, "Request_UnsupportedQuery")
				wantGraphError(t, c.get(q+"&$count=true"), 400, "Request_UnsupportedQuery")
				wantGraphError(t, c.get(q, adv...), 400, "Request_UnsupportedQuery")
				q += "&$count=true"
			}
			r := c.get(q, adv...)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			if n := len(values(t, r)); n != tc.want || tc.want == 0 {
				t.Fatalf("%d users match, want %d (> 0)", n, tc.want)
			}
		})
	}
	for _, bad := range []struct{ filter, code string }{
		{"nosuch eq 'x'", "Request_BadRequest"},
		{"mail eq 'unterminated", "BadRequest"},
		{"mail eq", "BadRequest"},
		{"(mail eq 'x'", "BadRequest"},
		{"mail wat 'x'", "BadRequest"},
		{strings.Repeat("(", 100) + "mail eq 'x'" + strings.Repeat(")", 100), "BadRequest"},
	} {
		wantGraphError(t, c.get("/v1.0/users?$filter="+url.QueryEscape(bad.filter)), 400, bad.code)
	}
}
