package exo

import (
	"fmt"
	"slices"
	"strings"
)

// SyncOwned reports whether directory sync owns what a cmdlet parameter writes on a dir-synced object
// (IsDirSynced = True), and if so why: such a write is refused by Exchange Online, so a job that declares it
// for dir-synced objects cannot work and is refused when it registers. Only Set-MailUser is tabled; other
// cmdlets report owned = false. Cmdlet and parameter names are case-insensitive.
//
// The table maps each Set-MailUser parameter to the Active Directory attribute it writes and keeps those
// that Microsoft Entra Connect synchronizes. Sources:
//
//   - Microsoft Entra Connect Sync: Attributes synchronized to Microsoft Entra ID, section "Exchange Online"
//     (MicrosoftDocs/entra-docs, docs/identity/hybrid/connect/reference-connect-sync-attributes-synchronized.md,
//     ms.date 04/09/2025): proxyAddresses, targetAddress, mailNickname, cn, displayName,
//     msExchHideFromAddressLists, extensionAttribute1–15, msExchExtensionCustomAttribute1–5, authOrig,
//     unauthOrig, dLMemSubmitPerms, dLMemRejectPerms, publicDelegates, msExchEnableModeration,
//     msExchModeratedByLink, msExchRequireAuthToSendTo, msExchSenderHintTranslations, userPrincipalName; "mail"
//     is in the page's other workloads' lists. mAPIRecipient (UseMapiRichTextFormat) and internetEncoding
//     (MessageFormat & co.) are in none, so they stay writable in the cloud.
//   - Exchange Online's refusal of such a write, as the service words it (research/exo-protocol.md §2.4, §5):
//     "The operation on mailbox "<name>" failed because it's out of the current user's write scope. The
//     action 'Set-MailUser', '<parameter>', can't be performed on the object '<name>' because the object is
//     being synchronized from your on-premises organization." — classified as KindDirSyncWriteRefused.
//
// The simulator (internal/sim/exoapi) refuses writes from the same table, so the two cannot drift apart.
func SyncOwned(cmdlet, param string) (reason string, owned bool) {
	if !strings.EqualFold(cmdlet, "Set-MailUser") {
		return "", false
	}
	i := slices.IndexFunc(syncOwnedMailUser, func(p syncOwnedParam) bool { return strings.EqualFold(p.param, param) })
	if i < 0 {
		return "", false
	}
	p := syncOwnedMailUser[i]
	return fmt.Sprintf("Set-MailUser -%s writes the AD attribute %s, which Microsoft Entra Connect synchronizes from "+
		"on-premises Active Directory; on a dir-synced mail user Exchange Online refuses the write (\"%s ... %s\"). "+
		"Change it in on-premises AD, or limit the job to cloud objects", p.param, p.attribute, textWriteScope, textDirSync), true
}

// SyncOwnedParams lists the parameters of cmdlet that SyncOwned reports as owned, in the table's order.
func SyncOwnedParams(cmdlet string) []string {
	if !strings.EqualFold(cmdlet, "Set-MailUser") {
		return nil
	}
	out := make([]string, len(syncOwnedMailUser))
	for i, p := range syncOwnedMailUser {
		out[i] = p.param
	}
	return out
}

type syncOwnedParam struct{ param, attribute string }

// syncOwnedMailUser: Set-MailUser parameter → the synchronized AD attribute it writes (see SyncOwned).
var syncOwnedMailUser = func() []syncOwnedParam {
	t := []syncOwnedParam{
		{"EmailAddresses", "proxyAddresses"},
		{"ExternalEmailAddress", "targetAddress"},
		{"HiddenFromAddressListsEnabled", "msExchHideFromAddressLists"},
		{"DisplayName", "displayName"},
		{"Alias", "mailNickname"},
		{"Name", "cn"},
		{"WindowsEmailAddress", "mail"},
		{"MicrosoftOnlineServicesID", "userPrincipalName"},
		{"UserPrincipalName", "userPrincipalName"},
	}
	for i := 1; i <= 15; i++ {
		t = append(t, syncOwnedParam{fmt.Sprintf("CustomAttribute%d", i), fmt.Sprintf("extensionAttribute%d", i)})
	}
	for i := 1; i <= 5; i++ {
		t = append(t, syncOwnedParam{fmt.Sprintf("ExtensionCustomAttribute%d", i), fmt.Sprintf("msExchExtensionCustomAttribute%d", i)})
	}
	return append(t,
		syncOwnedParam{"AcceptMessagesOnlyFrom", "authOrig"},
		syncOwnedParam{"AcceptMessagesOnlyFromDLMembers", "dLMemSubmitPerms"},
		syncOwnedParam{"AcceptMessagesOnlyFromSendersOrMembers", "authOrig and dLMemSubmitPerms"},
		syncOwnedParam{"RejectMessagesFrom", "unauthOrig"},
		syncOwnedParam{"RejectMessagesFromDLMembers", "dLMemRejectPerms"},
		syncOwnedParam{"RejectMessagesFromSendersOrMembers", "unauthOrig and dLMemRejectPerms"},
		syncOwnedParam{"GrantSendOnBehalfTo", "publicDelegates"},
		syncOwnedParam{"ModerationEnabled", "msExchEnableModeration"},
		syncOwnedParam{"ModeratedBy", "msExchModeratedByLink"},
		syncOwnedParam{"RequireSenderAuthenticationEnabled", "msExchRequireAuthToSendTo"},
		syncOwnedParam{"MailTip", "msExchSenderHintTranslations"},
		syncOwnedParam{"MailTipTranslations", "msExchSenderHintTranslations"},
	)
}()
