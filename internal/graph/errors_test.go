package graph

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

func TestMapErrorWithoutMessageDoesNotPanic(t *testing.T) {
	// An error body without error.message makes ODataError.Error() dereference nil (research gotcha 6).
	oe := odataerrors.NewODataError()
	oe.ResponseStatusCode = 500
	h := abstractions.NewResponseHeaders()
	h.Add("request-id", "r-1")
	h.Add("Retry-After", "1.5")
	oe.SetResponseHeaders(h)
	err := mapError("users", oe)
	var ge *Error
	if !errors.As(err, &ge) || ge.Status != 500 || ge.RequestID != "r-1" || ge.RetryAfter != 1500*time.Millisecond {
		t.Fatalf("mapped %+v", ge)
	}
	if msg := err.Error(); !strings.Contains(msg, "500") || !strings.Contains(msg, "r-1") {
		t.Fatalf("message %q", msg)
	}

	me := odataerrors.NewMainError()
	code, text := "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
	me.SetCode(&code)
	me.SetMessage(&text)
	inner := odataerrors.NewInnerError()
	rid := "inner-id"
	inner.SetRequestId(&rid)
	me.SetInnerError(inner)
	oe.SetErrorEscaped(me)
	oe.ResponseStatusCode = 403
	if err := mapError("groups page 2", oe); !errors.As(err, &ge) || ge.Code != code || ge.RequestID != "inner-id" ||
		!strings.Contains(err.Error(), "Directory.Read.All") || ge.Resource != "groups page 2" {
		t.Fatalf("mapped %v", err)
	}

	api := &abstractions.ApiError{Message: "no body", ResponseStatusCode: 410}
	if err := mapError("users delta page 1", api); !deltaExpired(err) {
		t.Fatalf("a bare 410 (%v) is not an expired delta token", err)
	}
	if err := mapError("users", context.Canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("transport error lost: %v", err)
	}
}

func TestDeltaExpired(t *testing.T) {
	tests := []struct {
		status int
		code   string
		want   bool
	}{
		{410, "", true},
		{410, "Gone", true},
		{410, "SyncStateNotFound", true},
		{400, "syncStateNotFound", true},
		{400, "SYNCSTATENOTFOUND", true},
		{404, "SyncStateInvalid", true},
		{400, "resyncRequired", true},
		{409, "ResyncRequired", true},
		{400, "Request_BadRequest", false},
		{500, "syncStateNotFound", false},
		{429, "", false},
		{0, "", false},
	}
	for _, tc := range tests {
		if got := deltaExpired(&Error{Status: tc.status, Code: tc.code}); got != tc.want {
			t.Errorf("status %d code %q: %v, want %v", tc.status, tc.code, got, tc.want)
		}
	}
	if deltaExpired(errors.New("410")) {
		t.Error("a plain error is not an expired token")
	}
}

func TestBatchItemError(t *testing.T) {
	msg, code := "Too many requests.", "TooManyRequests"
	body := map[string]any{"error": map[string]any{"code": &code, "message": &msg,
		"innerError": map[string]any{"request-id": "abc"}}}
	ge := batchItemError("subscribedSkus", 429, map[string]string{"Retry-After": "2"}, body)
	if ge.Code != code || ge.Message != msg || ge.RequestID != "abc" || ge.RetryAfter != 2*time.Second || !ge.Throttled() {
		t.Fatalf("%+v", ge)
	}
	if ge := batchItemError("domains", 500, nil, nil); ge.Status != 500 || ge.Code != "" {
		t.Fatalf("%+v", ge)
	}
}
