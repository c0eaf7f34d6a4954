package setup

import (
	"regexp"
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

// declaredWrites returns the job's writes from Owns ("Set-MailUser.UseMapiRichTextFormat"), merged per
// cmdlet. Identity is always kept: without it no object can be addressed.
func declaredWrites(d jobs.Description) []write {
	var out []write
	for _, o := range d.Owns {
		cmdlet, param, ok := strings.Cut(o, ".")
		if !ok {
			continue
		}
		i := -1
		for k := range out {
			if strings.EqualFold(out[k].Cmdlet, cmdlet) {
				i = k
			}
		}
		if i < 0 {
			out = append(out, write{Cmdlet: cmdlet, Params: []string{"Identity"}})
			i = len(out) - 1
		}
		out[i].Params = appendUnique(out[i].Params, param)
	}
	return out
}

// writeScope is the recipient filter of the job's read of the objects it writes with cmdlet: Set-MailUser
// writes what Get-MailUser read, so the job's Get-MailUser filter is the scope its writes must stay in.
func writeScope(d jobs.Description, cmdlet string) string {
	noun, ok := strings.CutPrefix(cmdlet, "Set-")
	if !ok {
		return ""
	}
	for _, q := range d.Reads {
		if strings.EqualFold(q.Cmdlet, "Get-"+noun) {
			return q.Filter
		}
	}
	return ""
}

// graphRoleValue matches a Graph application permission value (User.Read.All, Domain.Read.All).
var graphRoleValue = regexp.MustCompile(`\b[A-Z][A-Za-z]+(?:\.[A-Z][A-Za-z]+)*\.(?:Read|ReadWrite)\.All\b`)

// graphPermissions returns the Graph application permissions a job needs to read the directory.
func graphPermissions(d jobs.Description) []string {
	if !d.NeedsDirectory {
		return nil
	}
	var out []string
	for _, p := range d.Permissions {
		if !strings.Contains(p, "Graph") {
			continue
		}
		for _, v := range graphRoleValue.FindAllString(p, -1) {
			out = appendUnique(out, v)
		}
	}
	return out
}
