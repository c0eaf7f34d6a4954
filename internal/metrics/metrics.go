// Package metrics holds the worker's Prometheus metrics: one registry, a fixed
// set of collectors, and small methods the daemon, the executor and the exo
// client call to record what happened.
//
// Labels are bounded on purpose: job, rule, severity, status and service only,
// never an object id, a name or an address. Findings and runs name people, and
// a label per object would both leak them to anyone who can scrape /metrics and
// grow the series count with the tenant.
//
// The package imports neither the store nor the exo client, so any package can
// record into it without pulling in SQLite or the SDKs. Every method is safe on
// a nil *Metrics (it does nothing), so callers that run without metrics need no
// nil checks.
package metrics

import (
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Services the API metrics distinguish. Callers may pass other short constant
// names; these are the ones the worker uses.
const (
	ServiceEXO   = "exo"
	ServiceGraph = "graph"
	ServiceToken = "token"
)

// StatusError is the status label of an API call that got no HTTP response at
// all (connection refused, reset, timeout).
const StatusError = "error"

// maxLabelLen caps a label value so a caller passing something unexpected
// (an error text, say) cannot blow up the exposition; the bounded label sets
// are short names.
const maxLabelLen = 64

// Metrics is the worker's metric set. Create it with New; the zero value is
// not usable, a nil pointer is (all methods are no-ops).
type Metrics struct {
	reg *prometheus.Registry
	now func() time.Time

	runs          *prometheus.CounterVec
	changes       *prometheus.CounterVec
	findings      *prometheus.GaugeVec
	lastSuccess   *prometheus.GaugeVec
	runDuration   *prometheus.HistogramVec
	apiRequests   *prometheus.CounterVec
	apiThrottled  *prometheus.CounterVec
	apiDuration   *prometheus.HistogramVec
	triggers      *prometheus.CounterVec
	skipped       *prometheus.CounterVec
	unauthorized  prometheus.Counter
	mu            sync.Mutex
	findingSeries map[[2]string]bool // (rule, severity) pairs ever set, so a rule that drops to zero shows 0
}

// Options configure New. The zero value is fine.
type Options struct {
	// Now is the clock for last-success timestamps; nil = time.Now.
	Now func() time.Time
	// NoProcessCollectors leaves out the Go runtime and process collectors,
	// for tests that compare the whole exposition.
	NoProcessCollectors bool
}

// New returns a metric set registered in its own registry (not the global
// default one, so tests and two servers in one process do not collide).
func New(opts Options) *Metrics {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	m := &Metrics{
		reg:           prometheus.NewRegistry(),
		now:           now,
		findingSeries: map[[2]string]bool{},
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_worker_runs_total",
			Help: "Runs finished, by job and final status (succeeded, partial, failed, aborted, interrupted).",
		}, []string{"job", "status"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_worker_changes_total",
			Help: "Object changes by job and outcome (applied, failed, verified, skipped, reverted).",
		}, []string{"job", "status"}),
		findings: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "exo_worker_findings",
			Help: "Open audit findings by rule and severity.",
		}, []string{"rule", "severity"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "exo_worker_last_success_timestamp_seconds",
			Help: "Unix time of the last run of the job that ended succeeded.",
		}, []string{"job"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "exo_worker_run_duration_seconds",
			Help: "Wall time of finished runs, by job.",
			// 1 s to about 2.3 h: a targeted rerun takes seconds, a full
			// tenant under throttling can take an hour or more.
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}, []string{"job"}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_worker_api_requests_total",
			Help: "HTTP requests to Microsoft APIs, by service (exo, graph, token) and HTTP status (\"error\" = no response).",
		}, []string{"service", "status"}),
		apiThrottled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_worker_api_throttled_total",
			Help: "HTTP 429 answers from Microsoft APIs, by service.",
		}, []string{"service"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "exo_worker_api_request_duration_seconds",
			Help: "Latency of HTTP requests to Microsoft APIs, by service.",
			// 10 ms to about 80 s: $batch calls and paged reads can be slow.
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}, []string{"service"}),
		triggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_worker_triggers_total",
			Help: "Run triggers from the API and alert webhooks, by job and status (started, coalesced, rate_limited, failed).",
		}, []string{"job", "status"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_worker_schedule_skipped_total",
			Help: "Scheduled ticks skipped because the job was still running or another process held it, by job.",
		}, []string{"job"}),
		unauthorized: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exo_worker_http_unauthorized_total",
			Help: "Requests to the worker's HTTP API refused for a missing or wrong token.",
		}),
	}
	m.reg.MustRegister(m.runs, m.changes, m.findings, m.lastSuccess, m.runDuration,
		m.apiRequests, m.apiThrottled, m.apiDuration, m.triggers, m.skipped, m.unauthorized)
	if !opts.NoProcessCollectors {
		m.reg.MustRegister(collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// Registry returns the registry, for callers that add their own collectors or
// gather in tests.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the exposition format for /metrics. Scrapes are bounded in
// number and time so a stuck scraper cannot pile up goroutines.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// ObserveRun records a finished run: its count by status, its duration and,
// for status "succeeded", the last-success time of the job.
func (m *Metrics) ObserveRun(job, status string, d time.Duration) {
	if m == nil {
		return
	}
	job, status = clip(job), clip(status)
	m.runs.WithLabelValues(job, status).Inc()
	m.runDuration.WithLabelValues(job).Observe(d.Seconds())
	if status == "succeeded" {
		m.lastSuccess.WithLabelValues(job).Set(float64(m.now().UnixNano()) / 1e9)
	}
}

// ObserveChanges adds n changes of one outcome (applied, failed, ...) for a
// job. n <= 0 records nothing.
func (m *Metrics) ObserveChanges(job, status string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.changes.WithLabelValues(clip(job), clip(status)).Add(float64(n))
}

// ObserveAPI records one HTTP request to a Microsoft API. status is the HTTP
// status code, 0 when no response came back. Its signature matches APIObserver
// so the method value m.ObserveAPI can be handed to a client as is.
func (m *Metrics) ObserveAPI(service string, status int, d time.Duration) {
	if m == nil {
		return
	}
	service = clip(service)
	m.apiRequests.WithLabelValues(service, statusLabel(status)).Inc()
	if status == http.StatusTooManyRequests {
		m.apiThrottled.WithLabelValues(service).Inc()
	}
	m.apiDuration.WithLabelValues(service).Observe(d.Seconds())
}

// APIObserver is the shape a client accepts to report each HTTP request it
// makes, without importing this package: service is a short constant ("exo"),
// status the HTTP status (0 = no response), d the time the request took.
type APIObserver func(service string, status int, d time.Duration)

// APIObserver returns m.ObserveAPI as an APIObserver (a no-op on nil m).
func (m *Metrics) APIObserver() APIObserver {
	return m.ObserveAPI
}

// ObserveTrigger counts one run trigger from the HTTP API or a webhook.
// status: started, coalesced, rate_limited, failed.
func (m *Metrics) ObserveTrigger(job, status string) {
	if m == nil {
		return
	}
	m.triggers.WithLabelValues(clip(job), clip(status)).Inc()
}

// ObserveSkippedTick counts a scheduled tick that did not start a run because
// the job was still running (no overlap) or another daemon claimed the tick.
func (m *Metrics) ObserveSkippedTick(job string) {
	if m == nil {
		return
	}
	m.skipped.WithLabelValues(clip(job)).Inc()
}

// ObserveUnauthorized counts a request refused for a missing or wrong token;
// a rising rate means someone is guessing.
func (m *Metrics) ObserveUnauthorized() {
	if m == nil {
		return
	}
	m.unauthorized.Inc()
}

// FindingCount is the number of open findings of one rule and severity.
type FindingCount struct {
	Rule     string
	Severity string
	Open     int
}

// SetOpenFindings replaces the open-findings gauge with counts (the whole
// picture, not a delta). A (rule, severity) pair set before and absent now is
// set to 0 rather than dropped, so dashboards show the drop and alerts on the
// series resolve instead of going stale.
func (m *Metrics) SetOpenFindings(counts []FindingCount) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := map[[2]string]float64{}
	for _, c := range counts {
		k := [2]string{clip(c.Rule), clip(c.Severity)}
		now[k] += float64(c.Open)
	}
	for k := range m.findingSeries {
		if _, ok := now[k]; !ok {
			m.findings.WithLabelValues(k[0], k[1]).Set(0)
		}
	}
	keys := make([][2]string, 0, len(now))
	for k := range now {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"\x00"+keys[i][1] < keys[j][0]+"\x00"+keys[j][1] })
	for _, k := range keys {
		m.findings.WithLabelValues(k[0], k[1]).Set(now[k])
		m.findingSeries[k] = true
	}
}

func statusLabel(status int) string {
	if status <= 0 || status > 999 {
		return StatusError
	}
	return strconv.Itoa(status)
}

// clip keeps label values short; an empty value becomes "unknown" so a series
// is never unlabeled by accident.
func clip(s string) string {
	if s == "" {
		return "unknown"
	}
	if len(s) > maxLabelLen {
		return s[:maxLabelLen]
	}
	return s
}
