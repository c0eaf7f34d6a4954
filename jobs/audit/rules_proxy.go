package audit

import (
	"errors"
	"fmt"
	"strings"
)

// ProxyAddress is one entry of proxyAddresses (Graph) or EmailAddresses (Exchange): a type prefix, a colon
// and a value. The prefix's case carries meaning: "SMTP:" is the primary SMTP address, "smtp:" a secondary
// one; other types (X500, X400, SIP, SPO, EUM, ...) are opaque to Exchange and are not syntax-checked.
type ProxyAddress struct {
	// Prefix is the type exactly as written ("SMTP", "smtp", "X500", "sip").
	Prefix string
	// Value is everything after the first colon, unchanged.
	Value string
}

// ErrProxyAddress is wrapped by every parse error, for callers that only need to know the value was bad.
var ErrProxyAddress = errors.New("invalid proxy address")

// ParseProxyAddress splits "TYPE:value". It fails only on entries no directory would hold (no prefix, an
// empty value, a prefix that is not letters and digits); it does not validate the value.
// X500 values with spaces, parentheses, commas and apostrophes are valid (IdFix's well-known false positive).
func ParseProxyAddress(s string) (ProxyAddress, error) {
	i := strings.IndexByte(s, ':')
	switch {
	case s == "":
		return ProxyAddress{}, fmt.Errorf("%w: empty", ErrProxyAddress)
	case i < 0:
		return ProxyAddress{}, fmt.Errorf("%w %q: no type prefix (expected e.g. SMTP:user@example.com)", ErrProxyAddress, s)
	case i == 0:
		return ProxyAddress{}, fmt.Errorf("%w %q: empty type prefix", ErrProxyAddress, s)
	case i == len(s)-1:
		return ProxyAddress{}, fmt.Errorf("%w %q: empty value after the prefix", ErrProxyAddress, s)
	}
	prefix := s[:i]
	if len(prefix) > 9 {
		return ProxyAddress{}, fmt.Errorf("%w %q: type prefix longer than 9 characters", ErrProxyAddress, s)
	}
	for _, r := range prefix {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return ProxyAddress{}, fmt.Errorf("%w %q: type prefix %q is not letters and digits", ErrProxyAddress, s, prefix)
		}
	}
	return ProxyAddress{Prefix: prefix, Value: s[i+1:]}, nil
}

// String writes the entry back exactly as parsed.
func (p ProxyAddress) String() string { return p.Prefix + ":" + p.Value }

// Type is the prefix in upper case ("SMTP", "X500").
func (p ProxyAddress) Type() string { return strings.ToUpper(p.Prefix) }

// IsSMTP reports whether the entry is an SMTP address, primary or not.
func (p ProxyAddress) IsSMTP() bool { return strings.EqualFold(p.Prefix, "smtp") }

// IsPrimary reports an upper-case prefix: for SMTP the primary address (for other types the primary of
// that type, which Exchange also marks in upper case).
func (p ProxyAddress) IsPrimary() bool { return p.Prefix == strings.ToUpper(p.Prefix) }

// Domain is the lower-cased part after the last @ of an SMTP value ("" for other types).
func (p ProxyAddress) Domain() string {
	if !p.IsSMTP() {
		return ""
	}
	return domainOf(p.Value)
}

// domainOf returns the lower-cased domain of an address, "" when there is no @.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return lower(addr[i+1:])
}

// localPart returns what precedes the last @ (the whole string when there is none).
func localPart(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[:i]
	}
	return addr
}

// stripSMTP removes an "SMTP:"/"smtp:" prefix (as ExternalEmailAddress and targetAddress carry one).
func stripSMTP(s string) string {
	if len(s) > 5 && strings.EqualFold(s[:5], "smtp:") {
		return s[5:]
	}
	return s
}

// smtpAddresses parses a proxyAddresses list and returns its SMTP entries (unparseable entries and other
// types are skipped: the cloud dropped or never validated them).
func smtpAddresses(list []string) []ProxyAddress {
	var out []ProxyAddress
	for _, s := range list {
		p, err := ParseProxyAddress(s)
		if err != nil || !p.IsSMTP() {
			continue
		}
		out = append(out, p)
	}
	return out
}
