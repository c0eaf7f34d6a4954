package mailboxlicense

import (
	"github.com/exo-worker/worker/jobs"
)

// Config is jobs.mailbox-license in the configuration:
//
//	jobs:
//	  mailbox-license:
//	    group_id: 0b6f2c1e-…     # the licensing group's Object ID (required)
//	    schedule: "0 * * * *"
//	    mode: remediate          # the default; dry-run to review first
//	    max_changes: 500
//	    max_change_percent: 20
type Config struct {
	jobs.Settings `yaml:",inline"`
	// GroupID is the object id of the group whose licence gives an Exchange mailbox plan (group-based
	// licensing): a cloud security group with assigned membership.
	GroupID string `yaml:"group_id"`
}

// DefaultConfig is the job's configuration when the file names it without more: remediate within the
// default blast radius. GroupID has no default: it names a group of the tenant.
func DefaultConfig() *Config {
	return &Config{Settings: jobs.DefaultSettings(jobs.KindRemediate)}
}

// Check implements jobs.Config: group_id, when set, must be an object id.
func (c *Config) Check() []jobs.FieldError {
	if _, err := New(c.GroupID); err != nil {
		return []jobs.FieldError{{Field: "group_id", Message: groupIDProblem(c.GroupID)}}
	}
	return nil
}

// CheckRequired implements jobs.RequiredChecker: once the configuration names the job, group_id is
// required (on its defaults the job is listed but refuses to plan, saying how to configure it).
func (c *Config) CheckRequired() []jobs.FieldError {
	if c.GroupID == "" {
		return []jobs.FieldError{{Field: "group_id", Message: "required: the Object ID of the licensing group (a cloud security group whose licence includes an Exchange Online plan)"}}
	}
	return nil
}

// Definition registers the job in the library.
var Definition = jobs.Define(Name, jobs.KindRemediate, DefaultConfig,
	func(c *Config) (jobs.Job, error) { return New(c.GroupID) })
