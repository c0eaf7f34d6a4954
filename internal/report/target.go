package report

import (
	"strings"

	"github.com/exo-worker/worker/jobs"
)

// adTarget is how the scripts address one object in on-premises AD. The cloud knows an object by its Entra
// id, which AD has never heard of; what links them is the sourceAnchor (onPremisesImmutableId, by default
// the objectGUID), the sAMAccountName, the objectSid (groups) or, for contacts, nothing but the mail value.
type adTarget struct {
	// cmdlet is Set-ADUser, Set-ADGroup or Set-ADObject.
	cmdlet string
	// identity is the -Identity value; "" when the object must be found by getCmd instead.
	identity string
	// ldapFilter and getCmdlet find the object when there is no identity (piped into cmdlet).
	getCmdlet, ldapFilter string
	// how says in words which key was used, for the script's comment.
	how string
	// dn is the LDIF dn: <GUID=...>, <SID=...> or a real DN; "" when LDIF cannot address the object.
	dn string
}

func targetOf(o jobs.ObjectRef) (adTarget, bool) {
	switch o.Kind {
	case jobs.ObjectGroup:
		t := adTarget{cmdlet: "Set-ADGroup"}
		switch {
		case o.OnPremisesSecurityIdentifier != "":
			t.identity, t.how, t.dn = o.OnPremisesSecurityIdentifier, "objectSid from Graph onPremisesSecurityIdentifier", "<SID="+o.OnPremisesSecurityIdentifier+">"
		case o.OnPremisesSamAccountName != "":
			t.identity, t.how = o.OnPremisesSamAccountName, "sAMAccountName"
		case o.Mail != "":
			t.getCmdlet, t.ldapFilter, t.how = "Get-ADGroup", "(mail="+ldapEscape(o.Mail)+")", "an LDAP search on mail"
		default:
			return t, false
		}
		return t, true
	case jobs.ObjectContact:
		if o.Mail == "" && o.Address == "" {
			return adTarget{}, false
		}
		mail := o.Mail
		if mail == "" {
			mail = o.Address
		}
		return adTarget{cmdlet: "Set-ADObject", getCmdlet: "Get-ADObject",
			ldapFilter: "(&(objectClass=contact)(mail=" + ldapEscape(mail) + "))",
			how:        "an LDAP search on mail (Graph shows no on-premises key for contacts)"}, true
	case jobs.ObjectUser, "":
		t := adTarget{cmdlet: "Set-ADUser"}
		if g, ok := objectGUID(o.OnPremisesImmutableID); ok {
			t.identity, t.how, t.dn = g, "objectGUID decoded from onPremisesImmutableId", "<GUID="+g+">"
			return t, true
		}
		if o.OnPremisesDistinguishedName != "" {
			t.dn = o.OnPremisesDistinguishedName
		}
		switch {
		case o.OnPremisesSamAccountName != "":
			t.identity, t.how = o.OnPremisesSamAccountName, "sAMAccountName (onPremisesImmutableId is not a GUID)"
		case o.OnPremisesUserPrincipalName != "":
			t.getCmdlet, t.ldapFilter, t.how = "Get-ADUser", "(userPrincipalName="+ldapEscape(o.OnPremisesUserPrincipalName)+")", "an LDAP search on the on-premises UPN"
		case o.OnPremisesDistinguishedName != "":
			t.identity, t.how = o.OnPremisesDistinguishedName, "distinguishedName"
		default:
			return t, false
		}
		return t, true
	}
	return adTarget{}, false
}

// ldapEscape escapes a value for an LDAP search filter (RFC 4515 §3): \ * ( ) and NUL become \XX.
func ldapEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\5c`)
		case '*':
			b.WriteString(`\2a`)
		case '(':
			b.WriteString(`\28`)
		case ')':
			b.WriteString(`\29`)
		case 0:
			b.WriteString(`\00`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// hasControl reports characters no script line may carry literally (line breaks, NUL, DEL, ...).
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 {
			return true
		}
	}
	return false
}
