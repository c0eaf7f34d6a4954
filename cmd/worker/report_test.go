package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/exo-worker/worker/internal/mx"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs/audit"
	"github.com/exo-worker/worker/jobs/meurichtext"
)

// The audits end to end: the real worker binary reads a simulated tenant with seeded defects over HTTPS
// (exo client and msgraph-sdk-go against the simulator) and resolves MX records through a DNS server on
// loopback; its findings are compared with the generator's ground truth.

type auditBench struct {
	srv  *sim.Server
	dns  *mx.Server
	cfg  string
	dir  string
	tn   *sim.Tenant
	base []string // the report arguments every call shares
}

func newAuditBench(t *testing.T) *auditBench {
	t.Helper()
	// The same simulated tenant `report --sim` starts: default scenario, seeded defects, its own DNS server,
	// and a configuration naming that DNS server as tenant.dns_server.
	st, err := startSimTenant(simSetup{dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return &auditBench{srv: st.srv, dns: st.dns, cfg: st.config, dir: t.TempDir(), tn: st.srv.Tenant(),
		base: []string{"report", "--config", st.config, "--log-level", "error", "--no-progress"}}
}

// report runs `worker report` with extra arguments, writing to a file it returns the content of.
func (b *auditBench) report(t *testing.T, format string, extra ...string) string {
	t.Helper()
	out := filepath.Join(b.dir, "report."+format)
	args := append(append(slices.Clone(b.base), "--format", format, "--out", out), extra...)
	stdout, stderr, code := runAll(t, args...)
	if code != 0 {
		t.Fatalf("worker %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, tail(stdout, 2000), tail(stderr, 3000))
	}
	body, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

type findingsDoc struct {
	Schema   string `json:"schema"`
	Findings []struct {
		Rule   string `json:"rule"`
		Object struct {
			ID string `json:"id"`
		} `json:"object"`
		Detail string `json:"detail"`
		Fix    *struct {
			Attribute, Action, Value string
		} `json:"on_prem_fix"`
	} `json:"findings"`
}

func TestReportFindsEverySeededDefectAndNothingElse(t *testing.T) {
	b := newAuditBench(t)
	var doc findingsDoc
	if err := json.Unmarshal([]byte(b.report(t, "json")), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Schema != "exo-worker/findings/v1" {
		t.Errorf("schema %q", doc.Schema)
	}
	truth := b.tn.GroundTruth()
	if len(truth) == 0 {
		t.Fatal("the scenario seeded no defects")
	}
	want := map[string]sim.Expected{}
	for _, e := range truth {
		if _, ok := audit.LookupRule(e.Rule); !ok {
			t.Errorf("the ground truth names rule %q, which is not in the catalogue", e.Rule)
		}
		want[e.Rule+"/"+strings.ToLower(e.ObjectID)] = e
	}
	got := map[string]bool{}
	for _, f := range doc.Findings {
		key := f.Rule + "/" + strings.ToLower(f.Object.ID)
		if got[key] {
			t.Errorf("%s reported twice", key)
		}
		got[key] = true
		e, ok := want[key]
		if !ok {
			t.Errorf("false positive: %s (%s)", key, f.Detail)
			continue
		}
		var gotFix, wantFix string
		if f.Fix != nil {
			gotFix = f.Fix.Action + " " + f.Fix.Attribute + " " + f.Fix.Value
		}
		if e.Attribute != "" {
			wantFix = e.Action + " " + e.Attribute + " " + e.Value
		}
		if gotFix != wantFix {
			t.Errorf("%s: fix %q, want %q", key, gotFix, wantFix)
		}
	}
	var missed []string
	for k := range want {
		if !got[k] {
			missed = append(missed, k)
		}
	}
	sort.Strings(missed)
	for _, k := range missed {
		t.Errorf("missed seeded defect %s", k)
	}
	tp := len(want) - len(missed)
	t.Logf("precision %d/%d, recall %d/%d", tp, len(doc.Findings), tp, len(want))

	traps := b.tn.Traps()
	if len(traps) == 0 {
		t.Fatal("the scenario seeded no traps")
	}
	for _, tr := range traps {
		for _, f := range doc.Findings {
			if strings.EqualFold(f.Object.ID, tr.ObjectID) {
				t.Errorf("trap %q was flagged: %s %s", tr.What, f.Rule, f.Detail)
			}
		}
	}
	writes := b.srv.Log.Count(func(e sim.Entry) bool { return strings.HasPrefix(e.Cmdlet, "Set-") })
	if writes != 0 {
		t.Errorf("the audit sent %d Set-* requests; audits must not write", writes)
	}
	if b.dns.Queries() == 0 {
		t.Error("no MX query reached the DNS server")
	}
}

// dotnetGUID decodes a base64 immutable id into the objectGUID string, independently of the report package.
func dotnetGUID(t *testing.T, immutableID string) (string, bool) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(immutableID)
	if err != nil || len(raw) != 16 {
		return "", false
	}
	le := func(b []byte) []byte { c := slices.Clone(b); slices.Reverse(c); return c }
	return fmt.Sprintf("%x-%x-%x-%x-%x", le(raw[0:4]), le(raw[4:6]), le(raw[6:8]), raw[8:10], raw[10:16]), true
}

var psVerb = map[string]string{"add": "-Add", "replace": "-Replace", "remove": "-Remove"}
var ldifVerb = map[string]string{"add": "add", "replace": "replace", "remove": "delete"}

// TestReportScriptsMatchTheExpectedFixes checks the ps1 and LDIF of the seeded scenario line by line: every
// expected fix appears as exactly one command (one change record), addressed the way the header says, and
// there is no other command.
func TestReportScriptsMatchTheExpectedFixes(t *testing.T) {
	b := newAuditBench(t)
	ps1 := b.report(t, "ps1")
	ldif := b.report(t, "ldif")
	if !strings.HasPrefix(ps1, "\ufeff") {
		t.Error("the script has no UTF-8 BOM")
	}
	var wantCmds []string
	var wantRecs []string
	for _, e := range b.tn.GroundTruth() {
		if e.Attribute == "" {
			continue
		}
		o, _ := b.tn.Object(e.ObjectID)
		x := b.tn.GraphExtras(e.ObjectID)
		quoted := "'" + strings.ReplaceAll(e.Value, "'", "''") + "'"
		var cmd, dn string
		switch o.Kind {
		case sim.KindUser:
			if g, ok := dotnetGUID(t, o.OnPremisesImmutableID); ok {
				cmd = "Set-ADUser -Identity '" + g + "'"
				dn = "<GUID=" + g + ">"
			} else {
				cmd = "Set-ADUser -Identity '" + o.OnPremisesSamAccountName + "'"
				dn = sim.OnPremisesDN(o, x, b.tn.Domain())
			}
		case sim.KindGroup:
			sid := sim.OnPremisesSID(o, x, b.tn.ID())
			cmd = "Set-ADGroup -Identity '" + sid + "'"
			dn = "<SID=" + sid + ">"
		default:
			t.Fatalf("no expectation for %s objects", o.Kind)
		}
		wantCmds = append(wantCmds, fmt.Sprintf("%s %s @{%s=%s} -WhatIf", cmd, psVerb[e.Action], e.Attribute, quoted))
		wantRecs = append(wantRecs, strings.Join([]string{"dn " + dn, "changetype modify", ldifVerb[e.Action] + " " + e.Attribute, e.Attribute + " " + e.Value, "-"}, "|"))
	}

	var gotCmds []string
	lines := strings.Split(strings.TrimPrefix(ps1, "\ufeff"), "\r\n")
	for i, l := range lines {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		gotCmds = append(gotCmds, l)
		if !strings.HasPrefix(lines[i-1], "# Object found by") || !strings.HasPrefix(lines[i-4], "# [") {
			t.Errorf("command at line %d is not commented with its finding: %q", i+1, l)
		}
	}
	sort.Strings(gotCmds)
	sort.Strings(wantCmds)
	if !slices.Equal(gotCmds, wantCmds) {
		t.Errorf("ps1 commands:\n%s\nwant:\n%s", strings.Join(gotCmds, "\n"), strings.Join(wantCmds, "\n"))
	}
	if !slices.ContainsFunc(gotCmds, func(c string) bool { return strings.Contains(c, "@{mail='d''") }) {
		t.Error("the seeded address with an apostrophe is not in the script, doubled")
	}

	// LDIF: decode each record (base64 values included) into "key value" lines.
	var gotRecs []string
	var cur []string
	for _, l := range strings.Split(ldif, "\n") {
		switch {
		case strings.HasPrefix(l, "#"):
		case l == "":
			if cur != nil {
				gotRecs = append(gotRecs, strings.Join(cur, "|"))
				cur = nil
			}
		case l == "-":
			cur = append(cur, "-")
		default:
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				t.Fatalf("LDIF line %q", l)
			}
			if strings.HasPrefix(v, ": ") {
				raw, err := base64.StdEncoding.DecodeString(v[2:])
				if err != nil {
					t.Fatalf("LDIF line %q: %v", l, err)
				}
				v = string(raw)
			} else {
				v = strings.TrimPrefix(v, " ")
			}
			cur = append(cur, k+" "+v)
		}
	}
	sort.Strings(gotRecs)
	sort.Strings(wantRecs)
	if !slices.Equal(gotRecs, wantRecs) {
		t.Errorf("LDIF records:\n%s\nwant:\n%s", strings.Join(gotRecs, "\n"), strings.Join(wantRecs, "\n"))
	}
	if !strings.Contains(ldif, "dn:: ") {
		t.Error("no base64 dn in the LDIF, though <GUID=...> and the non-ASCII DN need one")
	}
}

func TestReportCommandFlags(t *testing.T) {
	b := newAuditBench(t)
	html := b.report(t, "html", "--job", audit.MEUAuditName)
	if !strings.Contains(html, "Content-Security-Policy") || !strings.Contains(html, audit.RuleMEUTargetMXCutover) ||
		strings.Contains(html, audit.RuleUPNUnverifiedSuffix) {
		t.Error("--job meu-audit --format html: the page lacks the MEU findings or holds other audits' findings")
	}
	fi, err := os.Stat(filepath.Join(b.dir, "report.html"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("report file mode %v (%v): it holds directory data, owner-only", fi.Mode(), err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown format", []string{"--format", "pdf"}, 1, "ldif"},
		{"unknown job", []string{"--job", "nope"}, 1, "known jobs"},
		{"remediation job", []string{"--job", meurichtext.Name}, 1, "not an audit"},
		{"fail-on high", []string{"--fail-on", "high"}, 2, "--fail-on"},
		{"bad fail-on", []string{"--fail-on", "urgent"}, 1, "high, medium"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(slices.Clone(b.base), tc.args...)
			_, stderr, code := runAll(t, args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Errorf("exit %d (want %d), stderr %q should mention %q", code, tc.code, tail(stderr, 500), tc.msg)
			}
		})
	}
}

func TestReportSimTable(t *testing.T) {
	stdout, stderr, code := runAll(t, "report", "--sim", "--log-level", "error")
	if code != 0 {
		t.Fatalf("report --sim: exit %d: %s", code, tail(stderr, 2000))
	}
	want := len(sim.NewTenant(withDefaults(sim.DefaultScenario())).GroundTruth())
	if !strings.Contains(stdout, fmt.Sprintf("\n%d finding(s):", want)) {
		t.Errorf("report --sim does not count the %d seeded defects:\n%s", want, tail(stdout, 1500))
	}
}

// withDefaults is the scenario `report --sim` starts: seeded defects and the licensing mix.
func withDefaults(sc sim.Scenario) sim.Scenario {
	d := sim.DefaultDefects()
	sc.Defects = &d
	l := sim.DefaultLicensing()
	sc.Licensing = &l
	return sc
}

func TestRulesCommand(t *testing.T) {
	stdout, _, code := runAll(t, "rules", "--output", "json")
	if code != 0 {
		t.Fatalf("rules: exit %d", code)
	}
	var doc rulesDoc
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Schema != RulesSchema || len(doc.Rules) != len(audit.Rules()) {
		t.Errorf("schema %q, %d rules; want %d", doc.Schema, len(doc.Rules), len(audit.Rules()))
	}
	text, _, _ := runAll(t, "rules")
	for _, r := range audit.Rules() {
		if !strings.Contains(text, r.ID) {
			t.Errorf("`worker rules` does not list %s", r.ID)
		}
	}
	if !strings.Contains(text, "on-prem only") {
		t.Error("`worker rules` does not mark the on-prem-only rules")
	}
	jobsOut, _, _ := runAll(t, "jobs")
	for _, a := range audit.Audits() {
		if !strings.Contains(jobsOut, a.Name()) {
			t.Errorf("`worker jobs` does not list %s", a.Name())
		}
	}
}

func TestReportLeavesOutFindingsOfExceptedObjects(t *testing.T) {
	b := newAuditBench(t)
	truth := b.tn.GroundTruth()
	if len(truth) < 2 {
		t.Fatal("need at least two seeded defects")
	}
	// Except the first seeded defect's object from the audit of its rule, with the owner and reason an
	// admin would record.
	gone := truth[0]
	rule, ok := audit.LookupRule(gone.Rule)
	if !ok || rule.Job == "" {
		t.Fatalf("rule %s has no audit", gone.Rule)
	}
	f, err := os.OpenFile(b.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "exceptions:\n  - {object: %s, jobs: [%s], owner: it-ops@contoso.com, reason: 'known, fixed in the next batch', expires: 2099-01-31}\n",
		gone.ObjectID, rule.Job)
	_ = f.Close()

	var doc findingsDoc
	if err := json.Unmarshal([]byte(b.report(t, "json")), &doc); err != nil {
		t.Fatal(err)
	}
	others := 0
	for _, e := range truth {
		if !strings.EqualFold(e.ObjectID, gone.ObjectID) {
			others++
		}
	}
	for _, fd := range doc.Findings {
		if strings.EqualFold(fd.Object.ID, gone.ObjectID) {
			// Findings of other audits on the same object stay; only the excepted audit's are hidden.
			if r, _ := audit.LookupRule(fd.Rule); r.Job == rule.Job {
				t.Errorf("excepted object reported by %s: %s", fd.Rule, fd.Detail)
			}
		}
	}
	if len(doc.Findings) < others {
		t.Errorf("%d findings, want at least the %d on objects without an exception", len(doc.Findings), others)
	}
	if len(doc.Findings) >= len(truth) {
		t.Errorf("%d findings of %d seeded defects: the exception hid nothing", len(doc.Findings), len(truth))
	}
}

// TestReportRunIsRecordedWithItsFindings: `worker report` is a run like any other — recorded in the store
// (history lists it) — and its findings reach the findings history under the audit that reported each, as
// the audits' own scheduled runs record them.
func TestReportRunIsRecordedWithItsFindings(t *testing.T) {
	b := newAuditBench(t)
	var doc findingsDoc
	if err := json.Unmarshal([]byte(b.report(t, "json")), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Findings) == 0 {
		t.Fatal("the report found nothing; the test would prove nothing")
	}
	hist, code := runWorker(t, "history", "--config", b.cfg, "--output", "json")
	if code != 0 || !strings.Contains(hist, `"job": "report"`) || !strings.Contains(hist, `"mode": "report"`) {
		t.Fatalf("history: exit %d, %s; want the report run", code, tail(hist, 1500))
	}
	st, err := store.Open(context.Background(), filepath.Join(b.srv.Dir, "worker.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	open, err := st.OpenFindings(context.Background(), store.FindingFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != len(doc.Findings) {
		t.Errorf("%d open findings in the store, the report printed %d", len(open), len(doc.Findings))
	}
	for _, f := range open {
		r, ok := audit.LookupRule(f.Rule)
		if !ok || f.Job != r.Job {
			t.Errorf("finding %s/%s recorded under job %q, want its audit %q", f.Rule, f.ObjectID, f.Job, r.Job)
		}
	}
}
