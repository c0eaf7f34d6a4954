package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// writeTable prints the findings for a person at a terminal, then the counts.
func writeTable(w io.Writer, r *Report) error {
	c := summarize(r.Findings)
	if c.Total == 0 {
		_, err := fmt.Fprintf(w, "No findings: %s found nothing to fix.\n", strings.Join(r.Jobs, ", "))
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEVERITY\tRULE\tOBJECT\tDETAIL\tON-PREM FIX")
	for _, f := range r.Findings {
		fix := fixText(f.OnPrem)
		if fix == "" {
			fix = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Severity, f.Rule, oneLine(f.Object.String()), oneLine(f.Detail), oneLine(fix))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d finding(s):", c.Total)
	for _, s := range severities {
		if n := c.BySeverity[s]; n > 0 {
			fmt.Fprintf(w, " %d %s", n, s)
		}
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, id := range c.Rules {
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", id, c.ByRule[id], rule(id).Title)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "Explanations: `worker rules`. Fixes as scripts: --format ps1 or --format ldif.")
	return err
}

type jsonDoc struct {
	Schema    string        `json:"schema"`
	Tenant    string        `json:"tenant"`
	Generated time.Time     `json:"generated"`
	Jobs      []string      `json:"jobs"`
	Summary   jsonSummary   `json:"summary"`
	Rules     []jsonRule    `json:"rules"`
	Findings  []jsonFinding `json:"findings"`
}

type jsonSummary struct {
	Total      int            `json:"total"`
	BySeverity map[string]int `json:"by_severity"`
	ByRule     map[string]int `json:"by_rule"`
}

type jsonRule struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Severity    string `json:"severity"`
	Area        string `json:"area"`
	Explanation string `json:"explanation"`
	Fix         string `json:"fix"`
}

type jsonFinding struct {
	Rule     string      `json:"rule"`
	Severity string      `json:"severity"`
	Object   jsonObject  `json:"object"`
	Detail   string      `json:"detail"`
	Fix      *jsonOnPrem `json:"on_prem_fix"`
}

type jsonObject struct {
	ID                          string `json:"id"`
	Kind                        string `json:"kind,omitempty"`
	DisplayName                 string `json:"display_name,omitempty"`
	Address                     string `json:"address,omitempty"`
	Mail                        string `json:"mail,omitempty"`
	OnPremisesImmutableID       string `json:"on_premises_immutable_id,omitempty"`
	ObjectGUID                  string `json:"object_guid,omitempty"`
	OnPremisesSamAccountName    string `json:"on_premises_sam_account_name,omitempty"`
	OnPremisesUserPrincipalName string `json:"on_premises_user_principal_name,omitempty"`
	OnPremisesDistinguishedName string `json:"on_premises_distinguished_name,omitempty"`
	OnPremisesSecurityID        string `json:"on_premises_security_identifier,omitempty"`
}

type jsonOnPrem struct {
	Attribute string `json:"attribute"`
	Action    string `json:"action"`
	Value     string `json:"value"`
}

func writeJSON(w io.Writer, r *Report) error {
	c := summarize(r.Findings)
	d := jsonDoc{Schema: Schema, Tenant: r.Tenant, Generated: r.Generated.UTC(), Jobs: r.Jobs,
		Summary:  jsonSummary{Total: c.Total, BySeverity: map[string]int{}, ByRule: c.ByRule},
		Rules:    []jsonRule{},
		Findings: make([]jsonFinding, 0, len(r.Findings))}
	if d.Jobs == nil {
		d.Jobs = []string{}
	}
	for s, n := range c.BySeverity {
		d.Summary.BySeverity[string(s)] = n
	}
	for _, id := range c.Rules {
		ru := rule(id)
		d.Rules = append(d.Rules, jsonRule{ID: ru.ID, Title: ru.Title, Severity: string(ru.Severity), Area: ru.Area,
			Explanation: ru.Explanation, Fix: ru.Fix})
	}
	for _, f := range r.Findings {
		o := f.Object
		guid, _ := objectGUID(o.OnPremisesImmutableID)
		jf := jsonFinding{Rule: f.Rule, Severity: string(f.Severity), Detail: f.Detail, Object: jsonObject{
			ID: o.ID, Kind: o.Kind, DisplayName: o.DisplayName, Address: o.Address, Mail: o.Mail,
			OnPremisesImmutableID: o.OnPremisesImmutableID, ObjectGUID: guid, OnPremisesSamAccountName: o.OnPremisesSamAccountName,
			OnPremisesUserPrincipalName: o.OnPremisesUserPrincipalName, OnPremisesDistinguishedName: o.OnPremisesDistinguishedName,
			OnPremisesSecurityID: o.OnPremisesSecurityIdentifier,
		}}
		if f.OnPrem != nil {
			jf.Fix = &jsonOnPrem{Attribute: f.OnPrem.Attribute, Action: f.OnPrem.Action, Value: f.OnPrem.Value}
		}
		d.Findings = append(d.Findings, jf)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}

// csvHeader is the first row of the CSV output.
var csvHeader = []string{"severity", "rule", "title", "object_id", "kind", "display_name", "address",
	"on_premises_sam_account_name", "detail", "fix_attribute", "fix_action", "fix_value"}

func writeCSV(w io.Writer, r *Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, f := range r.Findings {
		var attr, action, value string
		if f.OnPrem != nil {
			attr, action, value = f.OnPrem.Attribute, f.OnPrem.Action, f.OnPrem.Value
		}
		row := []string{string(f.Severity), f.Rule, rule(f.Rule).Title, f.Object.ID, f.Object.Kind, f.Object.DisplayName,
			f.Object.Address, f.Object.OnPremisesSamAccountName, oneLine(f.Detail), attr, action, value}
		for i := range row {
			row[i] = csvCell(row[i])
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvCell defuses spreadsheet formula injection: a cell a spreadsheet would evaluate (starting with = + - @,
// tab or carriage return) gets a leading apostrophe, which spreadsheets show as text and do not evaluate.
// Directory values are written by many people; a display name like "=HYPERLINK(...)" must stay text.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
