package reqlog

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestEntryIsLoggedBeforeTheAnswer: a handler that has written and flushed its answer but not returned yet
// (as a large EXO body or a token response can reach the client first) must already have its entry in the
// log, so a test can count requests right after its client returns, without sleeping.
func TestEntryIsLoggedBeforeTheAnswer(t *testing.T) {
	log := &RequestLog{}
	release := make(chan struct{})
	h := Middleware(log, func() time.Duration { return 0 }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		_, _ = w.Write([]byte("ok"))
		http.NewResponseController(w).Flush()
		<-release // the handler has not returned while the client reads
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer close(release)

	for i, path := range []string{"/a", "/b"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(body) != "ok" {
			t.Fatalf("body %q", body)
		}
		es := log.Entries()
		if len(es) != i+1 {
			t.Fatalf("after %d answers the log holds %d entries", i+1, len(es))
		}
		if e := es[i]; e.Path != path || e.Status != http.StatusOK || e.Method != http.MethodGet {
			t.Errorf("entry %d = %+v", i, e)
		}
		release <- struct{}{}
	}
}

// TestExplicitCommitWins: a handler that commits with its own fields first (the EXO handlers set the cmdlet
// and fault) is logged once, as it committed, not again by the write.
func TestExplicitCommitWins(t *testing.T) {
	log := &RequestLog{}
	h := Middleware(log, func() time.Duration { return 0 }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lr := RecordFrom(r.Context())
		lr.Cmdlet = "Set-MailUser"
		lr.Commit(http.StatusTeapot)
		w.WriteHeader(http.StatusTeapot)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if n := log.Count(func(e Entry) bool { return e.Cmdlet == "Set-MailUser" && e.Status == http.StatusTeapot && e.IsWrite() }); n != 1 || len(log.Entries()) != 1 {
		t.Errorf("entries %+v", log.Entries())
	}
}

// TestCanceledDuringRTT: a client that gives up during the injected RTT is still recorded, as canceled.
func TestCanceledDuringRTT(t *testing.T) {
	log := &RequestLog{}
	served := make(chan struct{}, 1)
	h := Middleware(log, func() time.Duration { return time.Hour }, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		served <- struct{}{}
	}))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/x", nil)
	ctx, cancel := context.WithCancel(req.Context())
	cancel()
	h.ServeHTTP(rec, req.WithContext(ctx))
	if len(served) != 0 {
		t.Fatal("the handler ran although the client had gone")
	}
	if n := log.Count(func(e Entry) bool { return e.Fault == "canceled" && e.Path == "/x" }); n != 1 {
		t.Errorf("entries %+v", log.Entries())
	}
}
