// Package audit holds the audit jobs of the library — they read Graph and Exchange and return findings only —
// and the rule catalogue behind their findings: what each rule checks, how bad it is and how it is fixed in
// on-premises Active Directory. A Suite runs several audits over one read of the tenant (`worker report`).
package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/directory"
	"github.com/exo-worker/worker/jobs"
)

// Audits returns the audit jobs of the library. Each reads Graph (NeedsDirectory) and, where it needs
// Exchange's view, the EXO queries in Reads; each returns findings only.
func Audits() []jobs.Job {
	return []jobs.Job{&AddressAudit{}, &IdentityAudit{}, &LicenseAudit{}, &MEUAudit{}}
}

// auditPermissions are what every audit needs: Graph directory reads, and the Exchange admin API for the
// recipient views (read-only: the View-Only Recipients role covers the Get-* cmdlets).
var auditPermissions = append(jobs.GraphPermissions("User.Read.All", "Group.Read.All", "OrgContact.Read.All",
	"Domain.Read.All", "Organization.Read.All"), jobs.ExchangeManageAsApp)

// The EXO queries audits declare. They are shared values so that a Suite running several audits loads each
// cmdlet once: the snapshot appends every page it reads, and two different queries of one cmdlet would
// double its objects.
var (
	// auditMailUsers are the directory-synced plain mail users: the MEUs of a staged migration.
	auditMailUsers = jobs.Query{
		Cmdlet: "Get-MailUser",
		Filter: jobs.MailUserScope,
		Select: []string{"ExternalDirectoryObjectId", "DisplayName", "Alias", "PrimarySmtpAddress", "EmailAddresses",
			"ExternalEmailAddress", "UsePreferMessageFormat", "IsDirSynced", "RecipientTypeDetails"},
	}
	auditMailboxes = jobs.Query{
		Cmdlet: "Get-Mailbox",
		Select: []string{"ExternalDirectoryObjectId", "DisplayName", "PrimarySmtpAddress", "RecipientTypeDetails", "IsDirSynced"},
	}
	auditRemoteDomains = jobs.Query{
		Cmdlet: "Get-RemoteDomain",
		Select: []string{"Identity", "Name", "DomainName", "TNEFEnabled", "ContentType"},
	}
	auditAcceptedDomains = jobs.Query{
		Cmdlet: "Get-AcceptedDomain",
		Select: []string{"DomainName", "DomainType", "Default", "InitialDomain"},
	}
)

// errNoDirectory is returned by an audit planned without Graph's view of the directory.
var errNoDirectory = errors.New("the audit needs the directory from Microsoft Graph, and the snapshot has none")

// domainView answers domain questions for one tenant: which domains are verified (Graph) or accepted
// (Exchange), which are the tenant's own onmicrosoft.com domains, which is the default.
type domainView struct {
	verified    map[string]bool // verified in Entra, lower case
	accepted    map[string]bool // accepted in Exchange, lower case
	onMicrosoft map[string]bool // the tenant's own *.onmicrosoft.com domains, lower case
	defaultName string          // the default domain when it is not an onmicrosoft.com one
	mx          map[string]directory.MX
	mxResolved  bool
}

func newDomainView(t *jobs.Tenant) domainView {
	v := domainView{verified: map[string]bool{}, accepted: map[string]bool{}, onMicrosoft: map[string]bool{}}
	addOnMicrosoft := func(d string) {
		v.onMicrosoft[d] = true
		// The initial domain contoso.onmicrosoft.com comes with contoso.mail.onmicrosoft.com, the routing
		// domain of migrated mailboxes; Graph does not always list it.
		if stem, ok := strings.CutSuffix(d, ".onmicrosoft.com"); ok && !strings.HasSuffix(stem, ".mail") {
			v.onMicrosoft[stem+".mail.onmicrosoft.com"] = true
		}
	}
	if t.Directory != nil {
		for _, d := range t.Directory.Domains {
			name := lower(d.ID)
			if d.IsVerified {
				v.verified[name] = true
			}
			if strings.HasSuffix(name, ".onmicrosoft.com") && (d.IsVerified || d.IsInitial) {
				addOnMicrosoft(name)
			}
			if d.IsDefault && !strings.HasSuffix(name, ".onmicrosoft.com") {
				v.defaultName = name
			}
		}
		v.mx, v.mxResolved = t.Directory.MX, t.Directory.MX != nil
	}
	for _, d := range t.AcceptedDomains {
		name := lower(d.DomainName)
		v.accepted[name] = true
		if d.InitialDomain || strings.HasSuffix(name, ".onmicrosoft.com") {
			addOnMicrosoft(name)
		}
		if d.Default && v.defaultName == "" && !strings.HasSuffix(name, ".onmicrosoft.com") {
			v.defaultName = name
		}
	}
	return v
}

// known reports whether the view has any domains at all; without them domain rules would flag everything.
func (v domainView) known() bool { return len(v.verified) > 0 }

// isOnMicrosoft reports the tenant's own onmicrosoft.com domains (another tenant's, the target of a
// cross-tenant migration, is not one).
func (v domainView) isOnMicrosoft(d string) bool { return v.onMicrosoft[lower(d)] }

// isVanity reports a domain of the tenant's own that is not an onmicrosoft.com one.
func (v domainView) isVanity(d string) bool {
	d = lower(d)
	return (v.verified[d] || v.accepted[d]) && !strings.HasSuffix(d, ".onmicrosoft.com")
}

// isVerified reports a domain Entra accepts for addresses: verified, or one of the tenant's onmicrosoft ones.
func (v domainView) isVerified(d string) bool {
	d = lower(d)
	return v.verified[d] || v.onMicrosoft[d]
}

// exoHostSuffixes are the MX targets of Exchange Online Protection in each cloud.
var exoHostSuffixes = []string{".mail.protection.outlook.com", ".mail.protection.outlook.de",
	".mail.protection.office365.us", ".mail.protection.partner.outlook.cn"}

// mxAtEXO reports whether any MX host of d is Exchange Online; ok is false when the MX is unknown.
func (v domainView) mxAtEXO(d string) (atEXO bool, hosts []string, ok bool) {
	r, found := v.mx[lower(d)]
	if !found || r.Err != "" {
		return false, nil, false
	}
	for _, h := range r.Hosts {
		h = strings.TrimSuffix(lower(h), ".")
		for _, s := range exoHostSuffixes {
			if strings.HasSuffix(h, s) {
				return true, r.Hosts, true
			}
		}
	}
	return false, r.Hosts, true
}

// mxError explains why the MX of d is unknown.
func (v domainView) mxError(d string) string {
	if !v.mxResolved {
		return "no MX resolver ran before the audit"
	}
	r, found := v.mx[lower(d)]
	switch {
	case !found:
		return "the domain was not looked up (it is accepted in Exchange but not verified in Entra)"
	case r.Err != "":
		return r.Err
	}
	return ""
}

// userRef builds the ObjectRef of a Graph user with everything a report needs to address it on-premises.
func userRef(u *directory.User) jobs.ObjectRef {
	return jobs.ObjectRef{
		ID: u.ID, DisplayName: u.DisplayName, Address: primaryOrMail(u.ProxyAddresses, u.Mail), Kind: jobs.ObjectUser,
		OnPremisesImmutableID: u.OnPremisesImmutableID, OnPremisesSamAccountName: u.OnPremisesSamAccountName,
		OnPremisesUserPrincipalName: u.OnPremisesUserPrincipalName, OnPremisesDistinguishedName: u.OnPremisesDistinguishedName,
		Mail: u.Mail,
	}
}

func groupRef(g *directory.Group) jobs.ObjectRef {
	return jobs.ObjectRef{ID: g.ID, DisplayName: g.DisplayName, Address: primaryOrMail(g.ProxyAddresses, g.Mail), Kind: jobs.ObjectGroup,
		OnPremisesSamAccountName: g.OnPremisesSamAccountName, OnPremisesSecurityIdentifier: g.OnPremisesSecurityIdentifier, Mail: g.Mail}
}

func contactRef(c *directory.Contact) jobs.ObjectRef {
	return jobs.ObjectRef{ID: c.ID, DisplayName: c.DisplayName, Address: primaryOrMail(c.ProxyAddresses, c.Mail), Kind: jobs.ObjectContact, Mail: c.Mail}
}

// primaryOrMail is the address a person recognises: the primary SMTP address, else mail.
func primaryOrMail(proxies []string, mail string) string {
	for _, p := range smtpAddresses(proxies) {
		if p.IsPrimary() {
			return p.Value
		}
	}
	return mail
}

// usersByID indexes Graph users by lower-case object id.
func usersByID(s *directory.Snapshot) map[string]*directory.User {
	m := make(map[string]*directory.User, len(s.Users))
	for i := range s.Users {
		m[lower(s.Users[i].ID)] = &s.Users[i]
	}
	return m
}

// isMember reports an internal user (not a B2B guest).
func isMember(u *directory.User) bool { return !strings.EqualFold(u.UserType, "Guest") }

// MXResolver looks up the MX hosts of a domain. internal/mx implements it (through a DNS server tests can
// point at a local one).
type MXResolver interface {
	LookupMX(ctx context.Context, domain string) ([]string, error)
}

// WithMX wraps a DirectoryReader so that every snapshot it returns carries the MX records of the tenant's
// verified domains (Snapshot.MX). Lookups happen here, before planning, because a job's Plan does no I/O.
// A failed lookup is recorded per domain, not returned: the audit reports it as a finding and goes on.
func WithMX(d jobs.DirectoryReader, r MXResolver) jobs.DirectoryReader {
	return &mxDirectory{dir: d, mx: r}
}

type mxDirectory struct {
	dir jobs.DirectoryReader
	mx  MXResolver
}

// mxConcurrency bounds parallel MX lookups; tenants have tens of domains, rarely hundreds.
const mxConcurrency = 8

func (m *mxDirectory) Snapshot(ctx context.Context) (*directory.Snapshot, error) {
	s, err := m.dir.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, d := range s.Domains {
		name := lower(d.ID)
		if d.IsVerified && !strings.HasSuffix(name, ".onmicrosoft.com") && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	results := make([]directory.MX, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(mxConcurrency)
	for i, name := range names {
		g.Go(func() error {
			hosts, err := m.mx.LookupMX(gctx, name)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				results[i] = directory.MX{Err: err.Error()}
				return nil
			}
			norm := make([]string, 0, len(hosts))
			for _, h := range hosts {
				norm = append(norm, strings.TrimSuffix(lower(h), "."))
			}
			results[i] = directory.MX{Hosts: norm}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("look up MX records: %w", err)
	}
	s.MX = make(map[string]directory.MX, len(names))
	for i, name := range names {
		s.MX[name] = results[i]
	}
	return s, nil
}

// Suite runs several audits over one snapshot: the union of their reads is loaded once and their findings
// are concatenated. `worker report` runs its audits as one suite, so a 20,000-object tenant is read once.
type Suite struct {
	name string
	jobs []jobs.Job
}

// NewSuite combines audit jobs. It refuses remediation jobs (a suite only reports) and two jobs that read
// the same cmdlet with different queries (the snapshot would hold that cmdlet's objects twice).
func NewSuite(name string, js ...jobs.Job) (*Suite, error) {
	if len(js) == 0 {
		return nil, errors.New("jobs: a suite needs at least one audit")
	}
	seen := map[string]jobs.Query{}
	for _, j := range js {
		d := j.Describe()
		if d.Kind != jobs.KindAudit {
			return nil, fmt.Errorf("jobs: %s is a %s job; a suite only runs audits", j.Name(), d.Kind)
		}
		for _, q := range d.Reads {
			if prev, ok := seen[q.Cmdlet]; ok && !sameQuery(prev, q) {
				return nil, fmt.Errorf("jobs: %s reads %s with a different query than another audit of the suite", j.Name(), q.Cmdlet)
			}
			seen[q.Cmdlet] = q
		}
	}
	return &Suite{name: name, jobs: js}, nil
}

func sameQuery(a, b jobs.Query) bool {
	return a.Cmdlet == b.Cmdlet && a.Filter == b.Filter && slices.Equal(a.Select, b.Select)
}

// Name implements Job.
func (s *Suite) Name() string { return s.name }

// Jobs lists the audits of the suite.
func (s *Suite) Jobs() []jobs.Job { return slices.Clone(s.jobs) }

// Describe implements Job: the union of the audits' reads and permissions.
func (s *Suite) Describe() jobs.Description {
	d := jobs.Description{Kind: jobs.KindAudit}
	var names []string
	for _, j := range s.jobs {
		jd := j.Describe()
		names = append(names, j.Name())
		d.NeedsDirectory = d.NeedsDirectory || jd.NeedsDirectory
		for _, q := range jd.Reads {
			if !slices.ContainsFunc(d.Reads, func(p jobs.Query) bool { return sameQuery(p, q) }) {
				d.Reads = append(d.Reads, q)
			}
		}
		for _, p := range jd.Permissions {
			if !slices.Contains(d.Permissions, p) {
				d.Permissions = append(d.Permissions, p)
			}
		}
	}
	d.Summary = "Audits " + strings.Join(names, ", ") + " over one read of the tenant"
	return d
}

// Plan implements Job: each audit plans over the same snapshot; InScope is the largest of their scopes.
func (s *Suite) Plan(ctx context.Context, t *jobs.Tenant) (jobs.Plan, error) {
	var p jobs.Plan
	for _, j := range s.jobs {
		jp, err := j.Plan(ctx, t)
		if err != nil {
			return jobs.Plan{}, fmt.Errorf("%s: %w", j.Name(), err)
		}
		p.InScope = max(p.InScope, jp.InScope)
		for _, f := range jp.Findings {
			// Say which audit reported it: an exception naming that audit covers the finding.
			f.Job = j.Name()
			p.Findings = append(p.Findings, f)
		}
	}
	jobs.SortFindings(p.Findings)
	return p, nil
}

// exoMailUsers indexes the in-scope MEUs by lower-case ExternalDirectoryObjectId, defending the scope
// client-side (guests, cloud-only and mailboxes are never MEUs here).
func exoMailUsers(t *jobs.Tenant) map[string]*exo.MailUser {
	m := make(map[string]*exo.MailUser, len(t.MailUsers))
	for i := range t.MailUsers {
		mu := &t.MailUsers[i]
		if !mu.IsDirSynced || mu.RecipientTypeDetails != "MailUser" || mu.ExternalDirectoryObjectId == "" {
			continue
		}
		m[lower(mu.ExternalDirectoryObjectId)] = mu
	}
	return m
}
