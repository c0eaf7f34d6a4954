package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/exo-worker/worker/internal/metrics"
)

// Defaults for Options.
const (
	DefaultListen        = "127.0.0.1:8080"
	DefaultMaxBodyBytes  = 1 << 20
	DefaultTriggerBurst  = 5
	DefaultShutdownGrace = 10 * time.Second
)

// DefaultTriggerRate is per job: one trigger every 6 seconds on average after
// a burst of DefaultTriggerBurst. Coalescing already limits runs to one
// follow-up; the limit keeps a looping alert from filling the run history.
var DefaultTriggerRate = rate.Every(6 * time.Second)

// Options configure New. Runner and Runs are required; the rest has defaults.
type Options struct {
	// Listen is host:port; DefaultListen when empty. A non-loopback address
	// needs TLS (TLSCertFile, TLSKeyFile) or AllowPlaintextNonLoopback (a TLS
	// proxy in front; logged as a warning): otherwise New refuses it.
	Listen string
	// TLSCertFile and TLSKeyFile are PEM files (server.tls_cert_file,
	// server.tls_key_file); both set = HTTPS, read again when they change.
	TLSCertFile string
	TLSKeyFile  string
	// AllowPlaintextNonLoopback serves plain HTTP on a non-loopback address
	// (server.allow_plaintext_non_loopback).
	AllowPlaintextNonLoopback bool
	// Token guards every endpoint but /healthz, /readyz and /metrics. Read it
	// with ReadTokenFile. Empty: those endpoints answer 503 (fail closed).
	// Shorter than MinTokenLen: New fails.
	Token []byte
	// MaxBodyBytes caps request bodies (413 beyond); DefaultMaxBodyBytes when 0.
	MaxBodyBytes int64
	// TriggerRate and TriggerBurst limit triggers per job (429 beyond).
	// Zero values take the defaults; rate.Inf turns the limit off.
	TriggerRate  rate.Limit
	TriggerBurst int
	// Triggers map webhook alerts to jobs.
	Triggers []TriggerRule
	Logger   *zap.Logger
	Runner   Runner
	Runs     RunReader
	// Ready backs /readyz; nil = always ready. Its answer is cached for
	// ReadyTTL (DefaultReadyTTL when 0), a failure for ReadyFailTTL
	// (DefaultReadyFailTTL when 0), by the Now clock.
	Ready        Readiness
	ReadyTTL     time.Duration
	ReadyFailTTL time.Duration
	// Metrics backs /metrics (nil: /metrics answers 404) and counts triggers
	// and refused requests.
	Metrics *metrics.Metrics
	// ShutdownGrace bounds how long Serve waits for requests in flight after
	// its context ends; DefaultShutdownGrace when 0.
	ShutdownGrace time.Duration
	// Now is the clock for rate limits and the status page; nil = time.Now.
	Now func() time.Time
}

// Server is the HTTP server. Build it with New, run it with Serve.
type Server struct {
	opts    Options
	log     *zap.Logger
	runner  Runner
	runs    RunReader
	ready   Readiness
	metrics *metrics.Metrics
	auth    *authenticator
	tls     *certReloader // nil = plain HTTP
	now     func() time.Time
	handler http.Handler

	mu       sync.Mutex
	limiters map[string]*rate.Limiter // per job; only known jobs get one

	readyCache readyCache
}

// New checks opts and builds the server. It fails on a token that is too
// short, a missing Runner or RunReader, and trigger rules that name unknown
// jobs or sources, listing every rule problem at once.
func New(opts Options) (*Server, error) {
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.TriggerRate == 0 {
		opts.TriggerRate = DefaultTriggerRate
	}
	if opts.TriggerBurst <= 0 {
		opts.TriggerBurst = DefaultTriggerBurst
	}
	if opts.ReadyTTL <= 0 {
		opts.ReadyTTL = DefaultReadyTTL
	}
	if opts.ReadyFailTTL <= 0 {
		opts.ReadyFailTTL = DefaultReadyFailTTL
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = DefaultShutdownGrace
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Runner == nil || opts.Runs == nil {
		return nil, errors.New("server: Runner and Runs are required (the daemon's scheduler and store)")
	}
	if n := len(opts.Token); n > 0 && n < MinTokenLen {
		return nil, fmt.Errorf("server: the token in server.token_file is %d characters; use at least %d random ones (`openssl rand -hex 32`)", n, MinTokenLen)
	}
	if err := validateRules(opts.Triggers, jobNames(opts.Runner.Jobs())); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return nil, errors.New("server: server.tls_cert_file and server.tls_key_file go together; set both (HTTPS) or neither")
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger.Named("server"),
		runner:   opts.Runner,
		runs:     opts.Runs,
		ready:    opts.Ready,
		metrics:  opts.Metrics,
		now:      opts.Now,
		limiters: map[string]*rate.Limiter{},
	}
	if opts.TLSCertFile != "" {
		r, err := newCertReloader(opts.TLSCertFile, opts.TLSKeyFile, s.log)
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		s.tls = r
	}
	if err := s.checkPlaintext(opts.Listen); err != nil {
		return nil, err
	}
	s.auth = newAuthenticator(opts.Token, s.log, s.metrics.ObserveUnauthorized)
	if !s.auth.enabled {
		s.log.Warn("no server token configured: the API, webhooks and status page are disabled; set server.token_file to enable them")
	}
	s.handler = s.routes()
	return s, nil
}

// Handler is the whole server as an http.Handler, for tests and for callers
// that run their own http.Server.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	api := func(h http.HandlerFunc) http.Handler { return s.auth.require(challengeAPI, h) }

	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	if s.metrics != nil {
		mux.Handle("GET /metrics", s.metrics.Handler())
	}
	mux.Handle("GET /api/v1/jobs", api(s.handleJobs))
	mux.Handle("POST /api/v1/runs", api(s.handleCreateRun))
	mux.Handle("GET /api/v1/runs", api(s.handleListRuns))
	mux.Handle("GET /api/v1/runs/{id}", api(s.handleGetRun))
	mux.Handle("GET /api/v1/findings", api(s.handleFindings))
	mux.Handle("POST /api/v1/hooks/alertmanager", api(s.webhook(SourceAlertmanager, parseAlertmanager)))
	mux.Handle("POST /api/v1/hooks/azure-monitor", api(s.webhook(SourceAzureMonitor, parseAzureMonitor)))
	mux.Handle("GET /{$}", s.auth.require(challengePage, http.HandlerFunc(s.handleStatus)))

	// Cross-origin protection rejects state-changing requests a browser sends
	// from another site (it may attach the cached basic credentials of the
	// status page); API clients and webhook senders send no Sec-Fetch-Site or
	// Origin header and pass.
	var h http.Handler = mux
	h = http.NewCrossOriginProtection().Handler(h)
	h = s.recoverPanics(h)
	h = s.logRequests(h)
	h = securityHeaders(h)
	return h
}

// securityHeaders applies to every answer; the status page tightens the CSP
// with the hash of its one inline style.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests logs each request at debug level by route pattern, never by
// raw path or query (those can carry object ids) and never with headers.
func (s *Server) logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		s.log.Debug("http request", zap.String("method", r.Method), zap.String("route", route),
			zap.Int("status", rec.status), zap.Duration("took", time.Since(start)), zap.String("remote", r.RemoteAddr))
	})
}

// recoverPanics turns a handler panic into a 500 and a log line instead of a
// dropped connection; the daemon keeps running either way.
func (s *Server) recoverPanics(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel value compared as net/http does
					panic(v)
				}
				s.log.Error("handler panic", zap.String("route", r.Pattern), zap.Any("panic", v), zap.Stack("stack"))
				writeError(w, http.StatusInternalServerError, "internal error", "the worker hit a bug; see its log")
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// Serve listens on Options.Listen and serves until ctx ends, then shuts down
// gracefully (in-flight requests get ShutdownGrace). It returns nil after a
// clean shutdown.
func (s *Server) Serve(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("server: listen on %s (server.listen): %w", s.opts.Listen, err)
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener is Serve on a listener the caller opened (tests pass
// 127.0.0.1:0). It closes ln.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	addr := ln.Addr()
	switch {
	case s.tls != nil:
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.tls.GetCertificate, NextProtos: []string{"http/1.1"}})
	case !isLoopback(addr) && !s.opts.AllowPlaintextNonLoopback:
		_ = ln.Close()
		return s.checkPlaintext(addr.String())
	case !isLoopback(addr):
		s.log.Warn("listening on a non-loopback address without TLS (server.allow_plaintext_non_loopback): the token travels in clear text unless TLS terminates in front",
			zap.String("addr", addr.String()))
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("http server listening", zap.String("addr", addr.String()), zap.Bool("tls", s.tls != nil), zap.Bool("api_enabled", s.auth.enabled))
	select {
	case err := <-errc:
		return fmt.Errorf("server: serve on %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("server: shut down: %w", err)
	}
	return nil
}

// isLoopback reports whether addr only accepts local connections. The
// unspecified address (0.0.0.0, ::) accepts every interface, so it is not.
func isLoopback(addr net.Addr) bool {
	switch a := addr.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func jobNames(js []JobInfo) []string {
	names := make([]string, 0, len(js))
	for _, j := range js {
		names = append(names, j.Name)
	}
	slices.Sort(names)
	return names
}

// limiter returns the job's trigger limiter, creating it on first use. Only
// known jobs reach here, so the map stays as small as the job list.
func (s *Server) limiter(job string) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.limiters[job]
	if l == nil {
		l = rate.NewLimiter(s.opts.TriggerRate, s.opts.TriggerBurst)
		s.limiters[job] = l
	}
	return l
}

// reserve takes one token from each job's limiter, all or none: a webhook
// that triggers two jobs must not start one and be refused for the other
// (the sender would retry both). It returns how long to wait when refused.
func (s *Server) reserve(jobs []string) (ok bool, retryAfter time.Duration) {
	now := s.now()
	var held []*rate.Reservation
	for _, j := range jobs {
		r := s.limiter(j).ReserveN(now, 1)
		if !r.OK() {
			for _, h := range held {
				h.CancelAt(now)
			}
			return false, time.Minute
		}
		if d := r.DelayFrom(now); d > 0 {
			r.CancelAt(now)
			for _, h := range held {
				h.CancelAt(now)
			}
			return false, d
		}
		held = append(held, r)
	}
	return true, 0
}
