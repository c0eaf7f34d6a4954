package exo

import (
	"strings"
	"testing"
)

func TestSyncOwned(t *testing.T) {
	tests := []struct {
		cmdlet, param string
		owned         bool
		attribute     string
	}{
		{"Set-MailUser", "EmailAddresses", true, "proxyAddresses"},
		{"set-mailuser", "emailaddresses", true, "proxyAddresses"}, // case-insensitive, as PowerShell
		{"Set-MailUser", "ExternalEmailAddress", true, "targetAddress"},
		{"Set-MailUser", "HiddenFromAddressListsEnabled", true, "msExchHideFromAddressLists"},
		{"Set-MailUser", "CustomAttribute15", true, "extensionAttribute15"},
		{"Set-MailUser", "ExtensionCustomAttribute5", true, "msExchExtensionCustomAttribute5"},
		{"Set-MailUser", "MailTip", true, "msExchSenderHintTranslations"},
		// Not synchronized by Entra Connect: writable in the cloud on dir-synced objects (job 1 writes it).
		{"Set-MailUser", "UseMapiRichTextFormat", false, ""},
		{"Set-MailUser", "MessageFormat", false, ""},
		{"Set-MailUser", "MessageBodyFormat", false, ""},
		{"Set-MailUser", "CustomAttribute16", false, ""},
		{"Set-MailUser", "", false, ""},
		// Only Set-MailUser is tabled.
		{"Get-MailUser", "EmailAddresses", false, ""},
		{"Set-Mailbox", "EmailAddresses", false, ""},
	}
	for _, tt := range tests {
		reason, owned := SyncOwned(tt.cmdlet, tt.param)
		if owned != tt.owned {
			t.Errorf("SyncOwned(%q, %q) owned = %v, want %v", tt.cmdlet, tt.param, owned, tt.owned)
			continue
		}
		if !owned {
			if reason != "" {
				t.Errorf("SyncOwned(%q, %q): reason %q for a parameter it does not own", tt.cmdlet, tt.param, reason)
			}
			continue
		}
		for _, want := range []string{tt.attribute, "Entra Connect", "on-premises", textDirSync} {
			if !strings.Contains(reason, want) {
				t.Errorf("SyncOwned(%q, %q) reason %q lacks %q", tt.cmdlet, tt.param, reason, want)
			}
		}
	}
}

// TestSyncOwnedParamsMatchesSyncOwned: the list the simulator refuses from is exactly what SyncOwned owns.
func TestSyncOwnedParamsMatchesSyncOwned(t *testing.T) {
	ps := SyncOwnedParams("Set-MailUser")
	if len(ps) < 40 {
		t.Fatalf("%d parameters; the table has lost entries", len(ps))
	}
	seen := map[string]bool{}
	for _, p := range ps {
		if _, owned := SyncOwned("Set-MailUser", p); !owned {
			t.Errorf("%s listed but not owned", p)
		}
		if seen[strings.ToLower(p)] {
			t.Errorf("%s listed twice", p)
		}
		seen[strings.ToLower(p)] = true
	}
	if SyncOwnedParams("Set-Mailbox") != nil {
		t.Error("Set-Mailbox has no table")
	}
}
