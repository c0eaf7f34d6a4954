package store

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/store/pgtest"
)

// Helper child processes: the test binary re-executed with storeChildEnv set
// to a role, the database path in storeChildDB and a count in storeChildN.
const (
	storeChildEnv = "STORE_TEST_CHILD"
	storeChildDB  = "STORE_TEST_DB"
	storeChildN   = "STORE_TEST_N"

	childJournalThenDie = "journal-then-die"
	childLeaseRace      = "lease-race"
)

// runChildProcess runs the child role and returns its stdout. A child that
// kills itself with SIGKILL is expected to (childJournalThenDie); any other
// failure fails the test.
func runChildProcess(t *testing.T, role, dbPath string, n int) []byte {
	t.Helper()
	out, err := childCommand(t.Context(), role, dbPath, n).Output()
	if role == childJournalThenDie {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("child %s: want death by SIGKILL, got %v", role, err)
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("child %s: want death by SIGKILL, got %v", role, err)
		}
		return out
	}
	if err != nil {
		t.Fatalf("child %s: %v; stdout %s", role, err, out)
	}
	return out
}

// childCommand is the command running a child role; usable from any goroutine.
func childCommand(ctx context.Context, role, dbPath string, n int) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), storeChildEnv+"="+role, storeChildDB+"="+dbPath, storeChildN+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	return cmd
}

// runChild is the child side; its exit code is the process's.
func runChild(role string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := os.Getenv(storeChildDB)
	n, _ := strconv.Atoi(os.Getenv(storeChildN))
	s, err := openLoc(ctx, path, os.Getenv(pgtest.DSNEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 10
	}
	switch role {
	case childJournalThenDie:
		run, err := s.CreateRun(ctx, Run{Job: "meu-richtext", Mode: "remediate"})
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 11
		}
		ids, err := s.JournalBegin(ctx, run.ID, changes(0, 10))
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 12
		}
		_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"run_id": run.ID, "ids": ids})
		// Die the way a crash does: no Close, no deferred calls.
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute)
		return 13
	case childLeaseRace:
		got, err := leaseRace(ctx, s, DefaultOwner(), n)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 14
		}
		fmt.Println(got)
		return 0
	}
	fmt.Fprintln(os.Stderr, "child: unknown role", role)
	return 2
}
