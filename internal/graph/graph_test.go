package graph_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/directory"
	"github.com/exo-worker/worker/internal/graph"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs"
)

// These tests run the real client (msgraph-sdk-go, azidentity) against the simulated tenant over HTTPS on
// 127.0.0.1 and assert on what the simulator saw.

var (
	_ jobs.DirectoryReader = (*graph.Client)(nil)
	_ graph.StateStore     = (*store.SQLite)(nil)
)

type fixture struct {
	srv *sim.Server
	c   *graph.Client
}

func newFixture(t *testing.T, opts graph.Options) fixture {
	t.Helper()
	srv, err := sim.Start(sim.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cred, err := srv.Credential()
	if err != nil {
		t.Fatal(err)
	}
	if opts.BaseURL == "" {
		opts.BaseURL = srv.URL
	}
	opts.Credential, opts.HTTPClient = cred, srv.HTTPClient()
	c, err := graph.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{srv: srv, c: c}
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// graphEntries are the Graph requests the simulator logged (envelopes and $batch items).
func graphEntries(s *sim.Server) []sim.Entry {
	var out []sim.Entry
	for _, e := range s.Log.Entries() {
		if e.Service == "graph" {
			out = append(out, e)
		}
	}
	return out
}

func kindCount(s *sim.Server, k sim.ObjectKind) int {
	return len(s.Tenant().Select(func(o *sim.Object) bool { return o.Kind == k }))
}

// wantBearer fails unless every Graph request reached the simulator with a token it accepted: the SDK sends
// none to hosts it does not trust, and the simulator answers those with 401.
func wantBearer(t *testing.T, es []sim.Entry) {
	t.Helper()
	if len(es) == 0 {
		t.Fatal("the simulator saw no Graph request")
	}
	for _, e := range es {
		if e.InBatch {
			continue // items ride on the envelope's token
		}
		if e.Header.Get("Authorization") == "" || e.Status == 401 {
			t.Fatalf("%s %s?%s reached the simulator without an accepted token (status %d)", e.Method, e.Path, e.Query, e.Status)
		}
	}
}

func TestReadEveryKindAcrossPages(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run(host, func(t *testing.T) {
			f := newFixture(t, graph.Options{PageSize: 7})
			if host == "localhost" {
				// Any host works once it is a valid host for the token (the sovereign-cloud case).
				cred, _ := f.srv.Credential()
				c, err := graph.New(graph.Options{BaseURL: strings.Replace(f.srv.URL, "127.0.0.1", "localhost", 1),
					Credential: cred, HTTPClient: f.srv.HTTPClient(), PageSize: 7})
				if err != nil {
					t.Fatal(err)
				}
				f.c = c
			}
			ctx := ctx(t)
			us, err := f.c.Users(ctx)
			if err != nil {
				t.Fatal(err)
			}
			gs, err := f.c.Groups(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cs, err := f.c.Contacts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			doms, err := f.c.Domains(ctx)
			if err != nil {
				t.Fatal(err)
			}
			skus, err := f.c.SubscribedSKUs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tn := f.srv.Tenant()
			if len(us) != kindCount(f.srv, sim.KindUser) || len(gs) != kindCount(f.srv, sim.KindGroup) || len(cs) != kindCount(f.srv, sim.KindContact) {
				t.Fatalf("read %d users, %d groups, %d contacts; tenant has %d, %d, %d", len(us), len(gs), len(cs),
					kindCount(f.srv, sim.KindUser), kindCount(f.srv, sim.KindGroup), kindCount(f.srv, sim.KindContact))
			}
			wantSelectedUsers(t, f.srv, us)
			for _, g := range gs {
				if !g.MailEnabled || g.Mail == "" || len(g.ProxyAddresses) == 0 || !g.Synced() || !strings.HasPrefix(g.OnPremisesSecurityIdentifier, "S-1-5-21-") {
					t.Fatalf("group not read with its selected properties: %+v", g)
				}
			}
			for _, c := range cs {
				o, _ := tn.Object(c.ID)
				if c.Mail != o.Mail || len(c.ProxyAddresses) == 0 || c.Synced() != o.OnPremisesSyncEnabled {
					t.Fatalf("contact %+v, tenant %+v", c, o)
				}
			}
			if !slices.ContainsFunc(doms, func(d directory.Domain) bool { return d.ID == tn.Domain() && d.IsVerified && d.IsDefault }) ||
				!slices.ContainsFunc(doms, func(d directory.Domain) bool { return d.ID == tn.InitialDomain() && d.IsInitial }) {
				t.Fatalf("domains %+v", doms)
			}
			e3 := slices.IndexFunc(skus, func(s directory.SubscribedSKU) bool { return s.SkuPartNumber == "ENTERPRISEPACK" })
			if e3 < 0 || !slices.ContainsFunc(skus[e3].ServicePlans, func(p directory.ServicePlan) bool {
				return p.ServicePlanID == sim.PlanExchangeEnterprise && p.ServicePlanName == "EXCHANGE_S_ENTERPRISE"
			}) {
				t.Fatalf("SKUs %+v", skus)
			}

			// Every page went out with the same headers and $select, and a token.
			es := graphEntries(f.srv)
			wantBearer(t, es)
			pages := 0
			for _, e := range es {
				if e.Path != "/v1.0/users" {
					continue
				}
				pages++
				if e.Header.Get("ConsistencyLevel") != "eventual" || !strings.Contains(e.Query, "select=") {
					t.Errorf("users page %d: ConsistencyLevel %q, query %q", pages, e.Header.Get("ConsistencyLevel"), e.Query)
				}
			}
			if want := (len(us) + 6) / 7; pages != want {
				t.Errorf("%d users pages, want %d", pages, want)
			}
		})
	}
}

// wantSelectedUsers checks that the properties only $select returns arrived, against the tenant.
func wantSelectedUsers(t *testing.T, s *sim.Server, us []directory.User) {
	t.Helper()
	for _, u := range us {
		o, ok := s.Tenant().Object(u.ID)
		if !ok {
			t.Fatalf("user %s is not in the tenant", u.ID)
		}
		if u.UserPrincipalName != o.UserPrincipalName || u.MailNickname != o.MailNickname || !slices.Equal(u.ProxyAddresses, o.ProxyAddresses) ||
			u.Synced() != o.OnPremisesSyncEnabled || u.UserType != o.UserType || u.AccountEnabled != o.AccountEnabled {
			t.Fatalf("user %s: read %+v, tenant %+v", u.ID, u, o)
		}
		if o.OnPremisesSyncEnabled && (u.OnPremisesImmutableID != o.OnPremisesImmutableID || !strings.HasPrefix(u.OnPremisesDistinguishedName, "CN=")) {
			t.Fatalf("synced user %s: on-premises properties missing: %+v", u.ID, u)
		}
		if o.RecipientTypeDetails == sim.RTDUserMailbox {
			if len(u.AssignedLicenses) != 1 || u.AssignedLicenses[0].SkuID != sim.SkuEnterprisePack ||
				len(u.AssignedPlans) == 0 || u.AssignedPlans[0].Service != "exchange" || u.AssignedPlans[0].AssignedDateTime.IsZero() {
				t.Fatalf("mailbox user %s without its licence: %+v", u.ID, u)
			}
		}
		if o.UserType == "Guest" && u.CreationType != "Invitation" {
			t.Fatalf("guest %s: creationType %q", u.ID, u.CreationType)
		}
	}
}

func TestPageTwoErrorIsTyped(t *testing.T) {
	tests := []struct {
		name   string
		status int
		code   string
		hint   string
	}{
		{"forbidden", 403, "Authorization_RequestDenied", "Directory.Read.All"},
		{"not found", 404, "Request_ResourceNotFound", "does not exist"},
		{"bad request", 400, "Request_UnsupportedQuery", "report it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, graph.Options{PageSize: 50})
			f.srv.InjectGraphFault(sim.GraphFault{Status: tc.status, Code: tc.code,
				Match: func(r sim.GraphRequest) bool {
					return r.Path == "/users" && r.Query.Get("$skiptoken") != ""
				}})
			_, err := f.c.Users(ctx(t))
			var ge *graph.Error
			if !errors.As(err, &ge) {
				t.Fatalf("error %v (%T) is not a *graph.Error", err, err)
			}
			if ge.Status != tc.status || ge.Code != tc.code || ge.Resource != "users page 2" || ge.RequestID == "" || ge.Message == "" {
				t.Fatalf("error %+v", ge)
			}
			if !strings.Contains(err.Error(), tc.hint) || !strings.Contains(err.Error(), ge.RequestID) {
				t.Fatalf("message %q lacks the next step or the request-id", err)
			}
		})
	}
}

func TestThrottledPageIsRetried(t *testing.T) {
	f := newFixture(t, graph.Options{PageSize: 60})
	page2 := func(r sim.GraphRequest) bool { return r.Path == "/users" && r.Query.Get("$skiptoken") != "" }
	f.srv.InjectGraphFault(sim.GraphFault{Match: page2, Status: 429, RetryAfter: time.Second, Times: 2})
	start := time.Now()
	us, err := f.c.Users(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != kindCount(f.srv, sim.KindUser) {
		t.Fatalf("read %d users", len(us))
	}
	if el := time.Since(start); el < 2*time.Second {
		t.Errorf("two Retry-After: 1 waits took only %v", el)
	}
	st := f.c.Stats()
	if st.Throttled != 2 || st.Retries != 2 {
		t.Fatalf("stats %+v, want 2 throttled, 2 retries", st)
	}
	var statuses []int
	for _, e := range graphEntries(f.srv) {
		if e.Path == "/v1.0/users" && strings.Contains(e.Query, "skiptoken") {
			statuses = append(statuses, e.Status)
		}
	}
	if len(statuses) < 3 || statuses[0] != 429 || statuses[1] != 429 || statuses[2] != 200 {
		t.Fatalf("page 2 statuses %v, want 429, 429, 200, ...", statuses)
	}

	t.Run("retries exhausted", func(t *testing.T) {
		f := newFixture(t, graph.Options{PageSize: 60, MaxRetries: 1})
		f.srv.InjectGraphFault(sim.GraphFault{Match: page2, Status: 429, RetryAfter: time.Second, Times: 5})
		_, err := f.c.Users(ctx(t))
		var ge *graph.Error
		if !errors.As(err, &ge) || !ge.Throttled() || ge.RetryAfter != time.Second || !strings.Contains(err.Error(), "run again later") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("Retry-After beyond the cap fails at once", func(t *testing.T) {
		f := newFixture(t, graph.Options{PageSize: 60, MaxRetryWait: time.Second})
		f.srv.InjectGraphFault(sim.GraphFault{Match: page2, Status: 503, RetryAfter: time.Minute})
		start := time.Now()
		_, err := f.c.Users(ctx(t))
		var ge *graph.Error
		if !errors.As(err, &ge) || ge.Status != 503 || time.Since(start) > 10*time.Second {
			t.Fatalf("error %v after %v", err, time.Since(start))
		}
	})
}

// snapshot syncs and fails the test on error.
func snapshot(t *testing.T, c *graph.Client) (*directory.Snapshot, graph.SyncStats) {
	t.Helper()
	s, st, err := c.SyncSnapshot(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

// kept is a client that keeps its state in memory, reading pages of 40 (several per resource).
func kept() graph.Options { return graph.Options{State: graph.NewMemoryState(), PageSize: 40} }

func TestWithoutStateEverySnapshotListsPagesOf999(t *testing.T) {
	f := newFixture(t, graph.Options{})
	for range 2 {
		f.srv.Log.Reset()
		s, st := snapshot(t, f.c)
		if st.FullRounds != 3 || st.IncrementalRounds != 0 || len(s.Users) != kindCount(f.srv, sim.KindUser) {
			t.Fatalf("stats %+v, %d users", st, len(s.Users))
		}
		for _, e := range graphEntries(f.srv) {
			if strings.Contains(e.Path, "/delta") {
				t.Fatalf("a client without state sent a delta request: %s?%s", e.Path, e.Query)
			}
			if (e.Path == "/v1.0/users" || e.Path == "/v1.0/groups" || e.Path == "/v1.0/contacts") && !strings.Contains(e.Query, "top=999") {
				t.Fatalf("list without $top=999: %s?%s", e.Path, e.Query)
			}
		}
		if st.Requests != 4 { // users, groups, contacts (one page each at this size) and the $batch
			t.Fatalf("%d requests, want 4", st.Requests)
		}
	}
}

func TestDeltaInitialIncrementalAndRemoved(t *testing.T) {
	f := newFixture(t, kept())
	s1, st := snapshot(t, f.c)
	if st.FullRounds != 3 || st.IncrementalRounds != 0 {
		t.Fatalf("first snapshot: %+v", st)
	}
	if len(s1.Users) != kindCount(f.srv, sim.KindUser) || len(s1.Groups) != kindCount(f.srv, sim.KindGroup) ||
		len(s1.Contacts) != kindCount(f.srv, sim.KindContact) || len(s1.Domains) == 0 || len(s1.SKUs) == 0 {
		t.Fatalf("first snapshot: %d users, %d groups, %d contacts, %d domains, %d SKUs",
			len(s1.Users), len(s1.Groups), len(s1.Contacts), len(s1.Domains), len(s1.SKUs))
	}
	wantSelectedUsers(t, f.srv, s1.Users)
	if st.Pages < int64((len(s1.Users)+39)/40) {
		t.Fatalf("first user read in %d pages overall", st.Pages)
	}
	// The first read is "sync from now" plus list pages: no initial delta round.
	if n := f.srv.Log.Count(func(e sim.Entry) bool {
		return strings.Contains(e.Path, "/delta") && !strings.Contains(e.Query, "latest")
	}); n != 0 {
		t.Fatalf("%d delta requests other than $deltatoken=latest in the first read", n)
	}

	tn := f.srv.Tenant()
	meus := tn.InScopeMEUs()
	tn.Update(meus[0].ID, func(o *sim.Object) { o.DisplayName = "Changed Name" })
	tn.Delete(meus[1].ID)
	contact := sim.Object{ID: "0c0c0c0c-0000-4000-8000-000000000001", Kind: sim.KindContact, DisplayName: "New Contact",
		Mail: "new@fabrikam.com", MailNickname: "newcontact", ProxyAddresses: []string{"SMTP:new@fabrikam.com"}, OnPremisesSyncEnabled: true,
		RecipientType: "MailContact", RecipientTypeDetails: sim.RTDMailContact}
	if err := tn.Add(contact); err != nil {
		t.Fatal(err)
	}
	if err := tn.AssignLicense(meus[2].ID, sim.SkuEnterprisePack); err != nil {
		t.Fatal(err)
	}
	s2, st := snapshot(t, f.c)
	if st.IncrementalRounds != 3 || st.FullRounds != 0 || st.Changed != 3 || st.Removed != 1 {
		t.Fatalf("incremental snapshot: %+v (want 3 changed: rename, licence, new contact; 1 removed)", st)
	}
	byID := func(us []directory.User, id string) *directory.User {
		i := slices.IndexFunc(us, func(u directory.User) bool { return u.ID == id })
		if i < 0 {
			return nil
		}
		return &us[i]
	}
	if u := byID(s2.Users, meus[0].ID); u == nil || u.DisplayName != "Changed Name" {
		t.Fatalf("renamed user: %+v", u)
	}
	if byID(s2.Users, meus[1].ID) != nil || len(s2.Users) != len(s1.Users)-1 {
		t.Fatalf("deleted user still there (%d users before, %d after)", len(s1.Users), len(s2.Users))
	}
	if u := byID(s2.Users, meus[2].ID); u == nil || len(u.AssignedLicenses) != 1 || len(u.AssignedPlans) == 0 {
		t.Fatalf("licensed user: %+v", u)
	}
	if !slices.ContainsFunc(s2.Contacts, func(c directory.Contact) bool { return c.ID == contact.ID && c.Mail == contact.Mail }) {
		t.Fatal("added contact missing")
	}
	if !slices.IsSortedFunc(s2.Users, func(a, b directory.User) int { return strings.Compare(a.ID, b.ID) }) {
		t.Fatal("users not ordered by id after the merge")
	}
	// The first snapshot is the caller's: later syncs do not change it.
	if u := byID(s1.Users, meus[0].ID); u == nil || u.DisplayName == "Changed Name" {
		t.Fatal("a later sync changed an earlier snapshot")
	}
}

func TestUnchangedRerunIsOneBatch(t *testing.T) {
	f := newFixture(t, kept())
	snapshot(t, f.c)
	// An EXO-only change is no Graph change.
	if err := f.srv.Tenant().SetUseMapiRichTextFormat(f.srv.Tenant().InScopeMEUs()[0].ID, sim.RichTextNever); err != nil {
		t.Fatal(err)
	}
	f.srv.Log.Reset()
	_, st := snapshot(t, f.c)
	es := graphEntries(f.srv)
	wantBearer(t, es)
	var delta, batch, other []string
	for _, e := range es {
		line := e.Method + " " + e.Path + "?" + e.Query
		switch {
		case e.InBatch && strings.HasSuffix(e.Path, "/delta()") && strings.Contains(e.Query, "deltatoken="):
			delta = append(delta, line)
		case e.Batch:
			batch = append(batch, line)
		case e.InBatch && (e.Path == "/v1.0/domains" || e.Path == "/v1.0/subscribedSkus"):
		default:
			other = append(other, line)
		}
	}
	if len(delta) != 3 || len(batch) != 1 || len(other) != 0 {
		t.Fatalf("rerun sent %d delta items, %d $batch and other requests %v; want 3 delta items in 1 $batch, nothing else", len(delta), len(batch), other)
	}
	if st.Requests != 1 || st.IncrementalRounds != 3 || st.Changed != 0 || st.Removed != 0 {
		t.Fatalf("rerun stats %+v", st)
	}
	// Token requests do not count: the credential caches its token.
	if n := f.srv.Log.Count(func(e sim.Entry) bool { return strings.Contains(e.Path, "/oauth2/") }); n != 0 {
		t.Errorf("%d token requests on the rerun", n)
	}
}

func TestExpiredDeltaTokenLeadsToOneFullResync(t *testing.T) {
	for _, shape := range sim.DeltaExpiries() {
		t.Run(string(shape), func(t *testing.T) {
			f := newFixture(t, kept())
			s1, _ := snapshot(t, f.c)
			tn := f.srv.Tenant()
			tn.Delete(tn.InScopeMEUs()[0].ID) // a change the resync must show too
			tn.ExpireDeltaTokens(shape)
			f.srv.Log.Reset()
			s2, st := snapshot(t, f.c)
			if st.Resyncs != 3 || st.FullRounds != 3 || st.IncrementalRounds != 0 {
				t.Fatalf("stats %+v, want 3 resyncs (one full read per resource)", st)
			}
			if len(s2.Users) != len(s1.Users)-1 || len(s2.Groups) != len(s1.Groups) || len(s2.Contacts) != len(s1.Contacts) {
				t.Fatalf("after resync: %d users (before %d), %d groups, %d contacts", len(s2.Users), len(s1.Users), len(s2.Groups), len(s2.Contacts))
			}
			for _, res := range []string{"users", "groups", "contacts"} {
				var seq []string
				for _, e := range graphEntries(f.srv) {
					kind := ""
					switch {
					case e.Path == "/v1.0/"+res+"/delta()" && strings.Contains(e.Query, "latest"):
						kind = "latest"
					case e.Path == "/v1.0/"+res+"/delta()" && strings.Contains(e.Query, "deltatoken="):
						kind = "token"
					case e.Path == "/v1.0/"+res+"/delta()":
						kind = "initial"
					case e.Path == "/v1.0/"+res && !strings.Contains(e.Query, "skiptoken"):
						kind = "list"
					default:
						continue
					}
					seq = append(seq, fmt.Sprintf("%s:%d", kind, e.Status/100))
				}
				if !slices.Equal(seq, []string{"token:4", "latest:2", "list:2"}) {
					t.Fatalf("%s requests %v: want the refused token once, then one full read (latest link, list)", res, seq)
				}
			}
			// The new links work: the next sync is incremental again.
			if _, st := snapshot(t, f.c); st.IncrementalRounds != 3 || st.Resyncs != 0 {
				t.Fatalf("after the resync: %+v", st)
			}
		})
	}
}

// TestStateSurvivesANewProcess is issue 10's "incremental across restarts": a second client on the same
// store (a new process) resumes with delta rounds; a deleted, corrupt or foreign link and an unreadable
// saved state each cost one full read of that resource, not an error.
func TestStateSurvivesANewProcess(t *testing.T) {
	db, err := store.Open(ctx(t), filepath.Join(t.TempDir(), "worker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	f := newFixture(t, graph.Options{State: db})
	s1, _ := snapshot(t, f.c)
	for _, res := range []string{"users", "groups", "contacts"} {
		link, err := db.GetDeltaLink(ctx(t), res)
		if err != nil || !strings.Contains(link, "/v1.0/"+res+"/delta()?$deltatoken=") {
			t.Fatalf("stored link for %s: %q, %v", res, link, err)
		}
	}
	restart := func() *graph.Client {
		t.Helper()
		cred, _ := f.srv.Credential()
		c, err := graph.New(graph.Options{BaseURL: f.srv.URL, Credential: cred, HTTPClient: f.srv.HTTPClient(), State: db})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tn := f.srv.Tenant()
	meu := tn.InScopeMEUs()[0]
	tn.Update(meu.ID, func(o *sim.Object) { o.DisplayName = "Renamed Between Runs" })
	s2, st := snapshot(t, restart())
	if st.IncrementalRounds != 3 || st.FullRounds != 0 || st.Changed != 1 || st.Requests != 1 {
		t.Fatalf("new process: %+v, want 3 incremental rounds in 1 request, 1 change", st)
	}
	if len(s2.Users) != len(s1.Users) || !slices.ContainsFunc(s2.Users, func(u directory.User) bool { return u.ID == meu.ID && u.DisplayName == "Renamed Between Runs" }) {
		t.Fatal("the resumed snapshot misses the change or lost users")
	}
	if _, st := snapshot(t, restart()); st.Requests != 1 || st.Changed != 0 || st.IncrementalRounds != 3 {
		t.Fatalf("unchanged, new process: %+v", st)
	}

	cases := []struct {
		name   string
		break_ func()
	}{
		{"deleted link", func() { _ = db.DeleteDeltaLink(ctx(t), "users") }},
		{"corrupt link", func() {
			l, _ := db.GetDeltaLink(ctx(t), "users")
			_ = db.SetDeltaLink(ctx(t), "users", l[:strings.Index(l, "$deltatoken=")]+"$deltatoken=bm90LWEtdG9rZW4")
		}},
		{"corrupt saved state", func() { _ = db.PutSnapshot(ctx(t), "graph/users", []byte("not gob")) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.break_()
			s, st := snapshot(t, restart())
			if st.FullRounds != 1 || st.IncrementalRounds != 2 {
				t.Fatalf("%+v, want users read from scratch only", st)
			}
			if len(s.Users) != len(s1.Users) {
				t.Fatalf("%d users, want %d", len(s.Users), len(s1.Users))
			}
			if _, st := snapshot(t, restart()); st.IncrementalRounds != 3 || st.Requests != 1 {
				t.Fatalf("after the full read: %+v, want incremental again", st)
			}
		})
	}
}

func TestBatchForDomainsAndSKUs(t *testing.T) {
	f := newFixture(t, graph.Options{})
	// The first attempt's SKU item is throttled; the client resends that item alone.
	f.srv.InjectGraphFault(sim.GraphFault{Match: func(r sim.GraphRequest) bool { return r.InBatch && r.Path == "/subscribedSkus" },
		Status: 429, RetryAfter: time.Second})
	doms, skus, err := func() ([]directory.Domain, []directory.SubscribedSKU, error) {
		s, err := f.c.Snapshot(ctx(t))
		if err != nil {
			return nil, nil, err
		}
		return s.Domains, s.SKUs, nil
	}()
	if err != nil {
		t.Fatal(err)
	}
	if len(doms) != len(f.srv.Tenant().GraphDomains()) || len(skus) != len(f.srv.Tenant().SubscribedSKUs()) {
		t.Fatalf("%d domains, %d SKUs", len(doms), len(skus))
	}
	var envelopes, items []sim.Entry
	for _, e := range graphEntries(f.srv) {
		switch {
		case e.Batch:
			envelopes = append(envelopes, e)
		case e.InBatch:
			items = append(items, e)
		}
	}
	if len(envelopes) != 2 || len(items) != 3 {
		t.Fatalf("%d $batch posts with %d items, want 2 posts with 3 items (domains, SKUs, SKUs again)", len(envelopes), len(items))
	}
	for _, e := range envelopes {
		if e.Header.Get("Content-Encoding") != "gzip" || e.Status != 200 {
			t.Fatalf("$batch post: Content-Encoding %q, status %d", e.Header.Get("Content-Encoding"), e.Status)
		}
	}
	if items[0].Query == "" || !strings.Contains(items[0].Query, "24select") && !strings.Contains(items[0].Query, "$select") {
		t.Fatalf("inner URL query %q carries no $select", items[0].Query)
	}
	if st := f.c.Stats(); st.Throttled != 1 || st.Retries != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	srv, err := sim.Start(sim.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cred, _ := srv.Credential()
	tests := []struct {
		name string
		opts graph.Options
		want string
	}{
		{"no credential", graph.Options{BaseURL: srv.URL}, "no credential"},
		{"plain http", graph.Options{BaseURL: "http://graph.example", Credential: cred}, "must use https"},
		{"relative", graph.Options{BaseURL: "graph.microsoft.com", Credential: cred}, "not an absolute URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := graph.New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
	c, err := graph.New(graph.Options{BaseURL: srv.URL + "/v1.0/", Credential: cred, HTTPClient: srv.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Domains(ctx(t)); err != nil {
		t.Fatalf("base URL with /v1.0/: %v", err)
	}
}

func TestRevokedTokenIsRenewedThroughTheClaimsChallenge(t *testing.T) {
	f := newFixture(t, graph.Options{})
	snapshot(t, f.c)
	f.srv.ExpireTokens() // the cached token is now refused
	f.srv.Log.Reset()
	if _, err := f.c.Snapshot(ctx(t)); err != nil {
		t.Fatalf("snapshot after token revocation: %v", err)
	}
	var unauthorized, tokens int
	for _, e := range f.srv.Log.Entries() {
		switch {
		case e.Service == "graph" && e.Status == 401:
			unauthorized++
		case strings.Contains(e.Path, "/oauth2/v2.0/token"):
			tokens++
		}
	}
	if unauthorized == 0 || tokens == 0 {
		t.Fatalf("%d refused Graph requests and %d token requests: the revocation was not exercised", unauthorized, tokens)
	}
}

func TestLastSyncIsTheOrganizationsSyncTime(t *testing.T) {
	f := newFixture(t, graph.Options{})
	f.srv.Tenant().SyncCycle()
	got, err := f.c.LastSync(ctx(t))
	if want := f.srv.Tenant().LastSync(); err != nil || got.IsZero() || !got.Equal(want) {
		t.Fatalf("LastSync = %v, %v; want %v", got, err, want)
	}
	es := graphEntries(f.srv)
	if len(es) != 1 || es[0].Path != "/v1.0/organization" || !strings.Contains(es[0].Query, "onPremisesLastSyncDateTime") {
		t.Fatalf("requests %+v, want one GET /organization with $select", es)
	}
}
