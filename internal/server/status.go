package server

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/store"
)

//go:embed templates/status.html
var statusHTML string

//go:embed templates/status.css
var statusCSS string

// statusCSP allows exactly the page's one inline style (by hash) and nothing
// else: no scripts, no images, no external resources, no framing, no forms.
var statusCSP = func() string {
	sum := sha256.Sum256([]byte(statusCSS))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

var statusTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"fmtTime": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"took": func(r store.Run) string {
		if r.FinishedAt.IsZero() || r.StartedAt.IsZero() {
			return "—"
		}
		return r.FinishedAt.Sub(r.StartedAt).Round(time.Second).String()
	},
}).Parse(statusHTML))

// statusRuns is how many recent runs the page lists.
const statusRuns = 25

type jobRow struct {
	Info JobInfo
	Last *store.Run
}

type statusData struct {
	CSS       template.CSS
	Now       time.Time
	Jobs      []jobRow
	Rules     []ruleSummary
	OpenTotal int
	Runs      []store.Run
	Errors    []string
}

// handleStatus renders the status page. A store failure still renders what
// could be read, with the failure named, and answers 503.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	d := statusData{CSS: template.CSS(statusCSS), Now: s.now()}
	failed := false
	storeErr := func(what string, err error) {
		failed = true
		s.log.Error("status page: store read failed", zap.String("op", what), zap.Error(err))
		d.Errors = append(d.Errors, "Could not read "+what+" from the store; see the worker log and /readyz.")
	}
	for _, j := range sortedJobs(s.runner.Jobs()) {
		row := jobRow{Info: j}
		runs, err := s.runs.ListRuns(ctx, store.RunFilter{Job: j.Name, Limit: 1})
		if err != nil {
			storeErr("the last run of "+j.Name, err)
		} else if len(runs) > 0 {
			row.Last = &runs[0]
		}
		d.Jobs = append(d.Jobs, row)
	}
	if runs, err := s.runs.ListRuns(ctx, store.RunFilter{Limit: statusRuns}); err != nil {
		storeErr("recent runs", err)
	} else {
		d.Runs = runs
	}
	// Counts per rule, not the findings themselves: a large tenant's audit holds tens of thousands, which
	// /api/v1/findings pages through.
	if groups, err := s.runs.SummarizeOpenFindings(ctx); err != nil {
		storeErr("open findings", err)
	} else {
		d.Rules, d.OpenTotal = summarizeGroups(groups)
	}
	var buf bytes.Buffer
	if err := statusTmpl.Execute(&buf, d); err != nil {
		s.log.Error("status page: render failed", zap.Error(err))
		writeError(w, http.StatusInternalServerError, "internal error", "the status page could not be rendered; see the worker log")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", statusCSP)
	// The page names people: keep it out of shared caches and history.
	h.Set("Cache-Control", "no-store")
	status := http.StatusOK
	if failed {
		status = http.StatusServiceUnavailable
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func sortedJobs(js []JobInfo) []JobInfo {
	out := slices.Clone(js)
	slices.SortFunc(out, func(a, b JobInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}
