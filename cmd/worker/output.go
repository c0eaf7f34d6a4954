package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/executor"
)

// RunSchema names the JSON document `worker run --output json` prints. Bump it on a breaking change.
const RunSchema = "exo-worker/run/v1"

type runDoc struct {
	Schema   string `json:"schema"`
	RunID    string `json:"run_id"`
	Job      string `json:"job"`
	Mode     string `json:"mode"`
	InScope  int    `json:"in_scope"`
	Planned  int    `json:"planned"`
	Applied  int    `json:"applied"`
	Failed   int    `json:"failed"`
	Verified int    `json:"verified"`
	// Effective counts verified changes that nothing overrides (no finding of rule jobs.RuleOverridden
	// about their object): written ≥ verified ≥ effective.
	Effective int `json:"effective"`
	Skipped   int `json:"skipped"`
	// Unknown: writes whose answer was lost (read back before deciding): landed, not applied, unresolved.
	Unknown           int         `json:"unknown_outcome"`
	UnknownLanded     int         `json:"unknown_landed"`
	UnknownNotApplied int         `json:"unknown_not_applied"`
	Unresolved        int         `json:"unknown_unresolved"`
	Aborted           bool        `json:"aborted,omitempty"`
	AbortReason       string      `json:"abort_reason,omitempty"`
	Changes           []changeDoc `json:"changes"`
	// Findings is set for audit jobs; `worker report` writes them with their on-premises fixes.
	Findings []findingDoc `json:"findings,omitempty"`
	Warnings []string     `json:"warnings,omitempty"`
}

type findingDoc struct {
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	Object   string `json:"object"`
	Identity string `json:"identity"`
	Detail   string `json:"detail"`
}

type changeDoc struct {
	Object      string `json:"object"`
	Identity    string `json:"identity"`
	DisplayName string `json:"display_name"`
	Param       string `json:"param"`
	From        string `json:"from"`
	To          string `json:"to"`
	// Params are the parameters with their typed values (param/from/to above join them for reading).
	Params    []paramDoc `json:"params"`
	Status    string     `json:"status"`
	Error     string     `json:"error,omitempty"`
	RequestID string     `json:"request_id,omitempty"`
	// Note is what the read-back learned beyond the change itself (the licence a membership brings).
	Note string `json:"note,omitempty"`
}

type paramDoc struct {
	Name string     `json:"name"`
	From jobs.Value `json:"from"`
	To   jobs.Value `json:"to"`
}

// changeColumns are a change's parameters, old and new values as text, several joined with ", ".
func changeColumns(c jobs.Change) (param, from, to string, params []paramDoc) {
	var names, froms, tos []string
	for _, p := range c.Params {
		names = append(names, p.Name)
		froms = append(froms, p.From.String())
		tos = append(tos, p.To.String())
		params = append(params, paramDoc{Name: p.Name, From: p.From, To: p.To})
	}
	if c.IsGraph() {
		names = []string{fmt.Sprintf("%s %s", c.Graph, c.Group.ID)}
	}
	return strings.Join(names, ", "), strings.Join(froms, ", "), strings.Join(tos, ", "), params
}

// changeText is a change for a person: "UseMapiRichTextFormat: (none) → Never", parameters joined by "; ".
func changeText(c jobs.Change) string {
	parts := make([]string, len(c.Params))
	for i, p := range c.Params {
		name := p.Name
		if c.IsGraph() {
			name = fmt.Sprintf("%s %s", c.Graph, c.Group)
		}
		parts[i] = fmt.Sprintf("%s: %s → %s", name, orNone(p.From.String()), p.To)
	}
	return strings.Join(parts, "; ")
}

func writeJSON(w io.Writer, s *executor.Summary) error {
	d := runDoc{Schema: RunSchema, RunID: s.RunID, Job: s.Job, Mode: string(s.Mode), InScope: s.InScope,
		Planned: s.Planned, Applied: s.Applied, Failed: s.Failed, Verified: s.Verified, Effective: effective(s), Skipped: s.Skipped,
		Unknown: s.Unknown, UnknownLanded: s.UnknownLanded, UnknownNotApplied: s.UnknownNotApplied, Unresolved: s.Unresolved,
		Aborted: s.Aborted, AbortReason: s.AbortReason, Changes: []changeDoc{}}
	for _, c := range s.Changes {
		param, from, to, params := changeColumns(c.Change)
		d.Changes = append(d.Changes, changeDoc{Object: c.Object.Address, Identity: c.Object.ID,
			DisplayName: c.Object.DisplayName, Param: param, From: from, To: to, Params: params,
			Status: string(c.Status), Error: c.Error, RequestID: c.RequestID, Note: c.Note})
	}
	for _, f := range s.Findings {
		d.Findings = append(d.Findings, findingDoc{Rule: f.Rule, Severity: string(f.Severity), Object: f.Object.String(),
			Identity: f.Object.ID, Detail: f.Detail})
	}
	d.Warnings = s.Warnings
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}

// writeText prints a run for a person: every change in a dry-run (old → new), only the problems after a
// remediation (a successful change needs no line of its own), then the counts.
func writeText(w io.Writer, s *executor.Summary) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	listed := 0
	for _, c := range s.Changes {
		show := s.Mode != jobs.ModeRemediate || (c.Status != executor.StatusVerified && c.Status != executor.StatusApplied)
		if !show {
			continue
		}
		if listed == 0 {
			fmt.Fprintln(tw, "OBJECT\tIDENTITY\tCHANGE\tSTATUS")
		}
		listed++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Object, c.Object.ID, changeText(c.Change), c.Status)
		if c.Error != "" {
			fmt.Fprintf(tw, "\t\t  %s\t\n", c.Error)
		}
	}
	_ = tw.Flush()
	if listed > 0 {
		fmt.Fprintln(w)
	}
	if len(s.Findings) > 0 {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RULE\tSEVERITY\tOBJECT\tDETAIL")
		for _, f := range s.Findings {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Rule, f.Severity, f.Object, f.Detail)
		}
		_ = tw.Flush()
		fmt.Fprintf(w, "\n%d finding(s). `worker report --job %s --format html|ps1|ldif` writes them with the on-premises fix for each.\n", len(s.Findings), s.Job)
	}
	for _, warn := range s.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	fmt.Fprintf(w, "%s run %s (%s): in scope %d, planned %d, applied %d, failed %d, verified %d, effective %d",
		s.Job, s.RunID, s.Mode, s.InScope, s.Planned, s.Applied, s.Failed, s.Verified, effective(s))
	if s.Skipped > 0 {
		fmt.Fprintf(w, ", skipped %d", s.Skipped)
	}
	if s.Unknown > 0 {
		fmt.Fprintf(w, ", unknown then resolved %d of %d (%d landed, %d not applied)", s.UnknownLanded+s.UnknownNotApplied, s.Unknown, s.UnknownLanded, s.UnknownNotApplied)
	}
	fmt.Fprintf(w, " in %s\n", s.Finished.Sub(s.Started).Round(10_000_000))
	switch {
	case s.Aborted:
		fmt.Fprintf(w, "ABORTED: %s\n", s.AbortReason)
	case s.Mode == jobs.ModeDryRun && s.Planned > 0:
		fmt.Fprintln(w, "Dry run: nothing was written. Run again without --dry-run to apply these changes.")
	case s.Mode == jobs.ModeReport && s.Planned > 0:
		fmt.Fprintln(w, "Report mode: nothing was written (the job's mode is report in the configuration).")
	case s.Planned == 0 && len(s.Findings) == 0:
		fmt.Fprintln(w, "Nothing to do: no object in scope needs a change.")
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// effective counts the verified changes whose object has no finding saying another setting overrides the
// value written (jobs.RuleOverridden): written, verified by read-back, and taking effect.
func effective(s *executor.Summary) int {
	overridden := map[string]bool{}
	for _, f := range s.Findings {
		if f.Rule == jobs.RuleOverridden {
			overridden[strings.ToLower(f.Object.ID)] = true
		}
	}
	n := 0
	for _, c := range s.Changes {
		if c.Status == executor.StatusVerified && !overridden[strings.ToLower(c.Object.ID)] {
			n++
		}
	}
	return n
}
