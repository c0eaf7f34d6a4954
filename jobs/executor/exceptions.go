package executor

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/exo-worker/worker/jobs"
)

// Exception keeps the executor away from one object: a person decided that a job must not change it (a
// pilot user, an object another team owns) until a date. The executor enforces exceptions for every job and
// every mode, so a dry-run shows the same skips a remediate run makes; a job never sees them.
type Exception struct {
	// Object names the object: its ExternalDirectoryObjectId, its primary SMTP address, or (where the job
	// knows them) its mail or on-premises UPN — matched case-insensitively against ObjectRef.ID, Address,
	// Mail and OnPremisesUserPrincipalName.
	Object string
	// Jobs the exception covers; empty means every job.
	Jobs []string
	// Owner is who asked for it (a person or a team address) and Reason why: both are shown with every skip,
	// so whoever reads a run knows whom to ask.
	Owner  string
	Reason string
	// Expires is the first instant the exception no longer applies; zero means it never expires. A config
	// date (expires: 2027-01-31) is midnight UTC of that day: the exception "expires on" the date written.
	Expires time.Time
	// ConfigPath locates it in the configuration ("exceptions[2]"), for messages.
	ConfigPath string
}

// appliesTo reports whether the exception covers job.
func (x Exception) appliesTo(job string) bool {
	return len(x.Jobs) == 0 || slices.ContainsFunc(x.Jobs, func(j string) bool { return strings.EqualFold(j, job) })
}

// matches reports whether the exception names o.
func (x Exception) matches(o jobs.ObjectRef) bool {
	want := strings.TrimSpace(x.Object)
	if want == "" {
		return false
	}
	for _, name := range []string{o.ID, o.Address, o.Mail, o.OnPremisesUserPrincipalName} {
		if name != "" && strings.EqualFold(want, name) {
			return true
		}
	}
	return false
}

// expiredAt reports whether the exception has run out at now.
func (x Exception) expiredAt(now time.Time) bool {
	return !x.Expires.IsZero() && !now.Before(x.Expires)
}

// describe is how a skip names the exception: who owns it, why, until when.
func (x Exception) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "excepted by %s", x.where())
	if x.Owner != "" {
		fmt.Fprintf(&b, " (owner %s", x.Owner)
	} else {
		b.WriteString(" (no owner")
	}
	if x.Reason != "" {
		fmt.Fprintf(&b, ", reason %q", x.Reason)
	}
	if !x.Expires.IsZero() {
		fmt.Fprintf(&b, ", until %s", x.expiryDay())
	}
	b.WriteString("): not changed; remove the exception or wait for it to expire to include the object")
	return b.String()
}

func (x Exception) where() string {
	if x.ConfigPath != "" {
		return fmt.Sprintf("the exception for %s at %s", x.Object, x.ConfigPath)
	}
	return "the exception for " + x.Object
}

// expiryDay is the expiry as a person wrote it: a date when it is midnight UTC, else the instant.
func (x Exception) expiryDay() string {
	u := x.Expires.UTC()
	if u.Equal(u.Truncate(24 * time.Hour)) {
		return u.Format("2006-01-02")
	}
	return u.Format(time.RFC3339)
}

// exceptFindings takes the findings on excepted objects out of the summary: an exception says a person knows
// about the object and decided to leave it be, so an audit neither reports it nor keeps it open in the
// findings history. Each exception that hid findings says so once. A finding belongs to the job that reported it
// (Finding.Job: a report suite runs several audits), so an exception naming that audit covers it.
func exceptFindings(s *Summary, active []Exception) []string {
	hidden := map[int]int{} // index in active → findings hidden
	kept := s.Findings[:0:0]
	for _, f := range s.Findings {
		job := findingJob(s, f)
		excepted := false
		for k, x := range active {
			if (x.appliesTo(job) || x.appliesTo(s.Job)) && x.matches(f.Object) {
				hidden[k]++
				excepted = true
				break
			}
		}
		if !excepted {
			kept = append(kept, f)
		}
	}
	s.Findings = kept
	var notes []string
	for k, x := range active {
		if n := hidden[k]; n > 0 {
			notes = append(notes, fmt.Sprintf("%s (owner %s) hid %d finding(s) of %s: not reported while the exception lasts",
				x.where(), orNoOwner(x.Owner), n, x.Object))
		}
	}
	return notes
}

// findingJob is the job that reported a finding: the audit of a suite that set Finding.Job, else the run's.
func findingJob(s *Summary, f jobs.Finding) string {
	if f.Job != "" {
		return f.Job
	}
	return s.Job
}

func orNoOwner(o string) string {
	if o == "" {
		return "none recorded"
	}
	return o
}

// applyExceptions marks the changes an active exception covers as skipped, and returns a warning for each
// expired exception of the job: it no longer protects its object, and its owner should know.
func applyExceptions(s *Summary, xs []Exception, now time.Time) []string {
	var warnings []string
	var active []Exception
	// The jobs this run speaks for: its own and, for a report suite, the audit behind each finding's rule.
	names := []string{s.Job}
	for _, f := range s.Findings {
		if j := findingJob(s, f); !slices.Contains(names, j) {
			names = append(names, j)
		}
	}
	for _, x := range xs {
		if !slices.ContainsFunc(names, x.appliesTo) {
			continue
		}
		if x.expiredAt(now) {
			owner := x.Owner
			if owner == "" {
				owner = "none recorded"
			}
			warnings = append(warnings, fmt.Sprintf("%s expired on %s (owner %s): the object is in scope again; "+
				"remove it from the configuration or extend its expiry", x.where(), x.expiryDay(), owner))
			continue
		}
		active = append(active, x)
	}
	if len(active) == 0 {
		return warnings
	}
	warnings = append(warnings, exceptFindings(s, active)...)
	for i := range s.Changes {
		cr := &s.Changes[i]
		if cr.Status != StatusPlanned {
			continue
		}
		for _, x := range active {
			if x.appliesTo(s.Job) && x.matches(cr.Object) {
				cr.Status, cr.Error = StatusSkipped, x.describe()
				break
			}
		}
	}
	return warnings
}
