package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// dropJobs removes the jobs: section of a configuration file.
func dropJobs(t *testing.T, cfg string) {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := regexp.MustCompile(`(?m)^jobs:\n(?:[ #].*\n|\n)*`).ReplaceAll(b, nil)
	if len(out) == len(b) {
		t.Fatalf("%s has no jobs: section", cfg)
	}
	if err := os.WriteFile(cfg, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMisspelledJobKeyIsAConfigErrorForEveryCommand: jobs.meu-richtxt is refused by every command that reads
// the configuration, naming the path, the closest job and the known jobs, before anything runs.
func TestMisspelledJobKeyIsAConfigErrorForEveryCommand(t *testing.T) {
	_, cfg := simProcess(t, "--meus", "10")
	setLimit(t, cfg, "  meu-richtext:\n", "  meu-richtxt:\n")
	for _, args := range [][]string{
		{"config", "validate", "--config", cfg},
		{"run", "meu-richtext", "--config", cfg},
		{"report", "--config", cfg},
		{"serve", "--config", cfg, "--listen", "127.0.0.1:0"},
		{"jobs", "--config", cfg},
	} {
		out, stderr, code := runAll(t, args...)
		if code != 1 {
			t.Errorf("%v: exit %d, want 1\n%s%s", args, code, out, stderr)
			continue
		}
		msg := out + stderr
		for _, want := range []string{"jobs.meu-richtxt", `did you mean "meu-richtext"`, "known jobs: address-audit,"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%v: message does not say %q:\n%s", args, want, msg)
			}
		}
	}
}

// TestUnconfiguredJobRunsOnceWithItsFiniteDefaults: a job the configuration does not name runs when an admin
// asks for it by name, with its defaults — and those include a finite blast radius, so a first run on a
// tenant never cleaned stops before writing. `worker jobs` shows which jobs are configured and the
// effective mode and limits of each.
func TestUnconfiguredJobRunsOnceWithItsFiniteDefaults(t *testing.T) {
	_, cfg := simProcess(t, "--meus", "10")
	c := tenantClient(t, cfg)
	before := inScope(t, c)
	dropJobs(t, cfg) // the configuration names no job
	out, stderr, code := runAll(t, "jobs", "--config", cfg)
	if code != 0 {
		t.Fatalf("jobs: exit %d\n%s%s", code, out, stderr)
	}
	for _, want := range []string{"MODE", "MAX CHANGES", "CONFIGURED", "remediate", "500 / 20%", "no (defaults; not scheduled)", "report"} {
		if !strings.Contains(out, want) {
			t.Errorf("worker jobs does not show %q:\n%s", want, out)
		}
	}
	out, stderr, code = runAll(t, "run", "meu-richtext", "--config", cfg)
	if code != 3 {
		t.Fatalf("run of the unconfigured job: exit %d, want 3 (the default blast radius)\n%s%s", code, out, stderr)
	}
	msg := out + stderr
	for _, want := range []string{"does not name this job", "jobs.meu-richtext.max_change_percent = 20", "Nothing was written"} {
		if !strings.Contains(msg, want) {
			t.Errorf("output does not say %q:\n%s", want, msg)
		}
	}
	for id, v := range inScope(t, c) {
		if v != before[id] {
			t.Errorf("%s was written (%s → %s) although the run stopped", id, before[id], v)
		}
	}
	// --help says how an unconfigured job runs.
	help, _, _ := runAll(t, "run", "--help")
	if !strings.Contains(help, "does not name") || !strings.Contains(help, "never start such a job") {
		t.Errorf("run --help does not explain unconfigured jobs:\n%s", help)
	}
}
