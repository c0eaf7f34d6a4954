package exo

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const (
	notFoundText = "The operation couldn't be performed because object 'nobody@contoso.com' couldn't be found on 'AM0PR07A13DC001.EURPR07A013.PROD.OUTLOOK.COM'."
	dirSyncText  = `The operation on mailbox "jdoe" failed because it's out of the current user's write scope. The action 'Set-MailUser', 'EmailAddresses', can't be performed on the object 'jdoe' because the object is being synchronized from your on-premises organization. This action should be performed on the object in your on-premises organization.`
	scopeText    = `The operation on Identity "jdoe" failed because it's out of the current user's write scope. 'jdoe' isn't within your current write scopes. Can't perform save operation.`
	filterText   = `Cannot bind parameter 'Filter' to the target. Exception setting "Filter": ""UseMapiRichTextFormat" is not a recognized filterable property. Valid property names are: Alias, DisplayName."`
)

// odataError builds an EXO error body with one detail message, the way the service wraps cmdlet errors.
func odataError(code, detailMessage string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code": code, "message": "Error executing cmdlet",
		"details": []any{map[string]any{"code": "Client", "target": "", "message": detailMessage}},
		"innererror": map[string]any{
			"message": "Error executing cmdlet", "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
			"internalexception": map[string]any{
				"message": "Exception of type 'Microsoft.Exchange.Management.PSDirectInvoke.DirectInvokeCmdletExecutionException' was thrown.",
				"type":    "Microsoft.Exchange.Management.PSDirectInvoke.DirectInvokeCmdletExecutionException"},
		},
	}})
	return string(b)
}

// jsonDetail is the second detail encoding: a JSON document inside the message string.
func jsonDetail(typeName, message string) string {
	b, _ := json.Marshal(map[string]any{"Message": message, "TypeName": typeName, "StackTrace": nil, "InnerError": nil})
	return string(b)
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseErrorResponse(t *testing.T) {
	const mnfe = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       []byte
		kind       Kind
		errorID    string
		excType    string
		msgHas     string
		retryAfter time.Duration
	}{
		{name: "not found, pipe encoding", status: 404, body: []byte(odataError("NotFound", "Ex6F9304|"+mnfe+"|"+notFoundText)),
			kind: KindNotFound, errorID: "Ex6F9304", excType: mnfe, msgHas: "couldn't be found on"},
		{name: "not found, JSON encoding", status: 404, body: []byte(odataError("NotFound", jsonDetail(mnfe, notFoundText))),
			kind: KindNotFound, excType: mnfe, msgHas: "object 'nobody@contoso.com'"},
		{name: "not found by exception type on a 400", status: 400,
			body: []byte(odataError("BadRequest", "Ex94914C|"+mnfe+"|Couldn't find object \"x\".")), kind: KindNotFound, errorID: "Ex94914C"},
		{name: "dir-sync refusal, pipe with empty ErrorId", status: 400,
			body: []byte(odataError("BadRequest", "|System.InvalidOperationException|"+dirSyncText)),
			kind: KindDirSyncWriteRefused, excType: "System.InvalidOperationException", msgHas: "on-premises organization"},
		{name: "dir-sync refusal, JSON encoding", status: 400,
			body: []byte(odataError("BadRequest", jsonDetail("System.InvalidOperationException", dirSyncText))),
			kind: KindDirSyncWriteRefused, excType: "System.InvalidOperationException", msgHas: "'EmailAddresses'"},
		{name: "write scope without dir-sync", status: 400,
			body: []byte(odataError("BadRequest", "|System.InvalidOperationException|"+scopeText)), kind: KindOutOfWriteScope},
		{name: "not filterable, pipe", status: 400,
			body: []byte(odataError("BadRequest", "|System.Management.Automation.ParameterBindingException|"+filterText)),
			kind: KindNotFilterable, msgHas: "UseMapiRichTextFormat"},
		{name: "not filterable, JSON", status: 400,
			body: []byte(odataError("BadRequest", jsonDetail("System.Management.Automation.ParameterBindingException", filterText))),
			kind: KindNotFilterable, excType: "System.Management.Automation.ParameterBindingException"},
		{name: "JSON detail with ClassName and localizedString", status: 400,
			body: []byte(odataError("BadRequest", `{"ClassName":"Microsoft.Exchange.Data.Directory.ADObjectAlreadyExistsException","Message":"The object 'CN=rg' already exists.","localizedString":{"stringId":"Ex1A2B3C"}}`)),
			kind: KindBadRequest, errorID: "Ex1A2B3C", excType: "Microsoft.Exchange.Data.Directory.ADObjectAlreadyExistsException", msgHas: "already exists"},
		{name: "detail message as an object", status: 400,
			body: []byte(`{"error":{"code":"BadRequest","details":[{"message":{"Message":"bad value","TypeName":"System.ArgumentException"}}]}}`),
			kind: KindBadRequest, excType: "System.ArgumentException", msgHas: "bad value"},
		{name: "empty 401", status: 401, body: nil, kind: KindUnauthorized, msgHas: "Exchange.ManageAsApp"},
		{name: "401 with OData body", status: 401,
			body: []byte(`{"error":{"code":"Unauthorized","message":"User is not allowed to call Get-Mailbox","innererror":{"message":"User is not allowed to call Get-Mailbox","type":"Microsoft.Exchange.Admin.OData.Core.ODataServiceException"}}}`),
			kind: KindUnauthorized, msgHas: "User is not allowed to call Get-Mailbox"},
		{name: "empty 403", status: 403, kind: KindForbidden, msgHas: "Exchange role"},
		{name: "429 with fractional Retry-After", status: 429, header: map[string]string{"Retry-After": "1.5"},
			kind: KindThrottled, retryAfter: 1500 * time.Millisecond},
		{name: "429 with a Retry-After of hours is kept, not shortened", status: 429,
			header: map[string]string{"Retry-After": "7200"}, kind: KindThrottled, retryAfter: 2 * time.Hour},
		{name: "HTML error page", status: 502,
			body: []byte("<!DOCTYPE html><html><head><title>502 - Web server received an invalid response</title></head><body><h1>Server Error</h1></body></html>"),
			kind: KindTransient, msgHas: "502 - Web server received an invalid response"},
		{name: "plain-text tenant concurrency refusal", status: 400,
			body: []byte("You have reached the maximum number of concurrent requests per tenant. Please wait and try again"),
			kind: KindThrottled, msgHas: "maximum number of concurrent requests"},
		{name: "mislabeled gzip (plain JSON)", status: 404, header: map[string]string{"Content-Encoding": "gzip"},
			body: []byte(odataError("NotFound", "Ex6F9304|"+mnfe+"|"+notFoundText)), kind: KindNotFound, errorID: "Ex6F9304"},
		{name: "real gzip body", status: 404, body: gz(t, odataError("NotFound", "Ex6F9304|"+mnfe+"|"+notFoundText)),
			kind: KindNotFound, errorID: "Ex6F9304"},
		{name: "transient exception name on a 400", status: 400,
			body: []byte(odataError("BadRequest", "|Microsoft.Exchange.Data.Directory.DCOverloadedException|Active Directory server is overloaded.")),
			kind: KindTransient},
		{name: "transient exception name on a 503", status: 503,
			body: []byte(odataError("ServiceUnavailable", jsonDetail("Microsoft.Exchange.Data.ServerInMMException", "The server is in maintenance mode."))),
			kind: KindTransient, excType: "Microsoft.Exchange.Data.ServerInMMException"},
		{name: "fallback to internalexception", status: 400,
			body: []byte(`{"error":{"code":"BadRequest","message":"Error executing cmdlet","details":[],"innererror":{"internalexception":{"message":"Inner reason","type":"X.Y"}}}}`),
			kind: KindBadRequest, msgHas: "Inner reason", excType: "X.Y"},
		{name: "fallback to error.message", status: 400, body: []byte(`{"error":{"code":"BadRequest","message":"Invalid Operation"}}`),
			kind: KindBadRequest, msgHas: "Invalid Operation"},
		{name: "keys in other cases", status: 404,
			body: []byte(`{"Error":{"Code":"NotFound","Message":"Error executing cmdlet","Details":[{"Message":"Ex6F9304|` + mnfe + `|gone"}]}}`),
			kind: KindNotFound, errorID: "Ex6F9304", msgHas: "gone"},
		{name: "OData v3 error", status: 400, body: []byte(`{"odata.error":{"code":"","message":{"lang":"en-US","value":"Bad thing"}}}`),
			kind: KindBadRequest, msgHas: "Bad thing"},
		{name: "X-ExceptionType header does not hide the detail's full type", status: 404,
			header: map[string]string{"X-ExceptionType": "ManagementObjectNotFoundException"},
			body:   []byte(odataError("NotFound", "Ex6F9304|"+mnfe+"|"+notFoundText)), kind: KindNotFound, excType: mnfe},
		{name: "X-ExceptionType header alone", status: 400, header: map[string]string{"X-ExceptionType": "DCOverloadedException"},
			kind: KindTransient, excType: "DCOverloadedException"},
		{name: "500 without body", status: 500, kind: KindTransient, msgHas: "HTTP 500"},
		{name: "501", status: 501, body: []byte("not implemented"), kind: KindServer},
		{name: "pipe-looking text with spaces stays whole", status: 400,
			body: []byte(odataError("BadRequest", "a b|c d|e")), kind: KindBadRequest, msgHas: "a b|c d|e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set("request-id", "rid-1")
			h.Set("X-CalculatedBETarget", "AM0PR07MB1234.eurprd07.prod.outlook.com")
			for k, v := range tt.header {
				h.Set(k, v)
			}
			e := parseErrorResponse(tt.status, h, tt.body)
			if e.Kind != tt.kind {
				t.Errorf("Kind = %v, want %v (message %q)", e.Kind, tt.kind, e.Message)
			}
			if tt.errorID != "" && e.ErrorID != tt.errorID {
				t.Errorf("ErrorID = %q, want %q", e.ErrorID, tt.errorID)
			}
			if tt.excType != "" && e.ExceptionType != tt.excType {
				t.Errorf("ExceptionType = %q, want %q", e.ExceptionType, tt.excType)
			}
			if tt.msgHas != "" && !strings.Contains(e.Message, tt.msgHas) {
				t.Errorf("Message = %q, want it to contain %q", e.Message, tt.msgHas)
			}
			if e.Message == "" {
				t.Error("Message is empty")
			}
			if tt.retryAfter != 0 && (e.RetryAfter < tt.retryAfter-time.Second || e.RetryAfter > tt.retryAfter) {
				t.Errorf("RetryAfter = %v, want about %v", e.RetryAfter, tt.retryAfter)
			}
			if e.RequestID != "rid-1" || e.BETarget == "" {
				t.Errorf("RequestID %q BETarget %q not kept", e.RequestID, e.BETarget)
			}
			if e.HTTPStatus != tt.status {
				t.Errorf("HTTPStatus = %d", e.HTTPStatus)
			}
		})
	}
}

func TestErrorMessageAndMatching(t *testing.T) {
	const id = "3f2b9c1e-5a7d-4c1b-9e0f-1a2b3c4d5e6f"
	e := parseErrorResponse(404, http.Header{"Request-Id": {"abc-123"}},
		[]byte(odataError("NotFound", "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object '"+id+"' couldn't be found on 'DC1.PROD.OUTLOOK.COM'.")))
	e.Cmdlet, e.Identity = "Set-MailUser", id
	want := `Set-MailUser "` + id + `": The operation couldn't be performed because object '` + id +
		`' couldn't be found on 'DC1.PROD.OUTLOOK.COM'. (NotFound, HTTP 404, Ex6F9304, request-id abc-123)`
	if got := e.Error(); got != want {
		t.Errorf("Error()\n got %s\nwant %s", got, want)
	}
	wrapped := fmt.Errorf("apply change: %w", e)
	if !errors.Is(wrapped, KindNotFound) || errors.Is(wrapped, KindThrottled) {
		t.Error("errors.Is by Kind does not match the kind")
	}
	if !IsKind(wrapped, KindNotFound) || IsKind(wrapped, KindDirSyncWriteRefused) || IsKind(errors.New("x"), KindNotFound) {
		t.Error("IsKind wrong")
	}
	var got *Error
	if !errors.As(wrapped, &got) || got.RequestID != "abc-123" {
		t.Error("errors.As did not find the *Error with its request id")
	}
	if e.Retryable() {
		t.Error("not found must not be retryable")
	}
	if !(&Error{Kind: KindThrottled}).Retryable() || !(&Error{Kind: KindTransient}).Retryable() {
		t.Error("throttled and transient must be retryable")
	}
}

func FuzzParseError(f *testing.F) {
	f.Add(404, []byte(odataError("NotFound", "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|"+notFoundText)))
	f.Add(400, []byte(odataError("BadRequest", jsonDetail("System.InvalidOperationException", dirSyncText))))
	f.Add(401, []byte{})
	f.Add(502, []byte("<html><title>Bad gateway</title></html>"))
	f.Add(400, []byte("You have reached the maximum number of concurrent requests per tenant."))
	f.Add(404, []byte{0x1f, 0x8b, 0x08, 0x00})
	f.Add(400, []byte(`{"error":{"details":[{"message":"{\"Message\":{\"Message\":1}}"}],"innererror":[]}}`))
	f.Add(400, []byte(`{"error":"just a string"}`))
	f.Add(429, []byte("\xff\xfe|x|y"))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := parseErrorResponse(status, http.Header{"Retry-After": {"1"}}, body)
		if e.Kind < KindUnknown || e.Kind > KindServer {
			t.Fatalf("kind %d out of range", e.Kind)
		}
		if !utf8.ValidString(e.Message) {
			t.Fatalf("message is not valid UTF-8: %q", e.Message)
		}
		if len(e.Message) > maxMessageLen*2+len(hintFor(KindUnauthorized))+8 {
			t.Fatalf("message too long: %d bytes", len(e.Message))
		}
		if e.Error() == "" {
			t.Fatal("empty Error()")
		}
		if status == 429 && e.Kind != KindThrottled {
			t.Fatalf("429 classified %v", e.Kind)
		}
	})
}
