package exo

// The InvokeCommand envelope: the request body (CmdletInput), the $select URL, and the response envelope
// (value, @odata.nextLink, @adminapi.warnings, @adminapi.errors) of research §1.2.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
)

// body is the InvokeCommand request body. A command whose Identity is present but empty is refused here:
// Get-* with a null Identity returns every object (research §3), which no caller means.
func (cmd Command) body() ([]byte, error) {
	if strings.TrimSpace(cmd.Name) == "" {
		return nil, &Error{Kind: KindBadRequest, Message: "command has no cmdlet name"}
	}
	params := cmd.Params
	if params == nil {
		params = map[string]any{}
	}
	for k, v := range params {
		if strings.EqualFold(k, "Identity") && (v == nil || fmt.Sprint(v) == "") {
			return nil, &Error{Kind: KindBadRequest, Cmdlet: cmd.Name,
				Message: "Identity is empty; refusing to send it (an empty Identity would address every object)"}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	in := map[string]any{"CmdletInput": map[string]any{"CmdletName": cmd.Name, "Parameters": params}}
	if err := enc.Encode(in); err != nil {
		return nil, &Error{Kind: KindBadRequest, Cmdlet: cmd.Name, Identity: cmd.identity(),
			Message: fmt.Sprintf("cannot encode the parameters as JSON: %v", err)}
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// identity is the command's -Identity as text, for error messages.
func (cmd Command) identity() string {
	for k, v := range cmd.Params {
		if strings.EqualFold(k, "Identity") && v != nil {
			if s, ok := v.(string); ok {
				return s
			}
			return fmt.Sprint(v)
		}
	}
	return ""
}

// commandURL is the InvokeCommand URL with $select; property names are checked so that nothing but names
// reaches the query string.
func (c *Client) commandURL(sel []string) (string, error) {
	if len(sel) == 0 {
		return c.invokeURL, nil
	}
	for _, s := range sel {
		if !validProperty(s) {
			return "", fmt.Errorf("$select property %q is not a property name (letters and digits only)", s)
		}
	}
	q := url.Values{"$select": {strings.Join(sel, ",")}}
	return c.invokeURL + "?" + q.Encode(), nil
}

// invokeOnce sends one InvokeCommand (or next page) request with retries and decodes the envelope.
func (c *Client) invokeOnce(ctx context.Context, cmd Command, u string, body []byte, crid string) (*Response, error) {
	var out *Response
	r := request{
		cmdlet: cmd.Name, identity: cmd.identity(), url: u, cost: 1, clientRequestID: crid, idempotent: Idempotent(cmd.Name), readOnly: readOnly(cmd.Name),
		build: func(string) ([]byte, error) { return body, nil },
		header: func(h http.Header) {
			h.Set("X-CmdletName", cmd.Name)
			h.Set("Prefer", fmt.Sprintf("odata.maxpagesize=%d", c.opts.PageSize))
		},
		parse: func(status int, h http.Header, b []byte) *Error {
			resp, e := parseEnvelope(status, h, b)
			if e != nil {
				return e
			}
			out = resp
			return nil
		},
	}
	if err := c.send(ctx, &r); err != nil {
		return nil, err
	}
	for _, w := range out.Warnings {
		c.log.Debug("exo: warning", zap.String("cmdlet", cmd.Name), zap.String("identity", cmd.identity()),
			zap.String("warning", w), zap.String("request_id", out.RequestID))
	}
	return out, nil
}

// parseEnvelope decodes a success body: 200 with value, 200 without, or 204. Invalid JSON on a 200 means the
// body was cut short (research: truncated bodies happen), so it is a transient failure. A non-empty
// @adminapi.errors (non-terminating cmdlet errors) fails the call.
func parseEnvelope(status int, h http.Header, b []byte) (*Response, *Error) {
	resp := &Response{HTTPStatus: status, RequestID: h.Get("request-id"), BETarget: h.Get("X-CalculatedBETarget")}
	b = bytes.TrimSpace(maybeGunzip(b))
	if status == http.StatusNoContent || len(b) == 0 {
		return resp, nil
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(b, &env); err != nil {
		// The service answered 2xx, so the cmdlet ran; what it did is unknown.
		return nil, &Error{Kind: KindOutcomeUnknown, HTTPStatus: status, RequestID: resp.RequestID, BETarget: resp.BETarget,
			Message: fmt.Sprintf("the response body is not valid JSON (%d bytes; truncated?)", len(b)), Err: err}
	}
	get := func(keys ...string) json.RawMessage {
		for _, k := range keys {
			if v, ok := env[k]; ok {
				return v
			}
		}
		for k, v := range env {
			for _, want := range keys {
				if strings.EqualFold(k, want) {
					return v
				}
			}
		}
		return nil
	}
	if v := get("value"); len(v) > 0 && string(v) != "null" {
		if err := json.Unmarshal(v, &resp.Values); err != nil {
			// A single object instead of a collection: keep it as the one value.
			if bytes.HasPrefix(bytes.TrimSpace(v), []byte("{")) {
				resp.Values = []json.RawMessage{v}
			} else {
				return nil, &Error{Kind: KindServer, HTTPStatus: status, RequestID: resp.RequestID,
					Message: "the response's value member is neither a collection nor an object"}
			}
		}
	}
	resp.Warnings = stringList(get("@adminapi.warnings", "adminapi.warnings"))
	if link := get("@odata.nextLink", "odata.nextLink"); len(link) > 0 {
		var s string
		if json.Unmarshal(link, &s) == nil {
			resp.NextLink = s
		}
	}
	if errs := stringList(get("@adminapi.errors", "adminapi.errors")); len(errs) > 0 {
		e := &Error{HTTPStatus: status, RequestID: resp.RequestID, BETarget: resp.BETarget}
		var msgs []string
		for _, s := range errs {
			d := parseDetail(s)
			if e.ExceptionType == "" && e.ErrorID == "" {
				e.ErrorID, e.ExceptionType = d.errorID, d.exceptionType
			}
			msgs = append(msgs, d.message)
		}
		e.Message = truncate(strings.Join(msgs, "; "))
		e.Kind = classify(0, e.ExceptionType, e.Message)
		if e.Kind == KindUnknown {
			e.Kind = KindBadRequest
		}
		return nil, e
	}
	return resp, nil
}

// stringList decodes a JSON array of strings, tolerating non-string items and a single string.
func stringList(raw json.RawMessage) []string {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		var s string
		if json.Unmarshal(raw, &s) == nil && s != "" {
			return []string{s}
		}
		return nil
	}
	var out []string
	for _, it := range items {
		var s string
		if json.Unmarshal(it, &s) != nil {
			s = string(it)
		}
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
