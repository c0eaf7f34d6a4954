package exo

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Filter is an OPATH filter for the -Filter parameter of Get-* cmdlets (research §4.4), built so that values
// can never change its structure: strings are single-quoted with quotes doubled, booleans are 'True'/'False'
// (what the module sends), nil is $null, and property names are checked.
//
// Only the operators the worker uses are here (Eq, Gt, And); -ne, -lt, -like, -or, -not and the rest are one
// line each on compare/join when a job needs them.
//
// A Filter built from a bad property name or value carries an error: Build returns it, and String returns a
// text the service refuses, so that a mistake can never widen a filter to every object.
type Filter struct {
	expr string
	err  error
}

// Build returns the filter text, or the first construction error.
func (f Filter) Build() (string, error) {
	if f.err != nil {
		return "", f.err
	}
	if f.expr == "" {
		return "", errors.New("opath: empty filter")
	}
	return f.expr, nil
}

// String returns the filter text. An invalid filter renders as an expression Exchange rejects as a syntax
// error rather than as an empty (match-all) filter.
func (f Filter) String() string {
	if s, err := f.Build(); err == nil {
		return s
	}
	return "-invalid-filter"
}

// Eq is "prop -eq value".
func Eq(prop string, value any) Filter { return compare(prop, "-eq", value) }

// Gt is "prop -gt value".
func Gt(prop string, value any) Filter { return compare(prop, "-gt", value) }

// And joins filters with -and, each in parentheses.
func And(fs ...Filter) Filter { return join("-and", fs) }

func compare(prop, op string, value any) Filter {
	if !validProperty(prop) {
		return Filter{err: fmt.Errorf("opath: property name %q must be letters and digits, starting with a letter", prop)}
	}
	v, err := literal(value)
	if err != nil {
		return Filter{err: fmt.Errorf("opath: %s %s: %w", prop, op, err)}
	}
	return Filter{expr: prop + " " + op + " " + v}
}

func join(op string, fs []Filter) Filter {
	if len(fs) == 0 {
		return Filter{err: fmt.Errorf("opath: %s of nothing", op)}
	}
	if len(fs) == 1 {
		return fs[0]
	}
	parts := make([]string, len(fs))
	for i, f := range fs {
		if f.err != nil {
			return f
		}
		if f.expr == "" {
			return Filter{err: fmt.Errorf("opath: empty operand %d of %s", i+1, op)}
		}
		parts[i] = "(" + f.expr + ")"
	}
	return Filter{expr: strings.Join(parts, " "+op+" ")}
}

// validProperty: Exchange property names are ASCII letters and digits (EmailAddresses, CustomAttribute1).
func validProperty(p string) bool {
	if p == "" || len(p) > 128 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// literal renders a value as an OPATH literal.
func literal(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "$null", nil
	case string:
		return Quote(x)
	case bool:
		if x {
			return "'True'", nil
		}
		return "'False'", nil
	case int:
		return strconv.Itoa(x), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint32:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case time.Time:
		// Exchange compares dates as culture-formatted strings; the service's culture is en-US.
		return Quote(x.UTC().Format("1/2/2006 3:04:05 PM"))
	case fmt.Stringer:
		return Quote(x.String())
	}
	return "", fmt.Errorf("unsupported value type %T (use a string, bool, integer, time.Time or nil)", v)
}

// singleQuotes are the characters PowerShell (whose tokenizer reads OPATH text) treats as a single quote:
// ASCII ' and the typographic ‘ ’ ‚ ‛. Each is doubled inside a quoted literal, so "O’Brien" cannot end
// the literal early.
const singleQuotes = "'\u2018\u2019\u201a\u201b"

// Quote renders s as a single-quoted OPATH string literal. It refuses invalid UTF-8 and control characters
// other than tab: no directory value legitimately holds them, and they could confuse the service's parser.
func Quote(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("value %q is not valid UTF-8", s)
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return "", fmt.Errorf("value %q holds a control character", s)
		}
		if strings.ContainsRune(singleQuotes, r) {
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String(), nil
}
