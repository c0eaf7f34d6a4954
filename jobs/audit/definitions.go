package audit

import "github.com/exo-worker/worker/jobs"

// Config is jobs.<audit> in the configuration: the audits have no keys of their own, only the settings
// every job has (an audit's mode is always report).
type Config struct {
	jobs.Settings `yaml:",inline"`
}

// Check implements jobs.Config.
func (*Config) Check() []jobs.FieldError { return nil }

func define(j jobs.Job) jobs.Definition {
	return jobs.Define(j.Name(), jobs.KindAudit,
		func() *Config { return &Config{Settings: jobs.DefaultSettings(jobs.KindAudit)} },
		func(*Config) (jobs.Job, error) { return j, nil })
}

// The audits' definitions, one per audit, for jobs/library.
var (
	AddressDefinition  = define(&AddressAudit{})
	IdentityDefinition = define(&IdentityAudit{})
	LicenseDefinition  = define(&LicenseAudit{})
	MEUDefinition      = define(&MEUAudit{})
)
