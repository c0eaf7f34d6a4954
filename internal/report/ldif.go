package report

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"strings"

	"github.com/exo-worker/worker/jobs"
)

// ldifDirective maps a fix action to the LDIF modify directive (RFC 2849 mod-spec).
var ldifDirective = map[string]string{"add": "add", "replace": "replace", "remove": "delete"}

// ldifValue writes "attr: value", or "attr:: base64" when the value is not an RFC 2849 SAFE-STRING: empty
// is fine, but a value that starts with a space, ':' or '<', ends with a space, or holds any byte outside
// 0x01-0x7F other than LF/CR must be base64. Encoding every non-ASCII value also keeps the file plain ASCII,
// so ldifde reads it the same whatever code page it assumes.
func ldifValue(attr, value string) string {
	if ldifSafe(value) {
		return attr + ": " + value
	}
	return attr + ":: " + base64.StdEncoding.EncodeToString([]byte(value))
}

func ldifSafe(s string) bool {
	if s == "" {
		return true
	}
	if c := s[0]; c == ' ' || c == ':' || c == '<' {
		return false
	}
	if s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\n' || c == '\r' || c > 0x7f {
			return false
		}
	}
	return true
}

// ldifComment writes text as one comment line. ldifde ignores comments, a person reads them, so non-ASCII
// letters stay; line breaks are folded away so the text cannot start a record.
func ldifComment(s string) string { return "# " + oneLine(s) }

func writeLDIF(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	c := summarize(r.Findings)
	records := 0
	for _, f := range r.Findings {
		if _, ok := ldifRecord(f); ok {
			records++
		}
	}
	for _, l := range []string{
		ldifComment("exo-worker: on-premises Active Directory fixes for tenant " + r.Tenant),
		ldifComment(fmt.Sprintf("Generated %s by the audits %s: %d finding(s), %d change record(s).",
			r.Generated.UTC().Format("2006-01-02 15:04:05Z"), strings.Join(r.Jobs, ", "), c.Total, records)),
		"#",
		"# Review every record, then import on a domain controller with:  ldifde -i -f THIS-FILE -j LOGDIR",
		"# (add -k to go on past errors). There is no dry run: import a copy holding only the records you approve.",
		"#",
		"# Objects are addressed by the extended DN forms Active Directory accepts in modify requests",
		"# (MS-ADTS 3.1.1.3.1.2.4): <GUID=objectGUID> for users, decoded from onPremisesImmutableId (right when",
		"# the sourceAnchor is objectGUID or ms-DS-ConsistencyGuid, the defaults), <SID=objectSid> for groups. A DN",
		"# starting with '<' must be base64 in LDIF (RFC 2849), hence \"dn::\"; the comment above each shows it in",
		"# clear. Objects without such a key (contacts, groups without a SID) are listed as comments: use the ps1",
		"# output, which finds them by a search. Values that are not plain ASCII are base64 (\"attr::\").",
		"",
	} {
		bw.WriteString(l)
		bw.WriteString("\n")
	}
	for _, f := range r.Findings {
		ru := rule(f.Rule)
		bw.WriteString(ldifComment(fmt.Sprintf("[%s] %s: %s", f.Severity, f.Rule, ru.Title)) + "\n")
		bw.WriteString(ldifComment(fmt.Sprintf("%s (Entra id %s)", f.Object.String(), f.Object.ID)) + "\n")
		bw.WriteString(ldifComment(f.Detail) + "\n")
		rec, ok := ldifRecord(f)
		switch {
		case f.OnPrem == nil:
			bw.WriteString(ldifComment("No AD attribute fixes this. "+ru.Fix) + "\n")
		case hasControl(f.OnPrem.Value):
			bw.WriteString(ldifComment("Not in LDIF: the value contains line breaks or control characters; change it by hand.") + "\n")
		case !ok:
			bw.WriteString(ldifComment("Not in LDIF: no objectGUID, objectSid or DN is known for this object. Use the ps1 output, or change it by hand: "+fixText(f.OnPrem)) + "\n")
		default:
			bw.WriteString(rec)
		}
		bw.WriteString("\n")
	}
	return bw.Flush()
}

// ldifRecord renders one change record (ending in "-\n"); ok is false when the object has no DN LDIF can use
// or the fix has no LDIF form.
func ldifRecord(f jobs.Finding) (string, bool) {
	fix := f.OnPrem
	if fix == nil {
		return "", false
	}
	t, known := targetOf(f.Object)
	dir, okDir := ldifDirective[fix.Action]
	if !known || t.dn == "" || !okDir || !attrName(fix.Attribute) || hasControl(fix.Value) {
		return "", false
	}
	var b strings.Builder
	if ldifSafe(t.dn) {
		b.WriteString("dn: " + t.dn + "\n")
	} else {
		b.WriteString(ldifComment("dn: "+t.dn) + "\n")
		b.WriteString("dn:: " + base64.StdEncoding.EncodeToString([]byte(t.dn)) + "\n")
	}
	b.WriteString("changetype: modify\n")
	b.WriteString(dir + ": " + fix.Attribute + "\n")
	b.WriteString(ldifValue(fix.Attribute, fix.Value) + "\n")
	b.WriteString("-\n")
	return b.String(), true
}
