package main

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/store"
)

// TestExitCodesRowByRow runs the real binary against `worker sim serve` for every row of the exit-code
// table, and checks --help prints the table.
func TestExitCodesRowByRow(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"revert", "--help"}} {
		out, code := runWorker(t, args...)
		if code != 0 {
			t.Fatalf("worker %v: exit %d", args, code)
		}
		for _, e := range exitCodes {
			if !strings.Contains(out, exitCodesLine(e.code, e.name)) {
				t.Errorf("worker %s does not print exit code %d (%s)", strings.Join(args, " "), e.code, e.name)
			}
		}
	}

	_, cfg := simProcess(t, "--meus", "600", "--rtt", "300ms")
	st := openDB(t, strings.TrimSuffix(cfg, "worker.yaml")+"worker.db")
	ctx := context.Background()

	row := func(name string, want int, args ...string) (string, string) {
		t.Helper()
		out, stderr, code := runAll(t, args...)
		if code != want {
			t.Fatalf("%s: worker %s exited %d, want %d\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), code, want, tail(out, 1500), tail(stderr, 1500))
		}
		return out, stderr
	}
	row("usage", exitUsage, "run", "no-such-job", "--config", cfg)
	out, _ := row("done (dry run)", exitOK, "run", "meu-richtext", "--config", cfg, "--dry-run", "--output", "json")
	dry := decodeRun(t, out)
	out, _ = row("nothing to revert", exitOK, "revert", dry.RunID, "--config", cfg)
	if !strings.Contains(out, "nothing to revert") {
		t.Errorf("revert of a dry run does not say there is nothing to revert:\n%s", out)
	}
	_, stderr := row("aborted", exitAborted, "run", "meu-richtext", "--config", cfg, "--max-changes", "1")
	if !strings.Contains(stderr, "Nothing was written") {
		t.Errorf("aborted run does not say nothing was written: %s", stderr)
	}

	// A run in progress holds the job: a second one is busy (5), naming the holder and the lease expiry.
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		p := startWorker(t, "run-"+sig.String(), "run", "meu-richtext", "--config", cfg)
		id := waitRunning(t, st, "remediate")
		waitJournal(t, st, id, 1, 60*time.Second)
		if sig == syscall.SIGINT {
			_, stderr := row("busy", exitBusy, "run", "meu-richtext", "--config", cfg)
			for _, want := range []string{"another process holds the lease", "expires at", "alive on this host"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("busy: stderr does not say %q: %s", want, stderr)
				}
			}
		}
		if err := p.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(60 * time.Second); code != exitInterrupted {
			t.Fatalf("run + %s: exit %d, want %d", sig, code, exitInterrupted)
		}
		if r, _ := st.GetRun(ctx, id); r.Status != store.RunInterrupted {
			t.Errorf("run + %s recorded as %s, want interrupted", sig, r.Status)
		}
	}

	// A killed run leaves its lease behind; the next run, right away, sees its process is gone and takes
	// the job over instead of saying busy.
	p := startWorker(t, "run-killed", "run", "meu-richtext", "--config", cfg)
	killed := waitRunning(t, st, "remediate")
	waitJournal(t, st, killed, 1, 60*time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(30 * time.Second)
	out, _ = row("done after a killed run", exitOK, "run", "meu-richtext", "--config", cfg, "--output", "json")
	last := decodeRun(t, out)
	if r, _ := st.GetRun(ctx, killed); r.Status != store.RunInterrupted {
		t.Errorf("the killed run is %s after the next run, want interrupted", r.Status)
	}
	if pending, _ := st.JournalPending(ctx, killed); len(pending) > 0 {
		t.Errorf("the killed run has %d pending journal entries after the next run", len(pending))
	}

	// A revert interrupted by SIGINT says so and exits 4.
	if last.Applied == 0 {
		t.Fatal("the last run applied nothing: no revert to interrupt")
	}
	p = startWorker(t, "revert", "revert", last.RunID, "--config", cfg)
	// Signalled as soon as the revert is running (it is reading the objects back then, the phase defect 2
	// was about): waiting for its first journal entry raced the whole revert on a quiet machine.
	rev := waitRunning(t, st, "revert")
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(60 * time.Second); code != exitInterrupted {
		t.Fatalf("revert + SIGINT: exit %d, want %d", code, exitInterrupted)
	}
	if r, _ := st.GetRun(ctx, rev); r.Status != store.RunInterrupted {
		t.Errorf("revert + SIGINT recorded as %s, want interrupted", r.Status)
	}

	// A tenant that cannot be read: the run failed (2).
	_, broken := simProcess(t, "--meus", "10", "--error-rate", "1")
	row("failed", exitFailed, "run", "meu-richtext", "--config", broken)
}

func exitCodesLine(code int, name string) string {
	b, _ := json.Marshal(code) // the digit
	return "  " + string(b) + "  " + name
}

// waitRunning waits for a run of the given mode to be recorded as running and returns its id.
func waitRunning(t *testing.T, st *store.SQLite, mode string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		runs, err := st.ListRuns(context.Background(), store.RunFilter{Status: store.RunRunning})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			if r.Mode == mode {
				return r.ID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s run recorded as running within 60s", mode)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
