// Package reqlog is the simulator's request log: one Entry per HTTP request (and per $batch sub-request),
// recorded by Middleware, so tests can assert what reached the simulated tenant.
package reqlog

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Entry is one recorded request: every HTTP request to the server (token requests included), and one
// extra entry per $batch sub-request. Tests assert on it ("dry-run made zero Set-* calls").
type Entry struct {
	Time   time.Time
	Method string
	Path   string
	// Cmdlet is the cmdlet an InvokeCommand call or sub-request ran; "$batch" for a batch envelope; empty
	// for non-EXO requests.
	Cmdlet string
	// Identity is the -Identity parameter, when given.
	Identity string
	// Params are all cmdlet parameters as decoded from JSON (Identity included).
	Params map[string]any
	// Status is the HTTP status answered (a sub-request's own status inside $batch); 0 when the connection
	// was dropped without a response.
	Status int
	// InBatch marks a $batch sub-request; Batch marks the $batch envelope itself.
	InBatch bool
	Batch   bool
	// RequestID is the request-id the server answered with.
	RequestID string
	// ClientRequestID is the client-request-id the caller sent, if any.
	ClientRequestID string
	// Fault names the injected fault, if any: "throttle", "error", "reset", "truncate"; "canceled" when the
	// client gave up during the injected RTT.
	Fault string
	// Service is "graph" for Microsoft Graph requests and $batch items (graph.go); empty otherwise.
	Service string
	// Query is the raw query string of a Graph request or $batch item ($select, $skiptoken, $deltatoken...).
	Query string
	// Header holds the request headers of a Graph request or $batch item (Authorization redacted), so tests
	// can assert what every page carried (ConsistencyLevel, client-request-id).
	Header http.Header
}

// IsWrite reports whether the entry ran a cmdlet that changes the tenant (Set-, New-, Remove-, Add-, ...).
func (e Entry) IsWrite() bool {
	if e.Cmdlet == "" || e.Cmdlet == "$batch" {
		return false
	}
	for _, verb := range []string{"Get-", "Test-", "Search-"} {
		if len(e.Cmdlet) >= len(verb) && equalFoldASCII(e.Cmdlet[:len(verb)], verb) {
			return false
		}
	}
	return true
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// RequestLog records requests in arrival order. It is safe for concurrent use.
type RequestLog struct {
	mu      sync.Mutex
	entries []Entry
}

// Add appends e (the $batch handlers record each sub-request this way).
func (l *RequestLog) Add(e Entry) {
	l.mu.Lock()
	l.entries = append(l.entries, e)
	l.mu.Unlock()
}

// Entries returns a copy of the recorded entries.
func (l *RequestLog) Entries() []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.entries)
}

// Count returns how many entries satisfy keep.
func (l *RequestLog) Count(keep func(Entry) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.entries {
		if keep(e) {
			n++
		}
	}
	return n
}

// Reset forgets all entries.
func (l *RequestLog) Reset() {
	l.mu.Lock()
	l.entries = nil
	l.mu.Unlock()
}

type entryKey struct{}

// Record is the entry Middleware builds for one request; Commit appends it to the log exactly once.
// Middleware commits it when the handler writes the status line at the latest, and the EXO and Graph
// handlers commit explicitly (after filling in the cmdlet, fault, ...) before they write: so an entry is
// in the log before any byte of its answer leaves, and a client that has read a response always finds it
// there — a test can assert "zero writes" right after a run without sleeping.
type Record struct {
	Entry
	once sync.Once
	log  *RequestLog
}

// Commit records the entry with status, once; later calls do nothing.
func (lr *Record) Commit(status int) {
	lr.once.Do(func() {
		lr.Status = status
		lr.log.Add(lr.Entry)
	})
}

// RecordFrom returns the entry Middleware is building for this request, so the EXO and Graph handlers can
// fill in the cmdlet, identity and fault; a detached record outside Middleware.
func RecordFrom(ctx context.Context) *Record {
	if lr, ok := ctx.Value(entryKey{}).(*Record); ok {
		return lr
	}
	return &Record{log: &RequestLog{}}
}

// statusRecorder commits the request's entry with the status a handler writes, before the status line goes
// out; Unwrap lets http.ResponseController reach the connection (flush, hijack).
type statusRecorder struct {
	http.ResponseWriter
	lr     *Record
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		w.lr.Commit(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Middleware wraps the whole mux: it applies the injected RTT (rtt is read per request) and records one entry
// per request, before its answer is written (see Record); also when a fault drops the connection (the
// deferred commit runs during the abort) or the client gives up during the RTT.
func Middleware(log *RequestLog, rtt func() time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lr := &Record{log: log, Entry: Entry{Time: time.Now(), Method: r.Method, Path: r.URL.Path,
			ClientRequestID: r.Header.Get("client-request-id")}}
		rec := &statusRecorder{ResponseWriter: w, lr: lr}
		defer func() {
			switch {
			case lr.Fault == "reset":
				lr.Commit(0)
			case rec.status != 0:
				lr.Commit(rec.status)
			default:
				lr.Commit(http.StatusOK)
			}
		}()
		if rtt := rtt(); rtt > 0 {
			t := time.NewTimer(rtt)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				lr.Fault = "canceled"
				return
			}
		}
		h.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), entryKey{}, lr)))
	})
}

// NewRequestID returns a fresh request-id (a random GUID), as the services answer with.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
