// Package mailboxlicense is the staged-migration licence guard, mailbox-license: a user whose mailbox has
// been migrated to Exchange Online (directory-synced, now a UserMailbox) must hold an Exchange licence within
// 30 days, or Exchange disables the mailbox. The job finds migrated mailboxes whose Entra user holds no
// Exchange mailbox plan and adds them to the configured licensing group (group-based licensing), through
// Microsoft Graph.
//
// It is the library's worked example of a Graph write: it declares the write (jobs.GraphGroupMember, limited
// to its group) and the permission (GroupMember.ReadWrite.All), plans jobs.AddToGroup changes, and leaves
// everything else — dry-run, exceptions, blast radius, journal, the membership read-back and the licence
// that follows it, revert — to the executor.
package mailboxlicense

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/directory"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/audit"
)

// Name is the job's name in the library and in the configuration (jobs.mailbox-license).
const Name = "mailbox-license"

// GroupIDField is the configuration path of the licensing group, for messages.
const GroupIDField = "jobs." + Name + ".group_id"

// RulePending is the finding of a migrated mailbox already in the licensing group that holds no Exchange
// plan: the group's licence is still being applied, or failed (not enough licences, conflicting plans).
const RulePending = "mailbox-license-pending"

// Scope is the OPATH filter of migrated mailboxes: directory-synced user mailboxes.
var Scope = exo.And(exo.Eq("IsDirSynced", true), exo.Eq("RecipientTypeDetails", "UserMailbox")).String()

// Job adds unlicensed migrated mailboxes to the licensing group.
type Job struct {
	// GroupID is the object id of the licensing group; empty when the job is not configured (it then
	// refuses to plan and says how to configure it).
	GroupID string
}

// New returns the job for the licensing group groupID (an Entra object id, or empty: not configured).
func New(groupID string) (*Job, error) {
	groupID = strings.ToLower(strings.TrimSpace(groupID))
	if groupID != "" && !isGUID(groupID) {
		return nil, fmt.Errorf("%s: %s", GroupIDField, groupIDProblem(groupID))
	}
	return &Job{GroupID: groupID}, nil
}

func groupIDProblem(v string) string {
	return fmt.Sprintf("%q is not an object id (a GUID such as 0b6f2c1e-9d7a-4c1e-8f3b-2a6d5e4c3b2a): use the licensing group's Object ID from the Entra admin center (Groups → the group → Overview)", v)
}

// Name implements jobs.Job.
func (j *Job) Name() string { return Name }

// Describe implements jobs.Job.
func (j *Job) Describe() jobs.Description {
	d := jobs.Description{
		Summary: "Add migrated mailboxes (dir-synced UserMailbox) whose user holds no Exchange licence to the licensing group, " +
			"before Exchange disables them 30 days after migration",
		Kind:   jobs.KindRemediate,
		Writes: []jobs.Write{{Graph: jobs.GraphGroupMember, Group: j.GroupID}},
		Reads: []jobs.Query{{
			Cmdlet: "Get-Mailbox",
			Filter: Scope,
			Select: []string{"ExternalDirectoryObjectId", "DisplayName", "PrimarySmtpAddress", "RecipientTypeDetails", "IsDirSynced"},
		}},
		NeedsDirectory: true,
		// The write, then the reads: users and their licences, groups (the licensing group itself), the SKUs
		// that name the tenant's mailbox plans, and the Exchange admin API for Get-Mailbox.
		Permissions: append(jobs.GraphPermissions("GroupMember.ReadWrite.All", "User.Read.All", "Group.Read.All",
			"OrgContact.Read.All", "Domain.Read.All", "Organization.Read.All"), jobs.ExchangeManageAsApp),
	}
	if j.GroupID != "" {
		d.GroupMembers = []string{j.GroupID}
	}
	return d
}

// Plan implements jobs.Job: one membership to add per migrated mailbox whose user holds no active Exchange
// mailbox plan and is not yet in the group; a finding per such mailbox already in the group.
func (j *Job) Plan(_ context.Context, t *jobs.Tenant) (jobs.Plan, error) {
	if j.GroupID == "" {
		return jobs.Plan{}, fmt.Errorf("%s is not set: name the group whose licence gives an Exchange mailbox plan (group-based licensing), e.g.\n  jobs:\n    %s:\n      group_id: <the group's Object ID>", GroupIDField, Name)
	}
	if t.Directory == nil {
		return jobs.Plan{}, errors.New("the directory (Microsoft Graph) was not read")
	}
	group, err := j.group(t.Directory)
	if err != nil {
		return jobs.Plan{}, err
	}
	migrated := map[string]exo.Mailbox{}
	for _, m := range t.Mailboxes {
		// Defend the scope client-side too: shared, room and cloud-only mailboxes never need this licence.
		if m.IsDirSynced && m.RecipientTypeDetails == "UserMailbox" && m.ExternalDirectoryObjectId != "" {
			migrated[strings.ToLower(m.ExternalDirectoryObjectId)] = m
		}
	}
	members := map[string]bool{}
	for _, id := range t.GroupMembers[j.GroupID] {
		members[strings.ToLower(id)] = true
	}
	plans := audit.NewMailboxPlans(t.Directory.SKUs)
	var p jobs.Plan
	for i := range t.Directory.Users {
		u := &t.Directory.Users[i]
		m, ok := migrated[strings.ToLower(u.ID)]
		// Synced members only: a cloud-only user is no staged migration, a guest never gets a mailbox.
		if !ok || !u.Synced() || strings.EqualFold(u.UserType, "Guest") {
			continue
		}
		p.InScope++
		if plans.Of(u) != "" {
			continue
		}
		ref := jobs.ObjectRef{ID: strings.ToLower(u.ID), DisplayName: u.DisplayName, Address: m.PrimarySmtpAddress, Kind: jobs.ObjectUser,
			OnPremisesUserPrincipalName: u.OnPremisesUserPrincipalName, Mail: u.Mail}
		if members[strings.ToLower(u.ID)] {
			p.Findings = append(p.Findings, jobs.Finding{Rule: RulePending, Severity: jobs.SeverityHigh, Object: ref,
				Detail: fmt.Sprintf("in the licensing group %s but holds no Exchange mailbox plan: the group's licence is still being applied, or failed "+
					"(Entra admin center → Groups → Licenses: not enough licences, conflicting plans). Exchange disables an unlicensed migrated mailbox after 30 days", group)})
			continue
		}
		p.Changes = append(p.Changes, jobs.AddToGroup(ref, group))
	}
	jobs.SortFindings(p.Findings)
	return p, nil
}

// group finds the licensing group in the directory and refuses one whose membership cannot be written: a
// dynamic group, a group synced from on-premises AD (its members are mastered there), a mail-enabled group
// (Graph cannot change the members of distribution lists and mail-enabled security groups).
func (j *Job) group(d *directory.Snapshot) (jobs.ObjectRef, error) {
	for _, g := range d.Groups {
		if !strings.EqualFold(g.ID, j.GroupID) {
			continue
		}
		ref := jobs.ObjectRef{ID: j.GroupID, DisplayName: g.DisplayName, Kind: jobs.ObjectGroup}
		switch {
		case slices.ContainsFunc(g.GroupTypes, func(t string) bool { return strings.EqualFold(t, "DynamicMembership") }):
			return ref, fmt.Errorf("%s: %s is a dynamic group: its members follow its rule and cannot be added; use an assigned-membership security group", GroupIDField, ref)
		case g.Synced():
			return ref, fmt.Errorf("%s: %s is synced from on-premises AD, so its members are written there, not in the cloud; use a cloud security group, or add the users in AD", GroupIDField, ref)
		case g.MailEnabled:
			return ref, fmt.Errorf("%s: %s is mail-enabled; Graph cannot change the members of distribution lists or mail-enabled security groups — use a security group", GroupIDField, ref)
		}
		return ref, nil
	}
	return jobs.ObjectRef{}, fmt.Errorf("%s: no group with object id %s in the tenant; use the licensing group's Object ID (Entra admin center → Groups → the group → Overview)", GroupIDField, j.GroupID)
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if r != '-' {
				return false
			}
		case r >= '0' && r <= '9', r >= 'a' && r <= 'f':
		default:
			return false
		}
	}
	return true
}
