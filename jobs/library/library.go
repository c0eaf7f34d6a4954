// Package library is the job library of exo-worker: the one place that lists every job the worker can run.
// Adding a job is one line here (see docs/ADDING-A-JOB.md).
package library

import (
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/audit"
	"github.com/exo-worker/worker/jobs/meurichtext"
)

// New returns the registry of every job; richTextTarget is meu-richtext's target (empty = Never).
func New(richTextTarget string) (*jobs.Registry, error) {
	rt, err := meurichtext.New(richTextTarget)
	if err != nil {
		return nil, err
	}
	return jobs.NewRegistry(
		rt,
		&audit.AddressAudit{},
		&audit.IdentityAudit{},
		&audit.LicenseAudit{},
		&audit.MEUAudit{},
	)
}
