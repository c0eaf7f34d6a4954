package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/exo-worker/worker/internal/daemon"
	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs/executor"
)

// The exit codes of `worker run` and `worker revert`: one table, printed by --help, documented in the README
// and docs/CONTRACTS.md, and tested row by row (exitcodes_test.go). 0–3 are the executor's (a run's own
// outcome); 4 and 5 say the run did not get to decide its outcome.
//
// Interrupted is 4 rather than the shell's 128+signal (130, 143): the worker handles SIGINT and SIGTERM
// itself — it finishes the $batch in flight, journals its outcome and records the run interrupted — and a
// supervisor must be able to tell that clean stop from a process killed outright (which the shell reports
// as 128+n). One code also covers the stops that are not signals: a lost job lease.
const (
	exitOK          = executor.ExitOK      // 0
	exitUsage       = executor.ExitUsage   // 1
	exitFailed      = executor.ExitFailed  // 2
	exitAborted     = executor.ExitAborted // 3
	exitInterrupted = 4
	exitBusy        = 5
)

// exitCodes is the table in the order --help prints it.
var exitCodes = []struct {
	code    int
	name    string
	meaning string
}{
	{exitOK, "done", "every planned change was made and read back (or there was nothing to do; a dry run)"},
	{exitUsage, "usage", "usage or configuration error: a flag, the configuration, credentials the tenant refuses"},
	{exitFailed, "failed", "some changes failed, or were written but not verified; or the run could not read the tenant"},
	{exitAborted, "aborted", "stopped by a safety limit before finishing: blast radius, circuit breaker, journal failure"},
	{exitInterrupted, "interrupted", "stopped by SIGINT/SIGTERM or a lost job lease; what was sent is journalled, rerun to finish"},
	{exitBusy, "busy", "another live process holds the job's lease (running the job or a revert); retry later"},
}

// exitCodesHelp renders the table for --help.
func exitCodesHelp() string {
	var b strings.Builder
	b.WriteString("Exit codes:\n")
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "  %d  %-12s %s\n", e.code, e.name, e.meaning)
	}
	return strings.TrimRight(b.String(), "\n")
}

// runExitCode decides the exit code of a run from how it was recorded: the store's status is the truth
// (an interrupted run has a summary with "0 failed", which is not "done").
func runExitCode(rec store.Run, sum *executor.Summary, runErr error) int {
	if errors.Is(runErr, daemon.ErrBusy) {
		return exitBusy
	}
	switch rec.Status {
	case store.RunInterrupted:
		return exitInterrupted
	case store.RunAborted:
		return exitAborted
	case store.RunPartial, store.RunFailed:
		return exitFailed
	case store.RunSucceeded:
		if runErr == nil {
			return exitOK
		}
	}
	if sum != nil {
		if code := sum.ExitCode(); code != exitOK || runErr == nil {
			return code
		}
	}
	return exitFailed
}
