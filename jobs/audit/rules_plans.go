package audit

import (
	"strings"

	"github.com/exo-worker/worker/internal/directory"
)

// mailboxPlans are the Exchange Online service plans that give a user a primary mailbox, by service plan id
// (licensing-service-plan-reference; peers.md §3.8). Names are kept for messages.
var mailboxPlans = map[string]string{
	"9aaf7827-d63c-4b61-89c3-182f06f82e5c": "EXCHANGE_S_STANDARD",
	"efb87545-963c-4e0d-99df-69c6916d9eb0": "EXCHANGE_S_ENTERPRISE",
	"4a82b400-a79f-41a4-b4e2-e94f5787b113": "EXCHANGE_S_DESKLESS",
	"1126bef5-da20-4f07-b45e-ad25d2581aa8": "EXCHANGE_S_ESSENTIALS",
	"90927877-dcff-4af6-b346-2332c0b15bb7": "EXCHANGE_B_STANDARD",
	"d42bdbd6-c335-4231-ab3d-c8f348d5aff5": "EXCHANGE_L_STANDARD",
	"fc52cc4b-ed7d-472d-bbe7-b081c23ecc56": "EXCHANGE_S_STANDARD_MIDMARKET",
	"e9b4930a-925f-45e2-ac2a-3f7788ca6fdd": "EXCHANGE_S_STANDARD_GOV",
	"8c3069c0-ccdb-44be-ab77-986203a67df2": "EXCHANGE_S_ENTERPRISE_GOV",
}

// nonMailboxPlans are Exchange-service plans that do not give a mailbox: the foundation plan bundled in many
// non-mail SKUs (Entra ID P1, EMS, Dynamics, Power BI) and archive add-ons. They are listed so that a
// tenant's SKU list naming them is never mistaken for a mailbox plan.
var nonMailboxPlans = map[string]string{
	"113feb6c-3fe4-4440-bddc-54d774bf0318": "EXCHANGE_S_FOUNDATION",
	"176a09a6-7ec5-4039-ac02-b2791c6ba793": "EXCHANGE_S_ARCHIVE_ADDON",
	"da040e0a-b393-4bea-bb76-928b3fa1cf5a": "EXCHANGE_S_ARCHIVE",
	"90b5e015-709a-4b8b-b08e-3200f994494c": "EXCHANGE_S_ARCHIVE (for Exchange Online)",
}

// mailboxPlanName reports whether a service plan name gives a mailbox. Names cover plans whose ids the
// table above lacks (for example the _GOV kiosk variant) when the tenant's subscribedSkus name them.
func mailboxPlanName(name string) bool {
	n := strings.ToUpper(name)
	if strings.Contains(n, "FOUNDATION") || strings.Contains(n, "ARCHIVE") || strings.Contains(n, "ANALYTICS") {
		return false
	}
	for _, p := range []string{"EXCHANGE_S_STANDARD", "EXCHANGE_S_ENTERPRISE", "EXCHANGE_S_DESKLESS",
		"EXCHANGE_S_ESSENTIALS", "EXCHANGE_B_STANDARD", "EXCHANGE_L_STANDARD"} {
		if n == p || strings.HasPrefix(n, p+"_") {
			return true
		}
	}
	return false
}

// planCatalog classifies the service plans of one tenant: the fixed table plus the names its SKUs give.
type planCatalog struct {
	mailbox map[string]string // lower-case plan id → name
}

func newPlanCatalog(skus []directory.SubscribedSKU) planCatalog {
	c := planCatalog{mailbox: make(map[string]string, len(mailboxPlans))}
	for id, n := range mailboxPlans {
		c.mailbox[id] = n
	}
	for _, s := range skus {
		for _, p := range s.ServicePlans {
			id := lower(p.ServicePlanID)
			if _, known := nonMailboxPlans[id]; known {
				continue
			}
			if mailboxPlanName(p.ServicePlanName) {
				c.mailbox[id] = p.ServicePlanName
			}
		}
	}
	return c
}

// activeStatus reports plan states that still provision a mailbox: Enabled, and Warning (the grace period
// after a subscription lapses).
func activeStatus(s string) bool {
	return strings.EqualFold(s, "Enabled") || strings.EqualFold(s, "Warning")
}

// mailboxPlan returns the first active mailbox plan of a user ("" if none). EXCHANGE_S_FOUNDATION and
// archive plans never count.
func (c planCatalog) mailboxPlan(u *directory.User) string {
	for _, p := range u.AssignedPlans {
		if !activeStatus(p.CapabilityStatus) {
			continue
		}
		if n, ok := c.mailbox[lower(p.ServicePlanID)]; ok {
			return n
		}
	}
	return ""
}

// MailboxPlans classifies a tenant's service plans the way the licence audit does, for remediation jobs that
// act on licence state (jobs/mailboxlicense): one table of Exchange mailbox plans in the library.
type MailboxPlans struct{ c planCatalog }

// NewMailboxPlans builds the classification from the fixed table and the names the tenant's SKUs give.
func NewMailboxPlans(skus []directory.SubscribedSKU) MailboxPlans {
	return MailboxPlans{c: newPlanCatalog(skus)}
}

// Of returns the name of the user's first active Exchange mailbox plan, "" when it holds none
// (EXCHANGE_S_FOUNDATION and archive plans never count; Enabled and Warning are active).
func (m MailboxPlans) Of(u *directory.User) string { return m.c.mailboxPlan(u) }
