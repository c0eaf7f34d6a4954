package exoapi

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/exo-worker/worker/internal/sim/tenant"
)

// This file writes EXO's JSON the way the service does (research §2.1): property bags in a fixed order,
// per-property annotations (`X@odata.type: #Collection(String)`, `X@data.type: System.Guid` + `#Guid`,
// `System.DateTime`), dates with seven fractional digits, and non-ASCII characters escaped as \uXXXX as
// the OData .NET writer does by default — so a client's decoder meets the real byte shapes.

// annKind selects the annotations written before a property.
type annKind uint8

const (
	aNone    annKind = iota
	aStrings         // "#Collection(String)"
	aGUID            // System.Guid / #Guid
	aDate            // System.DateTime, local form with +00:00
	aDateUTC         // System.DateTime, UTC form with Z
	aInt             // System.Int32
)

// field is one property of an output object; val is string, bool, int, []string, time.Time or nil.
type field struct {
	name string
	ann  annKind
	val  any
}

// record is one output object (an Exchange.GenericHashTable) with its properties in service order.
type record []field

// project keeps the $select-ed properties (case-insensitive), in record order; an empty selection keeps all.
func (r record) project(sel []string) record {
	if len(sel) == 0 {
		return r
	}
	out := make(record, 0, len(sel))
	for _, f := range r {
		for _, s := range sel {
			if strings.EqualFold(f.name, s) {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

const (
	exoDateLayout    = "2006-01-02T15:04:05.0000000-07:00"
	exoDateUTCLayout = "2006-01-02T15:04:05.0000000Z"
)

func (r record) appendJSON(b []byte) []byte {
	b = append(b, '{')
	for i, f := range r {
		if i > 0 {
			b = append(b, ',')
		}
		if f.val != nil {
			switch f.ann {
			case aStrings:
				b = appendJSONString(b, f.name+"@odata.type")
				b = append(b, `:"#Collection(String)",`...)
			case aGUID:
				b = appendJSONString(b, f.name+"@data.type")
				b = append(b, `:"System.Guid",`...)
				b = appendJSONString(b, f.name+"@odata.type")
				b = append(b, `:"#Guid",`...)
			case aDate, aDateUTC:
				b = appendJSONString(b, f.name+"@data.type")
				b = append(b, `:"System.DateTime",`...)
			case aInt:
				b = appendJSONString(b, f.name+"@data.type")
				b = append(b, `:"System.Int32",`...)
			}
		}
		b = appendJSONString(b, f.name)
		b = append(b, ':')
		b = appendJSONAny(b, f.val, f.ann)
	}
	return append(b, '}')
}

func appendJSONAny(b []byte, v any, ann annKind) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendJSONString(b, v)
	case bool:
		return strconv.AppendBool(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case []string:
		b = append(b, '[')
		for i, s := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		return append(b, ']')
	case time.Time:
		if ann == aDateUTC {
			return appendJSONString(b, v.UTC().Format(exoDateUTCLayout))
		}
		return appendJSONString(b, v.UTC().Format(exoDateLayout))
	case record:
		return v.appendJSON(b)
	case []record:
		b = append(b, '[')
		for i, r := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = r.appendJSON(b)
		}
		return append(b, ']')
	case rawJSON:
		return append(b, v...)
	}
	return append(b, "null"...)
}

// rawJSON is an already encoded JSON value embedded as is (a sub-response body inside $batch).
type rawJSON []byte

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string, escaping quotes, backslashes, control characters and every
// non-ASCII character (\uXXXX, surrogate pairs above the BMP). Invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r > 0xffff {
			r -= 0x10000
			b = appendU16(b, 0xd800+(r>>10))
			b = appendU16(b, 0xdc00+(r&0x3ff))
			continue
		}
		b = appendU16(b, r)
	}
	return append(b, '"')
}

func appendU16(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// nullIfEmpty renders an unset string property as JSON null, as the service does.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func orEmpty(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// commonFields are the properties every recipient shape starts with.
func commonFields(o *tenant.Object, initialDomain string) record {
	return record{
		{"Identity", aNone, o.Name},
		{"Id", aNone, o.Name},
		{"Name", aNone, o.Name},
		{"DistinguishedName", aNone, o.DistinguishedName(initialDomain)},
		{"OrganizationalUnitRoot", aNone, initialDomain},
		{"Alias", aNone, o.Alias},
		{"DisplayName", aNone, o.DisplayName},
		{"EmailAddresses", aStrings, orEmpty(o.EmailAddresses)},
		{"PrimarySmtpAddress", aNone, o.PrimarySmtpAddress},
		{"WindowsEmailAddress", aNone, o.WindowsEmailAddress},
		{"ExternalDirectoryObjectId", aNone, o.ID},
		{"ExchangeObjectId", aGUID, o.ExchangeObjectID},
		{"Guid", aGUID, o.Guid},
		{"IsDirSynced", aNone, o.IsDirSynced},
		{"HiddenFromAddressListsEnabled", aNone, o.HiddenFromAddressListsEnabled},
		{"RecipientType", aNone, o.RecipientType},
		{"RecipientTypeDetails", aNone, o.RecipientTypeDetails},
	}
}

func customAttributeFields(o *tenant.Object) record {
	var r record
	for i, v := range o.CustomAttributes {
		r = append(r, field{"CustomAttribute" + strconv.Itoa(i+1), aNone, v})
	}
	for i := range 5 {
		r = append(r, field{"ExtensionCustomAttribute" + strconv.Itoa(i+1), aStrings, []string{}})
	}
	return r
}

func whenFields(o *tenant.Object) record {
	return record{
		{"WhenCreated", aDate, o.WhenCreated},
		{"WhenChanged", aDate, o.WhenChanged},
		{"WhenCreatedUTC", aDateUTC, o.WhenCreated},
		{"WhenChangedUTC", aDateUTC, o.WhenChanged},
	}
}

// Output shapes, one per cmdlet family.
const (
	shapeMailUser          = "MailUser"
	shapeMailbox           = "Mailbox"
	shapeMailContact       = "MailContact"
	shapeDistributionGroup = "DistributionGroup"
	shapeRecipient         = "Recipient"
)

func messageFormatFields(o *tenant.Object) record {
	return record{
		{"ExternalEmailAddress", aNone, nullIfEmpty(o.ExternalEmailAddress)},
		{"UseMapiRichTextFormat", aNone, o.UseMapiRichTextFormat},
		{"UsePreferMessageFormat", aNone, o.UsePreferMessageFormat},
		{"MessageFormat", aNone, "Mime"},
		{"MessageBodyFormat", aNone, "TextAndHtml"},
		{"MacAttachmentFormat", aNone, "BinHex"},
	}
}

// recordFor renders an object as the given cmdlet family returns it.
func recordFor(o *tenant.Object, shape, initialDomain string) record {
	r := commonFields(o, initialDomain)
	switch shape {
	case shapeMailUser:
		r = append(r, messageFormatFields(o)...)
		r = append(r,
			field{"UserPrincipalName", aNone, o.UserPrincipalName},
			field{"MicrosoftOnlineServicesID", aNone, o.UserPrincipalName},
			field{"WindowsLiveID", aNone, o.UserPrincipalName},
			field{"RecipientLimits", aNone, "Unlimited"},
		)
	case shapeMailbox:
		r = append(r,
			field{"UserPrincipalName", aNone, o.UserPrincipalName},
			field{"MicrosoftOnlineServicesID", aNone, o.UserPrincipalName},
			field{"WindowsLiveID", aNone, o.UserPrincipalName},
			field{"ExchangeGuid", aGUID, nullIfEmpty(o.ExchangeGuid)},
			field{"IsExchangeCloudManaged", aNone, false},
			field{"UseMapiRichTextFormat", aNone, o.UseMapiRichTextFormat},
			field{"ProhibitSendQuota", aNone, "99 GB (106,300,440,576 bytes)"},
			field{"ForwardingSmtpAddress", aNone, nil},
			field{"LitigationHoldEnabled", aNone, false},
			field{"LitigationHoldDate", aNone, nil},
			field{"AuditLogAgeLimit", aNone, "90.00:00:00"},
		)
	case shapeMailContact:
		r = append(r, messageFormatFields(o)...)
	case shapeDistributionGroup:
		gt := "Universal"
		if o.SecurityEnabled {
			gt = "Universal, SecurityEnabled"
		}
		r = append(r,
			field{"GroupType", aNone, gt},
			field{"ManagedBy", aStrings, orEmpty(o.ManagedBy)},
			field{"RequireSenderAuthenticationEnabled", aNone, true},
			field{"MemberJoinRestriction", aNone, "Closed"},
			field{"MemberDepartRestriction", aNone, "Closed"},
		)
	case shapeRecipient:
		r = append(r,
			field{"ExternalEmailAddress", aNone, nullIfEmpty(o.ExternalEmailAddress)},
			field{"WindowsLiveID", aNone, nullIfEmpty(o.UserPrincipalName)},
			field{"ManagedBy", aStrings, orEmpty(o.ManagedBy)},
		)
	}
	r = append(r, customAttributeFields(o)...)
	return append(r, whenFields(o)...)
}

func acceptedDomainRecord(d tenant.AcceptedDomain, tenantID string) record {
	return record{
		{"Identity", aNone, d.DomainName},
		{"Id", aNone, d.DomainName},
		{"Name", aNone, d.DomainName},
		{"DomainName", aNone, d.DomainName},
		{"DomainType", aNone, d.DomainType},
		{"Default", aNone, d.Default},
		{"InitialDomain", aNone, d.InitialDomain},
		{"MatchSubDomains", aNone, false},
		{"AddressBookEnabled", aNone, true},
		{"IsValid", aNone, true},
		{"Guid", aGUID, tenant.DerivedGUID(tenantID+"/"+d.DomainName, 3)},
	}
}
