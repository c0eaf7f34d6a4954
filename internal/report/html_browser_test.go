package report

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/audit"
)

// chromiumPath finds Debian's chromium. In CI (CI=true) a missing browser fails the test, since .ci/run
// installs it; on a developer machine the test skips and says how to get it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed, and CI must run the HTML report in a browser: apt-get install -y chromium")
	}
	t.Skip("chromium is not installed: apt-get install -y chromium (as root) to run the HTML report in a headless browser")
	return ""
}

// browser starts a headless chromium with the flags this machine needs (no sandbox as root, no GPU, no
// background networking: the network is closed and its attempts would only slow the start) and collects
// every console error, uncaught exception, log error and request URL of the page.
type browser struct {
	ctx      context.Context
	mu       sync.Mutex
	errors   []string
	requests []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := chromiumPath(t)
	// Not t.TempDir: chromium's child processes may still write to the profile for a moment after the browser
	// stops, and TempDir's cleanup would then fail the test. Remove it with retries instead (cleanups run last
	// in, first out, so this runs after the browser is cancelled below).
	profile, err := os.MkdirTemp("", "report-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1300, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	b := &browser{ctx: ctx}
	err = chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				b.errors = append(b.errors, "console."+string(ev.Type)+": "+strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.errors = append(b.errors, "exception: "+msg)
		case *cdplog.EventEntryAdded:
			// CSP violations and failed loads arrive here, not through the console API.
			if ev.Entry.Level == cdplog.EntryLevelError {
				b.errors = append(b.errors, "log: "+ev.Entry.Text)
			}
		case *network.EventRequestWillBeSent:
			b.requests = append(b.requests, ev.Request.URL)
		}
	})
	// chromedp enables the runtime, log and network domains of the tab itself.
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *browser) problems() (errs, requests []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...), append([]string(nil), b.requests...)
}

func eval[T any](t *testing.T, b *browser, js string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func do(t *testing.T, b *browser, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func writeReportFile(t *testing.T, r *Report) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.html")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(f, FormatHTML, r); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// bigSample is the sample plus enough generated findings that counts differ per severity and rule.
func bigSample() *Report {
	r := sample()
	rules := []string{audit.RuleMEUTargetMXCutover, audit.RuleMailboxUnlicensed, audit.RuleDomainMXUnknown}
	for i := range 60 {
		id := rules[i%len(rules)]
		ru, _ := audit.LookupRule(id)
		r.Findings = append(r.Findings, jobs.Finding{Rule: id, Severity: ru.Severity,
			Object: jobs.ObjectRef{ID: fmt.Sprintf("44444444-0000-4000-8000-%012d", i), DisplayName: fmt.Sprintf("User %02d", i), Kind: jobs.ObjectUser},
			Detail: fmt.Sprintf("generated finding %d", i)})
	}
	return r
}

func TestHTMLReportInChromium(t *testing.T) {
	r := bigSample()
	c := summarize(r.Findings)
	b := newBrowser(t)
	path := writeReportFile(t, r)
	if err := chromedp.Do(b.ctx, chromedp.Navigate("file://"+path), chromedp.WaitReady(chromedp.CSS("#findings tbody tr"))); err != nil {
		t.Fatalf("load the report: %v", err)
	}

	// The counts the page shows are the findings' counts.
	type counted struct {
		Total, Shown, Rows int
		Sev                map[string]int
		Rule, Bar          map[string]int
	}
	shown := eval[counted](t, b, `(() => {
		const num = s => Number(document.querySelector(s).textContent.trim());
		const sev = {}, rule = {}, bar = {};
		document.querySelectorAll("[data-severity-count]").forEach(e => sev[e.dataset.severityCount] = Number(e.textContent));
		document.querySelectorAll("[data-rule-count]").forEach(e => rule[e.dataset.ruleCount] = Number(e.textContent));
		document.querySelectorAll("[data-rule-bar-count]").forEach(e => bar[e.dataset.ruleBarCount] = Number(e.textContent));
		return {Total: num("#total-count"), Shown: num("#shown-count"),
			Rows: document.querySelectorAll("#findings tbody tr:not([hidden])").length, Sev: sev, Rule: rule, Bar: bar};
	})()`)
	if shown.Total != c.Total || shown.Shown != c.Total || shown.Rows != c.Total {
		t.Errorf("page shows total %d, %d shown, %d rows; the report has %d findings", shown.Total, shown.Shown, shown.Rows, c.Total)
	}
	for _, s := range severities {
		if shown.Sev[string(s)] != c.BySeverity[s] {
			t.Errorf("page shows %d %s findings, want %d", shown.Sev[string(s)], s, c.BySeverity[s])
		}
	}
	if len(shown.Rule) != len(c.ByRule) || len(shown.Bar) != len(c.ByRule) {
		t.Errorf("page lists %d rules and %d chart bars, want %d", len(shown.Rule), len(shown.Bar), len(c.ByRule))
	}
	for id, n := range c.ByRule {
		if shown.Rule[id] != n || shown.Bar[id] != n {
			t.Errorf("rule %s: table %d, chart %d, want %d", id, shown.Rule[id], shown.Bar[id], n)
		}
	}

	// Filtering by severity, by typed text, and by clicking a rule in the chart.
	type filtered struct {
		Shown, Rows int
		Other       []string
	}
	visible := `(() => { const rows = [...document.querySelectorAll("#findings tbody tr:not([hidden])")];
		return {Shown: Number(document.querySelector("#shown-count").textContent), Rows: rows.length,
		Other: rows.filter(r => !(%s)).map(r => r.dataset.rule + " " + r.dataset.severity)}; })()`
	eval[bool](t, b, `(() => { const s = document.querySelector("#sev"); s.value = "medium"; s.dispatchEvent(new Event("change")); return true; })()`)
	res := eval[filtered](t, b, fmt.Sprintf(visible, `r.dataset.severity === "medium"`))
	if want := c.BySeverity[jobs.SeverityMedium]; res.Shown != want || res.Rows != want || len(res.Other) != 0 {
		t.Errorf("severity filter medium: %d shown, %d rows, others %v; want %d", res.Shown, res.Rows, res.Other, want)
	}
	do(t, b, chromedp.Click(chromedp.CSS("#clear")), chromedp.SendKeys(chromedp.CSS("#q"), "Müller"))
	res = eval[filtered](t, b, fmt.Sprintf(visible, `r.textContent.includes("Müller")`))
	if res.Shown != 1 || res.Rows != 1 || len(res.Other) != 0 {
		t.Errorf("text filter Müller: %d shown, %d rows, others %v; want 1", res.Shown, res.Rows, res.Other)
	}
	do(t, b, chromedp.Click(chromedp.CSS("#clear")), chromedp.Click(chromedp.CSS(`#chart g[data-rule="`+audit.RuleMailboxUnlicensed+`"] rect`)))
	res = eval[filtered](t, b, fmt.Sprintf(visible, `r.dataset.rule === "`+audit.RuleMailboxUnlicensed+`"`))
	if want := c.ByRule[audit.RuleMailboxUnlicensed]; res.Shown != want || res.Rows != want || len(res.Other) != 0 {
		t.Errorf("chart click: %d shown, %d rows, others %v; want %d", res.Shown, res.Rows, res.Other, want)
	}

	// Sorting by the Rule column, both ways.
	firstRules := `[...document.querySelectorAll("#findings tbody tr")].map(r => r.dataset.rule)`
	do(t, b, chromedp.Click(chromedp.CSS("#clear")), chromedp.Click(chromedp.CSS(`#findings th[data-key="rule"]`)))
	order := eval[[]string](t, b, firstRules)
	if !sortedStrings(order, false) {
		t.Errorf("after one click on Rule the rows are not ascending: %v", order)
	}
	do(t, b, chromedp.Click(chromedp.CSS(`#findings th[data-key="rule"]`)))
	order = eval[[]string](t, b, firstRules)
	if !sortedStrings(order, true) {
		t.Errorf("after a second click on Rule the rows are not descending: %v", order)
	}

	errs, reqs := b.problems()
	if len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
	for _, u := range reqs {
		if !strings.HasPrefix(u, "file://") && !strings.HasPrefix(u, "data:") {
			t.Errorf("the page requested %s: the report must not touch the network", u)
		}
	}
}

func TestHTMLReportWithoutFindingsInChromium(t *testing.T) {
	b := newBrowser(t)
	path := writeReportFile(t, &Report{Tenant: "contoso.onmicrosoft.com", Jobs: []string{audit.AddressAuditName}})
	do(t, b, chromedp.Navigate("file://"+path))
	total := eval[string](t, b, `document.querySelector("#total-count").textContent`)
	notes := eval[int](t, b, `document.querySelectorAll("#no-findings").length`)
	if strings.TrimSpace(total) != "0" || notes != 1 {
		t.Errorf("empty report shows total %q and %d no-findings notes", total, notes)
	}
	if errs, _ := b.problems(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
}

func sortedStrings(s []string, desc bool) bool {
	for i := 1; i < len(s); i++ {
		a, b := strings.ToLower(s[i-1]), strings.ToLower(s[i])
		if (!desc && a > b) || (desc && a < b) {
			return false
		}
	}
	return len(s) > 1
}
