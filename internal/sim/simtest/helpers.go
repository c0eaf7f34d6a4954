// Package simtest holds wire-level test helpers for the simulator's sub-packages: a running simulator and a
// minimal raw HTTP caller of the EXO admin API. The tests deliberately speak the wire protocol by hand (not
// through the exo package) so they pin down the bytes the service sends.
package simtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/exo-worker/worker/internal/sim"
)

// NewSim starts a simulator (in a test temporary directory unless opts.Dir is set) and closes it when the
// test ends.
func NewSim(t *testing.T, opts sim.Options) *sim.Server {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	s, err := sim.Start(opts)
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Caller sends raw EXO admin API requests with a bearer token.
type Caller struct {
	t     *testing.T
	Srv   *sim.Server
	HC    *http.Client // the client Do uses; tests may replace it
	Token string       // the bearer token sent; tests replace it to test refusals
	Base  string       // https://127.0.0.1:port/adminapi/beta/{tenant}
}

// ExoAudience is the token audience of the EXO admin API.
const ExoAudience = "https://outlook.office365.com"

// NewCaller returns a caller of s's EXO admin API holding a valid token.
func NewCaller(t *testing.T, s *sim.Server) *Caller {
	t.Helper()
	return &Caller{t: t, Srv: s, HC: s.HTTPClient(),
		Token: s.IssueToken(ExoAudience, 0),
		Base:  s.URL + "/adminapi/beta/" + s.Creds.TenantID}
}

// Resp is an answer: status, headers, the raw body and the body decoded as JSON.
type Resp struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

// CmdletBody is an InvokeCommand body.
func CmdletBody(cmdlet string, params map[string]any) []byte {
	in := map[string]any{"CmdletName": cmdlet}
	if params != nil {
		in["Parameters"] = params
	}
	b, _ := json.Marshal(map[string]any{"CmdletInput": in})
	return b
}

// Do sends a request; hdr may override or delete ("" value) the default headers.
func (c *Caller) Do(method, url string, hdr map[string]string, body []byte) Resp {
	c.t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := c.HC.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	r := Resp{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.Body); err != nil {
			c.t.Fatalf("body is not JSON: %v\n%s", err, raw)
		}
	}
	return r
}

// Invoke runs a cmdlet through InvokeCommand.
func (c *Caller) Invoke(cmdlet string, params map[string]any) Resp {
	c.t.Helper()
	return c.Do("POST", c.Base+"/InvokeCommand", nil, CmdletBody(cmdlet, params))
}

// Values is the value array.
func (r Resp) Values() []map[string]any {
	vs, _ := r.Body["value"].([]any)
	out := make([]map[string]any, 0, len(vs))
	for _, v := range vs {
		m, _ := v.(map[string]any)
		out = append(out, m)
	}
	return out
}

// Warnings is @adminapi.warnings.
func (r Resp) Warnings() []string {
	ws, _ := r.Body["@adminapi.warnings"].([]any)
	var out []string
	for _, w := range ws {
		s, _ := w.(string)
		out = append(out, s)
	}
	return out
}

// ErrorCode is error.code.
func (r Resp) ErrorCode() string {
	e, _ := r.Body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// ErrorMessage is error.message.
func (r Resp) ErrorMessage() string {
	e, _ := r.Body["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

// Detail is error.details[0].message.
func (r Resp) Detail() string {
	e, _ := r.Body["error"].(map[string]any)
	ds, _ := e["details"].([]any)
	if len(ds) == 0 {
		return ""
	}
	d, _ := ds[0].(map[string]any)
	s, _ := d["message"].(string)
	return s
}

// MustStatus fails the test unless the status is want.
func (r Resp) MustStatus(t *testing.T, want int) Resp {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d; body: %s", r.Status, want, Truncate(string(r.Raw), 2000))
	}
	return r
}

// HasWarning reports whether a warning contains sub.
func HasWarning(ws []string, sub string) bool {
	for _, w := range ws {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

// Truncate shortens s to n bytes for failure messages.
func Truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// SubReq is one $batch request.
type SubReq struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

// Sub is a $batch request running cmdlet with the caller's token.
func (c *Caller) Sub(id, cmdlet string, params map[string]any) SubReq {
	return SubReq{ID: id, Method: "POST", URL: c.Base + "/InvokeCommand",
		Headers: map[string]string{"Authorization": "Bearer " + c.Token, "Content-Type": "application/json"},
		Body:    CmdletBody(cmdlet, params)}
}

// Batch posts a $batch with continue-on-error.
func (c *Caller) Batch(reqs []SubReq) Resp {
	c.t.Helper()
	b, _ := json.Marshal(map[string]any{"requests": reqs})
	return c.Do("POST", c.Base+"/$batch", map[string]string{"Prefer": "odata.continue-on-error"}, b)
}

// SubResp is one $batch response.
type SubResp struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

// BatchResponses indexes a $batch answer by request id.
func BatchResponses(t *testing.T, r Resp) map[string]SubResp {
	t.Helper()
	var out struct{ Responses []SubResp }
	if err := json.Unmarshal(r.Raw, &out); err != nil {
		t.Fatalf("batch body: %v", err)
	}
	m := map[string]SubResp{}
	for _, sr := range out.Responses {
		m[sr.ID] = sr
	}
	return m
}
