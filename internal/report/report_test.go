package report

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/audit"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// sample is a report whose values exercise every escaping rule: apostrophes and typographic quotes,
// commas and double quotes, non-ASCII letters, LDAP filter metacharacters, objects addressed each way.
func sample() *Report {
	return &Report{
		Tenant:    "contoso.onmicrosoft.com",
		Generated: time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC),
		Jobs:      []string{audit.MEUAuditName, audit.AddressAuditName},
		Findings: []jobs.Finding{
			{Rule: audit.RuleAddressOnMicrosoft, Severity: jobs.SeverityHigh, Detail: "the primary SMTP address is sean@contoso.onmicrosoft.com",
				Object: jobs.ObjectRef{ID: "11111111-0000-4000-8000-000000000001", DisplayName: "Seán O’Brien", Address: "sean@contoso.onmicrosoft.com",
					Kind: jobs.ObjectUser, OnPremisesImmutableID: "AAECAwQFBgcICQoLDA0ODw==", OnPremisesSamAccountName: "sobrien"},
				OnPrem: &jobs.OnPremFix{Attribute: "mail", Value: "seán.o’brien@contoso.com", Action: "replace"}},
			{Rule: audit.RuleAddressDuplicate, Severity: jobs.SeverityHigh, Detail: "o'brien@contoso.com is also an address of \"Sales, EMEA\"",
				Object: jobs.ObjectRef{ID: "11111111-0000-4000-8000-000000000002", DisplayName: "Jöns Müller", Address: "jons@contoso.com",
					Kind: jobs.ObjectUser, OnPremisesImmutableID: "not-a-guid", OnPremisesSamAccountName: "jmuller"},
				OnPrem: &jobs.OnPremFix{Attribute: "proxyAddresses", Value: "smtp:o'brien@contoso.com", Action: "remove"}},
			{Rule: audit.RuleUPNUnverifiedSuffix, Severity: jobs.SeverityHigh, Detail: "the on-premises UPN weird(name)*@contoso.local ends in contoso.local",
				Object: jobs.ObjectRef{ID: "11111111-0000-4000-8000-000000000003", DisplayName: "=cmd|' /C calc'!A0", Kind: jobs.ObjectUser,
					OnPremisesUserPrincipalName: `weird(name)*\@contoso.local`},
				OnPrem: &jobs.OnPremFix{Attribute: "userPrincipalName", Value: "weird.name@contoso.com", Action: "replace"}},
			{Rule: audit.RuleSyncConflictProxy, Severity: jobs.SeverityHigh, Detail: "sales@contoso.com is already an address of another object",
				Object: jobs.ObjectRef{ID: "22222222-0000-4000-8000-000000000001", DisplayName: `Sales, "EMEA"`, Kind: jobs.ObjectGroup,
					OnPremisesSecurityIdentifier: "S-1-5-21-1004336348-1177238915-682003330-1105", OnPremisesSamAccountName: "sales-emea"},
				OnPrem: &jobs.OnPremFix{Attribute: "proxyAddresses", Value: "smtp:sales@contoso.com", Action: "remove"}},
			{Rule: audit.RuleAddressPrimaryNotMail, Severity: jobs.SeverityMedium, Detail: "mail is old@contoso.com but the primary SMTP address is dl@contoso.com",
				Object: jobs.ObjectRef{ID: "22222222-0000-4000-8000-000000000002", DisplayName: "DL-Finance", Kind: jobs.ObjectGroup, OnPremisesSamAccountName: "dl-finance"},
				OnPrem: &jobs.OnPremFix{Attribute: "mail", Value: " dl@contoso.com", Action: "replace"}},
			{Rule: audit.RuleAddressPrimaryNotMail, Severity: jobs.SeverityMedium, Detail: "mail is ann.old@fabrikam.com but the primary SMTP address is ann@fabrikam.com",
				Object: jobs.ObjectRef{ID: "33333333-0000-4000-8000-000000000001", DisplayName: "Ann (Fabrikam)", Kind: jobs.ObjectContact, Mail: "ann.old@fabrikam.com"},
				OnPrem: &jobs.OnPremFix{Attribute: "mail", Value: "ann@fabrikam.com", Action: "replace"}},
			{Rule: audit.RuleLicenseOnMailUser, Severity: jobs.SeverityHigh, Detail: "EXCHANGE_S_STANDARD is assigned (since 2026-03-01) but Exchange Online still shows a mail user",
				Object: jobs.ObjectRef{ID: "11111111-0000-4000-8000-000000000004", DisplayName: "Zoë Ivanova", Address: "zoe@contoso.com", Kind: jobs.ObjectUser,
					OnPremisesImmutableID: "/////wAAAAAAAAAAAAAAAA=="}},
			{Rule: audit.RuleMEUTargetMissing, Severity: jobs.SeverityHigh, Detail: "ExternalEmailAddress (targetAddress) is empty:\nline two",
				Object: jobs.ObjectRef{ID: "11111111-0000-4000-8000-000000000005", DisplayName: "Line\nBreak", Kind: jobs.ObjectUser,
					OnPremisesImmutableID: "AAECAwQFBgcICQoLDA0OEA=="},
				OnPrem: &jobs.OnPremFix{Attribute: "targetAddress", Value: "SMTP:line\nbreak@contoso.com", Action: "replace"}},
		},
	}
}

func render(t *testing.T, f Format, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, f, r); err != nil {
		t.Fatalf("Write %s: %v", f, err)
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	for _, f := range Formats {
		t.Run(string(f), func(t *testing.T) {
			got := render(t, f, sample())
			path := filepath.Join("testdata", "sample."+string(f))
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/report -update to create it)", err)
			}
			if got != string(want) {
				gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
				for i := range max(len(gl), len(wl)) {
					var g, w string
					if i < len(gl) {
						g = gl[i]
					}
					if i < len(wl) {
						w = wl[i]
					}
					if g != w {
						t.Fatalf("%s differs from %s at line %d:\n got: %q\nwant: %q\n(go test ./internal/report -update rewrites it after a deliberate change)", f, path, i+1, g, w)
					}
				}
			}
		})
	}
}

func TestObjectGUID(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		// .NET Guid(byte[]) reads the first three fields little-endian.
		{"AAECAwQFBgcICQoLDA0ODw==", "03020100-0504-0706-0809-0a0b0c0d0e0f", true},
		{"/////wAAAAAAAAAAAAAAAA==", "ffffffff-0000-0000-0000-000000000000", true},
		{"not-a-guid", "", false},
		{"AAECAwQFBgcICQoLDA0O", "", false}, // 15 bytes
		{"", "", false},
	}
	for _, tc := range tests {
		got, ok := objectGUID(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("objectGUID(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestPSQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "'plain'"},
		{"o'brien", "'o''brien'"},
		{"O’Brien", "'O’’Brien'"},
		{"‘x’ ‚y‛", "'‘‘x’’ ‚‚y‛‛'"},
		{`a "b", $c ` + "`d", `'a "b", $c ` + "`d'"},
		{"Müller", "'Müller'"},
		{"", "''"},
	}
	for _, tc := range tests {
		if got := psQuote(tc.in); got != tc.want {
			t.Errorf("psQuote(%q) = %q, want %q", tc.in, got, tc.want)
		}
		// Reading the literal back the way PowerShell's tokenizer does gives the input.
		if back := psUnquote(t, psQuote(tc.in)); back != tc.in {
			t.Errorf("psQuote(%q) reads back as %q", tc.in, back)
		}
	}
}

// psUnquote reads a single-quoted PowerShell literal as the tokenizer does: any of the four single-quote
// characters ends the string unless the next character is also one, in which case that one is kept.
func psUnquote(t *testing.T, s string) string {
	t.Helper()
	rs := []rune(s)
	if len(rs) < 2 || !isPSSingleQuote(rs[0]) {
		t.Fatalf("%q is not a single-quoted literal", s)
	}
	var b strings.Builder
	for i := 1; i < len(rs); i++ {
		if isPSSingleQuote(rs[i]) {
			if i+1 < len(rs) && isPSSingleQuote(rs[i+1]) {
				b.WriteRune(rs[i+1])
				i++
				continue
			}
			if i != len(rs)-1 {
				t.Fatalf("%q: the literal ends at rune %d, and %q would run as code", s, i, string(rs[i+1:]))
			}
			return b.String()
		}
		b.WriteRune(rs[i])
	}
	t.Fatalf("%q is not terminated", s)
	return ""
}

func TestLDIFValue(t *testing.T) {
	tests := []struct{ value, want string }{
		{"jane@contoso.com", "mail: jane@contoso.com"},
		{"o'brien, \"x\"@contoso.com", "mail: o'brien, \"x\"@contoso.com"},
		{"", "mail: "},
		{" lead", "mail:: " + base64.StdEncoding.EncodeToString([]byte(" lead"))},
		{"trail ", "mail:: " + base64.StdEncoding.EncodeToString([]byte("trail "))},
		{":colon", "mail:: " + base64.StdEncoding.EncodeToString([]byte(":colon"))},
		{"<angle", "mail:: " + base64.StdEncoding.EncodeToString([]byte("<angle"))},
		{"Müller", "mail:: TcO8bGxlcg=="},
		{"a\nb", "mail:: " + base64.StdEncoding.EncodeToString([]byte("a\nb"))},
		{"mid:colon<ok", "mail: mid:colon<ok"},
	}
	for _, tc := range tests {
		if got := ldifValue("mail", tc.value); got != tc.want {
			t.Errorf("ldifValue(%q) = %q, want %q", tc.value, got, tc.want)
		}
	}
}

func TestLDAPEscape(t *testing.T) {
	if got, want := ldapEscape(`a*b(c)d\e`+"\x00"), `a\2ab\28c\29d\5ce\00`; got != want {
		t.Errorf("ldapEscape = %q, want %q", got, want)
	}
}

func TestPS1Lines(t *testing.T) {
	out := render(t, FormatPS1, sample())
	if !strings.HasPrefix(out, utf8BOM) {
		t.Error("the script does not start with a UTF-8 byte order mark: Windows PowerShell 5.1 would misread non-ASCII values")
	}
	lines := strings.Split(strings.TrimPrefix(out, utf8BOM), "\r\n")
	// In report order: severity, then rule, then object id.
	want := []string{
		`Set-ADUser -Identity 'jmuller' -Remove @{proxyAddresses='smtp:o''brien@contoso.com'} -WhatIf`,
		`Set-ADUser -Identity '03020100-0504-0706-0809-0a0b0c0d0e0f' -Replace @{mail='seán.o’’brien@contoso.com'} -WhatIf`,
		`Set-ADGroup -Identity 'S-1-5-21-1004336348-1177238915-682003330-1105' -Remove @{proxyAddresses='smtp:sales@contoso.com'} -WhatIf`,
		`Get-ADUser -LDAPFilter '(userPrincipalName=weird\28name\29\2a\5c@contoso.local)' | Set-ADUser -Replace @{userPrincipalName='weird.name@contoso.com'} -WhatIf`,
		`Set-ADGroup -Identity 'dl-finance' -Replace @{mail=' dl@contoso.com'} -WhatIf`,
		`Get-ADObject -LDAPFilter '(&(objectClass=contact)(mail=ann.old@fabrikam.com))' | Set-ADObject -Replace @{mail='ann@fabrikam.com'} -WhatIf`,
	}
	var cmds []string
	for i, l := range lines {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		cmds = append(cmds, l)
		if !strings.HasSuffix(l, " -WhatIf") {
			t.Errorf("line %d has no -WhatIf: %q", i+1, l)
		}
		if i == 0 || !strings.HasPrefix(lines[i-1], "# ") {
			t.Errorf("line %d is not commented with its finding: %q", i+1, l)
		}
	}
	if !slices.Equal(cmds, want) {
		t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(cmds, "\n"), strings.Join(want, "\n"))
	}
	for _, must := range []string{"# No AD attribute fixes this.", "# Not scripted: the value contains line breaks"} {
		if !strings.Contains(out, must) {
			t.Errorf("the script lacks %q", must)
		}
	}
	if strings.Contains(out, "Line\nBreak") {
		t.Error("a display name with a line break escaped its comment")
	}
}

// ldifRecords parses the change records of an LDIF file (RFC 2849, as ldifde reads it): dn, changetype,
// one modification, "-". Comments and blank lines separate records.
func ldifRecords(t *testing.T, s string) []map[string]string {
	t.Helper()
	var recs []map[string]string
	var cur map[string]string
	for i, l := range strings.Split(s, "\n") {
		switch {
		case strings.HasPrefix(l, "#"):
			continue
		case l == "":
			if cur != nil {
				recs = append(recs, cur)
				cur = nil
			}
			continue
		case l == "-":
			cur["-"] = "end"
			continue
		case strings.HasPrefix(l, " "):
			t.Fatalf("line %d is a folded continuation, which the writer never produces: %q", i+1, l)
		}
		for _, r := range l {
			if r > 0x7e {
				t.Fatalf("line %d holds non-ASCII outside a comment: %q", i+1, l)
			}
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("line %d is not attr: value: %q", i+1, l)
		}
		if strings.HasPrefix(v, ": ") {
			b, err := base64.StdEncoding.DecodeString(v[2:])
			if err != nil {
				t.Fatalf("line %d: bad base64: %v", i+1, err)
			}
			v = string(b)
		} else {
			v = strings.TrimPrefix(v, " ")
		}
		if cur == nil {
			cur = map[string]string{}
		}
		if _, dup := cur[k]; dup {
			t.Fatalf("line %d repeats %s in one record", i+1, k)
		}
		cur[k] = v
	}
	if cur != nil {
		recs = append(recs, cur)
	}
	return recs
}

func TestLDIFRecords(t *testing.T) {
	out := render(t, FormatLDIF, sample())
	recs := ldifRecords(t, out)
	want := []map[string]string{
		{"dn": "<GUID=03020100-0504-0706-0809-0a0b0c0d0e0f>", "changetype": "modify", "replace": "mail", "mail": "seán.o’brien@contoso.com", "-": "end"},
		{"dn": "<SID=S-1-5-21-1004336348-1177238915-682003330-1105>", "changetype": "modify", "delete": "proxyAddresses", "proxyAddresses": "smtp:sales@contoso.com", "-": "end"},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d:\n%s", len(recs), len(want), out)
	}
	for i := range want {
		for k, v := range want[i] {
			if recs[i][k] != v {
				t.Errorf("record %d: %s = %q, want %q", i+1, k, recs[i][k], v)
			}
		}
		if len(recs[i]) != len(want[i]) {
			t.Errorf("record %d has fields %v", i+1, recs[i])
		}
	}
	for _, must := range []string{"# Not in LDIF: no objectGUID, objectSid or DN", "# Not in LDIF: the value contains line breaks"} {
		if !strings.Contains(out, must) {
			t.Errorf("the LDIF lacks %q", must)
		}
	}
}

func TestJSONSchemaAndCounts(t *testing.T) {
	var doc struct {
		Schema  string `json:"schema"`
		Summary struct {
			Total      int            `json:"total"`
			BySeverity map[string]int `json:"by_severity"`
			ByRule     map[string]int `json:"by_rule"`
		} `json:"summary"`
		Findings []struct {
			Rule   string `json:"rule"`
			Object struct {
				ObjectGUID string `json:"object_guid"`
			} `json:"object"`
			Fix *struct{ Attribute, Action, Value string } `json:"on_prem_fix"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(render(t, FormatJSON, sample())), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Schema != "exo-worker/findings/v1" {
		t.Errorf("schema %q", doc.Schema)
	}
	if doc.Summary.Total != 8 || len(doc.Findings) != 8 || doc.Summary.BySeverity["high"] != 6 || doc.Summary.BySeverity["medium"] != 2 ||
		doc.Summary.ByRule[audit.RuleAddressPrimaryNotMail] != 2 {
		t.Errorf("summary %+v", doc.Summary)
	}
	if doc.Findings[0].Object.ObjectGUID == "" && doc.Findings[0].Rule == audit.RuleAddressOnMicrosoft {
		t.Error("object_guid missing")
	}
}

func TestCSVQuotingAndFormulaInjection(t *testing.T) {
	rows, err := csv.NewReader(strings.NewReader(render(t, FormatCSV, sample()))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rows[0], csvHeader) || len(rows) != 9 {
		t.Fatalf("header %v, %d rows", rows[0], len(rows))
	}
	var names []string
	for _, r := range rows[1:] {
		names = append(names, r[5])
	}
	for _, want := range []string{`Sales, "EMEA"`, "Jöns Müller", "'=cmd|' /C calc'!A0"} {
		if !slices.Contains(names, want) {
			t.Errorf("display names %q lack %q", names, want)
		}
	}
}

func TestEmptyReport(t *testing.T) {
	r := &Report{Tenant: "t", Jobs: []string{"address-audit"}}
	for _, f := range Formats {
		out := render(t, f, r)
		if out == "" {
			t.Errorf("%s: empty output for a report without findings", f)
		}
	}
	if !strings.Contains(render(t, FormatTable, r), "No findings") {
		t.Error("the table does not say there is nothing to fix")
	}
}

func TestParseFormat(t *testing.T) {
	if f, err := ParseFormat("HTML"); err != nil || f != FormatHTML {
		t.Errorf("ParseFormat(HTML) = %v, %v", f, err)
	}
	if _, err := ParseFormat("pdf"); err == nil || !strings.Contains(err.Error(), "ldif") {
		t.Errorf("ParseFormat(pdf) = %v; want an error listing the formats", err)
	}
}
