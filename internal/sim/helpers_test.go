package sim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Test helpers: a running simulator and a minimal raw HTTP caller. The tests deliberately speak the wire
// protocol by hand (not through the exo package) so they pin down the bytes the service sends.

func newSim(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

type exoCaller struct {
	t     *testing.T
	srv   *Server
	hc    *http.Client
	token string
	base  string // https://127.0.0.1:port/adminapi/beta/{tenant}
}

func newCaller(t *testing.T, s *Server) *exoCaller {
	t.Helper()
	return &exoCaller{t: t, srv: s, hc: s.HTTPClient(),
		token: s.issueToken(exoAudience, s.Creds.ClientID, 0),
		base:  s.URL + "/adminapi/beta/" + s.Creds.TenantID}
}

type resp struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func cmdletBody(cmdlet string, params map[string]any) []byte {
	in := map[string]any{"CmdletName": cmdlet}
	if params != nil {
		in["Parameters"] = params
	}
	b, _ := json.Marshal(map[string]any{"CmdletInput": in})
	return b
}

// do sends a request; hdr may override or delete ("" value) the default headers.
func (c *exoCaller) do(method, url string, hdr map[string]string, body []byte) resp {
	c.t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	r := resp{status: res.StatusCode, header: res.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			c.t.Fatalf("body is not JSON: %v\n%s", err, raw)
		}
	}
	return r
}

func (c *exoCaller) invoke(cmdlet string, params map[string]any) resp {
	c.t.Helper()
	return c.do("POST", c.base+"/InvokeCommand", nil, cmdletBody(cmdlet, params))
}

func (r resp) values() []map[string]any {
	vs, _ := r.body["value"].([]any)
	out := make([]map[string]any, 0, len(vs))
	for _, v := range vs {
		m, _ := v.(map[string]any)
		out = append(out, m)
	}
	return out
}

func (r resp) warnings() []string {
	ws, _ := r.body["@adminapi.warnings"].([]any)
	var out []string
	for _, w := range ws {
		s, _ := w.(string)
		out = append(out, s)
	}
	return out
}

func (r resp) errorCode() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r resp) errorMessage() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

// detail is error.details[0].message.
func (r resp) detail() string {
	e, _ := r.body["error"].(map[string]any)
	ds, _ := e["details"].([]any)
	if len(ds) == 0 {
		return ""
	}
	d, _ := ds[0].(map[string]any)
	s, _ := d["message"].(string)
	return s
}

func (r resp) mustStatus(t *testing.T, want int) resp {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body: %s", r.status, want, truncate(string(r.raw), 2000))
	}
	return r
}

func hasWarning(ws []string, sub string) bool {
	for _, w := range ws {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}
