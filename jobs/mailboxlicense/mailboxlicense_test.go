package mailboxlicense_test

import (
	"context"
	"strings"
	"testing"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/directory"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/mailboxlicense"
)

// The plan over hand-built snapshots: which groups the job refuses, and how it reads licence state. The
// simulator end to end (real exo and Graph clients, executor, daemon) is internal/graph's
// TestMailboxLicense* (it compiles msgraph-sdk-go, which jobs/ must not).

const groupID = "0b6f2c1e-1111-4222-8333-944455556666"

func yes() *bool { b := true; return &b }

func tenant(group directory.Group, users ...directory.User) *jobs.Tenant {
	t := &jobs.Tenant{Directory: &directory.Snapshot{Groups: []directory.Group{group}, Users: users}}
	for _, u := range users {
		t.Mailboxes = append(t.Mailboxes, exo.Mailbox{Recipient: exo.Recipient{ExternalDirectoryObjectId: u.ID, DisplayName: u.DisplayName,
			PrimarySmtpAddress: u.Mail, RecipientTypeDetails: "UserMailbox", IsDirSynced: u.Synced()}})
	}
	return t
}

func TestPlanRefusesGroupsWhoseMembersCannotBeWritten(t *testing.T) {
	user := directory.User{ID: "a1b2c3d4-0000-4000-8000-000000000001", Mail: "jane@contoso.com", OnPremisesSyncEnabled: yes(), UserType: "Member"}
	for name, tc := range map[string]struct {
		group directory.Group
		want  string
	}{
		"dynamic":          {directory.Group{ID: groupID, SecurityEnabled: true, GroupTypes: []string{"DynamicMembership"}}, "dynamic group"},
		"synced":           {directory.Group{ID: groupID, SecurityEnabled: true, OnPremisesSyncEnabled: yes()}, "synced from on-premises"},
		"mail-enabled":     {directory.Group{ID: groupID, SecurityEnabled: true, MailEnabled: true}, "mail-enabled"},
		"missing":          {directory.Group{ID: "ffffffff-0000-4000-8000-000000000000"}, "no group with object id"},
		"a security group": {directory.Group{ID: groupID, SecurityEnabled: true}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			j, err := mailboxlicense.New(groupID)
			if err != nil {
				t.Fatal(err)
			}
			p, err := j.Plan(context.Background(), tenant(tc.group, user))
			if tc.want == "" {
				if err != nil || len(p.Changes) != 1 {
					t.Fatalf("plan: %v, %d changes; want one add", err, len(p.Changes))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), mailboxlicense.GroupIDField) {
				t.Fatalf("plan error %v, want one naming %s and saying %q", err, mailboxlicense.GroupIDField, tc.want)
			}
		})
	}
}

func TestPlanReadsLicenceStateAndScope(t *testing.T) {
	group := directory.Group{ID: groupID, SecurityEnabled: true, DisplayName: "LIC"}
	plan := func(id, status string) []directory.AssignedPlan {
		return []directory.AssignedPlan{{ServicePlanID: id, Service: "exchange", CapabilityStatus: status}}
	}
	users := []directory.User{
		{ID: "00000000-0000-4000-8000-000000000001", DisplayName: "unlicensed", OnPremisesSyncEnabled: yes()},
		{ID: "00000000-0000-4000-8000-000000000002", DisplayName: "plan 1", OnPremisesSyncEnabled: yes(), AssignedPlans: plan("9aaf7827-d63c-4b61-89c3-182f06f82e5c", "Enabled")},
		{ID: "00000000-0000-4000-8000-000000000003", DisplayName: "foundation only", OnPremisesSyncEnabled: yes(), AssignedPlans: plan("113feb6c-3fe4-4440-bddc-54d774bf0318", "Enabled")},
		{ID: "00000000-0000-4000-8000-000000000004", DisplayName: "plan 2 deleted", OnPremisesSyncEnabled: yes(), AssignedPlans: plan("efb87545-963c-4e0d-99df-69c6916d9eb0", "Deleted")},
		{ID: "00000000-0000-4000-8000-000000000005", DisplayName: "plan 2 in grace", OnPremisesSyncEnabled: yes(), AssignedPlans: plan("efb87545-963c-4e0d-99df-69c6916d9eb0", "Warning")},
		{ID: "00000000-0000-4000-8000-000000000006", DisplayName: "cloud only"},
		{ID: "00000000-0000-4000-8000-000000000007", DisplayName: "in the group, licence pending", OnPremisesSyncEnabled: yes()},
	}
	tn := tenant(group, users...)
	// A mail user (not migrated) with no licence is normal: out of scope.
	tn.Directory.Users = append(tn.Directory.Users, directory.User{ID: "00000000-0000-4000-8000-000000000008", DisplayName: "MEU", OnPremisesSyncEnabled: yes()})
	tn.GroupMembers = map[string][]string{groupID: {"00000000-0000-4000-8000-000000000007"}}
	j, _ := mailboxlicense.New(strings.ToUpper(groupID))
	p, err := j.Plan(context.Background(), tn)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range p.Changes {
		if c.Graph != jobs.GraphGroupMember || c.Group.ID != groupID {
			t.Fatalf("change %s is not an add to the licensing group", c)
		}
		got = append(got, c.Object.DisplayName)
	}
	if strings.Join(got, ",") != "unlicensed,foundation only,plan 2 deleted" {
		t.Fatalf("planned %v", got)
	}
	if len(p.Findings) != 1 || p.Findings[0].Rule != mailboxlicense.RulePending || p.Findings[0].Object.DisplayName != "in the group, licence pending" {
		t.Fatalf("findings %+v", p.Findings)
	}
	if p.InScope != 6 { // every migrated mailbox of a synced user: not the cloud-only one, not the MEU
		t.Fatalf("in scope %d, want 6", p.InScope)
	}
}

func TestConfigurationErrorsNameTheField(t *testing.T) {
	if _, err := mailboxlicense.New("LIC-Exchange"); err == nil || !strings.Contains(err.Error(), mailboxlicense.GroupIDField) {
		t.Fatalf("a group name instead of an id: %v", err)
	}
	j, err := mailboxlicense.New("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Plan(context.Background(), &jobs.Tenant{}); err == nil || !strings.Contains(err.Error(), mailboxlicense.GroupIDField) {
		t.Fatalf("unconfigured group: %v", err)
	}
	if err := j.Describe().Validate(nil); err != nil {
		t.Fatalf("the declaration is refused: %v", err)
	}
	d := j.Describe()
	if !strings.Contains(d.Permissions[0].String(), "GroupMember.ReadWrite.All") {
		t.Fatalf("the write's permission is not declared first: %v", d.Permissions)
	}
}
