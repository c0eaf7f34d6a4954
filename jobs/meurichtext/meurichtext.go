// Package meurichtext is job 1 of the library, meu-richtext: it sets UseMapiRichTextFormat on every
// directory-synced mail user (MEU) so that meeting invites from cloud mailboxes reach users still on-premises
// as rich invites instead of plain text during a staged migration.
package meurichtext

import (
	"context"
	"fmt"
	"strings"

	"github.com/exo-worker/worker/jobs"
)

// Name is the job's name in the library and in the configuration (jobs.meu-richtext).
const Name = "meu-richtext"

// Param is the Set-MailUser parameter the job writes.
const Param = "UseMapiRichTextFormat"

// Values are the values Set-MailUser -UseMapiRichTextFormat accepts.
var Values = []string{"Never", "Always", "UseDefaultSettings"}

// Job sets UseMapiRichTextFormat on every directory-synced mail user.
type Job struct {
	// Target is the value every in-scope mail user should hold (Never unless configured otherwise).
	Target string
}

// NewMEURichText returns job 1 with the given target; an empty target means Never.
func New(target string) (*Job, error) {
	if target == "" {
		target = "Never"
	}
	for _, v := range Values {
		if strings.EqualFold(v, target) {
			return &Job{Target: v}, nil
		}
	}
	return nil, fmt.Errorf("meu-richtext: target %q is not one of %s", target, strings.Join(Values, ", "))
}

// Name implements jobs.Job.
func (j *Job) Name() string { return Name }

// Describe implements jobs.Job.
func (j *Job) Describe() jobs.Description {
	return jobs.Description{
		Summary:     fmt.Sprintf("Set UseMapiRichTextFormat=%s on every directory-synced mail user (MEU), so meeting invites reach on-premises users intact", j.Target),
		Kind:        jobs.KindRemediate,
		Writes:      []jobs.Write{{Cmdlet: "Set-MailUser", Params: []string{Param}}},
		Permissions: []jobs.Permission{jobs.ExchangeManageAsApp},
		Reads: []jobs.Query{{
			Cmdlet: "Get-MailUser",
			Filter: jobs.MailUserScope,
			Select: []string{"ExternalDirectoryObjectId", "DisplayName", "PrimarySmtpAddress", "UseMapiRichTextFormat", "IsDirSynced", "RecipientTypeDetails"},
		}},
	}
}

// Plan implements jobs.Job: one change per in-scope mail user whose value differs from the target.
func (j *Job) Plan(_ context.Context, t *jobs.Tenant) (jobs.Plan, error) {
	var p jobs.Plan
	for _, mu := range t.MailUsers {
		// Defend the scope client-side too: a write to a guest, a cloud-only user or a mailbox must never
		// be planned even if the server-side filter were loosened.
		if !mu.IsDirSynced || mu.RecipientTypeDetails != "MailUser" || mu.ExternalDirectoryObjectId == "" {
			continue
		}
		p.InScope++
		if strings.EqualFold(mu.UseMapiRichTextFormat, j.Target) {
			continue
		}
		p.Changes = append(p.Changes, jobs.Set(
			jobs.ObjectRef{ID: mu.ExternalDirectoryObjectId, DisplayName: mu.DisplayName, Address: mu.PrimarySmtpAddress},
			"Set-MailUser",
			jobs.Param{Name: Param, From: jobs.Text(mu.UseMapiRichTextFormat), To: jobs.Text(j.Target)},
		))
	}
	return p, nil
}

// Config is jobs.meu-richtext in the configuration.
type Config struct {
	jobs.Settings `yaml:",inline"`
	// Target is the value every in-scope mail user should hold: Never (the default), Always or
	// UseDefaultSettings.
	Target string `yaml:"target"`
}

// DefaultConfig is the job's configuration when the file sets nothing: remediate within the default blast
// radius, target Never.
func DefaultConfig() *Config {
	return &Config{Settings: jobs.DefaultSettings(jobs.KindRemediate), Target: "Never"}
}

// Check implements jobs.Config.
func (c *Config) Check() []jobs.FieldError {
	for _, v := range Values {
		if strings.EqualFold(v, c.Target) {
			c.Target = v
			return nil
		}
	}
	return []jobs.FieldError{{Field: "target", Message: fmt.Sprintf("%q is not a value of UseMapiRichTextFormat; use one of %s", c.Target, strings.Join(Values, ", "))}}
}

// Definition registers the job in the library.
var Definition = jobs.Define(Name, jobs.KindRemediate, DefaultConfig,
	func(c *Config) (jobs.Job, error) { return New(c.Target) })
