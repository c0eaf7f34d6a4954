package exoapi

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/sim/tenant"
)

func opathObjects() map[string]*tenant.Object {
	return map[string]*tenant.Object{
		"jane": {
			ID: "3f2b9c1e-5a7d-4c1b-9e0f-1a2b3c4d5e6f", Guid: "0b6d2f7a-1111-4c2e-8d3f-222233334444",
			Name: "Jane O'Brien", Alias: "jane.obrien", DisplayName: "Jane O'Brien", RecipientType: "MailUser",
			RecipientTypeDetails: "MailUser", IsDirSynced: true, PrimarySmtpAddress: "jane.obrien@contoso.com",
			EmailAddresses: []string{"SMTP:jane.obrien@contoso.com", "smtp:jane@contoso.mail.onmicrosoft.com",
				"X500:/o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=jane"},
			ExternalEmailAddress: "SMTP:jane.obrien@contoso.com", UserPrincipalName: "jane.obrien@contoso.com",
			WhenCreated: time.Date(2023, 3, 1, 10, 11, 12, 0, time.UTC), CustomAttributes: [15]string{"", "Finance"},
		},
		"guest": {
			ID: "aaaaaaaa-5a7d-4c1b-9e0f-1a2b3c4d5e6f", Name: "aaaaaaaa-5a7d-4c1b-9e0f-1a2b3c4d5e6f", Alias: "zoe_fabrikam.com",
			DisplayName: "Zoë Müller", RecipientType: "MailUser", RecipientTypeDetails: "GuestMailUser",
			HiddenFromAddressListsEnabled: true, PrimarySmtpAddress: "zoe@fabrikam.com",
			EmailAddresses: []string{"SMTP:zoe@fabrikam.com"}, ExternalEmailAddress: "SMTP:zoe@fabrikam.com",
			WhenCreated: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC),
		},
		"mailbox": {
			ID: "bbbbbbbb-5a7d-4c1b-9e0f-1a2b3c4d5e6f", Name: "Ben Smith", Alias: "ben", DisplayName: "Ben Smith",
			RecipientType: "UserMailbox", RecipientTypeDetails: "UserMailbox", IsDirSynced: true,
			PrimarySmtpAddress: "ben@contoso.com", EmailAddresses: []string{"SMTP:ben@contoso.com", "smtp:b.smith@contoso.com"},
			WhenCreated: time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC), CustomAttributes: [15]string{2: "Ben O\u2019Connor"},
		},
	}
}

func TestOPATHMatch(t *testing.T) {
	objs := opathObjects()
	for _, tc := range []struct {
		filter string
		want   string // names of the matching objects, sorted: jane guest mailbox order as listed
	}{
		{"IsDirSynced -eq 'True'", "jane mailbox"},
		{"IsDirSynced -eq $true", "jane mailbox"},
		{`IsDirSynced -eq "true"`, "jane mailbox"},
		{"IsDirSynced -eq True", "jane mailbox"},
		{"IsDirSynced -ne $true", "guest"},
		{"isdirsynced -EQ 'false'", "guest"},
		{"IsDirSynced -eq 'True' -and RecipientTypeDetails -eq 'MailUser'", "jane"},
		{"RecipientTypeDetails -eq 'mailuser' -or RecipientTypeDetails -eq 'GuestMailUser'", "jane guest"},
		{"-not (RecipientTypeDetails -eq 'MailUser')", "guest mailbox"},
		{"-not(IsDirSynced -eq $true) -and HiddenFromAddressListsEnabled -eq $true", "guest"},
		{"(Alias -like 'jane*' -or Alias -like 'ben*') -and -not (Alias -eq 'ben')", "jane"},
		{"DisplayName -eq 'Jane O''Brien'", "jane"},
		{`DisplayName -eq "Jane O'Brien"`, "jane"},
		{`DisplayName -eq "say ""hi"""`, ""},
		{"DisplayName -like 'Zoë*'", "guest"},
		{"DisplayName -like '*Brien'", ""}, // leading wildcard matches nothing
		{"DisplayName -like 'J*n'", "jane"},
		{"DisplayName -notlike 'J*'", "guest mailbox"},
		{"EmailAddresses -eq 'jane@contoso.mail.onmicrosoft.com'", "jane"}, // prefix ignored
		{"EmailAddresses -eq 'smtp:jane@contoso.mail.onmicrosoft.com'", "jane"},
		{"EmailAddresses -eq 'sip:jane@contoso.mail.onmicrosoft.com'", ""},
		{"EmailAddresses -like 'smtp:b.smith@*'", "mailbox"},
		{"EmailAddresses -like 'b.smith@*'", ""}, // -like needs the prefix
		{"EmailAddresses -like 'X500:/o=Contoso*'", "jane"},
		{"EmailAddresses -ne 'ben@contoso.com'", "jane guest"},
		{"PrimarySmtpAddress -eq 'b.smith@contoso.com'", "mailbox"}, // any smtp address
		{"ExternalEmailAddress -eq 'zoe@fabrikam.com'", "guest"},
		{"ExternalEmailAddress -like 'SMTP:zoe@*'", "guest"},
		{"ExternalEmailAddress -eq $null", "mailbox"},
		{"ExternalEmailAddress -ne $null", "jane guest"},
		{"CustomAttribute2 -eq 'finance'", "jane"},
		{"CustomAttribute1 -eq $null", "jane guest mailbox"},
		{"ExternalDirectoryObjectId -eq '3F2B9C1E-5A7D-4C1B-9E0F-1A2B3C4D5E6F'", "jane"},
		{"Guid -eq '0b6d2f7a-1111-4c2e-8d3f-222233334444'", "jane"},
		{"WhenCreated -gt '1/1/2023'", "jane guest"},
		{"WhenCreated -lt '2023-03-01T10:11:13Z'", "jane mailbox"},
		{"WhenCreatedUTC -ge '3/1/2023 10:11:12 AM'", "jane guest"},
		{"WhenCreated -le '1/1/2022 12:00:00 AM'", "mailbox"},
		{"Alias -gt 'c'", "jane guest"},
		{"{ Alias -eq 'ben' }", "mailbox"},
		{"  Alias   -eq   ben  ", "mailbox"},
		{"UserPrincipalName -like 'jane*'", "jane"},
		// PowerShell's typographic single quotes delimit literals too, and double inside them.
		{"Alias -eq \u2018jane.obrien\u2019", "jane"},
		{"DisplayName -eq \u2018Jane O''Brien\u2019", "jane"},
		{"CustomAttribute3 -eq 'Ben O\u2019\u2019Connor'", "mailbox"},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			f, err := compileFilter(tc.filter, "Get-MailUser")
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			var got []string
			for _, name := range []string{"jane", "guest", "mailbox"} {
				if f.match(objs[name]) {
					got = append(got, name)
				}
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("matched %q, want %q", strings.Join(got, " "), tc.want)
			}
		})
	}
}

func TestOPATHErrors(t *testing.T) {
	for _, tc := range []struct {
		filter, cmdlet string
		want           []string
	}{
		{"UseMapiRichTextFormat -eq 'Never'", "Get-MailUser", []string{
			`Cannot bind parameter 'Filter' to the target. Exception setting "Filter": ""UseMapiRichTextFormat" is not a recognized filterable property. Valid property names are: alias, customattribute1,`,
			"userprincipalname", `windowsemailaddress."`}},
		{"IsDirSynced -eq $true -and Colour -eq 'blue'", "Get-MailUser", []string{`""Colour" is not a recognized filterable property`}},
		{"UserPrincipalName -eq 'a@b.c'", "Get-Recipient", []string{`""UserPrincipalName" is not a recognized filterable property`}},
		{"IsDirSynced -eq", "Get-MailUser", []string{"Invalid filter syntax", `"IsDirSynced -eq" at position 16.`}},
		{"IsDirSynced -equals 'True'", "Get-MailUser", []string{"Invalid filter syntax", "at position 13."}},
		{"(IsDirSynced -eq 'True'", "Get-MailUser", []string{"Invalid filter syntax"}},
		{"IsDirSynced -eq 'True')", "Get-MailUser", []string{"Invalid filter syntax", "at position 23."}},
		{"Alias -eq 'unterminated", "Get-MailUser", []string{"Invalid filter syntax", "at position 11."}},
		{"Alias -eq $maybe", "Get-MailUser", []string{"Invalid filter syntax"}},
		{"", "Get-MailUser", []string{"Invalid filter syntax"}},
		{"-and", "Get-MailUser", []string{"Invalid filter syntax"}},
		{"Alias -eq 'a' -and", "Get-MailUser", []string{"Invalid filter syntax"}},
		{"Alias 'a'", "Get-MailUser", []string{"Invalid filter syntax"}},
		{"Alias -eq 'a' !", "Get-MailUser", []string{"Invalid filter syntax"}},
		{strings.Repeat("(", 100) + "Alias -eq 'a'" + strings.Repeat(")", 100), "Get-MailUser", []string{"Invalid filter syntax"}},
		{"IsDirSynced -eq 'maybe'", "Get-MailUser", []string{"could not be converted to type System.Boolean"}},
		{"IsDirSynced -like 'T*'", "Get-MailUser", []string{"-like isn't supported for the Boolean property"}},
		{"WhenCreated -gt 'yesterday'", "Get-MailUser", []string{"System.DateTime"}},
		{"Guid -like '0b6d*'", "Get-MailUser", []string{"Wildcards can't be used"}},
		{"Alias -like $null", "Get-MailUser", []string{"can't be used with $null"}},
		{"Alias -eq $true", "Get-MailUser", []string{"could not be converted"}},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			_, err := compileFilter(tc.filter, tc.cmdlet)
			if err == nil {
				t.Fatal("compiled; want an error")
			}
			var be *opathBindError
			if !errors.As(err, &be) {
				t.Fatalf("error %T, want *opathBindError", err)
			}
			if !strings.HasPrefix(err.Error(), `Cannot bind parameter 'Filter' to the target. Exception setting "Filter": "`) {
				t.Errorf("error %q lacks the binder prefix", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestOPATHStringRoundTrips(t *testing.T) {
	for _, f := range []string{
		"IsDirSynced -eq 'True' -and RecipientTypeDetails -eq 'MailUser'",
		"-not (A -eq 'x''y') -or (B -like 'c*' -and C -ne $null)",
		`DisplayName -eq "say ""hi"" O'Brien"`,
	} {
		e, err := parseOPATH(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		e2, err := parseOPATH(e.String())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", e.String(), err)
		}
		if e.String() != e2.String() {
			t.Errorf("%q -> %q -> %q", f, e.String(), e2.String())
		}
	}
}

func TestWildcardMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"abc", "ABC", true},
		{"a*", "abc", true},
		{"a*", "a", true},
		{"a*c", "abbbc", true},
		{"a*c", "abcd", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "acb", false},
		{"*", "anything", false},
		{"*c", "abc", false},
		{"a**", "abc", true},
	} {
		if got := wildcardMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

// FuzzOPATH checks that no input makes the parser or evaluator panic, and that whatever parses prints
// back to a filter that parses to the same tree.
func FuzzOPATH(f *testing.F) {
	for _, s := range []string{
		"IsDirSynced -eq 'True' -and RecipientTypeDetails -eq 'MailUser'",
		"-not (EmailAddresses -like 'smtp:a*') -or ExternalEmailAddress -eq $null",
		`DisplayName -eq "O""Brien" -and Alias -ne 'o''brien'`,
		"{ WhenCreated -gt '8/1/2017 2:00:00 PM' }",
		"((((Alias -eq a))))",
		"Alias -eq 'x",
		"$true -eq Alias",
		"-",
		"Alias -eq -5",
		"Name -like 'Zoë*'",
		"\x00\xff'",
	} {
		f.Add(s)
	}
	objs := opathObjects()
	f.Fuzz(func(t *testing.T, filter string) {
		e, err := parseOPATH(filter)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
			return
		}
		again, err := parseOPATH(e.String())
		if err != nil {
			t.Fatalf("%q printed as %q, which does not parse: %v", filter, e.String(), err)
		}
		if again.String() != e.String() {
			t.Fatalf("round trip changed %q to %q", e.String(), again.String())
		}
		cf, err := compileFilter(filter, "Get-Recipient")
		if err != nil {
			return
		}
		for _, o := range objs {
			_ = cf.match(o)
		}
	})
}
