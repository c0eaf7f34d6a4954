package exo_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/sim"
)

// These tests run the real client against the simulated tenant over HTTPS on 127.0.0.1, with a real
// azidentity credential. Sizes and delays are small so that the file runs in seconds.

// headerLog records the request headers the client sends (it observes the real transport, it replaces
// nothing).
type headerLog struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method string
	url    *url.URL
	header http.Header
}

func (h *headerLog) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/adminapi/") {
		h.mu.Lock()
		h.reqs = append(h.reqs, recorded{r.Method, r.URL, r.Header.Clone()})
		h.mu.Unlock()
	}
	return h.next.RoundTrip(r)
}

// CloseIdleConnections passes through, so that http.Client.CloseIdleConnections reaches the transport.
func (h *headerLog) CloseIdleConnections() {
	if c, ok := h.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (h *headerLog) all() []recorded {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.reqs)
}

type env struct {
	srv     *sim.Server
	client  *exo.Client
	headers *headerLog
}

// scenario is a small tenant: n dir-synced MEUs plus a few out-of-scope recipients.
func scenario(n int) *sim.Scenario {
	sc := sim.DefaultScenario()
	sc.DirSyncedMEUs, sc.CloudMEUs, sc.Guests, sc.Mailboxes, sc.Contacts, sc.Groups = n, 3, 2, 2, 2, 1
	return &sc
}

func start(t *testing.T, so sim.Options, edit func(*exo.Options)) *env {
	t.Helper()
	srv, err := sim.Start(so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cred, err := srv.Credential()
	if err != nil {
		t.Fatal(err)
	}
	hc := srv.HTTPClient()
	hl := &headerLog{next: hc.Transport}
	hc.Transport = hl
	// Runs before srv.Close (cleanups are LIFO): open keep-alive connections would make Close wait.
	t.Cleanup(hc.CloseIdleConnections)
	o := exo.Options{
		BaseURL:        srv.URL,
		Tenant:         srv.Creds.TenantID,
		Credential:     cred,
		HTTPClient:     hc,
		RetryBaseDelay: 5 * time.Millisecond,
		RetryMaxDelay:  50 * time.Millisecond,
	}
	if edit != nil {
		edit(&o)
	}
	c, err := exo.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, client: c, headers: hl}
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func inScopeFilter() string {
	return exo.And(exo.Eq("IsDirSynced", true), exo.Eq("RecipientTypeDetails", "MailUser")).String()
}

func invokeCalls(srv *sim.Server, cmdlet string) []sim.Entry {
	var out []sim.Entry
	for _, e := range srv.Log.Entries() {
		if e.Cmdlet == cmdlet && !e.Batch {
			out = append(out, e)
		}
	}
	return out
}

func TestMailUsersPagesAndSelect(t *testing.T) {
	e := start(t, sim.Options{Scenario: scenario(23)}, func(o *exo.Options) { o.PageSize = 5 })
	ctx := ctxT(t)
	want := map[string]bool{}
	for _, o := range e.srv.Tenant().InScopeMEUs() {
		want[o.ID] = true
	}
	got := map[string]bool{}
	for mu, err := range e.client.MailUsers(ctx, inScopeFilter(), "ExternalDirectoryObjectId", "UseMapiRichTextFormat", "IsDirSynced", "RecipientTypeDetails") {
		if err != nil {
			t.Fatal(err)
		}
		if !mu.IsDirSynced || mu.RecipientTypeDetails != "MailUser" || mu.UseMapiRichTextFormat == "" {
			t.Errorf("selected fields wrong: %+v", mu)
		}
		if mu.DisplayName != "" || len(mu.EmailAddresses) != 0 {
			t.Errorf("unselected fields returned: %+v", mu)
		}
		if got[mu.ExternalDirectoryObjectId] {
			t.Errorf("%s returned twice", mu.ExternalDirectoryObjectId)
		}
		got[mu.ExternalDirectoryObjectId] = true
	}
	if len(got) != 23 || len(want) != 23 {
		t.Fatalf("got %d mail users, tenant has %d in scope, want 23", len(got), len(want))
	}
	for id := range want {
		if !got[id] {
			t.Errorf("in-scope MEU %s missing", id)
		}
	}
	calls := invokeCalls(e.srv, "Get-MailUser")
	if len(calls) != 5 { // 23 objects, 5 per page
		t.Fatalf("%d Get-MailUser requests, want 5 pages", len(calls))
	}
	for _, c := range calls {
		if c.ClientRequestID != calls[0].ClientRequestID || c.ClientRequestID == "" {
			t.Errorf("client-request-id %q differs across pages of one call (first %q)", c.ClientRequestID, calls[0].ClientRequestID)
		}
	}

	// The wire: the module's headers, the same body re-POSTed to the nextLink, $select on the first URL.
	reqs := e.headers.all()
	tenant := e.srv.Creds.TenantID
	for i, r := range reqs {
		h := r.header
		checks := map[string]string{
			"Content-Type":     "application/json",
			"Accept":           "application/json",
			"X-ResponseFormat": "json",
			"X-CmdletName":     "Get-MailUser",
			"Prefer":           "odata.maxpagesize=5",
			"X-AnchorMailbox":  "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@" + tenant,
		}
		for k, v := range checks {
			if h.Get(k) != v {
				t.Errorf("request %d: %s = %q, want %q", i, k, h.Get(k), v)
			}
		}
		if !strings.HasPrefix(h.Get("Authorization"), "Bearer ey") {
			t.Errorf("request %d: no bearer token", i)
		}
		if r.method != http.MethodPost {
			t.Errorf("request %d: method %s, want POST (also for nextLink)", i, r.method)
		}
		if h.Get("connection-id") == "" || h.Get("connection-id") != reqs[0].header.Get("connection-id") {
			t.Errorf("request %d: connection-id %q not stable", i, h.Get("connection-id"))
		}
	}
	if q := reqs[0].url.Query(); q.Get("$select") != "ExternalDirectoryObjectId,UseMapiRichTextFormat,IsDirSynced,RecipientTypeDetails" {
		t.Errorf("first URL %s: $select = %q", reqs[0].url, q.Get("$select"))
	}
	if reqs[1].url.Query().Get("$skiptoken") == "" {
		t.Errorf("second page went to %s, not the nextLink", reqs[1].url)
	}

	// A second listing is a new call with a new client-request-id; stopping early sends no more pages.
	e.srv.Log.Entries()
	e.srv.Log.Reset()
	for _, err := range e.client.MailUsers(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	calls2 := invokeCalls(e.srv, "Get-MailUser")
	if len(calls2) != 1 || calls2[0].ClientRequestID == calls[0].ClientRequestID {
		t.Fatalf("early stop: %d requests (want 1), client-request-id reused: %v", len(calls2), len(calls2) == 1 && calls2[0].ClientRequestID == calls[0].ClientRequestID)
	}
	if rs, ok := calls2[0].Params["ResultSize"]; !ok || fmt.Sprint(rs) != "Unlimited" {
		t.Errorf("listing sent ResultSize %v, want Unlimited", rs)
	}
}

func TestAllMailUsersIncludeGuestsAndCloud(t *testing.T) {
	e := start(t, sim.Options{Scenario: scenario(7)}, nil)
	n, guests, cloud := 0, 0, 0
	for mu, err := range e.client.MailUsers(ctxT(t), "") {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if mu.RecipientTypeDetails == "GuestMailUser" {
			guests++
		}
		if !mu.IsDirSynced && mu.RecipientTypeDetails == "MailUser" {
			cloud++
		}
		if mu.WhenCreatedUTC.IsZero() || mu.ExchangeObjectId == "" || len(mu.EmailAddresses) == 0 {
			t.Errorf("full object not decoded: %+v", mu)
		}
	}
	if n != 12 || guests != 2 || cloud != 3 {
		t.Fatalf("got %d mail users (%d guests, %d cloud), want 12 (2, 3)", n, guests, cloud)
	}
}

func TestGetMailUserAndTypedErrors(t *testing.T) {
	// "auto" answers in JSON because the client sends X-ResponseFormat: json.
	for _, enc := range []string{sim.DetailPipe, sim.DetailJSON, sim.DetailAuto} {
		t.Run(enc, func(t *testing.T) {
			e := start(t, sim.Options{Scenario: scenario(3), DetailEncoding: enc}, nil)
			ctx := ctxT(t)
			meu := e.srv.Tenant().InScopeMEUs()[0]

			got, err := e.client.GetMailUser(ctx, meu.ID)
			if err != nil || got.ExternalDirectoryObjectId != meu.ID || got.Alias != meu.Alias {
				t.Fatalf("GetMailUser = %+v, %v", got, err)
			}

			const ghost = "00000000-dead-beef-0000-000000000000"
			_, err = e.client.GetMailUser(ctx, ghost)
			var xe *exo.Error
			if !errors.As(err, &xe) || xe.Kind != exo.KindNotFound || !errors.Is(err, exo.KindNotFound) {
				t.Fatalf("unknown identity: %v, want NotFound", err)
			}
			if xe.HTTPStatus != 404 || xe.RequestID == "" || xe.Identity != ghost || xe.Cmdlet != "Get-MailUser" ||
				!strings.Contains(xe.ExceptionType, "ManagementObjectNotFoundException") || !strings.Contains(xe.Message, ghost) {
				t.Errorf("not-found error lacks detail: %#v", xe)
			}
			if !strings.HasPrefix(err.Error(), `Get-MailUser "`+ghost+`": The operation couldn't be performed`) {
				t.Errorf("Error() = %s", err)
			}

			_, err = e.client.Invoke(ctx, exo.Command{Name: "Set-MailUser", Params: map[string]any{
				"Identity": meu.ID, "EmailAddresses": []string{"SMTP:new@contoso.com"}}})
			if !exo.IsKind(err, exo.KindDirSyncWriteRefused) || !strings.Contains(err.Error(), "on-premises organization") {
				t.Errorf("EmailAddresses on a dir-synced MEU: %v, want DirSyncWriteRefused", err)
			}

			_, err = e.client.Invoke(ctx, exo.Command{Name: "Get-MailUser", Params: map[string]any{
				"Filter": exo.Eq("UseMapiRichTextFormat", "Never").String()}})
			if !exo.IsKind(err, exo.KindNotFilterable) {
				t.Errorf("filter on UseMapiRichTextFormat: %v, want NotFilterable", err)
			}

			_, err = e.client.Invoke(ctx, exo.Command{Name: "Set-MailUser", Params: map[string]any{"Identity": ""}})
			if !exo.IsKind(err, exo.KindBadRequest) {
				t.Errorf("empty identity: %v", err)
			}
			if n := len(invokeCalls(e.srv, "Set-MailUser")); n != 1 {
				t.Errorf("%d Set-MailUser calls reached the service, want 1 (the empty identity must be refused locally)", n)
			}
		})
	}
}

func TestBatchMixedResults(t *testing.T) {
	e := start(t, sim.Options{Scenario: scenario(20)}, nil)
	ctx := ctxT(t)
	meus := e.srv.Tenant().InScopeMEUs()
	var cmds []exo.Command
	for _, o := range meus {
		cmds = append(cmds, exo.Command{Name: "Set-MailUser", Params: map[string]any{"Identity": o.ID, "UseMapiRichTextFormat": "Never"}})
	}
	const ghost = "11111111-2222-3333-4444-555555555555"
	cmds = slices.Insert(cmds, 3, exo.Command{Name: "Set-MailUser", Params: map[string]any{"Identity": ghost, "UseMapiRichTextFormat": "Never"}})
	cmds = append(cmds,
		exo.Command{Name: "Set-MailUser", Params: map[string]any{"Identity": meus[0].ID, "HiddenFromAddressListsEnabled": true}},
		exo.Command{Name: "Get-MailUser", Params: map[string]any{"Identity": meus[1].ID}, Select: []string{"Alias"}},
	)
	res := e.client.Batch(ctx, cmds)
	if len(res) != len(cmds) {
		t.Fatalf("%d results for %d commands", len(res), len(cmds))
	}
	for i, r := range res {
		if r.Command.Name != cmds[i].Name || fmt.Sprint(r.Command.Params["Identity"]) != fmt.Sprint(cmds[i].Params["Identity"]) {
			t.Fatalf("result %d is for %v, want %v (order lost)", i, r.Command.Params, cmds[i].Params)
		}
	}
	if !exo.IsKind(res[3].Err, exo.KindNotFound) || !strings.Contains(res[3].Err.Error(), ghost) {
		t.Errorf("ghost: %v", res[3].Err)
	}
	if !exo.IsKind(res[21].Err, exo.KindDirSyncWriteRefused) {
		t.Errorf("hidden on dir-synced: %v", res[21].Err)
	}
	if res[22].Err != nil || len(res[22].Response.Values) != 1 {
		t.Fatalf("Get in batch: %v", res[22].Err)
	}
	if mu, err := exo.Decode[exo.MailUser](res[22].Response.Values[0]); err != nil || mu.Alias != meus[1].Alias || mu.DisplayName != "" {
		t.Errorf("Get in batch decoded %+v, %v (want Alias only)", mu, err)
	}
	for i, r := range res {
		if i == 3 || i >= 21 {
			continue
		}
		if r.Err != nil {
			t.Errorf("command %d: %v", i, r.Err)
		}
	}
	for _, o := range e.srv.Tenant().InScopeMEUs() {
		if o.UseMapiRichTextFormat != "Never" {
			t.Errorf("%s still %s", o.ID, o.UseMapiRichTextFormat)
		}
	}
	envelopes, subs := 0, 0
	for _, en := range e.srv.Log.Entries() {
		if en.Batch {
			envelopes++
		}
		if en.InBatch {
			subs++
		}
	}
	if envelopes != 3 || subs != 23 {
		t.Errorf("%d $batch requests with %d sub-requests, want 3 with 23", envelopes, subs)
	}
	for _, r := range e.headers.all() {
		if strings.HasSuffix(r.url.Path, "/$batch") && r.header.Get("Prefer") != "odata.continue-on-error" {
			t.Errorf("$batch Prefer = %q", r.header.Get("Prefer"))
		}
	}
	if s := e.client.Stats(); s.SubRequests != 23 || s.Requests != 3 || s.Throttled != 0 {
		t.Errorf("stats %+v", s)
	}

	// Writing the same value again is a no-op with the service's warning.
	again := e.client.Batch(ctx, cmds[:1])
	if again[0].Err != nil || len(again[0].Response.Warnings) != 1 || !strings.Contains(again[0].Response.Warnings[0], "no settings") {
		t.Errorf("no-op write: %+v", again[0])
	}
	if len(e.client.Batch(ctx, nil)) != 0 {
		t.Error("empty batch returned results")
	}
}

func TestRetriesOnInjectedFaults(t *testing.T) {
	e := start(t, sim.Options{Scenario: scenario(40), Faults: sim.Faults{ErrorRate: 0.15, ResetRate: 0.08, TruncateRate: 0.08, Seed: 7}},
		func(o *exo.Options) { o.PageSize = 4; o.MaxRetries = 8 })
	ctx := ctxT(t)
	n := 0
	for _, err := range e.client.MailUsers(ctx, inScopeFilter(), "ExternalDirectoryObjectId") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 40 {
		t.Fatalf("listed %d, want 40", n)
	}
	var cmds []exo.Command
	for _, o := range e.srv.Tenant().InScopeMEUs() {
		cmds = append(cmds, exo.Command{Name: "Set-MailUser", Params: map[string]any{"Identity": o.ID, "UseMapiRichTextFormat": "Never"}})
	}
	for i, r := range e.client.Batch(ctx, cmds) {
		if r.Err != nil {
			t.Errorf("command %d failed despite retries: %v", i, r.Err)
		}
	}
	fs, st := e.srv.FaultStats(), e.client.Stats()
	t.Logf("faults %+v, client %+v", fs, st)
	if fs.Errors == 0 || fs.Resets == 0 || fs.Truncated == 0 {
		t.Fatalf("the seed injected too little to test: %+v", fs)
	}
	// A dropped or cut $batch response hides the sub-request errors inside it, so count only what the
	// client can have seen: every reset and truncation costs at least one retry.
	if st.Retries < fs.Resets+fs.Truncated || st.Retries == 0 {
		t.Errorf("%d retries for %d resets and %d truncations", st.Retries, fs.Resets, fs.Truncated)
	}
	for _, o := range e.srv.Tenant().InScopeMEUs() {
		if o.UseMapiRichTextFormat != "Never" {
			t.Errorf("%s still %s", o.ID, o.UseMapiRichTextFormat)
		}
	}
}

func TestRetryBudgetExhausted(t *testing.T) {
	e := start(t, sim.Options{Scenario: scenario(2), Faults: sim.Faults{ErrorRate: 1}}, func(o *exo.Options) { o.MaxRetries = 2 })
	_, err := e.client.Invoke(ctxT(t), exo.Command{Name: "Get-MailUser", Params: map[string]any{"ResultSize": "Unlimited"}})
	var xe *exo.Error
	if !errors.As(err, &xe) || xe.Kind != exo.KindTransient || xe.Attempts != 3 {
		t.Fatalf("err = %v, want Transient after 3 attempts", err)
	}
	if n := len(invokeCalls(e.srv, "Get-MailUser")); n != 3 {
		t.Errorf("%d requests, want 3 (1 + 2 retries)", n)
	}
	if !strings.Contains(err.Error(), "after 3 attempts") {
		t.Errorf("Error() = %s", err)
	}
}

// pacingClock is the wall clock (the simulator's throttle bucket refills in real time) that also adds up the
// waits the client asks of it.
type pacingClock struct {
	mu  sync.Mutex
	sum time.Duration
}

func (c *pacingClock) Now() time.Time { return time.Now() }
func (c *pacingClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sum += d
	c.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (c *pacingClock) waited() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sum
}

// recordingClock is the wall clock, except that it records the waits asked of it instead of sleeping.
type recordingClock struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (c *recordingClock) Now() time.Time { return time.Now() }
func (c *recordingClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	return ctx.Err()
}

// TestRetryAfterBeyondTheLimitEndsTheCall: a Retry-After longer than MaxRetryWait (the tenant's budget is
// 1 request per 1000 s) is neither waited nor ignored: the call ends at once with the throttling error,
// which carries the service's Retry-After (internal/retry's policy).
func TestRetryAfterBeyondTheLimitEndsTheCall(t *testing.T) {
	clk := &recordingClock{}
	e := start(t, sim.Options{Scenario: scenario(2), Faults: sim.Faults{ThrottleBudget: 0.001, ThrottleBurst: 1}},
		func(o *exo.Options) { o.Clock = clk; o.MaxRetryWait = time.Minute })
	cmd := exo.Command{Name: "Get-AcceptedDomain"}
	if _, err := e.client.Invoke(ctxT(t), cmd); err != nil {
		t.Fatalf("first call (within the burst): %v", err)
	}
	_, err := e.client.Invoke(ctxT(t), cmd)
	var xe *exo.Error
	if !errors.As(err, &xe) || xe.Kind != exo.KindThrottled || xe.HTTPStatus != 429 {
		t.Fatalf("err = %v, want the 429", err)
	}
	if xe.RetryAfter < 900*time.Second || xe.RetryAfter > 1000*time.Second {
		t.Errorf("RetryAfter = %v, want the service's ~1000 s", xe.RetryAfter)
	}
	if !strings.Contains(err.Error(), "retry after") {
		t.Errorf("Error() does not say how long the service asks to wait: %s", err)
	}
	if n := len(invokeCalls(e.srv, "Get-AcceptedDomain")); n != 2 {
		t.Errorf("%d requests, want 2 (no retry)", n)
	}
	clk.mu.Lock()
	defer clk.mu.Unlock()
	for _, w := range clk.waits {
		if w >= time.Minute {
			t.Errorf("the client waited %v", w)
		}
	}
}

func TestTokenRefreshOn401(t *testing.T) {
	e := start(t, sim.Options{Scenario: scenario(2)}, nil)
	ctx := ctxT(t)
	id := e.srv.Tenant().InScopeMEUs()[0].ID
	if _, err := e.client.GetMailUser(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.srv.ExpireTokens()
	if _, err := e.client.GetMailUser(ctx, id); err != nil {
		t.Fatalf("after the token was revoked: %v", err)
	}
	unauthorized := 0
	for _, en := range e.srv.Log.Entries() {
		if en.Status == http.StatusUnauthorized {
			unauthorized++
		}
	}
	if st := e.client.Stats(); unauthorized != 1 || st.TokenRefreshes != 1 {
		t.Errorf("%d 401s, %d refreshes; want 1 and 1", unauthorized, st.TokenRefreshes)
	}
	// The same in $batch: the refused envelope is refreshed and re-sent once.
	e.srv.ExpireTokens()
	res := e.client.Batch(ctx, []exo.Command{{Name: "Set-MailUser", Params: map[string]any{"Identity": id, "UseMapiRichTextFormat": "Always"}}})
	if res[0].Err != nil {
		t.Fatalf("batch after revocation: %v", res[0].Err)
	}
	if st := e.client.Stats(); st.TokenRefreshes != 2 {
		t.Errorf("%d refreshes, want 2", st.TokenRefreshes)
	}
}

func TestUnauthorizedCredentialIsTyped(t *testing.T) {
	e := start(t, sim.Options{Scenario: scenario(1)}, func(o *exo.Options) { o.Scope = "https://graph.microsoft.com/.default" })
	_, err := e.client.Invoke(ctxT(t), exo.Command{Name: "Get-AcceptedDomain"})
	if !exo.IsKind(err, exo.KindUnauthorized) || !strings.Contains(err.Error(), "Exchange.ManageAsApp") {
		t.Fatalf("wrong-audience token: %v, want Unauthorized with a hint", err)
	}
	if st := e.client.Stats(); st.TokenRefreshes != 1 || st.Requests != 2 {
		t.Errorf("stats %+v: want exactly one refresh and one retry", st)
	}
}

// TestThrottlingLearnsBudget runs 300 Set-MailUser sub-requests against a budget of 50/s: after the first
// 429s the client must settle under the budget instead of hammering.
func TestThrottlingLearnsBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 6 s")
	}
	const budget, n = 50, 300
	e := start(t, sim.Options{Scenario: scenario(n), Faults: sim.Faults{ThrottleBudget: budget, RTT: 10 * time.Millisecond}}, nil)
	ctx := ctxT(t)
	var cmds []exo.Command
	for _, o := range e.srv.Tenant().InScopeMEUs() {
		cmds = append(cmds, exo.Command{Name: "Set-MailUser", Params: map[string]any{"Identity": o.ID, "UseMapiRichTextFormat": "Never"}})
	}
	t0 := time.Now()
	res := e.client.Batch(ctx, cmds)
	el := time.Since(t0)
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("command %d: %v", i, r.Err)
		}
	}
	fs, st := e.srv.FaultStats(), e.client.Stats()
	t.Logf("%d sub-requests in %v: %d throttled (server says %d), %d HTTP requests, %d retries, final rate %.1f/s",
		n, el.Round(time.Millisecond), st.Throttled, fs.Throttled, st.Requests, st.Retries, st.Rate)
	var first time.Time
	late := 0
	for _, en := range e.srv.Log.Entries() {
		if en.Fault != "throttle" {
			continue
		}
		if first.IsZero() {
			first = en.Time
		} else if en.Time.Sub(first) > time.Second {
			late++
		}
	}
	t.Logf("%d 429s more than 1 s after the first", late)
	if late > 10 {
		t.Errorf("%d sub-requests throttled more than 1 s after the first 429, want at most 10", late)
	}
	if st.Throttled != fs.Throttled {
		t.Errorf("client counted %d 429s, server sent %d", st.Throttled, fs.Throttled)
	}
	// Unthrottled, 4 batches of 10 in flight hit the empty bucket at once: the first episode costs up to
	// about 40 429s; after it the client must stay (nearly) within the budget.
	if fs.Throttled > 60 {
		t.Errorf("%d sub-requests throttled, want at most 60", fs.Throttled)
	}
	if st.Rate <= 0 || st.Rate > budget*1.3 {
		t.Errorf("learned rate %.1f/s, want about the budget %d/s", st.Rate, budget)
	}
	if fs.Throttled == 0 {
		t.Error("no 429 at all: throttling was not in effect")
	}
}

func TestPagingWaitsForRateLimitReset(t *testing.T) {
	clk := &pacingClock{}
	e := start(t, sim.Options{Scenario: scenario(5), Faults: sim.Faults{ThrottleBudget: 2, ThrottleBurst: 1}},
		func(o *exo.Options) { o.PageSize = 2; o.Clock = clk })
	n := 0
	for _, err := range e.client.MailUsers(ctxT(t), inScopeFilter(), "Alias") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 5 {
		t.Fatalf("listed %d, want 5", n)
	}
	// The service reports Rate-Limit-Remaining 0 with the reset time: the client waits for it instead of
	// spending a request on a certain 429.
	// Counted, not timed: at most one 429, and the client paced itself (asked its clock to wait) between pages.
	st := e.client.Stats()
	if waited := clk.waited(); st.Throttled > 1 || waited == 0 {
		t.Errorf("3 pages at 2/s with a burst of 1: %d throttled (want at most 1), paced %v (want waits for the reset)", st.Throttled, waited)
	}
}

// TestConcurrentInvokeThrottled: lone InvokeCommand calls that run into the budget are answered 429 as a
// whole; the client waits Retry-After, slows down and every call succeeds.
func TestConcurrentInvokeThrottled(t *testing.T) {
	// A small bucket (burst 2, 4/s): 16 concurrent calls overshoot it even on a loaded machine, where they
	// would have to trickle in over 3.5 s not to.
	const budget = 4
	e := start(t, sim.Options{Scenario: scenario(16), Faults: sim.Faults{ThrottleBudget: budget, ThrottleBurst: 2}}, nil)
	ctx := ctxT(t)
	meus := e.srv.Tenant().InScopeMEUs()
	var wg sync.WaitGroup
	errs := make([]error, len(meus))
	for i, o := range meus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.client.GetMailUser(ctx, o.ID, "Alias")
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	st, fs := e.client.Stats(), e.srv.FaultStats()
	if st.Throttled == 0 || st.Throttled != fs.Throttled || st.Retries < st.Throttled {
		t.Errorf("client %+v, server %+v: want some 429s, all counted and retried", st, fs)
	}
	// The limiter learned a finite pace of the budget's order (from so few calls it is a rough estimate:
	// what the bucket's burst let through in the last second, times 0.8).
	if st.Rate <= 0 || st.Rate > 3*budget {
		t.Errorf("rate %.1f after 429s at a budget of %d/s", st.Rate, budget)
	}
}

func TestCancelDuringThrottlePause(t *testing.T) {
	e := start(t, sim.Options{Scenario: scenario(30), Faults: sim.Faults{ThrottleBudget: 0.2, ThrottleBurst: 1}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var cmds []exo.Command
	for _, o := range e.srv.Tenant().InScopeMEUs() {
		cmds = append(cmds, exo.Command{Name: "Set-MailUser", Params: map[string]any{"Identity": o.ID, "UseMapiRichTextFormat": "Never"}})
	}
	res := e.client.Batch(ctx, cmds)
	// Batch returned (the test would hang otherwise) without sending the rest: of the 30 writes only what the
	// bucket's burst let through before the 5 s pause succeeded.
	if ok := e.srv.Log.Count(func(en sim.Entry) bool { return en.IsWrite() && en.Status == 200 }); ok > 1 {
		t.Errorf("%d writes succeeded; the budget (burst 1, then a 5 s pause) allows 1 before the context expired", ok)
	}
	failed := 0
	for _, r := range res {
		if r.Err != nil {
			failed++
			if !errors.Is(r.Err, context.DeadlineExceeded) && !exo.IsKind(r.Err, exo.KindThrottled) {
				t.Errorf("unexpected error: %v", r.Err)
			}
		}
	}
	if failed == 0 {
		t.Error("no command failed although the context expired during a 5 s throttle pause")
	}
}

func TestNewValidatesOptions(t *testing.T) {
	srv, err := sim.Start(sim.Options{Scenario: scenario(1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cred, err := srv.Credential()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    exo.Options
		want string
	}{
		{"no base URL", exo.Options{Tenant: "t", Credential: cred}, "BaseURL is empty"},
		{"relative base URL", exo.Options{BaseURL: "outlook.office365.com", Tenant: "t", Credential: cred}, "not an absolute"},
		{"plain http off loopback", exo.Options{BaseURL: "http://outlook.office365.com", Tenant: "t", Credential: cred}, "plain http"},
		{"no tenant", exo.Options{BaseURL: "https://outlook.office365.com", Credential: cred}, "Tenant is empty"},
		{"no credential", exo.Options{BaseURL: "https://outlook.office365.com", Tenant: "t"}, "Credential is nil"},
		{"page size", exo.Options{BaseURL: "https://outlook.office365.com", Tenant: "t", Credential: cred, PageSize: 1001}, "PageSize"},
		{"negative rate", exo.Options{BaseURL: "https://outlook.office365.com", Tenant: "t", Credential: cred, RequestsPerSecond: -1}, "RequestsPerSecond"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := exo.New(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() error = %v, want %q", err, tt.want)
			}
		})
	}
	// An untrusted certificate is reported as such, not retried as a transient failure.
	c, err := exo.New(exo.Options{BaseURL: srv.URL, Tenant: srv.Creds.TenantID, Credential: cred,
		HTTPClient: &http.Client{}, RetryBaseDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Invoke(ctxT(t), exo.Command{Name: "Get-AcceptedDomain"})
	if err == nil || c.Stats().Retries != 0 {
		t.Errorf("untrusted CA: err %v, retries %d", err, c.Stats().Retries)
	}
	if _, err := c.Invoke(ctxT(t), exo.Command{Name: "Get-MailUser", Select: []string{"Alias,Name"}}); !exo.IsKind(err, exo.KindBadRequest) {
		t.Errorf("bad $select name: %v", err)
	}
}

// TestSyncOwnedAgreesWithTheSimulator: every parameter exo.SyncOwned owns is refused by the simulator on a
// dir-synced mail user with Exchange's write-scope text, which the client classifies as
// KindDirSyncWriteRefused; a parameter it does not own (UseMapiRichTextFormat) is written.
func TestSyncOwnedAgreesWithTheSimulator(t *testing.T) {
	e := start(t, sim.Options{Scenario: scenario(2)}, nil)
	meus := e.srv.Tenant().InScopeMEUs()
	if len(meus) == 0 {
		t.Fatal("no dir-synced mail user in the scenario")
	}
	target := meus[0]
	value := func(p string) any {
		switch p {
		case "HiddenFromAddressListsEnabled", "ModerationEnabled", "RequireSenderAuthenticationEnabled":
			return true
		case "EmailAddresses", "AcceptMessagesOnlyFrom", "AcceptMessagesOnlyFromDLMembers", "AcceptMessagesOnlyFromSendersOrMembers",
			"RejectMessagesFrom", "RejectMessagesFromDLMembers", "RejectMessagesFromSendersOrMembers", "GrantSendOnBehalfTo",
			"ModeratedBy", "MailTipTranslations":
			return []string{"SMTP:someone@contoso.com"}
		}
		return "x"
	}
	params := exo.SyncOwnedParams("Set-MailUser")
	for _, p := range params {
		_, err := e.client.Invoke(ctxT(t), exo.Command{Name: "Set-MailUser", Params: map[string]any{"Identity": target.ID, p: value(p)}})
		var xe *exo.Error
		if !errors.As(err, &xe) || xe.Kind != exo.KindDirSyncWriteRefused || !strings.Contains(xe.Message, "'"+p+"'") {
			t.Errorf("Set-MailUser -%s on a dir-synced mail user: %v, want DirSyncWriteRefused naming the parameter", p, err)
		}
	}
	if after, _ := e.srv.Tenant().Object(target.ID); !slices.Equal(after.EmailAddresses, target.EmailAddresses) || after.DisplayName != target.DisplayName {
		t.Error("a refused write changed the object")
	}
	if _, owned := exo.SyncOwned("Set-MailUser", "UseMapiRichTextFormat"); owned {
		t.Fatal("UseMapiRichTextFormat is owned by sync")
	}
	if _, err := e.client.Invoke(ctxT(t), exo.Command{Name: "Set-MailUser",
		Params: map[string]any{"Identity": target.ID, "UseMapiRichTextFormat": "Always"}}); err != nil {
		t.Errorf("a parameter sync does not own was refused: %v", err)
	}
}
