package server

import (
	"sort"
	"time"

	"github.com/exo-worker/worker/internal/metrics"
	"github.com/exo-worker/worker/internal/store"
)

// ruleSummary is the open findings of one (job, rule, severity).
type ruleSummary struct {
	Job       string
	Rule      string
	Severity  string
	Open      int
	FirstSeen time.Time // the oldest open episode's start
}

// severityRank orders severities most severe first; unknown ones last.
func severityRank(s string) int {
	switch s {
	case "high":
		return 0
	case "medium":
		return 1
	case "low":
		return 2
	case "info":
		return 3
	}
	return 4
}

// summarizeGroups orders the store's open-finding counts most severe first,
// then most numerous, and totals them.
func summarizeGroups(groups []store.FindingGroup) ([]ruleSummary, int) {
	out := make([]ruleSummary, 0, len(groups))
	total := 0
	for _, g := range groups {
		out = append(out, ruleSummary{Job: g.Job, Rule: g.Rule, Severity: g.Severity, Open: g.Open, FirstSeen: g.FirstSeen})
		total += g.Open
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ra, rb := severityRank(a.Severity), severityRank(b.Severity); ra != rb {
			return ra < rb
		}
		if a.Open != b.Open {
			return a.Open > b.Open
		}
		if a.Job != b.Job {
			return a.Job < b.Job
		}
		return a.Rule < b.Rule
	})
	return out, total
}

// FindingCounts turns open findings (store.OpenFindings with an empty
// filter) into the counts metrics.SetOpenFindings takes. The daemon calls
// both after each run that records findings, and once at start:
//
//	recs, err := st.OpenFindings(ctx, store.FindingFilter{})
//	if err == nil { m.SetOpenFindings(server.FindingCounts(recs)) }
func FindingCounts(recs []store.FindingRecord) []metrics.FindingCount {
	type key struct{ rule, sev string }
	counts := map[key]int{}
	for _, r := range recs {
		counts[key{r.Rule, r.Severity}]++
	}
	out := make([]metrics.FindingCount, 0, len(counts))
	for k, n := range counts {
		out = append(out, metrics.FindingCount{Rule: k.rule, Severity: k.sev, Open: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Rule != out[j].Rule {
			return out[i].Rule < out[j].Rule
		}
		return out[i].Severity < out[j].Severity
	})
	return out
}
