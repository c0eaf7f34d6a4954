package jobs

import (
	"context"
	"fmt"
	"strings"

	"github.com/exo-worker/worker/exo"
)

// MEURichTextName is the name of job 1.
const MEURichTextName = "meu-richtext"

// RichTextValues are the values Set-MailUser -UseMapiRichTextFormat accepts.
var RichTextValues = []string{"Never", "Always", "UseDefaultSettings"}

// MEURichText sets UseMapiRichTextFormat on every directory-synced mail user, so meeting invites from cloud
// mailboxes reach users still on-premises as rich invites instead of plain text during a staged migration.
type MEURichText struct {
	// Target is the value every in-scope mail user should hold (Never unless configured otherwise).
	Target string
}

// NewMEURichText returns job 1 with the given target; an empty target means Never.
func NewMEURichText(target string) (*MEURichText, error) {
	if target == "" {
		target = "Never"
	}
	for _, v := range RichTextValues {
		if strings.EqualFold(v, target) {
			return &MEURichText{Target: v}, nil
		}
	}
	return nil, fmt.Errorf("meu-richtext: target %q is not one of %s", target, strings.Join(RichTextValues, ", "))
}

// Name implements Job.
func (j *MEURichText) Name() string { return MEURichTextName }

// mailUserScope is the server-side half of the scope. UseMapiRichTextFormat is not filterable in EXO, so the
// value test happens client-side in Plan.
var mailUserScope = exo.And(exo.Eq("IsDirSynced", true), exo.Eq("RecipientTypeDetails", "MailUser")).String()

// Describe implements Job.
func (j *MEURichText) Describe() Description {
	return Description{
		Summary:     fmt.Sprintf("Set UseMapiRichTextFormat=%s on every directory-synced mail user (MEU), so meeting invites reach on-premises users intact", j.Target),
		Kind:        KindRemediate,
		Owns:        []string{"Set-MailUser.UseMapiRichTextFormat"},
		Permissions: []string{"Exchange.ManageAsApp", "Exchange role: Mail Recipients (Set-MailUser), View-Only Recipients"},
		Reads: []Query{{
			Cmdlet: "Get-MailUser",
			Filter: mailUserScope,
			Select: []string{"ExternalDirectoryObjectId", "DisplayName", "PrimarySmtpAddress", "UseMapiRichTextFormat", "IsDirSynced", "RecipientTypeDetails"},
		}},
	}
}

// Plan implements Job: one change per in-scope mail user whose value differs from the target.
func (j *MEURichText) Plan(_ context.Context, t *Tenant) (Plan, error) {
	var p Plan
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
		p.Changes = append(p.Changes, Change{
			Object: ObjectRef{ID: mu.ExternalDirectoryObjectId, DisplayName: mu.DisplayName, Address: mu.PrimarySmtpAddress},
			Cmdlet: "Set-MailUser",
			Param:  "UseMapiRichTextFormat",
			From:   mu.UseMapiRichTextFormat,
			To:     j.Target,
		})
	}
	return p, nil
}
