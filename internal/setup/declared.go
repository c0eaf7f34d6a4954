package setup

import (
	"strings"

	"github.com/exo-worker/worker/jobs"
)

// This file reads what a job declares from its jobs.Description: the one place that knows the shape of
// the declarations.

// write is one cmdlet a job writes with and the parameters it sets.
type write struct {
	Cmdlet string
	Params []string
}

// declaredWrites returns the job's Exchange writes (Description.Writes), merged per cmdlet. Identity is
// always kept: without it no object can be addressed.
func declaredWrites(d jobs.Description) []write {
	var out []write
	for _, w := range d.Writes {
		if w.Cmdlet == "" {
			continue // a Graph write: its permission is in d.Permissions
		}
		i := -1
		for k := range out {
			if strings.EqualFold(out[k].Cmdlet, w.Cmdlet) {
				i = k
			}
		}
		if i < 0 {
			out = append(out, write{Cmdlet: w.Cmdlet, Params: []string{"Identity"}})
			i = len(out) - 1
		}
		for _, p := range w.Params {
			out[i].Params = appendUnique(out[i].Params, p)
		}
	}
	return out
}

// writeScope is the recipient filter of the job's read of the objects it writes with cmdlet: Set-MailUser
// writes what Get-MailUser read (the library's read-back table pairs them), so the job's Get-MailUser filter
// is the scope its writes must stay in.
func writeScope(d jobs.Description, cmdlet string) string {
	read, ok := jobs.ReadCmdlet(cmdlet)
	if !ok {
		return ""
	}
	for _, q := range d.Reads {
		if strings.EqualFold(q.Cmdlet, read) {
			return q.Filter
		}
	}
	return ""
}

// graphPermissions returns the Graph application permissions the job declares.
func graphPermissions(d jobs.Description) []string {
	var out []string
	for _, p := range d.Permissions {
		if p.API == jobs.APIGraph {
			out = appendUnique(out, p.Role)
		}
	}
	return out
}
