package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// apiError is the body of every error answer: error is a short stable phrase
// a program can branch on, detail says what to do for a person.
type apiError struct {
	Error  string `json:"error"`
	Detail string `json:"detail,omitempty"`
	// KnownJobs is set on unknown-job answers.
	KnownJobs []string `json:"known_jobs,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away: nothing left to tell it
}

func writeError(w http.ResponseWriter, status int, msg, detail string) {
	writeJSON(w, status, apiError{Error: msg, Detail: detail})
}

// errBodyTooLarge and errBadJSON let decodeJSON's callers answer 413 and 400.
var (
	errBodyTooLarge = errors.New("request body too large")
	errBadJSON      = errors.New("malformed JSON")
	// errBadPayload is well-formed JSON that is not what the endpoint reads
	// (wrong webhook version or schema, a status it does not know).
	errBadPayload = errors.New("invalid payload")
)

// requireJSON refuses a POST whose Content-Type is not JSON. Besides being
// honest about what is accepted, it stops cross-site form posts: a browser
// may attach cached basic credentials to a form post from another site, but
// it cannot send application/json across origins without a CORS preflight,
// which this server never approves.
func requireJSON(w http.ResponseWriter, r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return true
	}
	writeError(w, http.StatusUnsupportedMediaType, "unsupported content type",
		fmt.Sprintf("send the body as JSON with Content-Type: application/json (got %q)", ct))
	return false
}

// decodeJSON reads the whole body (at most limit bytes) into v. strict
// refuses unknown fields: our own API is strict so a typo ("job_name") is an
// error rather than a silently ignored field; webhook payloads are not,
// because their senders add fields over time.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any, strict bool) error {
	body, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	return unmarshalJSON(body, v, strict)
}

// readBody reads the whole body, at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("%w: the limit is %d bytes", errBodyTooLarge, mbe.Limit)
		}
		return nil, fmt.Errorf("%w: reading the body: %v", errBadJSON, err)
	}
	return body, nil
}

// unmarshalJSON decodes exactly one JSON value from body.
func unmarshalJSON(body []byte, v any, strict bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return fmt.Errorf("%w: the body is empty", errBadJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s", errBadJSON, describeJSONError(err))
	}
	if dec.More() {
		return fmt.Errorf("%w: unexpected data after the JSON value", errBadJSON)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: unexpected data after the JSON value", errBadJSON)
	}
	return nil
}

// describeJSONError turns encoding/json errors into text that points at the
// problem (field and offset) without echoing the body back.
func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "the top level"
		}
		return fmt.Sprintf("%s must be %s, not a JSON %s", field, te.Type, te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early"
	}
	return err.Error()
}

// writeDecodeError answers a decodeJSON error with 413 or 400.
func writeDecodeError(w http.ResponseWriter, err error) {
	if errors.Is(err, errBodyTooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large", err.Error())
		return
	}
	if errors.Is(err, errBadPayload) {
		writeError(w, http.StatusBadRequest, "invalid payload", strings.TrimPrefix(err.Error(), errBadPayload.Error()+": "))
		return
	}
	writeError(w, http.StatusBadRequest, "malformed JSON", strings.TrimPrefix(err.Error(), errBadJSON.Error()+": "))
}
