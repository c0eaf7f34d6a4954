package report

import (
	"html/template"
	"io"
	"strings"

	"github.com/exo-worker/worker/jobs"
)

// The HTML report is one file a person can open from a mail attachment or a share, offline: CSS, script and
// chart are inline, and a Content-Security-Policy forbids the page from loading anything at all. Rows are
// rendered on the server (the page reads fine without script); the script only filters and sorts them.

type htmlData struct {
	Tenant, Generated string
	Jobs              string
	Total             int
	Severities        []htmlSeverity
	Rules             []htmlRule
	Findings          []htmlFinding
	ChartHeight       int
}

type htmlSeverity struct {
	Name  string
	Count int
}

type htmlRule struct {
	ID, Title, Severity, Explanation, Fix, Area string
	Count                                       int
	// Bar geometry of the chart, in viewBox units: bars start at x=300 and the widest is 600 long.
	Width, Y, TextY, CountX int
}

type htmlFinding struct {
	Severity, Rule, Title                  string
	SevRank                                int
	Object, ObjectID, Kind, Detail         string
	Fix, Command, RuleFix, RuleExplanation string
}

func writeHTML(w io.Writer, r *Report) error {
	c := summarize(r.Findings)
	d := htmlData{Tenant: r.Tenant, Generated: r.Generated.UTC().Format("2006-01-02 15:04:05Z"), Jobs: strings.Join(r.Jobs, ", "), Total: c.Total}
	for _, s := range severities {
		d.Severities = append(d.Severities, htmlSeverity{Name: string(s), Count: c.BySeverity[s]})
	}
	most := 1
	for _, id := range c.Rules {
		most = max(most, c.ByRule[id])
	}
	for i, id := range c.Rules {
		ru := rule(id)
		sev := string(ru.Severity)
		if sev == "" {
			sev = "info"
		}
		d.Rules = append(d.Rules, htmlRule{ID: id, Title: ru.Title, Severity: sev, Explanation: ru.Explanation, Fix: ru.Fix,
			Area: ru.Area, Count: c.ByRule[id], Width: max(2, 600*c.ByRule[id]/most), Y: i * 28, TextY: i*28 + 15})
		d.Rules[i].CountX = 300 + d.Rules[i].Width + 8
	}
	d.ChartHeight = max(28, len(c.Rules)*28)
	for _, f := range r.Findings {
		ru := rule(f.Rule)
		cmd, _ := psCommand(f)
		d.Findings = append(d.Findings, htmlFinding{
			Severity: string(f.Severity), SevRank: jobs.SeverityRank(f.Severity), Rule: f.Rule, Title: ru.Title,
			Object: f.Object.String(), ObjectID: f.Object.ID, Kind: f.Object.Kind, Detail: f.Detail,
			Fix: fixText(f.OnPrem), Command: cmd, RuleFix: ru.Fix, RuleExplanation: ru.Explanation,
		})
	}
	return htmlPage.Execute(w, d)
}

var htmlPage = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Audit findings — {{.Tenant}}</title>
<style>
:root { --high:#c62828; --medium:#ef6c00; --low:#1565c0; --info:#607d8b; --line:#ddd; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; padding: 1.5rem; max-width: 1400px; color: #222; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; } h2 { font-size: 1.15rem; margin: 1.5rem 0 .5rem; }
.meta { color: #555; margin: 0 0 1rem; }
.cards { display: flex; gap: .75rem; flex-wrap: wrap; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .5rem 1rem; min-width: 7rem; }
.card b { display: block; font-size: 1.6rem; }
.sev { display: inline-block; border-radius: 3px; padding: 0 .4rem; color: #fff; font-size: .8rem; text-transform: uppercase; }
.sev.high { background: var(--high); } .sev.medium { background: var(--medium); } .sev.low { background: var(--low); } .sev.info { background: var(--info); }
svg .bar.high { fill: var(--high); } svg .bar.medium { fill: var(--medium); } svg .bar.low { fill: var(--low); } svg .bar.info { fill: var(--info); }
svg text { font-size: 12px; fill: #222; } svg g { cursor: pointer; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: .35rem .5rem; text-align: left; vertical-align: top; }
th[data-key] { cursor: pointer; user-select: none; white-space: nowrap; }
th[aria-sort=ascending]::after { content: " ▲"; } th[aria-sort=descending]::after { content: " ▼"; }
tr[hidden] { display: none; }
code { font-size: .85rem; background: #f4f4f4; padding: .1rem .25rem; border-radius: 3px; word-break: break-all; }
.filters { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; margin: .5rem 0; }
.filters input { min-width: 18rem; padding: .3rem; } .filters select { padding: .3rem; }
details summary { cursor: pointer; color: #444; }
.id { color: #777; font-size: .8rem; }
#findings td:nth-child(2) code { white-space: nowrap; }
</style>
</head>
<body>
<h1>Directory sync audit</h1>
<p class="meta">Tenant <b>{{.Tenant}}</b> · read {{.Generated}} · audits {{.Jobs}}</p>

<div class="cards" id="summary">
<div class="card">Findings<b id="total-count" data-count="{{.Total}}">{{.Total}}</b></div>
{{range .Severities}}<div class="card"><span class="sev {{.Name}}">{{.Name}}</span><b data-severity-count="{{.Name}}">{{.Count}}</b></div>
{{end}}</div>

{{if .Rules}}
<h2>By rule</h2>
<svg id="chart" role="img" aria-label="Findings per rule" width="100%" height="{{.ChartHeight}}" viewBox="0 0 1000 {{.ChartHeight}}" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">
{{range .Rules}}<g data-rule="{{.ID}}"><title>{{.ID}}: {{.Count}} finding(s) — {{.Title}}</title>
<text x="0" y="{{.TextY}}">{{.ID}}</text>
<rect class="bar {{.Severity}}" x="300" y="{{.Y}}" width="{{.Width}}" height="20"></rect>
<text x="{{.CountX}}" y="{{.TextY}}" data-rule-bar-count="{{.ID}}">{{.Count}}</text></g>
{{end}}</svg>
<table id="rules">
<thead><tr><th>Rule</th><th>Severity</th><th>Findings</th><th>What it means and how to fix it</th></tr></thead>
<tbody>
{{range .Rules}}<tr data-rule="{{.ID}}"><td><code>{{.ID}}</code><br>{{.Title}}</td><td><span class="sev {{.Severity}}">{{.Severity}}</span></td><td data-rule-count="{{.ID}}">{{.Count}}</td>
<td><details><summary>{{.Fix}}</summary>{{.Explanation}}</details></td></tr>
{{end}}</tbody></table>
{{end}}

<h2>Findings</h2>
{{if .Findings}}
<div class="filters">
<input id="q" type="search" placeholder="Filter: name, address, id, text…" aria-label="Filter findings">
<select id="sev" aria-label="Severity"><option value="">All severities</option>{{range .Severities}}{{if .Count}}<option value="{{.Name}}">{{.Name}}</option>{{end}}{{end}}</select>
<select id="rule" aria-label="Rule"><option value="">All rules</option>{{range .Rules}}<option value="{{.ID}}">{{.ID}}</option>{{end}}</select>
<button id="clear" type="button">Clear</button>
<span><b id="shown-count">{{.Total}}</b> of {{.Total}} shown</span>
</div>
<table id="findings">
<thead><tr><th data-key="sev" aria-sort="ascending">Severity</th><th data-key="rule">Rule</th><th data-key="object">Object</th><th data-key="detail">Detail</th><th data-key="fix">On-premises fix</th></tr></thead>
<tbody>
{{range .Findings}}<tr data-severity="{{.Severity}}" data-rule="{{.Rule}}" data-object-id="{{.ObjectID}}">
<td data-v="{{.SevRank}}"><span class="sev {{.Severity}}">{{.Severity}}</span></td>
<td data-v="{{.Rule}}"><code>{{.Rule}}</code></td>
<td data-v="{{.Object}}">{{.Object}}<br><span class="id">{{.Kind}} {{.ObjectID}}</span></td>
<td data-v="{{.Detail}}">{{.Detail}}</td>
<td data-v="{{.Fix}}">{{if .Fix}}{{.Fix}}{{if .Command}}<br><code class="ps">{{.Command}}</code>{{end}}{{else}}<i>no AD attribute</i>{{end}}
<details><summary>How to fix</summary>{{.RuleFix}}<br>{{.RuleExplanation}}</details></td></tr>
{{end}}</tbody></table>
{{else}}
<p id="no-findings">No findings: nothing to fix.</p>
{{end}}

<script>
(function () {
  "use strict";
  var table = document.getElementById("findings");
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var rows = Array.prototype.slice.call(tbody.rows);
  var q = document.getElementById("q"), sev = document.getElementById("sev"), rule = document.getElementById("rule");
  var shown = document.getElementById("shown-count");
  function apply() {
    var text = q.value.trim().toLowerCase(), n = 0;
    rows.forEach(function (r) {
      var ok = (!sev.value || r.dataset.severity === sev.value) &&
               (!rule.value || r.dataset.rule === rule.value) &&
               (!text || r.textContent.toLowerCase().indexOf(text) >= 0);
      r.hidden = !ok;
      if (ok) { n++; }
    });
    shown.textContent = String(n);
  }
  [q, sev, rule].forEach(function (el) { el.addEventListener("input", apply); el.addEventListener("change", apply); });
  document.getElementById("clear").addEventListener("click", function () { q.value = ""; sev.value = ""; rule.value = ""; apply(); });
  // Clicking a rule in the chart or the rule table shows only its findings.
  Array.prototype.forEach.call(document.querySelectorAll("#chart g[data-rule], #rules tr[data-rule]"), function (el) {
    el.addEventListener("click", function () { rule.value = el.getAttribute("data-rule"); apply(); table.scrollIntoView(); });
  });
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  heads.forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var numeric = th.dataset.key === "sev";
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v, c;
        c = numeric ? Number(x) - Number(y) : x.localeCompare(y, undefined, { sensitivity: "base", numeric: true });
        return asc ? c : -c;
      });
      rows.forEach(function (r) { tbody.appendChild(r); });
    });
  });
  apply();
})();
</script>
</body>
</html>
`))
