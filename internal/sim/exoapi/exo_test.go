package exoapi_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/internal/sim/simtest"
	"github.com/exo-worker/worker/internal/sim/tenant"
)

func TestInvokeCommandEnvelopeAndHeaders(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := simtest.NewCaller(t, s)
	meu := s.Tenant().InScopeMEUs()[0]

	r := c.Do("POST", c.Base+"/InvokeCommand", map[string]string{"client-request-id": "11111111-2222-3333-4444-555555555555"},
		simtest.CmdletBody("Get-MailUser", map[string]any{"Identity": meu.ID})).MustStatus(t, 200)

	wantCtx := "https://" + strings.TrimPrefix(s.URL, "https://") + "/adminapi/beta/" + s.Creds.TenantID +
		"/$metadata#Collection(Exchange.GenericHashTable)"
	if got := r.Body["@odata.context"]; got != wantCtx {
		t.Errorf("@odata.context = %v, want %s", got, wantCtx)
	}
	if got := r.Body["adminapi.warnings@odata.type"]; got != "#Collection(String)" {
		t.Errorf("adminapi.warnings@odata.type = %v", got)
	}
	if _, ok := r.Body["@adminapi.warnings"].([]any); !ok {
		t.Errorf("@adminapi.warnings missing or not an array: %v", r.Body["@adminapi.warnings"])
	}
	vals := r.Values()
	if len(vals) != 1 {
		t.Fatalf("got %d values, want 1", len(vals))
	}
	v := vals[0]
	checks := map[string]any{
		"ExternalDirectoryObjectId":            meu.ID,
		"Identity":                             meu.Name,
		"Id":                                   meu.Name,
		"RecipientTypeDetails":                 "MailUser",
		"IsDirSynced":                          true,
		"UseMapiRichTextFormat":                meu.UseMapiRichTextFormat,
		"ExternalEmailAddress":                 meu.ExternalEmailAddress,
		"EmailAddresses@odata.type":            "#Collection(String)",
		"Guid@data.type":                       "System.Guid",
		"Guid@odata.type":                      "#Guid",
		"ExchangeObjectId@odata.type":          "#Guid",
		"WhenCreated@data.type":                "System.DateTime",
		"ExtensionCustomAttribute1@odata.type": "#Collection(String)",
	}
	for k, want := range checks {
		if got := v[k]; got != want {
			t.Errorf("%s = %#v, want %#v", k, got, want)
		}
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}\+00:00$`).MatchString(fmt.Sprint(v["WhenCreated"])) {
		t.Errorf("WhenCreated = %v, want yyyy-MM-ddTHH:mm:ss.fffffff+00:00", v["WhenCreated"])
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`).MatchString(fmt.Sprint(v["WhenCreatedUTC"])) {
		t.Errorf("WhenCreatedUTC = %v, want ...Z", v["WhenCreatedUTC"])
	}
	if _, isArray := v["EmailAddresses"].([]any); !isArray {
		t.Errorf("EmailAddresses is %T, want an array", v["EmailAddresses"])
	}
	for _, h := range []string{"request-id", "Rate-Limit-Limit", "Rate-Limit-Remaining", "Rate-Limit-Reset", "X-CalculatedBETarget"} {
		if r.Header.Get(h) == "" {
			t.Errorf("response header %s missing", h)
		}
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json;odata.metadata=minimal") {
		t.Errorf("Content-Type = %q", ct)
	}
	if got := r.Header.Get("client-request-id"); got != "11111111-2222-3333-4444-555555555555" {
		t.Errorf("client-request-id not echoed: %q", got)
	}
	// The log entry carries what tests assert on.
	es := s.Log.Entries()
	last := es[len(es)-1]
	if last.Cmdlet != "Get-MailUser" || last.Identity != meu.ID || last.Status != 200 || last.RequestID != r.Header.Get("request-id") ||
		last.Params["Identity"] != meu.ID || last.InBatch || last.ClientRequestID == "" {
		t.Errorf("log entry = %+v", last)
	}
}

func TestNonASCIIIsEscapedLikeODataWriter(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	var target tenant.Object
	for _, o := range s.Tenant().InScopeMEUs() {
		if strings.ContainsFunc(o.DisplayName, func(r rune) bool { return r > 127 }) {
			target = o
			break
		}
	}
	if target.ID == "" {
		t.Fatal("default scenario has no non-ASCII display name")
	}
	c := simtest.NewCaller(t, s)
	r := c.Invoke("Get-MailUser", map[string]any{"Identity": target.ID}).MustStatus(t, 200)
	if !strings.Contains(string(r.Raw), `\u00`) && !strings.Contains(string(r.Raw), `\u01`) {
		t.Errorf("non-ASCII not escaped as \\uXXXX in %s", simtest.Truncate(string(r.Raw), 400))
	}
	if got := r.Values()[0]["DisplayName"]; got != target.DisplayName {
		t.Errorf("DisplayName decodes to %q, want %q", got, target.DisplayName)
	}
}

func TestTenantSegment(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := simtest.NewCaller(t, s)
	body := simtest.CmdletBody("Get-AcceptedDomain", nil)
	for _, tc := range []struct {
		name, seg string
		want      int
	}{
		{"guid", s.Creds.TenantID, 200},
		{"guid upper case", strings.ToUpper(s.Creds.TenantID), 200},
		{"initial domain", s.Creds.TenantDomain, 200},
		{"other tenant", "fabrikam.onmicrosoft.com", 404},
		{"random guid", "00000000-0000-0000-0000-000000000001", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.Do("POST", s.URL+"/adminapi/beta/"+tc.seg+"/InvokeCommand", nil, body)
			r.MustStatus(t, tc.want)
			if tc.want == 200 && len(r.Values()) != 3 {
				t.Errorf("Get-AcceptedDomain returned %d domains, want 3", len(r.Values()))
			}
		})
	}
}

// collectPages runs a Get-* by re-POSTing the same body to each nextLink, as the module does.
func collectPages(t *testing.T, c *simtest.Caller, url string, hdr map[string]string, body []byte) (vals []map[string]any, pages int, warnings []string) {
	t.Helper()
	for url != "" {
		r := c.Do("POST", url, hdr, body).MustStatus(t, 200)
		vals = append(vals, r.Values()...)
		warnings = append(warnings, r.Warnings()...)
		pages++
		next, _ := r.Body["@odata.nextLink"].(string)
		url = next
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
	}
	return vals, pages, warnings
}

func TestPagingByRePOSTingTheSameBody(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := simtest.NewCaller(t, s)
	body := simtest.CmdletBody("Get-MailUser", map[string]any{
		"Filter": "IsDirSynced -eq 'True' -and RecipientTypeDetails -eq 'MailUser'", "ResultSize": "Unlimited"})
	hdr := map[string]string{"Prefer": "odata.maxpagesize=25"}

	first := c.Do("POST", c.Base+"/InvokeCommand?$select=ExternalDirectoryObjectId", hdr, body).MustStatus(t, 200)
	next, _ := first.Body["@odata.nextLink"].(string)
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "https" || u.Host != strings.TrimPrefix(s.URL, "https://") ||
		u.Path != "/adminapi/beta/"+s.Creds.TenantID+"/InvokeCommand" || u.Query().Get("$skiptoken") == "" {
		t.Fatalf("nextLink %q is not an absolute InvokeCommand URL with $skiptoken", next)
	}
	if len(first.Values()) != 25 {
		t.Fatalf("first page has %d values, want 25", len(first.Values()))
	}

	vals, pages, _ := collectPages(t, c, c.Base+"/InvokeCommand?$select=ExternalDirectoryObjectId", hdr, body)
	truth := s.Tenant().InScopeMEUs()
	if want := (len(truth) + 24) / 25; pages != want {
		t.Errorf("pages = %d, want %d", pages, want)
	}
	seen := map[string]bool{}
	for _, v := range vals {
		id, _ := v["ExternalDirectoryObjectId"].(string)
		if seen[id] {
			t.Errorf("object %s returned twice", id)
		}
		seen[id] = true
		if len(v) != 1 {
			t.Errorf("$select kept on later pages? value has %d properties: %v", len(v), v)
		}
	}
	for _, o := range truth {
		if !seen[o.ID] {
			t.Errorf("in-scope MEU %s (%s) missing from the pages", o.ID, o.DisplayName)
		}
	}
	if len(seen) != len(truth) {
		t.Errorf("got %d objects, want %d", len(seen), len(truth))
	}

	t.Run("different body on a nextLink is refused", func(t *testing.T) {
		other := simtest.CmdletBody("Get-MailUser", map[string]any{"ResultSize": "Unlimited"})
		r := c.Do("POST", next, hdr, other).MustStatus(t, 400)
		if !strings.Contains(r.ErrorMessage(), "re-POST the same CmdletInput body") {
			t.Errorf("message = %q", r.ErrorMessage())
		}
	})
	t.Run("same body with other whitespace and key order is accepted", func(t *testing.T) {
		same := []byte(`{ "CmdletInput": { "Parameters": { "ResultSize": "Unlimited", "Filter": "IsDirSynced -eq 'True' -and RecipientTypeDetails -eq 'MailUser'" }, "CmdletName": "Get-MailUser" } }`)
		c.Do("POST", next, hdr, same).MustStatus(t, 200)
	})
	t.Run("GET on a nextLink", func(t *testing.T) {
		r := c.Do("GET", next, hdr, nil).MustStatus(t, 200)
		if len(r.Values()) != 25 {
			t.Errorf("GET page has %d values, want 25", len(r.Values()))
		}
	})
	t.Run("nextLink can be fetched again", func(t *testing.T) {
		a := c.Do("POST", next, hdr, body).MustStatus(t, 200)
		b := c.Do("POST", next, hdr, body).MustStatus(t, 200)
		if fmt.Sprint(a.Values()) != fmt.Sprint(b.Values()) {
			t.Error("the same nextLink gave different pages")
		}
	})
	t.Run("unknown skiptoken", func(t *testing.T) {
		c.Do("POST", c.Base+"/InvokeCommand?$skiptoken=bogus", hdr, body).MustStatus(t, 400)
	})
	t.Run("GET without a skiptoken", func(t *testing.T) {
		c.Do("GET", c.Base+"/InvokeCommand", nil, nil).MustStatus(t, 400)
	})
}

func TestPagingSurvivesDeletionBetweenPages(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := simtest.NewCaller(t, s)
	body := simtest.CmdletBody("Get-MailUser", map[string]any{"Filter": "IsDirSynced -eq $true", "ResultSize": "Unlimited"})
	hdr := map[string]string{"Prefer": "odata.maxpagesize=10"}
	first := c.Do("POST", c.Base+"/InvokeCommand", hdr, body).MustStatus(t, 200)
	// Delete objects already returned: a cursor on the last object must not skip the ones after it.
	for _, v := range first.Values()[:5] {
		s.Tenant().Delete(v["ExternalDirectoryObjectId"].(string))
	}
	rest, _, _ := collectPages(t, c, first.Body["@odata.nextLink"].(string), hdr, body)
	if got, want := len(first.Values())+len(rest), len(s.Tenant().InScopeMEUs())+5; got != want {
		t.Errorf("got %d objects over all pages, want %d", got, want)
	}
}

func TestResultSize(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := simtest.NewCaller(t, s)
	const truncated = "There are more results available than are currently displayed"
	for _, tc := range []struct {
		name       string
		resultSize any
		pageSize   string
		wantCount  int
		wantPages  int
		wantWarn   bool
	}{
		{"default 1000 fits", nil, "", 138, 1, false},
		{"30 in one page", 30, "", 30, 1, true},
		{"30 as string over pages of 20", "30", "odata.maxpagesize=20", 30, 2, true},
		{"unlimited lower case", "unlimited", "odata.maxpagesize=100", 138, 2, false},
		{"exactly all", 138, "", 138, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params := map[string]any{}
			if tc.resultSize != nil {
				params["ResultSize"] = tc.resultSize
			}
			hdr := map[string]string{}
			if tc.pageSize != "" {
				hdr["Prefer"] = tc.pageSize
			}
			vals, pages, warns := collectPages(t, c, c.Base+"/InvokeCommand", hdr, simtest.CmdletBody("Get-MailUser", params))
			if len(vals) != tc.wantCount || pages != tc.wantPages || simtest.HasWarning(warns, truncated) != tc.wantWarn {
				t.Errorf("got %d values in %d pages, truncation warning %v; want %d in %d, %v",
					len(vals), pages, simtest.HasWarning(warns, truncated), tc.wantCount, tc.wantPages, tc.wantWarn)
			}
		})
	}
	t.Run("bad value", func(t *testing.T) {
		r := c.Invoke("Get-MailUser", map[string]any{"ResultSize": "lots"}).MustStatus(t, 400)
		if !strings.Contains(r.Detail(), "Cannot bind parameter 'ResultSize'") {
			t.Errorf("detail = %q", r.Detail())
		}
	})
}

func TestSelectIsCaseInsensitive(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := simtest.NewCaller(t, s)
	r := c.Do("POST", c.Base+"/InvokeCommand?%24select=externaldirectoryobjectid,USEMAPIRICHTEXTFORMAT,Guid,NoSuchProperty", nil,
		simtest.CmdletBody("Get-MailUser", map[string]any{"ResultSize": 3})).MustStatus(t, 200)
	for _, v := range r.Values() {
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := []string{"ExternalDirectoryObjectId", "Guid", "Guid@data.type", "Guid@odata.type", "UseMapiRichTextFormat"}
		if !slices.Equal(keys, want) {
			t.Errorf("keys = %v, want %v", keys, want)
		}
	}
}

func TestFilterOverHTTP(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := simtest.NewCaller(t, s)
	all := s.Tenant().Objects()
	count := func(keep func(o tenant.Object) bool) int {
		n := 0
		for _, o := range all {
			if keep(o) {
				n++
			}
		}
		return n
	}
	someMEU := s.Tenant().InScopeMEUs()[3]
	for _, tc := range []struct {
		name, cmdlet, filter string
		want                 int
	}{
		{"dir-synced plain mail users", "Get-MailUser", "IsDirSynced -eq 'True' -and RecipientTypeDetails -eq 'MailUser'",
			count(func(o tenant.Object) bool { return o.InScopeMEU() })},
		{"guests", "Get-MailUser", "RecipientTypeDetails -eq 'GuestMailUser'",
			count(func(o tenant.Object) bool { return o.RecipientTypeDetails == tenant.RTDGuestMailUser })},
		{"not synced", "Get-MailUser", "-not (IsDirSynced -eq $true)",
			count(func(o tenant.Object) bool { return o.IsMailUser() && !o.IsDirSynced })},
		{"email address without prefix", "Get-Recipient", "EmailAddresses -eq '" + someMEU.PrimarySmtpAddress + "'", 1},
		{"external address like with prefix", "Get-MailUser", "ExternalEmailAddress -like 'SMTP:" + someMEU.Alias + "@*'", 1},
		{"contacts through Get-Recipient", "Get-Recipient", "RecipientTypeDetails -eq 'MailContact'",
			count(func(o tenant.Object) bool { return o.RecipientTypeDetails == tenant.RTDMailContact })},
		{"mailboxes by UPN suffix", "Get-Mailbox", "UserPrincipalName -like '*@contoso.com'", 0}, // leading wildcard matches nothing
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals, _, _ := collectPages(t, c, c.Base+"/InvokeCommand", nil,
				simtest.CmdletBody(tc.cmdlet, map[string]any{"Filter": tc.filter, "ResultSize": "Unlimited"}))
			if len(vals) != tc.want {
				t.Errorf("%s -Filter %q returned %d, want %d", tc.cmdlet, tc.filter, len(vals), tc.want)
			}
		})
	}

	t.Run("UseMapiRichTextFormat is not filterable", func(t *testing.T) {
		r := c.Invoke("Get-MailUser", map[string]any{"Filter": "UseMapiRichTextFormat -ne 'Never'"}).MustStatus(t, 400)
		want := `Cannot bind parameter 'Filter' to the target. Exception setting "Filter": ""UseMapiRichTextFormat" is not a recognized filterable property. Valid property names are: `
		if !strings.Contains(r.Detail(), want) || !strings.Contains(r.Detail(), "isdirsynced") {
			t.Errorf("detail = %q", r.Detail())
		}
		if r.ErrorCode() != "BadRequest" || r.ErrorMessage() != "Error executing cmdlet" {
			t.Errorf("code/message = %q/%q", r.ErrorCode(), r.ErrorMessage())
		}
	})
	t.Run("UserPrincipalName not filterable on Get-Recipient", func(t *testing.T) {
		r := c.Invoke("Get-Recipient", map[string]any{"Filter": "UserPrincipalName -eq 'x@contoso.com'"}).MustStatus(t, 400)
		if !strings.Contains(r.Detail(), `""UserPrincipalName" is not a recognized filterable property`) {
			t.Errorf("detail = %q", r.Detail())
		}
	})
	t.Run("syntax error", func(t *testing.T) {
		r := c.Invoke("Get-MailUser", map[string]any{"Filter": "IsDirSynced -eq"}).MustStatus(t, 400)
		if !strings.Contains(r.Detail(), "Invalid filter syntax") || !strings.Contains(r.Detail(), "at position 16") {
			t.Errorf("detail = %q", r.Detail())
		}
	})
	t.Run("Get-Recipient by RecipientTypeDetails array", func(t *testing.T) {
		vals, _, _ := collectPages(t, c, c.Base+"/InvokeCommand", nil, simtest.CmdletBody("Get-Recipient", map[string]any{
			"RecipientTypeDetails": []string{"UserMailbox", "mailcontact"}, "ResultSize": "Unlimited"}))
		want := count(func(o tenant.Object) bool {
			return o.RecipientTypeDetails == tenant.RTDUserMailbox || o.RecipientTypeDetails == tenant.RTDMailContact
		})
		if len(vals) != want {
			t.Errorf("got %d, want %d", len(vals), want)
		}
		r := c.Invoke("Get-Recipient", map[string]any{"RecipientTypeDetails": "Mailboxes"}).MustStatus(t, 400)
		if !strings.Contains(r.Detail(), "Cannot bind parameter 'RecipientTypeDetails'") {
			t.Errorf("detail = %q", r.Detail())
		}
	})
}

func TestOtherGetCmdlets(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := simtest.NewCaller(t, s)
	sc := tenant.DefaultScenario()
	for _, tc := range []struct {
		cmdlet string
		want   int
		prop   string
	}{
		{"Get-Mailbox", sc.Mailboxes, "ExchangeGuid"},
		{"Get-MailContact", sc.Contacts, "ExternalEmailAddress"},
		{"Get-DistributionGroup", sc.Groups, "GroupType"},
		{"Get-Recipient", sc.DirSyncedMEUs + sc.CloudMEUs + sc.Guests + sc.Mailboxes + sc.Contacts + sc.Groups, "RecipientTypeDetails"},
		{"Get-MailUser", sc.DirSyncedMEUs + sc.CloudMEUs + sc.Guests, "UseMapiRichTextFormat"},
	} {
		t.Run(tc.cmdlet, func(t *testing.T) {
			vals, _, _ := collectPages(t, c, c.Base+"/InvokeCommand", nil, simtest.CmdletBody(tc.cmdlet, map[string]any{"ResultSize": "Unlimited"}))
			if len(vals) != tc.want {
				t.Errorf("%s returned %d, want %d", tc.cmdlet, len(vals), tc.want)
			}
			for _, v := range vals {
				if _, ok := v[tc.prop]; !ok {
					t.Fatalf("%s object lacks %s: %v", tc.cmdlet, tc.prop, v)
				}
			}
		})
	}
	t.Run("Get-MailUser does not see a mailbox", func(t *testing.T) {
		mbx := s.Tenant().Select(func(o *tenant.Object) bool { return o.RecipientTypeDetails == tenant.RTDUserMailbox })[0]
		r := c.Invoke("Get-MailUser", map[string]any{"Identity": mbx.PrimarySmtpAddress}).MustStatus(t, 404)
		if !strings.HasPrefix(r.Detail(), "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|") {
			t.Errorf("detail = %q", r.Detail())
		}
		c.Invoke("Get-Mailbox", map[string]any{"Identity": mbx.PrimarySmtpAddress}).MustStatus(t, 200)
	})
	t.Run("Identity with Filter is an ambiguous parameter set", func(t *testing.T) {
		c.Invoke("Get-MailUser", map[string]any{"Identity": "x", "Filter": "Alias -eq 'x'"}).MustStatus(t, 400)
	})
}

func TestUnknownCmdletAndParameter(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := simtest.NewCaller(t, s)
	r := c.Invoke("Get-Unicorn", nil).MustStatus(t, 400)
	if !strings.Contains(r.Detail(), "The term 'Get-Unicorn' is not recognized as the name of a cmdlet") {
		t.Errorf("detail = %q", r.Detail())
	}
	r = c.Invoke("Get-MailUser", map[string]any{"Colour": "blue"}).MustStatus(t, 400)
	if !strings.Contains(r.Detail(), "A parameter cannot be found that matches parameter name 'Colour'.") {
		t.Errorf("detail = %q", r.Detail())
	}
	for _, body := range []string{"", "not json", `{"CmdletInput":{}}`, `{"other":1}`} {
		r := c.Do("POST", c.Base+"/InvokeCommand", nil, []byte(body)).MustStatus(t, 400)
		if r.ErrorCode() != "BadRequest" || r.ErrorMessage() == "" {
			t.Errorf("body %q: error = %s", body, r.Raw)
		}
	}
}

func TestSetMailUser(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := simtest.NewCaller(t, s)
	tn := s.Tenant()
	meus := tn.InScopeMEUs()
	var notNever []tenant.Object
	for _, o := range meus {
		if o.UseMapiRichTextFormat != tenant.RichTextNever {
			notNever = append(notNever, o)
		}
	}
	secondary := func(o tenant.Object) string {
		for _, a := range o.EmailAddresses {
			if strings.HasPrefix(a, "smtp:") {
				return a[5:]
			}
		}
		t.Fatalf("%s has no secondary smtp address", o.ID)
		return ""
	}
	cloud := tn.Select(func(o *tenant.Object) bool { return o.RecipientTypeDetails == tenant.RTDMailUser && !o.IsDirSynced })[0]
	mailbox := tn.Select(func(o *tenant.Object) bool { return o.RecipientTypeDetails == tenant.RTDUserMailbox })[0]
	contact := tn.Select(func(o *tenant.Object) bool { return o.RecipientTypeDetails == tenant.RTDMailContact })[0]

	type check func(t *testing.T, r simtest.Resp)
	statusOnly := func(t *testing.T, r simtest.Resp) {}
	richTextIs := func(id, want string) check {
		return func(t *testing.T, r simtest.Resp) {
			o, _ := tn.Object(id)
			if o.UseMapiRichTextFormat != want {
				t.Errorf("UseMapiRichTextFormat of %s = %s, want %s", id, o.UseMapiRichTextFormat, want)
			}
			if len(r.Values()) != 0 {
				t.Errorf("Set-* returned values: %v", r.Values())
			}
		}
	}
	detailHas := func(subs ...string) check {
		return func(t *testing.T, r simtest.Resp) {
			for _, sub := range subs {
				if !strings.Contains(r.Detail(), sub) {
					t.Errorf("detail %q lacks %q", r.Detail(), sub)
				}
			}
		}
	}
	for _, tc := range []struct {
		name   string
		params map[string]any
		status int
		check  check
	}{
		{"by object id", map[string]any{"Identity": notNever[0].ID, "UseMapiRichTextFormat": "Never"}, 200, richTextIs(notNever[0].ID, "Never")},
		{"by primary smtp, value case-insensitive", map[string]any{"Identity": notNever[1].PrimarySmtpAddress, "UseMapiRichTextFormat": "never"}, 200, richTextIs(notNever[1].ID, "Never")},
		{"by secondary smtp", map[string]any{"Identity": secondary(notNever[2]), "UseMapiRichTextFormat": "Always"}, 200, richTextIs(notNever[2].ID, "Always")},
		{"by alias", map[string]any{"Identity": notNever[3].Alias, "UseMapiRichTextFormat": "Never"}, 200, richTextIs(notNever[3].ID, "Never")},
		{"by Guid", map[string]any{"Identity": notNever[4].Guid, "UseMapiRichTextFormat": "Never"}, 200, richTextIs(notNever[4].ID, "Never")},
		{"by name with apostrophe or accent", map[string]any{"Identity": notNever[5].Name, "UseMapiRichTextFormat": "Never"}, 200, richTextIs(notNever[5].ID, "Never")},
		{"no-op write warns", map[string]any{"Identity": notNever[0].ID, "UseMapiRichTextFormat": "Never"}, 200, func(t *testing.T, r simtest.Resp) {
			want := "The command completed successfully but no settings of '" + notNever[0].Name + "' have been modified."
			if !slices.Contains(r.Warnings(), want) {
				t.Errorf("warnings = %q, want %q", r.Warnings(), want)
			}
		}},
		{"bad enum value", map[string]any{"Identity": notNever[6].ID, "UseMapiRichTextFormat": "Sometimes"}, 400,
			func(t *testing.T, r simtest.Resp) {
				detailHas("Cannot bind parameter 'UseMapiRichTextFormat'", `Cannot convert value "Sometimes"`, "Never, Always, UseDefaultSettings")(t, r)
				richTextIs(notNever[6].ID, notNever[6].UseMapiRichTextFormat)(t, r)
			}},
		{"dir-synced EmailAddresses refused", map[string]any{"Identity": notNever[7].ID, "EmailAddresses": []string{"SMTP:x@contoso.com"}}, 400,
			func(t *testing.T, r simtest.Resp) {
				detailHas("|System.InvalidOperationException|", "out of the current user's write scope",
					"The action 'Set-MailUser', 'EmailAddresses', can't be performed on the object '"+notNever[7].Name+"'",
					"is being synchronized from your on-premises organization")(t, r)
				o, _ := tn.Object(notNever[7].ID)
				if !slices.Equal(o.EmailAddresses, notNever[7].EmailAddresses) {
					t.Error("refused write changed the object")
				}
			}},
		{"dir-synced refusal also blocks the allowed part", map[string]any{"Identity": notNever[8].ID, "UseMapiRichTextFormat": "Never",
			"HiddenFromAddressListsEnabled": true}, 400, func(t *testing.T, r simtest.Resp) {
			detailHas("'HiddenFromAddressListsEnabled'")(t, r)
			richTextIs(notNever[8].ID, notNever[8].UseMapiRichTextFormat)(t, r)
		}},
		{"dir-synced CustomAttribute7 refused", map[string]any{"Identity": notNever[8].ID, "CustomAttribute7": "x"}, 400, detailHas("'CustomAttribute7'")},
		{"unknown identity", map[string]any{"Identity": "nobody@contoso.com", "UseMapiRichTextFormat": "Never"}, 404,
			func(t *testing.T, r simtest.Resp) {
				if r.ErrorCode() != "NotFound" {
					t.Errorf("code = %s", r.ErrorCode())
				}
				detailHas("Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object 'nobody@contoso.com' couldn't be found on '")(t, r)
			}},
		{"a mailbox is not a mail user", map[string]any{"Identity": mailbox.ID, "UseMapiRichTextFormat": "Never"}, 404, detailHas("couldn't be found")},
		{"a contact is not a mail user", map[string]any{"Identity": contact.ID, "UseMapiRichTextFormat": "Never"}, 404, detailHas("couldn't be found")},
		{"cloud MEU synced attribute is writable", map[string]any{"Identity": cloud.ID, "DisplayName": "Renamed O'Brien"}, 200,
			func(t *testing.T, r simtest.Resp) {
				o, _ := tn.Object(cloud.ID)
				if o.DisplayName != "Renamed O'Brien" {
					t.Errorf("DisplayName = %q", o.DisplayName)
				}
			}},
		{"cloud MEU EmailAddresses add/remove hashtable", map[string]any{"Identity": cloud.ID, "EmailAddresses": map[string]any{
			"@odata.type": "#Exchange.GenericHashTable", "add": "smtp:extra@contoso.com"}}, 200, func(t *testing.T, r simtest.Resp) {
			o, _ := tn.Object(cloud.ID)
			if !slices.Contains(o.EmailAddresses, "smtp:extra@contoso.com") {
				t.Errorf("EmailAddresses = %v", o.EmailAddresses)
			}
			// The new address resolves as an identity at once.
			got := c.Invoke("Get-MailUser", map[string]any{"Identity": "extra@contoso.com"}).MustStatus(t, 200).Values()
			if len(got) != 1 || got[0]["ExternalDirectoryObjectId"] != cloud.ID {
				t.Errorf("Get-MailUser -Identity extra@contoso.com = %v", got)
			}
		}},
		{"hashtable without @odata.type", map[string]any{"Identity": cloud.ID, "EmailAddresses": map[string]any{"Add": []string{"smtp:y@contoso.com"}}}, 400,
			detailHas("Newtonsoft.Json.Linq.JObject")},
		{"missing identity", map[string]any{"UseMapiRichTextFormat": "Never"}, 400, detailHas("missing mandatory parameters: Identity")},
		{"unknown parameter", map[string]any{"Identity": cloud.ID, "Colour": "blue"}, 400, detailHas("parameter name 'Colour'")},
		{"common parameters accepted", map[string]any{"Identity": notNever[9].ID, "UseMapiRichTextFormat": "Never", "Confirm": false, "ErrorAction": "Stop"}, 200,
			richTextIs(notNever[9].ID, "Never")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.Invoke("Set-MailUser", tc.params).MustStatus(t, tc.status)
			if tc.check != nil {
				tc.check(t, r)
			} else {
				statusOnly(t, r)
			}
		})
	}
}

func TestDetailEncodings(t *testing.T) {
	for _, tc := range []struct {
		encoding string
		header   string
		wantJSON bool
	}{
		{"", "", false},
		{sim.DetailPipe, "json", false},
		{sim.DetailJSON, "", true},
		{sim.DetailAuto, "json", true},
		{sim.DetailAuto, "", false},
	} {
		t.Run(tc.encoding+"/"+tc.header, func(t *testing.T) {
			s := simtest.NewSim(t, sim.Options{DetailEncoding: tc.encoding})
			c := simtest.NewCaller(t, s)
			hdr := map[string]string{}
			if tc.header != "" {
				hdr["X-ResponseFormat"] = tc.header
			}
			r := c.Do("POST", c.Base+"/InvokeCommand", hdr,
				simtest.CmdletBody("Set-MailUser", map[string]any{"Identity": "ghost@contoso.com", "UseMapiRichTextFormat": "Never"})).MustStatus(t, 404)
			d := r.Detail()
			var inner struct {
				Message    string
				TypeName   string
				StackTrace any
				InnerError any
			}
			isJSON := json.Unmarshal([]byte(d), &inner) == nil
			if isJSON != tc.wantJSON {
				t.Fatalf("detail %q: JSON = %v, want %v", d, isJSON, tc.wantJSON)
			}
			if isJSON {
				if inner.TypeName != "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException" ||
					!strings.Contains(inner.Message, "'ghost@contoso.com' couldn't be found") {
					t.Errorf("JSON detail = %+v", inner)
				}
				return
			}
			if parts := strings.SplitN(d, "|", 3); len(parts) != 3 || parts[0] != "Ex6F9304" {
				t.Errorf("pipe detail = %q", d)
			}
		})
	}
}

func TestUnauthorizedHasEmptyBody(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := simtest.NewCaller(t, s)
	graphTok := s.IssueToken("https://graph.microsoft.com", 0)
	body := simtest.CmdletBody("Get-AcceptedDomain", nil)
	for _, tc := range []struct {
		name string
		auth string
	}{
		{"missing", ""},
		{"not bearer", "Basic dXNlcjpwYXNz"},
		{"garbage token", "Bearer not.a.token"},
		{"wrong audience", "Bearer " + graphTok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{"Authorization": tc.auth}
			for _, path := range []string{"/InvokeCommand", "/$batch"} {
				r := c.Do("POST", c.Base+path, hdr, body).MustStatus(t, 401)
				if len(r.Raw) != 0 {
					t.Errorf("%s: 401 body = %q, want empty", path, r.Raw)
				}
				if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer ") {
					t.Errorf("%s: WWW-Authenticate = %q", path, r.Header.Get("WWW-Authenticate"))
				}
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		s.ExpireTokens()
		r := c.Do("POST", c.Base+"/InvokeCommand", nil, body).MustStatus(t, 401)
		if len(r.Raw) != 0 {
			t.Errorf("body = %q", r.Raw)
		}
		c.Token = s.IssueToken(simtest.ExoAudience, 0)
		c.Do("POST", c.Base+"/InvokeCommand", nil, body).MustStatus(t, 200)
	})
}

func TestBatchMixedStatuses(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := simtest.NewCaller(t, s)
	tn := s.Tenant()
	var target tenant.Object
	for _, o := range tn.InScopeMEUs() {
		if o.UseMapiRichTextFormat != tenant.RichTextNever {
			target = o
			break
		}
	}
	noAuth := c.Sub("noauth", "Get-AcceptedDomain", nil)
	delete(noAuth.Headers, "Authorization")
	relative := c.Sub("relative", "Get-MailUser", map[string]any{"Identity": target.ID})
	relative.URL = "InvokeCommand?$select=Identity"
	asString := c.Sub("string-body", "Get-AcceptedDomain", nil)
	asString.Body, _ = json.Marshal(string(asString.Body))
	s.Log.Reset()
	r := c.Batch([]simtest.SubReq{
		c.Sub("set", "Set-MailUser", map[string]any{"Identity": target.ID, "UseMapiRichTextFormat": "Never"}),
		c.Sub("missing", "Set-MailUser", map[string]any{"Identity": "ghost@contoso.com", "UseMapiRichTextFormat": "Never"}),
		c.Sub("synced", "Set-MailUser", map[string]any{"Identity": target.ID, "DisplayName": "x"}),
		noAuth, relative, asString,
	}).MustStatus(t, 200)
	subs := simtest.BatchResponses(t, r)
	want := map[string]int{"set": 200, "missing": 404, "synced": 400, "noauth": 401, "relative": 200, "string-body": 200}
	for id, st := range want {
		if subs[id].Status != st {
			t.Errorf("sub-request %s: status %d, want %d (body %s)", id, subs[id].Status, st, subs[id].Body)
		}
	}
	if o, _ := tn.Object(target.ID); o.UseMapiRichTextFormat != tenant.RichTextNever {
		t.Error("the Set-MailUser sub-request did not apply")
	}
	var missing struct {
		Error struct {
			Code    string
			Details []struct{ Message string }
		}
	}
	if err := json.Unmarshal(subs["missing"].Body, &missing); err != nil || missing.Error.Code != "NotFound" ||
		!strings.HasPrefix(missing.Error.Details[0].Message, "Ex6F9304|") {
		t.Errorf("404 sub-response body = %s", subs["missing"].Body)
	}
	if len(subs["noauth"].Body) != 0 {
		t.Errorf("401 sub-response has a body: %s", subs["noauth"].Body)
	}
	if subs["set"].Headers["request-id"] == "" {
		t.Error("sub-response lacks request-id")
	}
	var rel struct{ Value []map[string]any }
	_ = json.Unmarshal(subs["relative"].Body, &rel)
	if len(rel.Value) != 1 || len(rel.Value[0]) != 1 || rel.Value[0]["Identity"] != target.Name {
		t.Errorf("relative sub-request with $select = %s", subs["relative"].Body)
	}

	entries := s.Log.Entries()
	if n := s.Log.Count(func(e sim.Entry) bool { return e.InBatch }); n != 6 {
		t.Errorf("%d sub-request log entries, want 6", n)
	}
	if n := s.Log.Count(func(e sim.Entry) bool { return e.Batch && e.Cmdlet == "$batch" && e.Status == 200 }); n != 1 {
		t.Errorf("%d envelope entries, want 1: %+v", n, entries)
	}
	if n := s.Log.Count(func(e sim.Entry) bool { return e.InBatch && e.IsWrite() }); n != 3 {
		t.Errorf("%d write sub-requests logged, want 3", n)
	}
	if n := s.Log.Count(func(e sim.Entry) bool { return e.InBatch && e.Status == 404 && e.Identity == "ghost@contoso.com" }); n != 1 {
		t.Errorf("404 sub-request not logged with its identity and status")
	}
}

func TestBatchLimits(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := simtest.NewCaller(t, s)
	mk := func(n int) []simtest.SubReq {
		var reqs []simtest.SubReq
		for i := range n {
			reqs = append(reqs, c.Sub(fmt.Sprint(i), "Get-AcceptedDomain", nil))
		}
		return reqs
	}
	r := c.Batch(mk(10)).MustStatus(t, 200)
	if len(simtest.BatchResponses(t, r)) != 10 {
		t.Error("10 sub-requests did not give 10 responses")
	}
	s.Log.Reset()
	r = c.Batch(mk(11)).MustStatus(t, 400)
	if !strings.Contains(r.ErrorMessage(), "at most 10") {
		t.Errorf("message = %q", r.ErrorMessage())
	}
	if n := s.Log.Count(func(e sim.Entry) bool { return e.InBatch }); n != 0 {
		t.Errorf("a refused batch ran %d sub-requests", n)
	}
	c.Batch(nil).MustStatus(t, 400)
	dup := mk(2)
	dup[1].ID = dup[0].ID
	c.Batch(dup).MustStatus(t, 400)
	c.Do("POST", c.Base+"/$batch", nil, []byte("{")).MustStatus(t, 400)
	bad := mk(1)
	bad[0].URL = s.URL + "/adminapi/beta/" + s.Creds.TenantID + "/Mailbox"
	if st := simtest.BatchResponses(t, c.Batch(bad).MustStatus(t, 200))["0"].Status; st != 400 {
		t.Errorf("sub-request to a non-InvokeCommand URL: %d, want 400", st)
	}
}

func TestRequestLogCountAndReset(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := simtest.NewCaller(t, s)
	s.Log.Reset()
	c.Invoke("Get-MailUser", map[string]any{"ResultSize": 1})
	c.Invoke("Set-MailUser", map[string]any{"Identity": "ghost@contoso.com", "UseMapiRichTextFormat": "Never"})
	if n := s.Log.Count(func(e sim.Entry) bool { return e.IsWrite() }); n != 1 {
		t.Errorf("writes = %d, want 1", n)
	}
	if n := s.Log.Count(func(e sim.Entry) bool { return e.Cmdlet == "Set-MailUser" && e.Status == 404 }); n != 1 {
		t.Errorf("404 Set-MailUser entries = %d, want 1", n)
	}
	if len(s.Log.Entries()) != 2 {
		t.Errorf("entries = %d, want 2", len(s.Log.Entries()))
	}
	s.Log.Reset()
	if len(s.Log.Entries()) != 0 {
		t.Error("Reset kept entries")
	}
}

// TestSoftDeletedRecipients: a deleted recipient stays visible to Get-Recipient -IncludeSoftDeletedRecipients,
// stamped with its deletion time, so a client can learn of removals since a point in time; other reads and
// Get-Recipient without the switch no longer show it.
func TestSoftDeletedRecipients(t *testing.T) {
	s := simtest.NewSim(t, sim.Options{})
	c := simtest.NewCaller(t, s)
	gone := s.Tenant().InScopeMEUs()[3]
	before := time.Now().Add(-time.Minute).UTC()
	if !s.Tenant().Delete(gone.ID) {
		t.Fatal("delete failed")
	}
	since := "WhenChangedUTC -gt '" + before.Format("1/2/2006 3:04:05 PM") + "'"
	hdr := map[string]string{"Prefer": "odata.maxpagesize=7"} // several pages: the copy merges in by Guid
	all, _, _ := collectPages(t, c, c.Base+"/InvokeCommand", hdr, simtest.CmdletBody("Get-Recipient", map[string]any{
		"IncludeSoftDeletedRecipients": true, "ResultSize": "Unlimited"}))
	recent, _, _ := collectPages(t, c, c.Base+"/InvokeCommand", hdr, simtest.CmdletBody("Get-Recipient", map[string]any{
		"IncludeSoftDeletedRecipients": true, "Filter": since, "ResultSize": "Unlimited"}))
	plain, _, _ := collectPages(t, c, c.Base+"/InvokeCommand", hdr, simtest.CmdletBody("Get-Recipient", map[string]any{
		"ResultSize": "Unlimited"}))
	has := func(vals []map[string]any) bool {
		for _, v := range vals {
			if strings.EqualFold(fmt.Sprint(v["ExternalDirectoryObjectId"]), gone.ID) {
				return true
			}
		}
		return false
	}
	if !has(all) || len(all) != len(plain)+1 {
		t.Fatalf("with the switch: %d recipients (deleted one present: %v); without: %d", len(all), has(all), len(plain))
	}
	if !has(recent) || len(recent) != 1 {
		t.Fatalf("changed since before the deletion: %d recipients, deleted one present %v; want just it", len(recent), has(recent))
	}
	if has(plain) {
		t.Fatal("Get-Recipient without the switch shows a deleted recipient")
	}
	r := c.Invoke("Get-MailUser", map[string]any{"IncludeSoftDeletedRecipients": true}).MustStatus(t, 400)
	if !strings.Contains(r.Detail(), "IncludeSoftDeletedRecipients") {
		t.Errorf("Get-MailUser accepted the Get-Recipient switch: %q", r.Detail())
	}
}
