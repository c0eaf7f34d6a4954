package audit

import (
	"strings"
	"testing"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/jobs"
)

func TestRemoteDomainTNEFFlagsDomainsCoveringMEUTargets(t *testing.T) {
	yes, no := true, false
	meu := func(id, target string, prefer bool) exo.MailUser {
		return exo.MailUser{ExternalDirectoryObjectId: id, PrimarySmtpAddress: id + "@contoso.com", ExternalEmailAddress: "SMTP:" + id + "@" + target,
			IsDirSynced: true, RecipientTypeDetails: "MailUser", UsePreferMessageFormat: prefer}
	}
	for _, tc := range []struct {
		name    string
		remotes []exo.RemoteDomain
		users   []exo.MailUser
		want    map[string]int // remote domain name → MEUs named
	}{
		{"default null: nothing", []exo.RemoteDomain{{Name: "Default", DomainName: "*"}},
			[]exo.MailUser{meu("a", "onprem.contoso.com", false)}, map[string]int{}},
		{"default forces TNEF", []exo.RemoteDomain{{Name: "Default", DomainName: "*", TNEFEnabled: &yes}},
			[]exo.MailUser{meu("a", "onprem.contoso.com", false), meu("b", "onprem.contoso.com", true)}, map[string]int{"Default": 1}},
		{"specific domain wins over default", []exo.RemoteDomain{{Name: "Default", DomainName: "*", TNEFEnabled: &yes},
			{Name: "OnPrem", DomainName: "*.contoso.com", TNEFEnabled: &no}},
			[]exo.MailUser{meu("a", "onprem.contoso.com", false), meu("c", "fabrikam.com", false)}, map[string]int{"Default": 1}},
		{"domain entry forcing TNEF for MEU targets", []exo.RemoteDomain{{Name: "Default", DomainName: "*"},
			{Name: "OnPrem", DomainName: "onprem.contoso.com", TNEFEnabled: &yes}, {Name: "Unused", DomainName: "other.com", TNEFEnabled: &yes}},
			[]exo.MailUser{meu("a", "onprem.contoso.com", false), meu("b", "onprem.contoso.com", false)}, map[string]int{"OnPrem": 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn := &jobs.Tenant{MailUsers: tc.users, RemoteDomains: tc.remotes}
			meus := exoMailUsers(tn)
			var ids []string
			for id := range meus {
				ids = append(ids, id)
			}
			fs := remoteDomainFindings(tn, meus, ids)
			if len(fs) != len(tc.want) {
				t.Fatalf("%d findings, want %d: %+v", len(fs), len(tc.want), fs)
			}
			for _, f := range fs {
				n, ok := tc.want[f.Object.ID]
				if !ok || f.Rule != RuleRemoteDomainTNEF || !strings.Contains(f.Detail, " for "+itoa(n)+" mail user") || !strings.Contains(f.Detail, "-TNEFEnabled $null") {
					t.Errorf("finding %+v, want %d users of %v", f, n, tc.want)
				}
			}
		})
	}
}

func itoa(n int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + string(rune('0'+n))) }
