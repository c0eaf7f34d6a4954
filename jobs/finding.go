package jobs

import "sort"

// RuleOverridden is the rule of a remediation job's finding about an object whose written value another
// setting overrides (meu-richtext: a remote domain's TNEFEnabled when the mail user's UsePreferMessageFormat
// is not $true). The write is verified but not effective; run summaries count effective changes as the
// verified ones without such a finding.
const RuleOverridden = "overridden"

// SeverityRank orders severities for sorting: high first.
func SeverityRank(s Severity) int {
	switch s {
	case SeverityHigh:
		return 0
	case SeverityMedium:
		return 1
	case SeverityLow:
		return 2
	case SeverityInfo:
		return 3
	}
	return 4
}

// SortFindings orders findings by severity, rule and object id, so reports and tests are deterministic.
func SortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if ra, rb := SeverityRank(a.Severity), SeverityRank(b.Severity); ra != rb {
			return ra < rb
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		if a.Object.ID != b.Object.ID {
			return a.Object.ID < b.Object.ID
		}
		return a.Detail < b.Detail
	})
}
