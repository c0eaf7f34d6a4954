package exo

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/exo-worker/worker/internal/retry"
)

// Kind is what a caller branches on when an Exchange Online call fails. It also implements error, so that
// errors.Is(err, exo.KindNotFound) works on any error chain holding an *Error of that kind.
type Kind int

// The kinds of failure the admin API produces (research/exo-protocol.md §2.4, §8).
const (
	KindUnknown Kind = iota
	// KindNotFound: the -Identity did not resolve (ManagementObjectNotFoundException, HTTP 404).
	KindNotFound
	// KindDirSyncWriteRefused: the attribute is mastered on-premises (directory sync); fix it in AD.
	KindDirSyncWriteRefused
	// KindOutOfWriteScope: the app's RBAC write scope does not cover the object.
	KindOutOfWriteScope
	// KindNotFilterable: a property in -Filter is not filterable for that cmdlet; filter client-side.
	KindNotFilterable
	// KindUnauthorized: HTTP 401, the token was refused (missing Exchange.ManageAsApp, expired, wrong audience).
	KindUnauthorized
	// KindForbidden: HTTP 403, authenticated but without an Exchange role allowing the cmdlet.
	KindForbidden
	// KindThrottled: HTTP 429 or the tenant concurrency refusal; retried by the client before it surfaces.
	KindThrottled
	// KindTransient: 5xx, known transient exceptions, connection resets, truncated bodies; retried first.
	KindTransient
	// KindBadRequest: the service refused the command as given (HTTP 400 and other 4xx).
	KindBadRequest
	// KindServer: a server failure that is not known to be transient (501, 505, ...).
	KindServer
	// KindOutcomeUnknown: the request was sent but no complete answer came back — the connection was
	// reset or timed out after the request was written, the body was cut short, a $batch answer lacked
	// this command's sub-response. The cmdlet may have run. A write with this outcome must be read back
	// before anyone calls it failed or applied (the executor does). The client re-sends such a request
	// only when the command is idempotent (see Idempotent); otherwise it returns this kind at once.
	KindOutcomeUnknown
)

var kindNames = [...]string{
	KindUnknown:             "Unknown",
	KindNotFound:            "NotFound",
	KindDirSyncWriteRefused: "DirSyncWriteRefused",
	KindOutOfWriteScope:     "OutOfWriteScope",
	KindNotFilterable:       "NotFilterable",
	KindUnauthorized:        "Unauthorized",
	KindForbidden:           "Forbidden",
	KindThrottled:           "Throttled",
	KindTransient:           "Transient",
	KindBadRequest:          "BadRequest",
	KindServer:              "Server",
	KindOutcomeUnknown:      "OutcomeUnknown",
}

// String returns the kind's name, e.g. "NotFound".
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error lets a Kind be the target of errors.Is.
func (k Kind) Error() string { return "exo: " + k.String() }

// Error is a failed Exchange Online admin API call: what the service said, about which object, with the ids
// Microsoft support asks for.
type Error struct {
	Kind       Kind
	HTTPStatus int    // 0 when no response arrived (transport failure)
	Cmdlet     string // e.g. Set-MailUser
	Identity   string // the -Identity parameter of the command, when it had one
	// ErrorID and ExceptionType come from error.details[].message (e.g. "Ex6F9304",
	// "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException").
	ErrorID       string
	ExceptionType string
	// Message is the human text: the detail message, else the inner exception, else error.message, else a
	// description written by this package (empty 401, HTML page, ...).
	Message    string
	Code       string        // error.code, e.g. NotFound, BadRequest
	RequestID  string        // response header request-id
	BETarget   string        // response header X-CalculatedBETarget (the mailbox server that ran the cmdlet)
	RetryAfter time.Duration // from Retry-After, when the service sent one (internal/retry reads it)
	Attempts   int           // how many times the request was sent before giving up (0 or 1 = once)
	Err        error         // the underlying cause for transport failures (reset, EOF, invalid JSON)
}

// Error renders `Set-MailUser "id": message (Kind, HTTP 404, request-id …)`.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Cmdlet != "" {
		b.WriteString(e.Cmdlet)
		if e.Identity != "" {
			fmt.Fprintf(&b, " %q", e.Identity)
		}
		b.WriteString(": ")
	}
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if msg == "" {
		msg = "Exchange Online call failed"
	}
	b.WriteString(msg)
	b.WriteString(" (")
	b.WriteString(e.Kind.String())
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, ", HTTP %d", e.HTTPStatus)
	}
	if e.ErrorID != "" {
		fmt.Fprintf(&b, ", %s", e.ErrorID)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, ", request-id %s", e.RequestID)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, ", after %d attempts", e.Attempts)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", the service asks to retry after %s", e.RetryAfter)
	}
	b.WriteString(")")
	return b.String()
}

// Unwrap exposes the transport cause (io.ErrUnexpectedEOF, a net error, ...).
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, exo.KindX) true for an *Error of kind X.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}

// Retryable reports whether the same request may succeed if sent again later. KindOutcomeUnknown is
// retryable only for idempotent commands (Idempotent); the client checks that before re-sending.
func (e *Error) Retryable() bool {
	return e.Kind == KindThrottled || e.Kind == KindTransient || e.Kind == KindOutcomeUnknown
}

// Idempotent reports whether sending a command twice leaves the tenant as sending it once does, so a request
// whose outcome is unknown may be sent again. Get-* and Test-* read; Set-* assigns values (the second
// Set-MailUser -UseMapiRichTextFormat Never finds the value already set and answers with the "no settings
// have been modified" warning). New-*, Add-*, Remove-*, Enable-*, Disable-* and the rest may create,
// append or fail differently the second time: they are never re-sent after an unknown outcome.
func Idempotent(cmdlet string) bool {
	verb, _, _ := strings.Cut(cmdlet, "-")
	switch strings.ToLower(verb) {
	case "get", "set", "test":
		return true
	}
	return false
}

// readOnly reports a command that changes nothing (Get-*, Test-*): an incomplete answer to it is only a
// transient failure, never an unknown outcome.
func readOnly(cmdlet string) bool {
	verb, _, _ := strings.Cut(cmdlet, "-")
	return strings.EqualFold(verb, "get") || strings.EqualFold(verb, "test")
}

// unknownOutcome makes err an *Error of KindOutcomeUnknown: a request that may have run, whose last
// attempt failed in a way that does not say it did not (retryable kinds, a cancellation, a refused token).
// A refusal of the command itself (NotFound, BadRequest, the dir-sync and write-scope refusals) is final:
// the earlier attempt met it too.
func unknownOutcome(err error, cmdlet, identity string) error {
	var e *Error
	if errors.As(err, &e) {
		if e.Kind == KindOutcomeUnknown {
			return err
		}
		switch e.Kind {
		case KindNotFound, KindDirSyncWriteRefused, KindOutOfWriteScope, KindNotFilterable, KindBadRequest:
			// The service refused the command as such: the earlier attempt met the same refusal.
			return err
		}
		cp := *e
		cp.Kind = KindOutcomeUnknown
		cp.Message = "outcome unknown: an earlier attempt was sent and got no complete answer; the last attempt: " + e.Error()
		cp.Err = err
		return &cp
	}
	return &Error{Kind: KindOutcomeUnknown, Cmdlet: cmdlet, Identity: identity, Err: err,
		Message: fmt.Sprintf("outcome unknown: the request was sent and then %v before a complete answer came back", err)}
}

// IsKind reports whether err holds an *Error of kind k.
func IsKind(err error, k Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}

// transientNames are exception names the module (and other clients) retry even on HTTP 400 (research §2.4).
var transientNames = []string{
	"DCOverloadedException", "SuitabilityDirectoryException", "ServerInMMException",
	"ADServerSettingsChangedException", "StorageTransientException", "CmdletProxyNotAvailableFailure",
	"ServerBusyException", "TransientException", "BackendCommunicationException",
}

const (
	textDirSync       = "being synchronized from your on-premises organization"
	textWriteScope    = "out of the current user's write scope"
	textWriteScopes   = "within your current write scopes"
	textNotFilterable = "is not a recognized filterable property"
	textConcurrency   = "maximum number of concurrent requests"
	typeNotFound      = "ManagementObjectNotFoundException"
	maxMessageLen     = 1000
)

// classify decides the Kind from what the response said. Status codes that leave no doubt (429, 401, 403) win;
// then the stable message substrings; then exception type names; then the status.
func classify(status int, exceptionType, message string) Kind {
	lowMsg := strings.ToLower(message)
	switch status {
	case http.StatusTooManyRequests:
		return KindThrottled
	case http.StatusUnauthorized:
		return KindUnauthorized
	case http.StatusForbidden:
		return KindForbidden
	}
	switch {
	case strings.Contains(lowMsg, textDirSync):
		return KindDirSyncWriteRefused
	case strings.Contains(lowMsg, textWriteScope), strings.Contains(lowMsg, textWriteScopes):
		return KindOutOfWriteScope
	case strings.Contains(lowMsg, textNotFilterable):
		return KindNotFilterable
	case strings.Contains(lowMsg, textConcurrency):
		return KindThrottled
	case strings.Contains(exceptionType, typeNotFound):
		return KindNotFound
	}
	for _, n := range transientNames {
		if strings.Contains(exceptionType, n) || strings.Contains(message, n) {
			return KindTransient
		}
	}
	switch {
	case status == http.StatusNotFound:
		return KindNotFound
	case status == 500 || status == 502 || status == 503 || status == 504:
		return KindTransient
	case status >= 500:
		return KindServer
	case status >= 400:
		return KindBadRequest
	}
	return KindUnknown
}

// detail is one parsed error.details[].message.
type detail struct {
	errorID, exceptionType, message string
}

// parseErrorResponse turns a non-success response into an *Error. It never fails: whatever the body holds
// (OData JSON, HTML, plain text, nothing, mislabeled gzip) becomes a message a person can act on.
func parseErrorResponse(status int, h http.Header, body []byte) *Error {
	e := &Error{HTTPStatus: status}
	if h != nil {
		e.RequestID = h.Get("request-id")
		e.BETarget = h.Get("X-CalculatedBETarget")
		if d, ok := retry.ParseRetryAfter(h.Get("Retry-After"), time.Now()); ok {
			e.RetryAfter = d
		}
	}
	body = maybeGunzip(body)
	fillFromBody(e, body)
	if e.ExceptionType == "" && h != nil {
		// The short type name the service also sends as a header, when the body had none.
		e.ExceptionType = h.Get("X-ExceptionType")
	}
	e.Kind = classify(status, e.ExceptionType, e.Message)
	if e.Message == "" {
		e.Message = defaultMessage(e.Kind, status)
	} else if e.Kind == KindUnauthorized || e.Kind == KindForbidden {
		e.Message += ". " + hintFor(e.Kind)
	}
	return e
}

// fillFromBody reads the error body into e (Code, Message, ErrorID, ExceptionType).
func fillFromBody(e *Error, body []byte) {
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")))
	if len(trimmed) == 0 {
		return
	}
	var top map[string]any
	if trimmed[0] == '{' && json.Unmarshal(trimmed, &top) == nil {
		fillFromJSON(e, top)
		return
	}
	e.Message = plainText(trimmed)
}

func fillFromJSON(e *Error, top map[string]any) {
	errObj, _ := getCI(top, "error").(map[string]any)
	if errObj == nil {
		errObj, _ = getCI(top, "odata.error").(map[string]any)
	}
	if errObj == nil {
		// Not an OData error: maybe a bare {"code","message"} or {"Message": ...}.
		errObj = top
	}
	e.Code = stringOf(getCI(errObj, "code"))
	var msgs []string
	if ds, ok := getCI(errObj, "details").([]any); ok {
		for _, d := range ds {
			dm, ok := d.(map[string]any)
			if !ok {
				continue
			}
			pd := parseDetail(getCI(dm, "message"))
			if pd.message == "" {
				continue
			}
			if e.ErrorID == "" && e.ExceptionType == "" {
				e.ErrorID, e.ExceptionType = pd.errorID, pd.exceptionType
			}
			if !contains(msgs, pd.message) {
				msgs = append(msgs, pd.message)
			}
		}
	}
	if len(msgs) > 0 {
		e.Message = truncate(strings.Join(msgs, "; "))
		return
	}
	if inner, ok := getCI(errObj, "innererror").(map[string]any); ok {
		if ie, ok := getCI(inner, "internalexception").(map[string]any); ok {
			if m := stringOf(getCI(ie, "message")); m != "" {
				e.Message = truncate(m)
				if e.ExceptionType == "" {
					e.ExceptionType = stringOf(getCI(ie, "type"))
				}
				return
			}
		}
	}
	// error.message may itself be a pipe or JSON detail, or an OData v3 {"lang","value"} object.
	m := getCI(errObj, "message")
	if mm, ok := m.(map[string]any); ok && getCI(mm, "value") != nil {
		m = getCI(mm, "value")
	}
	pd := parseDetail(m)
	e.Message = truncate(pd.message)
	if e.ErrorID == "" && e.ExceptionType == "" {
		e.ErrorID, e.ExceptionType = pd.errorID, pd.exceptionType
	}
}

// parseDetail decodes one details[].message in either encoding: "ErrorId|ExceptionType|Text" (ErrorId may
// be empty) or a JSON document in a string ({"Message","TypeName","ClassName","localizedString":{"stringId"}}).
func parseDetail(v any) detail {
	switch x := v.(type) {
	case map[string]any:
		return detailFromJSON(x)
	case string:
		s := strings.TrimSpace(x)
		if strings.HasPrefix(s, "{") {
			var m map[string]any
			if json.Unmarshal([]byte(s), &m) == nil {
				if d := detailFromJSON(m); d.message != "" {
					return d
				}
			}
		}
		if parts := strings.SplitN(s, "|", 3); len(parts) == 3 && isToken(parts[0]) && parts[1] != "" && isToken(parts[1]) {
			return detail{errorID: parts[0], exceptionType: parts[1], message: strings.TrimSpace(parts[2])}
		}
		return detail{message: s}
	case nil:
		return detail{}
	default:
		return detail{message: stringOf(x)}
	}
}

func detailFromJSON(m map[string]any) detail {
	d := detail{message: stringOf(getCI(m, "Message"))}
	d.exceptionType = stringOf(getCI(m, "TypeName"))
	if d.exceptionType == "" {
		d.exceptionType = stringOf(getCI(m, "ClassName"))
	}
	if ls, ok := getCI(m, "localizedString").(map[string]any); ok {
		d.errorID = stringOf(getCI(ls, "stringId"))
	}
	if d.errorID == "" {
		d.errorID = stringOf(getCI(m, "ErrorId"))
	}
	if d.message == "" {
		if inner, ok := getCI(m, "InnerError").(map[string]any); ok {
			in := detailFromJSON(inner)
			d.message = in.message
			if d.exceptionType == "" {
				d.exceptionType = in.exceptionType
			}
		}
	}
	// A JSON detail can itself carry the pipe form in its Message.
	if d.exceptionType == "" && d.errorID == "" {
		if inner := parseDetail(d.message); inner.exceptionType != "" {
			return inner
		}
	}
	return d
}

// isToken reports whether s could be an error id or a .NET type name: no spaces, no quotes.
func isToken(s string) bool {
	for _, r := range s {
		if unicode.IsSpace(r) || r == '"' || r == '\'' {
			return false
		}
	}
	return true
}

var (
	reTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	reTags  = regexp.MustCompile(`(?s)<[^>]*>`)
	reSpace = regexp.MustCompile(`\s+`)
)

// plainText makes a non-JSON body readable: an HTML page becomes its title (or its text), anything else is
// trimmed and shortened; invalid UTF-8 is replaced.
func plainText(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	if strings.Contains(strings.ToLower(s[:min(len(s), 512)]), "<html") || strings.HasPrefix(strings.TrimSpace(s), "<!") {
		if m := reTitle.FindStringSubmatch(s); m != nil && strings.TrimSpace(m[1]) != "" {
			s = m[1]
		} else {
			s = reTags.ReplaceAllString(s, " ")
		}
	}
	s = strings.TrimSpace(reSpace.ReplaceAllString(s, " "))
	return truncate(s)
}

func truncate(s string) string {
	if len(s) <= maxMessageLen {
		return s
	}
	cut := maxMessageLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// maybeGunzip undoes gzip when the body really is gzip, whatever Content-Encoding claimed: EXO error
// responses have been seen labelled gzip but sent plain (research §2.3), and the reverse does no harm.
func maybeGunzip(b []byte) []byte {
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return b
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return b
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxBodyBytes))
	if err != nil && len(out) == 0 {
		return b
	}
	return out
}

func defaultMessage(k Kind, status int) string {
	switch k {
	case KindUnauthorized, KindForbidden:
		return hintFor(k)
	case KindThrottled:
		return "Exchange Online throttled the request (HTTP 429); lower exo.max_concurrency or exo.requests_per_second"
	case KindNotFound:
		return "the object was not found (HTTP 404)"
	case KindTransient, KindServer:
		return fmt.Sprintf("Exchange Online failed with HTTP %d and no details; it is usually temporary, retry later", status)
	}
	if status != 0 {
		return fmt.Sprintf("Exchange Online answered HTTP %d (%s) with no details", status, http.StatusText(status))
	}
	return ""
}

// hintFor says what to do next when Exchange refuses the caller itself.
func hintFor(k Kind) string {
	switch k {
	case KindUnauthorized:
		return "Exchange Online refused the access token: check that the app registration has the Office 365 " +
			"Exchange Online application permission Exchange.ManageAsApp with admin consent, that the token " +
			"scope is the Exchange host's /.default, and that the app holds an Exchange role (Exchange Recipient " +
			"Administrator, or a role group with Mail Recipients and View-Only Recipients)"
	case KindForbidden:
		return "Exchange Online accepted the token but the app may not run this cmdlet: assign the service " +
			"principal an Exchange role (Exchange Recipient Administrator, or a role group with Mail Recipients " +
			"and View-Only Recipients) and check its write scope"
	}
	return ""
}

// getCI returns m[key] matching the key case-insensitively (raw bodies say innererror, clients innerError).
func getCI(m map[string]any, key string) any {
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

func stringOf(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64, bool:
		return fmt.Sprint(x)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return ""
		}
		return string(b)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
