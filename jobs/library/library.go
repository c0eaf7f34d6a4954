// Package library is the job library of exo-worker: the one place that lists every job the worker can run,
// one line each. Adding a job is one line here (docs/ADDING-A-JOB.md walks through the rest).
package library

import (
	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/audit"
	"github.com/exo-worker/worker/jobs/mailboxlicense"
	"github.com/exo-worker/worker/jobs/meurichtext"
)

// Definitions are every job of the library.
func Definitions() []jobs.Definition {
	return []jobs.Definition{
		meurichtext.Definition,
		mailboxlicense.Definition,
		audit.AddressDefinition,
		audit.IdentityDefinition,
		audit.LicenseDefinition,
		audit.MEUDefinition,
	}
}

// New registers every job, checking each declaration against the table of parameters directory sync owns.
func New() (*jobs.Library, error) {
	return jobs.NewLibrary(SyncOwned, Definitions()...)
}

// SyncOwned is the table of Exchange parameters directory sync owns (sourced in exo), which registration
// checks every declared write against.
var SyncOwned jobs.SyncOwnedFunc = exo.SyncOwned

// Defaults is every job built from its defaults, as a configuration that names no job would have it: for
// tools that read the jobs' declarations (setup's and doctor's tests) rather than run them.
func Defaults() (*jobs.Registry, error) {
	lib, err := New()
	if err != nil {
		return nil, err
	}
	return lib.Registry(nil)
}
