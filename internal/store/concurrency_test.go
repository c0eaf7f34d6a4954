package store

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// Two handles on one file, each with several goroutines running whole runs
// (create, journal ten, record outcomes, finish): every call must succeed,
// because writers wait for the lock instead of failing with SQLITE_BUSY.
func TestConcurrentWritersDoNotFail(t *testing.T) {
	forEachDriver(t, testConcurrentWritersDoNotFail)
}

func testConcurrentWritersDoNotFail(t *testing.T, db testDB) {
	handles := []Store{db.open(t), db.open(t)}
	const workers, runsEach = 8, 10
	start := time.Now()
	g, ctx := errgroup.WithContext(ctxTimeout(t, 2*time.Minute))
	for w := range workers {
		s := handles[w%2]
		g.Go(func() error {
			for i := range runsEach {
				run, err := s.CreateRun(ctx, Run{Job: fmt.Sprintf("job-%d", w), Owner: fmt.Sprintf("w%d", w)})
				if err != nil {
					return err
				}
				ids, err := s.JournalBegin(ctx, run.ID, changes(i*10, 10))
				if err != nil {
					return err
				}
				outs := make([]Outcome, len(ids))
				for k, id := range ids {
					outs[k] = Outcome{ID: id, State: ChangeStateApplied, RequestID: "r"}
				}
				if err := s.JournalOutcomes(ctx, outs); err != nil {
					return err
				}
				// Readers run beside the writers.
				if _, err := s.ListRuns(ctx, RunFilter{Limit: 5}); err != nil {
					return err
				}
				if err := s.FinishRun(ctx, run.ID, RunResult{Status: RunSucceeded, Counts: Counts{Applied: 10}}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("concurrent writer failed: %v", err)
	}
	elapsed := time.Since(start)
	runs, err := handles[1].ListRuns(t.Context(), RunFilter{Status: RunSucceeded, Limit: 1000})
	if err != nil || len(runs) != workers*runsEach {
		t.Fatalf("%d succeeded runs (%v), want %d", len(runs), err, workers*runsEach)
	}
	pending, err := handles[0].JournalPending(t.Context(), "")
	if err != nil || len(pending) != 0 {
		t.Fatalf("%d entries pending (%v), want 0", len(pending), err)
	}
	txns := workers * runsEach * 4
	t.Logf("%d write transactions from %d goroutines on 2 handles in %v (%.2f ms each)",
		txns, workers, elapsed.Round(time.Millisecond), float64(elapsed.Microseconds())/1000/float64(txns))
}

// The busy timeout is what makes the test above pass: with a holder keeping
// the write lock for 300 ms, a 50 ms timeout fails with SQLITE_BUSY and the
// default 5 s one waits and succeeds.
func TestBusyTimeoutWaitsForTheWriteLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "worker.db")
	holder := openAt(t, path)
	impatient := openAt(t, path, WithBusyTimeout(50*time.Millisecond))
	patient := openAt(t, path)

	hold := func() (release func()) {
		t.Helper()
		tx, err := holder.w.BeginTx(t.Context(), nil) // BEGIN IMMEDIATE: takes the write lock
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			time.Sleep(300 * time.Millisecond)
			_ = tx.Rollback()
			close(done)
		}()
		return func() { <-done }
	}

	wait := hold()
	_, err := impatient.CreateRun(t.Context(), Run{Job: "j"})
	wait()
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "locked") {
		t.Errorf("with a 50 ms busy timeout against a 300 ms lock: err = %v, want a database-locked error", err)
	}

	wait = hold()
	start := time.Now()
	_, err = patient.CreateRun(t.Context(), Run{Job: "j"})
	waited := time.Since(start)
	wait()
	if err != nil {
		t.Fatalf("with the default busy timeout: %v", err)
	}
	if waited < 200*time.Millisecond {
		t.Errorf("CreateRun returned after %v although the lock was held 300 ms: did it really wait?", waited)
	}
}
