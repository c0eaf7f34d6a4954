// Package report renders audit findings for people and for the tools that apply their fixes: a table for the
// terminal, JSON (schema exo-worker/findings/v1) and CSV for other programs, one self-contained HTML page, a
// reviewable PowerShell script of Set-AD* commands and an LDIF file for ldifde. Every format lists the same
// findings in the same order (severity, rule, object), so they can be compared line by line.
package report

import (
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/audit"
)

// Schema names the JSON document. Bump it on a breaking change.
const Schema = "exo-worker/findings/v1"

// Format is an output format.
type Format string

// The formats Write knows.
const (
	FormatTable Format = "table"
	FormatJSON  Format = "json"
	FormatCSV   Format = "csv"
	FormatHTML  Format = "html"
	FormatPS1   Format = "ps1"
	FormatLDIF  Format = "ldif"
)

// Formats lists every format, in the order help texts show them.
var Formats = []Format{FormatTable, FormatJSON, FormatCSV, FormatHTML, FormatPS1, FormatLDIF}

// ParseFormat accepts a format name (case-insensitive).
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if strings.EqualFold(s, string(f)) {
			return f, nil
		}
	}
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return "", fmt.Errorf("format %q is not one of %s", s, strings.Join(names, ", "))
}

// Report is what every format renders: the findings of one or more audits of one tenant.
type Report struct {
	// Tenant names the tenant (its id or initial domain).
	Tenant string
	// Generated is when the audit read the tenant.
	Generated time.Time
	// Jobs are the audits that ran.
	Jobs     []string
	Findings []jobs.Finding
}

// Write renders r in format f.
func Write(w io.Writer, f Format, r *Report) error {
	rr := r.sorted()
	switch f {
	case FormatTable:
		return writeTable(w, rr)
	case FormatJSON:
		return writeJSON(w, rr)
	case FormatCSV:
		return writeCSV(w, rr)
	case FormatHTML:
		return writeHTML(w, rr)
	case FormatPS1:
		return writePS1(w, rr)
	case FormatLDIF:
		return writeLDIF(w, rr)
	}
	return fmt.Errorf("report: unknown format %q", f)
}

// sorted returns a copy whose findings are in report order.
func (r *Report) sorted() *Report {
	c := *r
	c.Findings = slices.Clone(r.Findings)
	jobs.SortFindings(c.Findings)
	c.Jobs = slices.Clone(r.Jobs)
	sort.Strings(c.Jobs)
	return &c
}

// rule returns the catalogue entry of a finding's rule, or a stand-in for a rule this build does not know
// (findings read back from an older store).
func rule(id string) audit.Rule {
	if r, ok := audit.LookupRule(id); ok {
		return r
	}
	return audit.Rule{ID: id, Title: id}
}

// counts are the summary figures every format shows.
type counts struct {
	Total      int
	BySeverity map[jobs.Severity]int
	ByRule     map[string]int
	Rules      []string // rule ids present, in report order (severity, id)
}

func summarize(fs []jobs.Finding) counts {
	c := counts{BySeverity: map[jobs.Severity]int{}, ByRule: map[string]int{}}
	for _, f := range fs {
		c.Total++
		c.BySeverity[f.Severity]++
		if c.ByRule[f.Rule] == 0 {
			c.Rules = append(c.Rules, f.Rule)
		}
		c.ByRule[f.Rule]++
	}
	return c
}

// severities in report order.
var severities = []jobs.Severity{jobs.SeverityHigh, jobs.SeverityMedium, jobs.SeverityLow, jobs.SeverityInfo}

// objectGUID turns onPremisesImmutableId into the AD objectGUID it encodes, in the string form AD cmdlets
// and <GUID=...> DNs accept. Entra Connect's default sourceAnchor is the objectGUID (or ms-DS-ConsistencyGuid,
// which it fills from the objectGUID), base64-encoded in .NET byte order: the first three fields are
// little-endian. ok is false when the value is not the base64 of 16 bytes (another anchor was chosen).
func objectGUID(immutableID string) (string, bool) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(immutableID))
	if err != nil || len(b) != 16 {
		return "", false
	}
	return fmt.Sprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]), true
}

// fixText renders a fix in words for the table, CSV and HTML.
func fixText(f *jobs.OnPremFix) string {
	if f == nil {
		return ""
	}
	switch f.Action {
	case "add":
		return fmt.Sprintf("add %s: %s", f.Attribute, f.Value)
	case "remove":
		return fmt.Sprintf("remove %s: %s", f.Attribute, f.Value)
	case "replace":
		return fmt.Sprintf("set %s = %s", f.Attribute, f.Value)
	}
	return fmt.Sprintf("%s %s %s", f.Action, f.Attribute, f.Value)
}

// oneLine folds a text onto one line (details are written into comments and table cells).
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
