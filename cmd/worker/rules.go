package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/exo-worker/worker/jobs/audit"
	"github.com/exo-worker/worker/jobs/executor"
	"github.com/spf13/cobra"
)

// RulesSchema names the JSON document `worker rules --output json` prints.
const RulesSchema = "exo-worker/rules/v1"

func newRulesCmd(_ *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Print the audit rule catalogue: what each rule checks, why it matters, and the on-premises fix",
		Long: `Print every audit rule: its id (as findings carry it), severity, the audit that reports it, what it means
in plain words, and how to fix it in Active Directory.

Rules marked "on-prem only" describe mistakes the cloud never shows (sync skips or rejects the object), so a
cloud audit cannot find them; they are listed so you know to look for them in AD (for example with IdFix).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "text":
				writeRulesText(cmd.OutOrStdout(), audit.Rules())
				return nil
			case "json":
				return writeRulesJSON(cmd.OutOrStdout(), audit.Rules())
			}
			return withCode(executor.ExitUsage, fmt.Errorf("--output %q: use text or json", output))
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func writeRulesText(w io.Writer, rules []audit.Rule) {
	area := ""
	for _, r := range rules {
		if r.Area != area {
			area = r.Area
			fmt.Fprintf(w, "== %s ==\n\n", strings.ToUpper(area))
		}
		where := "audit " + r.Job
		if r.OnPremOnly {
			where = "on-prem only: needs an AD source, the cloud cannot show it"
		}
		fmt.Fprintf(w, "%s  [%s]  %s\n", r.ID, r.Severity, r.Title)
		fmt.Fprintf(w, "  %s\n", where)
		wrap(w, "  ", r.Explanation, 100)
		fix := "Fix: " + r.Fix
		if r.OnPremAttribute != "" {
			fix += fmt.Sprintf(" (AD attribute %s, %s)", r.OnPremAttribute, r.OnPremAction)
		}
		wrap(w, "  ", fix, 100)
		wrap(w, "  ", "Source: "+r.Source, 100)
		fmt.Fprintln(w)
	}
}

// wrap prints text in lines of at most width characters, each starting with indent.
func wrap(w io.Writer, indent, text string, width int) {
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			fmt.Fprintln(w, line)
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	if len(line) > len(indent) {
		fmt.Fprintln(w, line)
	}
}

type rulesDoc struct {
	Schema string    `json:"schema"`
	Rules  []ruleDoc `json:"rules"`
}

type ruleDoc struct {
	ID              string `json:"id"`
	Title           string `json:"title"`
	Severity        string `json:"severity"`
	Area            string `json:"area"`
	Job             string `json:"job,omitempty"`
	OnPremOnly      bool   `json:"on_prem_only"`
	Explanation     string `json:"explanation"`
	Fix             string `json:"fix"`
	OnPremAttribute string `json:"on_prem_attribute,omitempty"`
	OnPremAction    string `json:"on_prem_action,omitempty"`
	Source          string `json:"source"`
}

func writeRulesJSON(w io.Writer, rules []audit.Rule) error {
	d := rulesDoc{Schema: RulesSchema, Rules: []ruleDoc{}}
	for _, r := range rules {
		d.Rules = append(d.Rules, ruleDoc{ID: r.ID, Title: r.Title, Severity: string(r.Severity), Area: r.Area, Job: r.Job,
			OnPremOnly: r.OnPremOnly, Explanation: r.Explanation, Fix: r.Fix, OnPremAttribute: r.OnPremAttribute,
			OnPremAction: r.OnPremAction, Source: r.Source})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}
