package graph

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/exo-worker/worker/internal/retry"
	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

// Error is a failed Graph request: what Graph answered and for which resource. Callers branch on Status and
// Code (errors.As); the message says what to do next.
type Error struct {
	// Status is the HTTP status; 0 when no response arrived (network error, canceled context).
	Status int
	// Code and Message are Graph's error.code and error.message (empty when the body had none).
	Code    string
	Message string
	// RequestID is the request-id Graph gave the failed request (innerError or response header): quote it
	// to Microsoft support.
	RequestID string
	// Resource names what was read, e.g. "users", "users delta page 3", "subscribedSkus".
	Resource string
	// RetryAfter is the wait Graph asked for (429, 503), when it gave one.
	RetryAfter time.Duration
	// Op is what was attempted, for messages: "read" when empty, "add member", "remove member".
	Op string

	alreadyDone bool  // the write's effect was already in place (members.go)
	cause       error // a transport error (Status 0); never the SDK's ODataError, whose Error() can panic
}

func (e *Error) Error() string {
	var b strings.Builder
	op := e.Op
	if op == "" {
		op = "read"
	}
	b.WriteString("graph: " + op + " " + e.Resource + ": ")
	switch {
	case e.Status == 0 && e.cause != nil:
		b.WriteString(e.cause.Error())
	case e.Status == 0:
		b.WriteString("no response")
	default:
		b.WriteString(strconv.Itoa(e.Status))
		if t := http.StatusText(e.Status); t != "" {
			b.WriteString(" " + t)
		}
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
		if e.Message != "" {
			b.WriteString(": " + e.Message)
		}
	}
	if e.RequestID != "" {
		b.WriteString(" (request-id " + e.RequestID + ")")
	}
	if h := e.hint(); h != "" {
		b.WriteString("; " + h)
	}
	return b.String()
}

// Unwrap exposes a transport error (context.Canceled, a TLS failure) for errors.Is.
func (e *Error) Unwrap() error { return e.cause }

// hint is the next step for a person reading the error.
func (e *Error) hint() string {
	switch {
	case e.Status == 401:
		return "the token was refused: check the app's credential, that the tenant is right and that the token is for Graph (scope https://graph.microsoft.com/.default or the national cloud's)"
	case e.Status == 403 && e.Op != "":
		return "the app lacks a permission to write: grant the application permission GroupMember.ReadWrite.All with admin consent (worker setup does), and check the group is not role-assignable or dynamic"
	case e.Status == 403:
		return "the app lacks a permission: grant the application permissions Directory.Read.All (users, groups, contacts, domains) and Organization.Read.All (subscribedSkus) with admin consent"
	case e.Status == 429:
		return "Graph kept throttling after the retries: run again later, or run fewer workers against this tenant"
	case e.Status == 404:
		return "the object or resource does not exist (deleted since it was listed?)"
	case e.Status >= 500:
		return "Graph failed on its side after the retries: run again later; if it persists, quote the request-id to Microsoft support"
	case e.Status == 400 && strings.EqualFold(e.Code, "Request_UnsupportedQuery"):
		return "the query is not supported here: this is a bug in the worker, please report it with this message"
	}
	return ""
}

// Throttled reports whether Graph refused the request for throttling (after the client's retries).
func (e *Error) Throttled() bool { return e.Status == http.StatusTooManyRequests }

// deltaExpiredCodes are the error codes meaning "this delta token is no longer valid, sync again from the
// start" (research §2: documented camelCase, observed PascalCase, corso's list). Matched case-insensitively.
var deltaExpiredCodes = []string{"syncStateNotFound", "syncStateInvalid", "resyncRequired"}

// deltaExpired reports whether err says the delta or skip token expired: HTTP 410 in any form, or one of the
// codes above with any 4xx status.
func deltaExpired(err error) bool {
	var ge *Error
	if !errors.As(err, &ge) {
		return false
	}
	if ge.Status == http.StatusGone {
		return true
	}
	if ge.Status < 400 || ge.Status >= 500 {
		return false
	}
	for _, c := range deltaExpiredCodes {
		if strings.EqualFold(ge.Code, c) {
			return true
		}
	}
	return false
}

// mapError turns whatever the SDK returned into *Error. It never calls ODataError.Error(), which dereferences
// error.message and panics on a body without one (research gotcha 6).
func mapError(resource string, err error) error {
	if err == nil {
		return nil
	}
	var ge *Error
	if errors.As(err, &ge) {
		if ge.Resource == "" {
			ge.Resource = resource
		}
		return ge
	}
	out := &Error{Resource: resource}
	var oe *odataerrors.ODataError
	var ae *abstractions.ApiError
	var hdr *abstractions.ResponseHeaders
	switch {
	case errors.As(err, &oe):
		out.Status = oe.ResponseStatusCode
		hdr = oe.GetResponseHeaders()
		if me := oe.GetErrorEscaped(); me != nil {
			out.Code, out.Message = deref(me.GetCode()), deref(me.GetMessage())
			if ie := me.GetInnerError(); ie != nil {
				out.RequestID = deref(ie.GetRequestId())
			}
		}
	case errors.As(err, &ae):
		out.Status, out.Message = ae.ResponseStatusCode, ae.Message
		hdr = ae.GetResponseHeaders()
	default:
		out.cause = err
		return out
	}
	if hdr != nil {
		if out.RequestID == "" {
			out.RequestID = first(hdr.Get("request-id"))
		}
		out.RetryAfter, _ = retry.ParseRetryAfter(first(hdr.Get("Retry-After")), time.Now())
	}
	return out
}

// batchItemError builds *Error from a failed $batch item: its status, headers and JSON body.
func batchItemError(resource string, status int, headers map[string]string, body any) *Error {
	out := &Error{Resource: resource, Status: status}
	for k, v := range headers {
		switch strings.ToLower(k) {
		case "retry-after":
			out.RetryAfter, _ = retry.ParseRetryAfter(v, time.Now())
		case "request-id":
			out.RequestID = v
		}
	}
	raw, err := json.Marshal(body) // string values arrive as *string; Marshal follows the pointers
	if err != nil {
		return out
	}
	var eb struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				RequestID string `json:"request-id"`
			} `json:"innerError"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &eb) == nil {
		out.Code, out.Message = eb.Error.Code, eb.Error.Message
		if eb.Error.InnerError.RequestID != "" {
			out.RequestID = eb.Error.InnerError.RequestID
		}
	}
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// wrapf adds context to a non-Graph failure (decoding, a link the SDK could not follow).
func wrapf(resource, format string, args ...any) error {
	return &Error{Resource: resource, cause: fmt.Errorf(format, args...)}
}
