package exo

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// staticCred is enough for building requests offline; the integration tests use a real azidentity credential.
type staticCred struct{}

func (staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "tok"}, nil
}

func TestBatchBody(t *testing.T) {
	c, err := New(Options{BaseURL: "https://outlook.office365.com/", Tenant: "contoso.onmicrosoft.com", Credential: staticCred{}, PageSize: 50})
	if err != nil {
		t.Fatal(err)
	}
	var items []*batchItem
	for i, id := range []string{"a", "b'c"} {
		cmd := Command{Name: "Set-MailUser", Params: map[string]any{"Identity": id, "UseMapiRichTextFormat": "Never"}}
		if i == 1 {
			cmd.Select = []string{"Identity", "UseMapiRichTextFormat"}
		}
		body, err := cmd.body()
		if err != nil {
			t.Fatal(err)
		}
		u, err := c.commandURL(cmd.Select)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, &batchItem{cmd: cmd, body: body, url: u, crid: "crid-" + id})
	}
	raw, err := c.batchBody(items, "TOKEN")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Requests []struct {
			ID      string            `json:"id"`
			Method  string            `json:"method"`
			URL     string            `json:"url"`
			Headers map[string]string `json:"headers"`
			Body    struct {
				CmdletInput struct {
					CmdletName string
					Parameters map[string]any
				}
			} `json:"body"`
		} `json:"requests"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%v in %s", err, raw)
	}
	if len(got.Requests) != 2 {
		t.Fatalf("%d sub-requests", len(got.Requests))
	}
	for i, r := range got.Requests {
		if r.ID != []string{"0", "1"}[i] || r.Method != "POST" {
			t.Errorf("sub-request %d: id %q method %q", i, r.ID, r.Method)
		}
		if !strings.HasPrefix(r.URL, "https://outlook.office365.com/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand") {
			t.Errorf("sub-request %d: url %q not absolute", i, r.URL)
		}
		want := map[string]string{
			"Authorization": "Bearer TOKEN", "Content-Type": "application/json", "Accept": "application/json",
			"X-Cmdletname": "Set-MailUser", "Prefer": "odata.maxpagesize=50", "X-Responseformat": "json",
			"X-Anchormailbox": "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@contoso.onmicrosoft.com",
		}
		h := http.Header{}
		for k, v := range r.Headers {
			h.Set(k, v)
		}
		for k, v := range want {
			if h.Get(k) != v {
				t.Errorf("sub-request %d: %s = %q, want %q", i, k, h.Get(k), v)
			}
		}
		if h.Get("client-request-id") != items[i].crid || h.Get("connection-id") == "" {
			t.Errorf("sub-request %d: ids %q %q", i, h.Get("client-request-id"), h.Get("connection-id"))
		}
		if r.Body.CmdletInput.CmdletName != "Set-MailUser" || r.Body.CmdletInput.Parameters["Identity"] != items[i].cmd.Params["Identity"] {
			t.Errorf("sub-request %d body: %+v", i, r.Body)
		}
	}
	if !strings.HasSuffix(got.Requests[1].URL, "?%24select=Identity%2CUseMapiRichTextFormat") {
		t.Errorf("$select not encoded in %q", got.Requests[1].URL)
	}
}

func TestParseBatchResponse(t *testing.T) {
	body := `{"responses":[
	 {"id":"1","status":404,"headers":{"request-id":"r1"},"body":{"error":{"code":"NotFound","details":[{"message":"Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|gone"}]}}},
	 {"id":"0","status":200,"headers":{"Content-Type":"application/json"},"body":{"value":[],"@adminapi.warnings":["w"]}},
	 {"id":2,"status":"429","headers":{"Retry-After":["3"]}},
	 {"id":"3","status":200,"body":"{\"value\":[{\"a\":1}]}"},
	 {"id":"4","status":204,"body":null}]}`
	outer := http.Header{"Request-Id": {"outer"}}
	m, err := parseBatchResponse([]byte(body), outer)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 5 {
		t.Fatalf("%d sub-responses", len(m))
	}
	if resp, e := m["0"].result(); e != nil || len(resp.Warnings) != 1 || resp.RequestID != "outer" {
		t.Errorf("0: %+v %v", resp, e)
	}
	if _, e := m["1"].result(); e == nil || e.Kind != KindNotFound || e.RequestID != "r1" {
		t.Errorf("1: %v", e)
	}
	if _, e := m["2"].result(); e == nil || e.Kind != KindThrottled || e.RetryAfter.Seconds() != 3 {
		t.Errorf("2: %v", e)
	}
	if resp, e := m["3"].result(); e != nil || len(resp.Values) != 1 {
		t.Errorf("3 (body as a JSON string): %+v %v", resp, e)
	}
	if resp, e := m["4"].result(); e != nil || len(resp.Values) != 0 {
		t.Errorf("4: %+v %v", resp, e)
	}
	for _, bad := range []string{``, `[]`, `{"value":[]}`, `{"responses":{}}`, `{"responses":[{"id":"0"`} {
		if _, err := parseBatchResponse([]byte(bad), nil); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}

func FuzzParseBatchResponse(f *testing.F) {
	f.Add([]byte(`{"responses":[{"id":"0","status":200,"headers":{},"body":{"value":[]}}]}`))
	f.Add([]byte(`{"responses":[{"id":"0","status":429,"headers":{"Retry-After":"1.5"}}]}`))
	f.Add([]byte(`{"responses":[{"id":0,"status":"x","headers":[],"body":"aGVsbG8="}]}`))
	f.Add([]byte(`{"RESPONSES":[{"ID":"1","Status":500,"Body":{"error":{"code":"x"}}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseBatchResponse(b, nil)
		if err != nil {
			return
		}
		for id, sr := range m {
			if id == "" || sr.ID != id {
				t.Fatalf("bad id %q / %q", id, sr.ID)
			}
			resp, e := sr.result()
			if (resp == nil) == (e == nil) {
				t.Fatalf("result() must return exactly one of a response and an error: %v %v", resp, e)
			}
			if e != nil && e.Error() == "" {
				t.Fatal("empty error text")
			}
		}
	})
}

func FuzzParseEnvelope(f *testing.F) {
	f.Add(200, []byte(`{"value":[{"a":1}],"@adminapi.warnings":["w"],"@odata.nextLink":"https://h/x"}`))
	f.Add(200, []byte(`{"value":{"a":1},"@adminapi.errors":["|System.X|y"]}`))
	f.Add(204, []byte(``))
	f.Add(200, []byte(`{"value":[`))
	f.Fuzz(func(t *testing.T, status int, b []byte) {
		resp, e := parseEnvelope(status, http.Header{}, b)
		if (resp == nil) == (e == nil) {
			t.Fatalf("exactly one of response and error expected: %v %v", resp, e)
		}
		if resp != nil {
			for _, v := range resp.Values {
				if !json.Valid(v) {
					t.Fatalf("invalid JSON value %q", v)
				}
			}
		}
	})
}

func FuzzDecodeMailUser(f *testing.F) {
	f.Add([]byte(capturedMailUser))
	f.Add([]byte(`{"WhenCreated":"/Date(1)/","WhenChanged":"","EmailAddresses":null}`))
	f.Add([]byte(`{"WhenCreated@data.type":"System.DateTime","WhenCreated":"1/2/2006 3:04:05 PM"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		mu, err := Decode[MailUser](b)
		if err == nil && !json.Valid(b) {
			t.Fatalf("invalid JSON %q decoded as %+v", b, mu)
		}
	})
}
