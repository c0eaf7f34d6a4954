// Package doctor checks, before anything is written, that a worker configuration can do its jobs against
// its tenant: configuration, clock, network and TLS, tokens and their permissions, Exchange roles and write
// scope (with probes that change nothing), Graph, remote domains, the store, the API token file and the
// schedules. Each check ends PASS, WARN, FAIL or SKIP with a one-line fix, because the first run on a real
// tenant otherwise fails somewhere between DNS, consent and RBAC with no tool to say where.
package doctor

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/exo-worker/worker/config"
	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/setup"
)

// Status is a check's outcome.
type Status string

// Outcomes, worst last.
const (
	Pass Status = "PASS"
	Skip Status = "SKIP"
	Warn Status = "WARN"
	Fail Status = "FAIL"
)

// Result is one check.
type Result struct {
	// Check names what was checked ("token exchange", "exo write probe").
	Check  string `json:"check"`
	Status Status `json:"status"`
	// Detail says what was found.
	Detail string `json:"detail"`
	// Fix is the one-line remedy (empty on PASS).
	Fix string `json:"fix,omitempty"`
}

// Report is every check of one doctor run.
type Report struct {
	Schema  string   `json:"schema"`
	Config  string   `json:"config"`
	Tenant  string   `json:"tenant"`
	Results []Result `json:"results"`
}

// Schema is the JSON schema name of Report.
const Schema = "exo-worker/doctor/v1"

// OK reports whether no check failed.
func (r *Report) OK() bool {
	for _, x := range r.Results {
		if x.Status == Fail {
			return false
		}
	}
	return true
}

// Count returns how many results have status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, x := range r.Results {
		if x.Status == s {
			n++
		}
	}
	return n
}

// Find returns the first result of the named check (nil if none ran).
func (r *Report) Find(check string) *Result {
	for i := range r.Results {
		if r.Results[i].Check == check {
			return &r.Results[i]
		}
	}
	return nil
}

// WriteText prints one line per check, and the fix indented below a WARN or FAIL.
func (r *Report) WriteText(w io.Writer) {
	width := 0
	for _, x := range r.Results {
		width = max(width, len(x.Check))
	}
	for _, x := range r.Results {
		fmt.Fprintf(w, "%-4s  %-*s  %s\n", x.Status, width, x.Check, x.Detail)
		if x.Fix != "" && (x.Status == Fail || x.Status == Warn) {
			fmt.Fprintf(w, "      %-*s  fix: %s\n", width, "", x.Fix)
		}
	}
	fmt.Fprintf(w, "\n%d passed, %d warnings, %d failed, %d skipped\n", r.Count(Pass), r.Count(Warn), r.Count(Fail), r.Count(Skip))
}

// Options are what doctor checks with. Everything but Config may be nil; the checks that need a missing
// piece are skipped with the reason.
type Options struct {
	// Config is the loaded configuration; ConfigErr its load or validation error (then only the config
	// check runs: the rest would test a configuration the worker refuses to start with).
	Config    *config.Config
	ConfigErr error
	// Req are the permissions the enabled jobs declare (setup.FromJobs).
	Req setup.Requirements
	// Endpoints are the resolved hosts and scopes.
	Endpoints config.Endpoints
	// HTTPClient trusts tenant.ca_file and uses the environment's proxy (auth.HTTPClient).
	HTTPClient *http.Client
	// Credential is the worker's app credential.
	Credential azcore.TokenCredential
	// EXO is the Exchange client built on Credential.
	EXO *exo.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// LookupHost resolves a host name (default net.DefaultResolver.LookupHost).
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// Proxy returns the proxy for a request (default http.ProxyFromEnvironment).
	Proxy func(*http.Request) (*url.URL, error)
	// Uid is the current user id for the token-file owner check (default os.Getuid()).
	Uid int
	// Schedules are the jobs' cron schedules by job name.
	Schedules map[string]string
}

// Run runs every check in order and returns the report.
func Run(ctx context.Context, o Options) *Report {
	d := &doc{o: o, rep: &Report{Schema: Schema}}
	if d.o.Now == nil {
		d.o.Now = time.Now
	}
	if o.Config != nil {
		d.rep.Config = o.Config.Source()
		d.rep.Tenant = o.Config.Tenant.ID
	}
	if !d.checkConfig() {
		return d.rep
	}
	d.checkClock(ctx)
	d.checkNetwork(ctx)
	d.checkTokens(ctx)
	d.checkEXO(ctx)
	d.checkGraph(ctx)
	d.checkStore()
	d.checkTokenFile()
	d.checkSchedules()
	return d.rep
}

type doc struct {
	o   Options
	rep *Report
	// sample is the in-scope object the read probe found, for the write probe.
	sample map[string]any
}

func (d *doc) add(check string, s Status, detail, fix string) {
	d.rep.Results = append(d.rep.Results, Result{Check: check, Status: s, Detail: oneLine(detail), Fix: oneLine(fix)})
}

// oneLine keeps a detail on one line (service texts carry CR/LF) and bounded.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}

func (d *doc) checkConfig() bool {
	if d.o.ConfigErr != nil {
		d.add("config", Fail, d.o.ConfigErr.Error(), "correct the fields named above; `worker config validate --config FILE` lists them all")
		return false
	}
	if d.o.Config == nil {
		d.add("config", Fail, "no configuration", "pass --config worker.yaml (worker setup writes one)")
		return false
	}
	c := d.o.Config
	d.add("config", Pass, fmt.Sprintf("%s: tenant %s, cloud %s, auth %s (client %s)", orNone(c.Source()), c.Tenant.ID, c.Tenant.Cloud, c.Auth.Method, c.Auth.ClientID), "")
	return true
}

func orNone(s string) string {
	if s == "" {
		return "(environment)"
	}
	return s
}
