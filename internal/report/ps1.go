package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/exo-worker/worker/jobs"
)

// utf8BOM starts the script: Windows PowerShell 5.1 reads a script without one as the ANSI code page, which
// would turn "Müller" into "MÃ¼ller" in the values written to AD.
const utf8BOM = "\ufeff"

// psQuote writes s as a PowerShell single-quoted string. Inside one, only quotes are special, and PowerShell
// treats the typographic single quotes ‘ ’ ‚ ‛ exactly like ' — each must be doubled, or a display name
// like O’Brien would end the string and let the rest run as code.
func psQuote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		if isPSSingleQuote(r) {
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String()
}

func isPSSingleQuote(r rune) bool {
	return r == '\'' || r == '\u2018' || r == '\u2019' || r == '\u201a' || r == '\u201b'
}

// psParam maps a fix action to the Set-AD* parameter that performs it.
var psParam = map[string]string{"add": "-Add", "replace": "-Replace", "remove": "-Remove"}

// attrName reports an LDAP attribute name that can stand unquoted as a hashtable key.
func attrName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && (r >= '0' && r <= '9' || r == '-')) {
			return false
		}
	}
	return true
}

func writePS1(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	c := summarize(r.Findings)
	scripted := 0
	for _, f := range r.Findings {
		if _, ok := psCommand(f); ok {
			scripted++
		}
	}
	bw.WriteString(utf8BOM)
	for _, l := range []string{
		fmt.Sprintf("# exo-worker: on-premises Active Directory fixes for tenant %s", oneLine(r.Tenant)),
		fmt.Sprintf("# Generated %s by the audits %s: %d finding(s), %d with an AD command below.",
			r.Generated.UTC().Format("2006-01-02 15:04:05Z"), strings.Join(r.Jobs, ", "), c.Total, scripted),
		"#",
		"# HOW TO USE. Read every command. Each one ends in -WhatIf, so running this script as it is changes",
		"# nothing: it prints what each command would do. Delete -WhatIf from the commands you approve, run the",
		"# script again in a session with the ActiveDirectory module and the right to write these attributes,",
		"# then let Entra Connect sync (Start-ADSyncSyncCycle -PolicyType Delta on the sync server) and rerun the audit.",
		"#",
		"# WHICH OBJECT. The cloud knows objects by their Entra id, which AD does not have. Users are addressed by",
		"# their objectGUID, decoded from the cloud's onPremisesImmutableId: that is right when Entra Connect's",
		"# sourceAnchor is objectGUID or ms-DS-ConsistencyGuid (the defaults; Entra Connect fills ms-DS-ConsistencyGuid",
		"# from objectGUID). If your sourceAnchor is another attribute, or objects moved between forests, check each",
		"# GUID with Get-ADUser -Identity <GUID> before deleting -WhatIf. Users whose immutable id is not a GUID are",
		"# addressed by sAMAccountName, groups by objectSid or sAMAccountName, contacts by an LDAP search on mail.",
		"#",
		"# Findings that no AD attribute fixes (licences, mail routing) are listed as comments only.",
		"#Requires -Modules ActiveDirectory",
		"",
	} {
		bw.WriteString(l)
		bw.WriteString("\r\n")
	}
	for _, f := range r.Findings {
		ru := rule(f.Rule)
		t, known := targetOf(f.Object)
		lines := []string{
			fmt.Sprintf("# [%s] %s: %s", f.Severity, f.Rule, ru.Title),
			fmt.Sprintf("# %s (Entra id %s)", oneLine(f.Object.String()), oneLine(f.Object.ID)),
			"# " + oneLine(f.Detail),
		}
		cmd, ok := psCommand(f)
		switch {
		case f.OnPrem == nil:
			lines = append(lines, "# No AD attribute fixes this. "+oneLine(ru.Fix))
		case !known:
			lines = append(lines, "# Not scripted: Graph shows no on-premises key (objectGUID, sAMAccountName, SID, mail) for this object.",
				"# Change it by hand: "+oneLine(fixText(f.OnPrem)))
		case !ok:
			lines = append(lines, "# Not scripted: the value contains line breaks or control characters; change it by hand.")
		default:
			lines = append(lines, "# Object found by "+t.how+".", cmd)
		}
		for _, l := range lines {
			bw.WriteString(l)
			bw.WriteString("\r\n")
		}
		bw.WriteString("\r\n")
	}
	return bw.Flush()
}

// psCommand renders the Set-AD* command of a finding's fix, with -WhatIf. ok is false when the finding has no
// fix, the object cannot be addressed, or a value could not be written safely on one line.
func psCommand(f jobs.Finding) (string, bool) {
	fix := f.OnPrem
	if fix == nil {
		return "", false
	}
	t, known := targetOf(f.Object)
	param, okParam := psParam[fix.Action]
	if !known || !okParam || !attrName(fix.Attribute) || hasControl(fix.Value) || hasControl(t.identity) || hasControl(t.ldapFilter) {
		return "", false
	}
	change := fmt.Sprintf("%s @{%s=%s} -WhatIf", param, fix.Attribute, psQuote(fix.Value))
	if t.identity != "" {
		return fmt.Sprintf("%s -Identity %s %s", t.cmdlet, psQuote(t.identity), change), true
	}
	return fmt.Sprintf("%s -LDAPFilter %s | %s %s", t.getCmdlet, psQuote(t.ldapFilter), t.cmdlet, change), true
}
