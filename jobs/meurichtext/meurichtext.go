// Package meurichtext is job 1 of the library, meu-richtext: it sets UseMapiRichTextFormat on every
// directory-synced mail user (MEU) during a staged migration. Never means no TNEF: a meeting request from a
// cloud mailbox goes out as a standard iCalendar MIME message, which the on-premises server understands,
// instead of a TNEF (winmail.dat) body that reaches it as plain text without the invite.
//
// A remote domain's settings (Set-RemoteDomain -TNEFEnabled) override the mail user's unless its
// UsePreferMessageFormat is $true, so by default (prefer_message_format: true) the job sets both, as one
// change of two parameters per object. With it off, objects under a remote domain whose TNEFEnabled is set
// get a finding of rule jobs.RuleOverridden: written and verified, but not effective.
package meurichtext

import (
	"context"
	"fmt"
	"strings"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/jobs"
)

// Name is the job's name in the library and in the configuration (jobs.meu-richtext).
const Name = "meu-richtext"

// Param is the Set-MailUser parameter the job writes.
const Param = "UseMapiRichTextFormat"

// PreferParam is the Set-MailUser parameter that makes the mail user's own format win over its remote
// domain's.
const PreferParam = "UsePreferMessageFormat"

// Values are the values Set-MailUser -UseMapiRichTextFormat accepts.
var Values = []string{"Never", "Always", "UseDefaultSettings"}

// Job sets UseMapiRichTextFormat on every directory-synced mail user.
type Job struct {
	// Target is the value every in-scope mail user should hold (Never unless configured otherwise).
	Target string
	// PreferMessageFormat also sets UsePreferMessageFormat=$true, so no remote domain overrides Target.
	PreferMessageFormat bool
}

// NewMEURichText returns job 1 with the given target; an empty target means Never.
func New(target string) (*Job, error) {
	if target == "" {
		target = "Never"
	}
	for _, v := range Values {
		if strings.EqualFold(v, target) {
			return &Job{Target: v, PreferMessageFormat: true}, nil
		}
	}
	return nil, fmt.Errorf("meu-richtext: target %q is not one of %s", target, strings.Join(Values, ", "))
}

// Name implements jobs.Job.
func (j *Job) Name() string { return Name }

// Describe implements jobs.Job.
func (j *Job) Describe() jobs.Description {
	params := []string{Param}
	summary := fmt.Sprintf("Set UseMapiRichTextFormat=%s on every directory-synced mail user (MEU), so meeting invites reach on-premises users as iCalendar, not TNEF", j.Target)
	if j.PreferMessageFormat {
		params = append(params, PreferParam)
		summary = fmt.Sprintf("Set UseMapiRichTextFormat=%s and UsePreferMessageFormat=$true on every directory-synced mail user (MEU), so meeting invites reach on-premises users as iCalendar, not TNEF, whatever the remote domain says", j.Target)
	}
	return jobs.Description{
		Summary:     summary,
		Kind:        jobs.KindRemediate,
		Writes:      []jobs.Write{{Cmdlet: "Set-MailUser", Params: params}},
		Permissions: []jobs.Permission{jobs.ExchangeManageAsApp},
		Reads: []jobs.Query{{
			Cmdlet: "Get-MailUser",
			Filter: jobs.MailUserScope,
			Select: []string{"ExternalDirectoryObjectId", "DisplayName", "PrimarySmtpAddress", "UseMapiRichTextFormat", "UsePreferMessageFormat",
				"ExternalEmailAddress", "IsDirSynced", "RecipientTypeDetails"},
		}, {
			Cmdlet: "Get-RemoteDomain",
			Select: []string{"Identity", "Name", "DomainName", "TNEFEnabled", "ContentType"},
		}},
	}
}

// Plan implements jobs.Job: one change per in-scope mail user whose values differ (UseMapiRichTextFormat,
// and UsePreferMessageFormat when PreferMessageFormat), and a RuleOverridden finding per mail user whose
// value a remote domain would override.
func (j *Job) Plan(_ context.Context, t *jobs.Tenant) (jobs.Plan, error) {
	var p jobs.Plan
	for _, mu := range t.MailUsers {
		// Defend the scope client-side too: a write to a guest, a cloud-only user or a mailbox must never
		// be planned even if the server-side filter were loosened.
		if !mu.IsDirSynced || mu.RecipientTypeDetails != "MailUser" || mu.ExternalDirectoryObjectId == "" {
			continue
		}
		p.InScope++
		ref := jobs.ObjectRef{ID: mu.ExternalDirectoryObjectId, DisplayName: mu.DisplayName, Address: mu.PrimarySmtpAddress}
		var params []jobs.Param
		if !strings.EqualFold(mu.UseMapiRichTextFormat, j.Target) {
			params = append(params, jobs.Param{Name: Param, From: jobs.Text(mu.UseMapiRichTextFormat), To: jobs.Text(j.Target)})
		}
		if j.PreferMessageFormat && !mu.UsePreferMessageFormat {
			params = append(params, jobs.Param{Name: PreferParam, From: jobs.Bool(false), To: jobs.Bool(true)})
		}
		if len(params) > 0 {
			p.Changes = append(p.Changes, jobs.Set(ref, "Set-MailUser", params...))
		}
		// Effective, not only written: without UsePreferMessageFormat, a remote domain with TNEFEnabled set
		// decides the format of mail to this user's target domain.
		if !j.PreferMessageFormat && !mu.UsePreferMessageFormat {
			if rd := exo.CoveringRemoteDomain(t.RemoteDomains, domainOf(mu.ExternalEmailAddress)); rd != nil && rd.TNEFEnabled != nil {
				p.Findings = append(p.Findings, jobs.Finding{Rule: jobs.RuleOverridden, Job: Name, Severity: jobs.SeverityMedium, Object: ref,
					Detail: fmt.Sprintf("remote domain %q (%s) has TNEFEnabled $%t, which overrides UseMapiRichTextFormat for this mail user; set jobs.%s.prefer_message_format: true, or Set-RemoteDomain -Identity %q -TNEFEnabled $null",
						rd.Name, rd.DomainName, *rd.TNEFEnabled, Name, rd.Name)})
			}
		}
	}
	return p, nil
}

// domainOf is the domain of an address, without an smtp: prefix.
func domainOf(addr string) string {
	addr = strings.TrimSpace(addr)
	if i := strings.IndexByte(addr, ':'); i >= 0 {
		addr = addr[i+1:]
	}
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}

// Config is jobs.meu-richtext in the configuration.
type Config struct {
	jobs.Settings `yaml:",inline"`
	// Target is the value every in-scope mail user should hold: Never (the default), Always or
	// UseDefaultSettings.
	Target string `yaml:"target"`
	// PreferMessageFormat also sets UsePreferMessageFormat=$true on each MEU, so a remote domain's
	// TNEFEnabled cannot override the target (default true).
	PreferMessageFormat bool `yaml:"prefer_message_format"`
}

// DefaultConfig is the job's configuration when the file sets nothing: remediate within the default blast
// radius, target Never.
func DefaultConfig() *Config {
	return &Config{Settings: jobs.DefaultSettings(jobs.KindRemediate), Target: "Never", PreferMessageFormat: true}
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
	func(c *Config) (jobs.Job, error) {
		j, err := New(c.Target)
		if err != nil {
			return nil, err
		}
		j.PreferMessageFormat = c.PreferMessageFormat
		return j, nil
	})
