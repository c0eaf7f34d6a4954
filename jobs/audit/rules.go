package audit

import (
	"fmt"
	"sort"
	"strings"

	"github.com/exo-worker/worker/jobs"
)

// Rule is one entry of the audit catalogue: what an audit checks, how bad it is, why it matters and how it
// is fixed at its source. Synced attributes cannot be changed in the cloud, so the fix is almost always an
// Active Directory attribute; Entra Connect carries it to Entra ID and Exchange Online on its next cycle.
type Rule struct {
	ID       string
	Title    string
	Severity jobs.Severity
	// Area groups rules in `worker rules` and in reports: address, identity, license, mail-user, group, contact.
	Area string
	// Explanation is one paragraph a junior admin understands: what the cloud shows, why it is a problem.
	Explanation string
	// Fix says in words what to change; OnPremAttribute and OnPremAction name the AD change when there is one.
	Fix             string
	OnPremAttribute string
	OnPremAction    string // add | replace | remove; "" when the fix is not an AD attribute
	// OnPremOnly marks mistakes the cloud never shows (sync rejects or skips the object): a cloud audit cannot
	// find them; they need an audit of Active Directory itself. They are listed so an admin knows they exist.
	OnPremOnly bool
	// Job is the audit that reports the rule ("" for on-prem-only rules).
	Job string
	// Source is where the behaviour is documented (or "inference" where it is not).
	Source string
}

// Rule ids. Findings carry these; reports and the store key on them, so they never change meaning.
const (
	RuleAddressPrimaryCount     = "address-primary-count"
	RuleAddressPrimaryNotMail   = "address-primary-not-mail"
	RuleAddressOnMicrosoft      = "address-onmicrosoft-primary"
	RuleAddressDuplicate        = "address-duplicate"
	RuleAddressUnverifiedDomain = "address-unverified-domain"

	RuleUPNUnverifiedSuffix = "upn-unverified-suffix"
	RuleSyncConflictUPN     = "sync-conflict-upn"
	RuleSyncConflictProxy   = "sync-conflict-proxy"

	RuleLicenseOnMailUser     = "license-exchange-on-mailuser"
	RuleLicenseMailboxMissing = "license-mailbox-missing"
	RuleMailboxUnlicensed     = "mailbox-unlicensed"

	RuleMEUTargetMissing      = "meu-target-missing"
	RuleMEUTargetTenantDomain = "meu-target-tenant-domain"
	RuleMEUTargetMXCutover    = "meu-target-mx-exo"
	RuleDomainMXUnknown       = "domain-mx-unknown"
	RuleRemoteDomainTNEF      = "remote-domain-tnef"

	RuleGroupNoMail       = "group-no-mail"
	RuleContactNoMail     = "contact-no-mail"
	RuleInvalidCharacters = "onprem-invalid-characters"
	RuleAttributeLength   = "onprem-attribute-length"
	RuleGroupDisplayName  = "group-displayname-invalid"
	RuleDuplicateMail     = "onprem-duplicate-mail"
)

// Audit job names.
const (
	AddressAuditName  = "address-audit"
	IdentityAuditName = "identity-audit"
	LicenseAuditName  = "license-audit"
	MEUAuditName      = "meu-audit"
)

const (
	srcProxyCalc  = "SupportArticles-docs: entra-id/user-prov-sync/proxyaddresses-attribute-populate.md"
	srcUPN        = "entra-docs: hybrid/connect/plan-connect-userprincipalname.md"
	srcResilience = "learn.microsoft.com: how-to-connect-syncservice-duplicate-attribute-resiliency; Graph onPremisesProvisioningError"
	srcDefault    = "entra-docs: hybrid/connect/concept-azure-ad-connect-sync-default-configuration.md"
	srcIdFix      = "microsoft/idfix: docs/Errors supported by the IdFix tool.md; microsoft-365-docs: prepare-for-directory-synchronization.md"
	srcPlans      = "entra-docs: identity/users/licensing-service-plan-reference.md"
)

var catalogue = []Rule{
	{
		ID: RuleAddressPrimaryCount, Title: "No primary SMTP address, or more than one", Severity: jobs.SeverityHigh, Area: "address", Job: AddressAuditName,
		Explanation:     "Every mail-enabled object needs exactly one primary address, written with an upper-case \"SMTP:\" prefix in proxyAddresses; the others are secondary (\"smtp:\"). With none, Exchange picks one for you (often the onmicrosoft.com address); with two, which one wins is not defined and replies go out from the wrong address.",
		Fix:             "In AD, keep exactly one SMTP: entry in proxyAddresses (the address people should see) and write the others with a lower-case smtp: prefix.",
		OnPremAttribute: "proxyAddresses", OnPremAction: "add or remove", Source: "office-docs-powershell: Set-MailUser.md (EmailAddresses); " + srcProxyCalc,
	},
	{
		ID: RuleAddressPrimaryNotMail, Title: "Primary SMTP address differs from mail", Severity: jobs.SeverityMedium, Area: "address", Job: AddressAuditName,
		Explanation:     "The mail attribute and the SMTP: entry of proxyAddresses both reach the cloud and disagree. Address books, Teams and some applications use mail, Exchange uses the primary SMTP address, so people see two different addresses for the same person and replies can go to the wrong one.",
		Fix:             "In AD, set mail to the primary SMTP address (or, if mail is the address you want, make that address the SMTP: entry).",
		OnPremAttribute: "mail", OnPremAction: "replace", Source: srcProxyCalc,
	},
	{
		ID: RuleAddressOnMicrosoft, Title: "Primary address is an onmicrosoft.com address", Severity: jobs.SeverityHigh, Area: "address", Job: AddressAuditName,
		Explanation:     "The object's only or primary SMTP address is at the tenant's *.onmicrosoft.com domain. This happens when mail was never set in AD, when the UPN is not at a verified domain, or when an Exchange licence was removed and Entra promoted the onmicrosoft.com address. Mail sent from it shows a technical address, and partners cannot reply to the company domain.",
		Fix:             "In AD, set mail to the address at your own domain (and, if proxyAddresses is used, add it there as the SMTP: entry).",
		OnPremAttribute: "mail", OnPremAction: "replace", Source: srcProxyCalc,
	},
	{
		ID: RuleAddressDuplicate, Title: "Same SMTP address on two objects (or twice on one)", Severity: jobs.SeverityHigh, Area: "address", Job: AddressAuditName,
		Explanation:     "An SMTP address must belong to exactly one recipient. When two synced objects carry the same address, mail for it goes to whichever Exchange resolves first, or bounces. Entra usually quarantines the second copy (see sync-conflict-proxy); this rule catches what reached the cloud anyway.",
		Fix:             "In AD, remove the address from the object that should not have it.",
		OnPremAttribute: "proxyAddresses", OnPremAction: "remove", Source: srcResilience,
	},
	{
		ID: RuleAddressUnverifiedDomain, Title: "Address at a domain the tenant has not verified", Severity: jobs.SeverityMedium, Area: "address", Job: AddressAuditName,
		Explanation:     "An SMTP address is at a domain that is not a verified domain of the tenant. Exchange Online cannot receive mail for it. For users with an Exchange licence Entra silently drops such addresses; on unlicensed objects (mail users, groups) they stay and mislead people who copy them.",
		Fix:             "Verify the domain in the tenant if it is yours; otherwise remove the address from proxyAddresses in AD.",
		OnPremAttribute: "proxyAddresses", OnPremAction: "remove", Source: srcProxyCalc,
	},
	{
		ID: RuleUPNUnverifiedSuffix, Title: "UPN suffix is not a verified domain", Severity: jobs.SeverityHigh, Area: "identity", Job: IdentityAuditName,
		Explanation:     "The user's on-premises userPrincipalName ends in a domain the tenant has not verified (for example contoso.local). Entra replaced it with <mailNickname>@<tenant>.onmicrosoft.com, so the user signs in to Microsoft 365 with a name that differs from the one they use on-premises, and licensed users get an onmicrosoft.com address.",
		Fix:             "In AD, change the UPN suffix to a verified domain (add it as an alternative UPN suffix of the forest first if needed).",
		OnPremAttribute: "userPrincipalName", OnPremAction: "replace", Source: srcUPN,
	},
	{
		ID: RuleSyncConflictUPN, Title: "Duplicate userPrincipalName quarantined by Entra", Severity: jobs.SeverityHigh, Area: "identity", Job: IdentityAuditName,
		Explanation:     "Another object already uses this user's userPrincipalName. Entra kept the first one and gave this user a generated name (<prefix><4 digits>@<tenant>.onmicrosoft.com), shown as a PropertyConflict provisioning error. The user cannot sign in with the name they expect.",
		Fix:             "In AD, give one of the two objects a unique userPrincipalName; the next sync clears the error.",
		OnPremAttribute: "userPrincipalName", OnPremAction: "replace", Source: srcResilience,
	},
	{
		ID: RuleSyncConflictProxy, Title: "Duplicate proxy address quarantined by Entra", Severity: jobs.SeverityHigh, Area: "identity", Job: IdentityAuditName,
		Explanation:     "Another object already has one of this object's SMTP addresses. Entra kept the address on the first object and left it off this one (a PropertyConflict provisioning error), so mail to that address never reaches this object.",
		Fix:             "In AD, remove the duplicate address from the object that should not have it; the next sync clears the error.",
		OnPremAttribute: "proxyAddresses", OnPremAction: "remove", Source: srcResilience,
	},
	{
		ID: RuleLicenseOnMailUser, Title: "Exchange licence on a user who is still a mail user", Severity: jobs.SeverityHigh, Area: "license", Job: LicenseAuditName,
		Explanation: "The user has an Exchange Online mailbox plan (Plan 1, Plan 2, Kiosk, Essentials, ... and their government variants) but Exchange Online still shows a mail user whose mail goes on-premises. During a staged migration that means the licence was assigned before the mailbox was moved: Exchange Online may create a second, empty mailbox, or fail to provision. Either way an admin must act before the next migration batch.",
		Fix:         "Remove the licence (or the Exchange plan) until the mailbox has been migrated, or migrate the mailbox now. Licences are not an AD attribute: change them in Entra, or in the AD group that drives group-based licensing.",
		Source:      srcPlans + "; DESIGN.md 'What the cloud can show'",
	},
	{
		ID: RuleLicenseMailboxMissing, Title: "Licensed user without a mailbox", Severity: jobs.SeverityHigh, Area: "license", Job: LicenseAuditName,
		Explanation: "The user has an Exchange Online mailbox plan but Exchange Online has no mailbox (and no mail user) for them. Usually provisioning failed; Graph then shows a serviceProvisioningError from Exchange that names the reason (often a duplicate address or an invalid attribute synced from AD). The user has no mail until it is fixed.",
		Fix:         "Read the Exchange provisioning error in the finding, fix the attribute it names in AD, and let sync run; reprocess the licence if the error stays.",
		Source:      "Graph serviceProvisioningXmlError; " + srcPlans,
	},
	{
		ID: RuleMailboxUnlicensed, Title: "User mailbox without an Exchange licence", Severity: jobs.SeverityMedium, Area: "license", Job: LicenseAuditName,
		Explanation: "Exchange Online has a user mailbox for a synced user who has no enabled Exchange mailbox plan (EXCHANGE_S_FOUNDATION does not count). Exchange disables an unlicensed mailbox after a 30-day grace period and deletes its content later.",
		Fix:         "Assign a licence with an Exchange plan, or convert the mailbox to a shared mailbox if nobody signs in to it.",
		Source:      srcPlans,
	},
	{
		ID: RuleMEUTargetMissing, Title: "Mail user without targetAddress", Severity: jobs.SeverityHigh, Area: "mail-user", Job: MEUAuditName,
		Explanation:     "A synced mail user has no ExternalEmailAddress (AD targetAddress). Exchange Online does not know where to deliver its mail, so mail from cloud mailboxes to this person bounces.",
		Fix:             "In AD, set targetAddress to the address the on-premises mail system receives for this user (usually SMTP: plus its primary address).",
		OnPremAttribute: "targetAddress", OnPremAction: "replace", Source: "peers.md §3.7; IdFix targetAddress rules",
	},
	{
		ID: RuleMEUTargetTenantDomain, Title: "Mail user targetAddress points back into the tenant", Severity: jobs.SeverityHigh, Area: "mail-user", Job: MEUAuditName,
		Explanation:     "A synced mail user's ExternalEmailAddress is at the tenant's own *.onmicrosoft.com or *.mail.onmicrosoft.com domain. That is the target of a migrated (remote) mailbox, but this object has no mailbox in the cloud: Exchange Online sends the mail to itself and it loops until it bounces.",
		Fix:             "If the mailbox is still on-premises, set targetAddress back to the on-premises address; if it was migrated, finish the migration (licence, mailbox) so the object becomes a mailbox.",
		OnPremAttribute: "targetAddress", OnPremAction: "replace", Source: "DESIGN.md 'What the cloud can show'",
	},
	{
		ID: RuleMEUTargetMXCutover, Title: "Mail user targetAddress at a domain whose MX points to Exchange Online", Severity: jobs.SeverityHigh, Area: "mail-user", Job: MEUAuditName,
		Explanation:     "A synced mail user forwards to an address at one of the tenant's own domains, and that domain's MX record now points at Exchange Online (*.mail.protection.outlook.com). During a staged migration this is normal while the MX still points on-premises; once the MX is cut over, Exchange Online receives the forwarded mail again and it loops, unless an outbound connector routes that domain on-premises.",
		Fix:             "Point targetAddress at a routing domain that still reaches the on-premises mail system (for example onprem.contoso.com), or migrate the mailbox.",
		OnPremAttribute: "targetAddress", OnPremAction: "replace", Source: "DESIGN.md 'What the cloud can show' (inference for the connector exception)",
	},
	{
		ID: RuleDomainMXUnknown, Title: "MX record of a target domain could not be read", Severity: jobs.SeverityLow, Area: "mail-user", Job: MEUAuditName,
		Explanation: "Mail users forward to this tenant domain, but its MX record could not be looked up, so the audit could not tell whether the forwarding loops. This is a finding about the audit, not about AD.",
		Fix:         "Check DNS for the domain (dig MX domain) and rerun the audit.",
		Source:      "inference",
	},
	{
		ID: RuleRemoteDomainTNEF, Title: "Remote domain forces TNEF for mail users' target domain", Severity: jobs.SeverityMedium, Area: "mail-user", Job: MEUAuditName,
		Explanation: "Exchange decides a message's format per recipient: a remote domain with TNEFEnabled $true overrides a mail user's UseMapiRichTextFormat unless the mail user's UsePreferMessageFormat is $true. Meeting requests to the on-premises users under it then go out as TNEF (winmail.dat), which the on-premises server shows as plain text: meu-richtext's fix is written but not effective.",
		Fix:         "Keep jobs.meu-richtext.prefer_message_format: true (the default; it sets UsePreferMessageFormat=$true on each MEU), or Set-RemoteDomain -Identity <name> -TNEFEnabled $null for the domain.",
		Source:      "Set-MailUser (UsePreferMessageFormat) and Set-RemoteDomain (TNEFEnabled) docs, MicrosoftDocs/office-docs-powershell",
	},
	{
		ID: RuleGroupNoMail, Title: "Distribution group without mail", Severity: jobs.SeverityHigh, Area: "group", OnPremOnly: true,
		Explanation:     "A distribution group in AD without mail (or without an SMTP: entry in proxyAddresses) is not mail-enabled, so Entra Connect does not sync it as a recipient: it is simply missing from the cloud address list. A cloud audit cannot see it; it needs an AD source.",
		Fix:             "In AD, set mail and add SMTP:<mail> to proxyAddresses (and mailNickname), then let sync run.",
		OnPremAttribute: "mail", OnPremAction: "replace", Source: srcDefault,
	},
	{
		ID: RuleContactNoMail, Title: "Contact without mail", Severity: jobs.SeverityMedium, Area: "contact", OnPremOnly: true,
		Explanation:     "A contact in AD syncs only if it has mail and is mail-enabled (an SMTP: entry in proxyAddresses, or mail containing @). Without it the contact never reaches the cloud address list. A cloud audit cannot see it; it needs an AD source.",
		Fix:             "In AD, set mail (and targetAddress, proxyAddresses SMTP:<mail>) on the contact.",
		OnPremAttribute: "mail", OnPremAction: "replace", Source: srcDefault,
	},
	{
		ID: RuleInvalidCharacters, Title: "Invalid characters in a synced attribute", Severity: jobs.SeverityHigh, Area: "identity", OnPremOnly: true,
		Explanation: "proxyAddresses, mail, mailNickname, targetAddress and userPrincipalName must not contain spaces, < > ( ) ; , [ ] \" or non-ASCII letters (X500 and other non-SMTP addresses excepted). Sync rejects the change with an export error in Entra Connect, and the cloud keeps the old value, so a cloud audit sees nothing. IdFix finds these in AD.",
		Fix:         "Run IdFix against AD and correct the values it lists.",
		Source:      srcIdFix,
	},
	{
		ID: RuleAttributeLength, Title: "Attribute too long for sync", Severity: jobs.SeverityMedium, Area: "identity", OnPremOnly: true,
		Explanation: "proxyAddresses values over 256 characters, UPNs over 113 (64 before the @, 48 after), mailNickname over 64 characters are rejected by sync; the cloud keeps the old state.",
		Fix:         "Run IdFix against AD and shorten the values it lists.",
		Source:      srcIdFix,
	},
	{
		ID: RuleGroupDisplayName, Title: "Group displayName blank or padded", Severity: jobs.SeverityLow, Area: "group", OnPremOnly: true,
		Explanation:     "A group's displayName must not be blank or start or end with a space; sync rejects it. The cloud keeps the old name.",
		Fix:             "In AD, set a displayName without leading or trailing spaces.",
		OnPremAttribute: "displayName", OnPremAction: "replace", Source: srcIdFix,
	},
	{
		ID: RuleDuplicateMail, Title: "Duplicate mail attribute across objects", Severity: jobs.SeverityMedium, Area: "address", OnPremOnly: true,
		Explanation:     "Two AD objects with the same mail value: only the first one syncs it, later ones do not appear with that address. Entra shows nothing on the second object when the value is not also a proxy address.",
		Fix:             "Run IdFix (Duplicate errors) and keep the mail value on one object only.",
		OnPremAttribute: "mail", OnPremAction: "replace", Source: "microsoft-365-docs: prepare-for-directory-synchronization.md",
	},
}

// Rules returns the catalogue, sorted by area then id. The slice is a copy.
func Rules() []Rule {
	out := append([]Rule(nil), catalogue...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Area != out[j].Area {
			return out[i].Area < out[j].Area
		}
		return out[i].ID < out[j].ID
	})
	return out
}

var ruleIndex = func() map[string]Rule {
	m := make(map[string]Rule, len(catalogue))
	for _, r := range catalogue {
		m[r.ID] = r
	}
	return m
}()

// LookupRule returns the catalogue entry for a rule id.
func LookupRule(id string) (Rule, bool) {
	r, ok := ruleIndex[id]
	return r, ok
}

// newFinding builds a finding with the severity the catalogue gives the rule, so a rule's severity is set
// in one place. An unknown id is a programming error caught by the catalogue test.
func newFinding(rule string, obj jobs.ObjectRef, fix *jobs.OnPremFix, format string, args ...any) jobs.Finding {
	r := ruleIndex[rule]
	return jobs.Finding{Rule: rule, Severity: r.Severity, Object: obj, Detail: fmt.Sprintf(format, args...), OnPrem: fix}
}

// lower is strings.ToLower, named for the many case-insensitive comparisons of addresses and domains.
func lower(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
