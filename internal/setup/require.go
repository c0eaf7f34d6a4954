package setup

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/exo-worker/worker/jobs"
)

// Requirements are the permissions the enabled jobs declare, merged: what setup requests and doctor checks.
// They are read from each job's Description, never written here per job, so a new job that declares a new
// cmdlet or Graph permission gets it from the next `worker setup` without a change to this package.
type Requirements struct {
	// GraphRoles are Microsoft Graph application permissions by value (User.Read.All), sorted.
	GraphRoles []string
	// ExchangeRoles are Office 365 Exchange Online application permissions (Exchange.ManageAsApp), sorted.
	ExchangeRoles []string
	// Cmdlets maps each Exchange cmdlet the jobs call to the parameters they write with it; a read cmdlet
	// maps to nil (its role entry keeps every parameter: reads are not narrowed).
	Cmdlets map[string][]string
	// WriteFilter is the recipient filter every write must fall inside (the remediation jobs' scope); empty
	// when no job writes.
	WriteFilter string
	// Jobs names the jobs the requirements come from, for messages.
	Jobs []string
}

// exchangeManageAsApp is the Exchange application permission every app-only caller of the admin API needs.
const exchangeManageAsApp = "Exchange.ManageAsApp"

// FromJobs merges the declared permissions of js. Two remediation jobs with different write scopes are
// refused: one management scope serves the identity, and the union of two filters is not a filter setup
// should invent.
func FromJobs(js []jobs.Job) (Requirements, error) {
	r := Requirements{Cmdlets: map[string][]string{}}
	for _, j := range js {
		d := j.Describe()
		r.Jobs = append(r.Jobs, j.Name())
		for _, q := range d.Reads {
			r.addCmdlet(q.Cmdlet, nil)
		}
		for _, p := range graphPermissions(d) {
			r.GraphRoles = appendUnique(r.GraphRoles, p)
		}
		for _, w := range declaredWrites(d) {
			r.addCmdlet(w.Cmdlet, w.Params)
			f := writeScope(d, w.Cmdlet)
			switch {
			case f == "":
				return Requirements{}, fmt.Errorf("setup: job %s writes with %s but declares no scope for it; a write scope keeps the identity away from every other object", j.Name(), w.Cmdlet)
			case r.WriteFilter == "":
				r.WriteFilter = f
			case r.WriteFilter != f:
				return Requirements{}, fmt.Errorf("setup: job %s writes inside %q, another job inside %q; run setup for one of them (--jobs) or make their scopes equal", j.Name(), f, r.WriteFilter)
			}
		}
	}
	if len(r.Cmdlets) > 0 {
		r.ExchangeRoles = appendUnique(r.ExchangeRoles, exchangeManageAsApp)
	}
	sort.Strings(r.GraphRoles)
	sort.Strings(r.ExchangeRoles)
	return r, nil
}

func (r *Requirements) addCmdlet(cmdlet string, params []string) {
	cur, seen := r.Cmdlets[cmdlet]
	if params == nil {
		if !seen {
			r.Cmdlets[cmdlet] = nil
		}
		return
	}
	for _, p := range params {
		cur = appendUnique(cur, p)
	}
	sort.Strings(cur)
	r.Cmdlets[cmdlet] = cur
}

// CmdletNames returns the cmdlets in sorted order.
func (r Requirements) CmdletNames() []string {
	out := make([]string, 0, len(r.Cmdlets))
	for c := range r.Cmdlets {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Writes reports whether any cmdlet writes.
func (r Requirements) Writes() bool {
	for _, ps := range r.Cmdlets {
		if ps != nil {
			return true
		}
	}
	return false
}

func appendUnique(list []string, v string) []string {
	if slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, v) }) {
		return list
	}
	return append(list, v)
}
