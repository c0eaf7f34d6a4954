package main

import (
	"context"
	"testing"
	"time"
)

// TestBenchRerunRequestCounts asserts the one figure of `worker bench` that does not depend on the machine:
// the requests of P3. A rerun of the audits from a new process on an unchanged tenant resumes from the store
// (Graph delta links in one $batch, Exchange reads of what changed since the high-water mark), and one
// changed object costs no request more.
func TestBenchRerunRequestCounts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f, err := measureAudit(ctx, workerBin, 600, 0, 3, true, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first audit %d requests; unchanged rerun %d (+%d token); one change %d", f.firstReqs, f.rerunReqs, f.rerunTokens, f.oneReqs)
	if f.rerunReqs > 6 {
		t.Errorf("unchanged rerun from a new process sent %d requests, want at most 6", f.rerunReqs)
	}
	if f.oneReqs != f.rerunReqs {
		t.Errorf("rerun after one object changed sent %d requests, want %d (the unchanged rerun's)", f.oneReqs, f.rerunReqs)
	}
	if f.firstReqs <= f.rerunReqs {
		t.Errorf("first audit sent %d requests, no more than the rerun's %d: the rerun is not incremental", f.firstReqs, f.rerunReqs)
	}
}
