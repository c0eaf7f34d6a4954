package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/exo-worker/worker/jobs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The one-shot CLI as an admin uses it: the real binary, as a child process, against `worker sim serve`
// running as another process, so a second run sees what the first one did.

// runAll runs the worker to completion and returns stdout, stderr and the exit code.
func runAll(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(workerBin, args...)
	cmd.Env = filteredEnv()
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	}
	t.Fatalf("worker %v: %v", args, err)
	return "", "", -1
}

func decodeRun(t *testing.T, out string) runDoc {
	t.Helper()
	var d runDoc
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("--output json is not one run document: %v\n%s", err, tail(out, 2000))
	}
	if dec.More() {
		t.Fatal("--output json printed more than one JSON document")
	}
	if d.Schema != RunSchema {
		t.Errorf("schema %q, want %q", d.Schema, RunSchema)
	}
	return d
}

func TestRunFixesEveryMEUThenSecondRunPlansNothing(t *testing.T) {
	_, cfg := simProcess(t)
	out, _, code := runAll(t, "run", "meu-richtext", "--config", cfg, "--output", "json")
	if code != 0 {
		t.Fatalf("first run exit %d\n%s", code, tail(out, 2000))
	}
	first := decodeRun(t, out)
	if first.Planned == 0 || first.Applied != first.Planned || first.Verified != first.Planned || first.Failed != 0 {
		t.Fatalf("first run planned %d applied %d verified %d failed %d", first.Planned, first.Applied, first.Verified, first.Failed)
	}
	for _, c := range first.Changes {
		// One change per MEU carries what differs: UseMapiRichTextFormat → Never and UsePreferMessageFormat
		// → $true (prefer_message_format defaults to true).
		ok := c.Status == "verified" && c.Identity != "" && len(c.Params) > 0
		for _, p := range c.Params {
			ok = ok && (p.Name == "UseMapiRichTextFormat" && p.To.Equal(jobs.Text("Never")) || p.Name == "UsePreferMessageFormat" && p.To.Equal(jobs.Bool(true)))
		}
		if !ok {
			t.Errorf("change %+v: want verified, with an identity, → Never and/or UsePreferMessageFormat → $true", c)
		}
	}
	if first.Effective != first.Verified {
		t.Errorf("effective %d, verified %d: with UsePreferMessageFormat nothing overrides the fix", first.Effective, first.Verified)
	}
	// Every in-scope MEU now holds Never, read through the real client.
	for id, v := range inScope(t, tenantClient(t, cfg)) {
		if v != "Never" {
			t.Errorf("%s still holds %s", id, v)
		}
	}
	out, _, code = runAll(t, "run", "meu-richtext", "--config", cfg, "--output", "json")
	second := decodeRun(t, out)
	if code != 0 || second.Planned != 0 || second.Applied != 0 || len(second.Changes) != 0 {
		t.Errorf("second run: exit %d planned %d applied %d; want 0, 0, 0", code, second.Planned, second.Applied)
	}
	if second.InScope != first.InScope {
		t.Errorf("in scope changed between runs: %d then %d", first.InScope, second.InScope)
	}
}

func TestRunDryRunPrintsOldToNewAndWritesNothing(t *testing.T) {
	_, cfg := simProcess(t)
	before := inScope(t, tenantClient(t, cfg))
	out, _, code := runAll(t, "run", "meu-richtext", "--config", cfg, "--dry-run")
	if code != 0 {
		t.Fatalf("dry-run exit %d", code)
	}
	want := 0
	for _, v := range before {
		if v != "Never" {
			want++
		}
	}
	lines := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "UseMapiRichTextFormat: ") && strings.Contains(l, " → Never") && strings.Contains(l, "planned") {
			lines++
		}
	}
	if lines != want {
		t.Errorf("dry-run printed %d old → new lines, want %d\n%s", lines, want, tail(out, 1500))
	}
	if !strings.Contains(out, "Dry run: nothing was written") {
		t.Error("dry-run output does not say that nothing was written")
	}
	after := inScope(t, tenantClient(t, cfg))
	for id, v := range before {
		if after[id] != v {
			t.Errorf("dry-run changed %s from %s to %s", id, v, after[id])
		}
	}
}

func TestRunBlastRadiusExits3BeforeAnyWrite(t *testing.T) {
	_, cfg := simProcess(t, "--meus", "100")
	c := tenantClient(t, cfg)
	for id := range inScope(t, c) {
		setRichText(t, c, id, "UseDefaultSettings")
	}
	setLimit(t, cfg, "max_changes: 100000", "max_changes: 10")
	out, stderr, code := runAll(t, "run", "meu-richtext", "--config", cfg)
	if code != 3 {
		t.Fatalf("exit %d, want 3\n%s%s", code, out, stderr)
	}
	msg := out + stderr
	for _, want := range []string{"would change 100 objects", "jobs.meu-richtext.max_changes = 10", "Nothing was written", "--dry-run", "--force"} {
		if !strings.Contains(msg, want) {
			t.Errorf("output does not say %q:\n%s", want, msg)
		}
	}
	for id, v := range inScope(t, c) {
		if v != "UseDefaultSettings" {
			t.Errorf("%s was written (%s) although the run stopped", id, v)
		}
	}
	// --force lifts the limit.
	out, _, code = runAll(t, "run", "meu-richtext", "--config", cfg, "--force", "--output", "json")
	if d := decodeRun(t, out); code != 0 || d.Verified != 100 {
		t.Errorf("forced run: exit %d verified %d, want 0 and 100", code, d.Verified)
	}
}

func setLimit(t *testing.T, cfg, from, to string) {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(from)) {
		t.Fatalf("%s does not contain %q", cfg, from)
	}
	if err := os.WriteFile(cfg, bytes.Replace(b, []byte(from), []byte(to), 1), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrorsAreListedTogetherWithFieldPaths(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.yaml")
	body := "tenant:\n  id: contoso.onmicrosoft.com\n  cloud: mars\n  colour: blue\nauth:\n  method: secret\n  client_secret_file: /dev/null\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"config", "validate", "--config", cfg},
		{"run", "meu-richtext", "--config", cfg},
	} {
		out, stderr, code := runAll(t, args...)
		if code != 1 {
			t.Errorf("%v: exit %d, want 1", args, code)
		}
		msg := out + stderr
		for _, want := range []string{"tenant.colour", "tenant.cloud", "mars", "auth.client_id"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%v: message does not name %q:\n%s", args, want, msg)
			}
		}
		if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine ") {
			t.Errorf("%v: stack trace in the output:\n%s", args, msg)
		}
	}
}

func TestRunUsageErrorsExit1(t *testing.T) {
	for name, args := range map[string][]string{
		"unknown job":     {"run", "no-such-job", "--sim"},
		"no config":       {"run", "meu-richtext"},
		"bad output":      {"run", "meu-richtext", "--sim", "--output", "xml"},
		"unknown flag":    {"run", "meu-richtext", "--frobnicate"},
		"missing job arg": {"run"},
	} {
		t.Run(name, func(t *testing.T) {
			out, stderr, code := runAll(t, args...)
			if code != 1 {
				t.Errorf("exit %d, want 1\n%s%s", code, out, stderr)
			}
			if strings.Contains(stderr, "goroutine ") {
				t.Errorf("stack trace:\n%s", stderr)
			}
		})
	}
}

func TestRunWithWrongSecretSaysWhichTenantAndClient(t *testing.T) {
	_, cfg := simProcess(t)
	bad := filepath.Join(t.TempDir(), "bad.secret")
	if err := os.WriteFile(bad, []byte("not-the-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var tenant, client string
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), ": ")
		switch k {
		case "id":
			tenant = v
		case "client_id":
			client = v
		case "client_secret_file":
			l = "  client_secret_file: " + bad
		}
		lines = append(lines, l)
	}
	badCfg := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badCfg, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runAll(t, "run", "meu-richtext", "--config", badCfg)
	if code != 1 {
		t.Errorf("exit %d, want 1 (a refused credential is a configuration problem)", code)
	}
	msg := out + stderr
	for _, want := range []string{tenant, client, "AADSTS7000215", "auth.client_secret_file"} {
		if want == "" || !strings.Contains(msg, want) {
			t.Errorf("message does not name %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "goroutine ") || strings.Contains(msg, "not-the-secret") {
		t.Errorf("stack trace or the secret itself in the output:\n%s", msg)
	}
}
