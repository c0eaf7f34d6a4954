package server

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/exo-worker/worker/internal/store"
)

// Webhook sources a TriggerRule can name.
const (
	SourceAlertmanager = "alertmanager"
	SourceAzureMonitor = "azure-monitor"
)

// MaxObjects caps the objects of one trigger. A targeted rerun is for a
// handful of objects an alert named; thousands are a whole-scope run in
// disguise, or a broken alert, and are refused.
const MaxObjects = 1000

// maxReasonLen caps the reason kept in the run history.
const maxReasonLen = 500

// TriggerRule maps alerts of one source to a job. The daemon builds these
// from the config's triggers: section.
//
// An alert matches when every Match entry equals the alert's value for that
// key (exact, case-sensitive). Keys are:
//   - alertmanager: alert label names (alertname, severity, ...).
//   - azure-monitor: essentials field names as Azure spells them (alertRule,
//     severity, signalType, monitoringService, ...), "customProperties.<key>"
//     for the action's custom properties, and "dimensions.<name>" for the
//     dimensions of metric and log search alerts (alertContext.condition.allOf).
//
// ObjectLabel (same key space) names where the object ids are: its value, or
// each of its values, holds ExternalDirectoryObjectIds, several allowed
// separated by commas. A matching alert without that key triggers a run over
// the job's whole scope, as does a rule without ObjectLabel.
type TriggerRule struct {
	Source      string
	Match       map[string]string
	Job         string
	ObjectLabel string
}

// azureKeys are the essentials fields of the common alert schema; a match on
// anything else is almost certainly a typo (alertname is Alertmanager's).
var azureKeys = []string{
	"alertId", "alertRule", "severity", "signalType", "monitorCondition", "monitoringService",
	"alertTargetIDs", "configurationItems", "originAlertId", "firedDateTime", "resolvedDateTime",
	"description", "essentialsVersion", "alertContextVersion", "investigationLink",
	"targetResource", "targetResourceGroup", "targetResourceType", "intendedResource",
}

func validAzureKey(k string) bool {
	if rest, ok := strings.CutPrefix(k, "customProperties."); ok {
		return rest != ""
	}
	if rest, ok := strings.CutPrefix(k, "dimensions."); ok {
		return rest != ""
	}
	return slices.Contains(azureKeys, k)
}

// validateRules checks rules against the jobs there are, reporting every
// problem with its index so a config error can be found.
func validateRules(rules []TriggerRule, jobs []string) error {
	var problems []string
	for i, r := range rules {
		at := fmt.Sprintf("triggers[%d]", i)
		switch r.Source {
		case SourceAlertmanager, SourceAzureMonitor:
		default:
			problems = append(problems, fmt.Sprintf("%s.source: %q is not a webhook source; use %s or %s", at, r.Source, SourceAlertmanager, SourceAzureMonitor))
		}
		if r.Job == "" {
			problems = append(problems, fmt.Sprintf("%s.job: missing; name the job the alert reruns", at))
		} else if jobs != nil && !slices.Contains(jobs, r.Job) {
			problems = append(problems, fmt.Sprintf("%s.job: no job %q; known jobs: %s", at, r.Job, strings.Join(jobs, ", ")))
		}
		if len(r.Match) == 0 {
			problems = append(problems, fmt.Sprintf("%s.match: empty; a rule must name at least one label (e.g. alertname) so that not every alert runs the job", at))
		}
		keys := make([]string, 0, len(r.Match)+1)
		for k := range r.Match {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if r.ObjectLabel != "" {
			keys = append(keys, r.ObjectLabel)
		}
		for _, k := range keys {
			if k == "" {
				problems = append(problems, fmt.Sprintf("%s.match: an empty key", at))
				continue
			}
			if r.Source == SourceAzureMonitor && !validAzureKey(k) {
				problems = append(problems, fmt.Sprintf("%s: %q is not an Azure Monitor essentials field; use one of %s, customProperties.<key> or dimensions.<name>", at, k, strings.Join(azureKeys, ", ")))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid trigger rules:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// alert is one parsed alert of either source, reduced to what matching needs.
type alert struct {
	firing bool
	// name is alertname / alertRule, for the run's reason and the logs.
	name string
	// values holds each key's values: one for labels and essentials, several
	// when Azure lists a dimension in more than one condition.
	values map[string][]string
}

func (a alert) matches(r TriggerRule) bool {
	for k, want := range r.Match {
		if !slices.Contains(a.values[k], want) {
			return false
		}
	}
	return true
}

// planned is what a webhook payload asks for: one trigger per job.
type planned struct {
	triggers []Trigger
	firing   int
	resolved int
}

// planTriggers maps a payload's alerts to at most one trigger per job. Only
// firing alerts count. Objects from several alerts are merged; one matching
// alert without objects widens its job's trigger to the whole scope, because
// a run over everything covers the named objects too.
func planTriggers(rules []TriggerRule, source string, alerts []alert) (planned, error) {
	type acc struct {
		objects map[string]bool
		whole   bool
		names   []string
	}
	var p planned
	byJob := map[string]*acc{}
	for i, a := range alerts {
		if !a.firing {
			p.resolved++
			continue
		}
		p.firing++
		for _, r := range rules {
			if r.Source != source || !a.matches(r) {
				continue
			}
			ac := byJob[r.Job]
			if ac == nil {
				ac = &acc{objects: map[string]bool{}}
				byJob[r.Job] = ac
			}
			if a.name != "" && !slices.Contains(ac.names, a.name) {
				ac.names = append(ac.names, a.name)
			}
			vals := a.values[r.ObjectLabel]
			if r.ObjectLabel == "" || len(vals) == 0 {
				ac.whole = true
				continue
			}
			ids, err := parseObjectIDs(vals)
			if err != nil {
				return planned{}, fmt.Errorf("alert %d (%s), %s: %w", i+1, printable(a.name), r.ObjectLabel, err)
			}
			for _, id := range ids {
				ac.objects[id] = true
			}
			if len(ac.objects) > MaxObjects {
				return planned{}, fmt.Errorf("job %s: the alerts name more than %d objects; a rerun of that size should be a whole-scope run (drop the object label from the rule)", r.Job, MaxObjects)
			}
		}
	}
	jobs := make([]string, 0, len(byJob))
	for j := range byJob {
		jobs = append(jobs, j)
	}
	sort.Strings(jobs)
	for _, j := range jobs {
		ac := byJob[j]
		t := Trigger{Job: j, Source: store.TriggerAlert, Reason: alertReason(source, ac.names)}
		if !ac.whole {
			for id := range ac.objects {
				t.Objects = append(t.Objects, id)
			}
			sort.Strings(t.Objects)
		}
		p.triggers = append(p.triggers, t)
	}
	return p, nil
}

func alertReason(source string, names []string) string {
	sort.Strings(names)
	key := "alertname"
	if source == SourceAzureMonitor {
		key = "alertRule"
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = key + "=" + printable(n)
	}
	return clipReason(source + ": " + strings.Join(parts, ", "))
}

// guidRE is the canonical form of an ExternalDirectoryObjectId.
var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// parseObjectIDs splits comma-separated values into object ids, lower-cased
// and deduplicated in first-seen order. Anything but a GUID is refused: the
// runner scopes a run by ExternalDirectoryObjectId, and a name or an address
// here would silently match nothing.
func parseObjectIDs(values []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			id := strings.TrimSpace(part)
			if id == "" {
				continue
			}
			if !guidRE.MatchString(id) {
				return nil, fmt.Errorf("%q is not an object id; give ExternalDirectoryObjectIds (GUIDs such as 2f0c6e5a-1b7d-4c1e-9a55-0d3c1f9e8b21), comma-separated", clip(id, 80))
			}
			id = strings.ToLower(id)
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	if len(out) > MaxObjects {
		return nil, fmt.Errorf("%d objects given, at most %d per run; run the whole job instead", len(out), MaxObjects)
	}
	return out, nil
}

// printable drops control characters so that text from a request cannot
// forge log lines or run-history entries.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

func clipReason(s string) string { return clip(printable(s), maxReasonLen) }
