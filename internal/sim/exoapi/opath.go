package exoapi

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/exo-worker/worker/internal/sim/tenant"
)

// This file is the simulator's OPATH (-Filter) parser and evaluator, per research/exo-protocol.md §4.3–§4.4:
// comparisons `Property -op Value` joined by -and/-or/-not and parentheses; values in single or double
// quotes (a quote inside is doubled), $true/$false/$null, bare words; -like with suffix wildcards only;
// multi-valued properties match when they contain the value; EmailAddresses -eq ignores the prefix.
// Parsing is separate from binding (property names and value types are checked against the cmdlet's
// filterable set) so every error surfaces before any object is read, as the cmdlet's parameter binder does.

// opathMaxDepth bounds nesting so hostile input cannot grow the stack without limit.
const opathMaxDepth = 64

type tokKind int

const (
	tEOF tokKind = iota
	tLParen
	tRParen
	tOp     // -eq, -and, ... (lowercased, without the hyphen)
	tWord   // a property name or an unquoted value
	tString // a quoted value (unescaped)
	tVar    // $true, $false, $null (lowercased, without the $)
)

type token struct {
	kind tokKind
	text string
	pos  int // byte offset in the filter
}

// opathSyntaxError is a filter the grammar rejects; Error() is the text EXO puts in the binding error.
type opathSyntaxError struct {
	filter string
	pos    int // 0-based byte offset
	reason string
}

func (e *opathSyntaxError) Error() string {
	return fmt.Sprintf("Invalid filter syntax. For a description of the filter parameter syntax see the command help.\n%q at position %d.",
		e.filter, e.pos+1)
}

func lexOPATH(s string) ([]token, *opathSyntaxError) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '(':
			toks = append(toks, token{tLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tRParen, ")", i})
			i++
		case c == '"' || isSingleQuoteAt(s, i):
			// PowerShell (whose tokenizer reads OPATH text) treats the typographic ‘ ’ ‚ ‛ as single quotes
			// too; a quote character doubled inside the literal stands for itself.
			start := i
			double := c == '"'
			var b strings.Builder
			_, w := utf8.DecodeRuneInString(s[i:])
			i += w
			closed := false
			for i < len(s) {
				r, w := utf8.DecodeRuneInString(s[i:])
				if (double && r == '"') || (!double && isSingleQuote(r)) {
					if next, w2 := utf8.DecodeRuneInString(s[i+w:]); i+w < len(s) && next == r {
						b.WriteRune(r)
						i += w + w2
						continue
					}
					i += w
					closed = true
					break
				}
				b.WriteString(s[i : i+w])
				i += w
			}
			if !closed {
				return nil, &opathSyntaxError{filter: s, pos: start, reason: "unterminated string"}
			}
			toks = append(toks, token{tString, b.String(), start})
		case c == '-' && i+1 < len(s) && isLetter(s[i+1]):
			start := i
			i++
			for i < len(s) && isLetter(s[i]) {
				i++
			}
			toks = append(toks, token{tOp, strings.ToLower(s[start+1 : i]), start})
		case c == '$':
			start := i
			i++
			for i < len(s) && isLetter(s[i]) {
				i++
			}
			v := strings.ToLower(s[start+1 : i])
			if v != "true" && v != "false" && v != "null" {
				return nil, &opathSyntaxError{filter: s, pos: start, reason: "unknown variable"}
			}
			toks = append(toks, token{tVar, v, start})
		case isWordByte(c):
			start := i
			for i < len(s) && isWordByte(s[i]) {
				i++
			}
			toks = append(toks, token{tWord, s[start:i], start})
		default:
			return nil, &opathSyntaxError{filter: s, pos: i, reason: fmt.Sprintf("unexpected character %q", c)}
		}
	}
	return append(toks, token{tEOF, "", len(s)}), nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// isWordByte accepts what an unquoted OPATH token may hold; bytes >= 0x80 (UTF-8) are allowed so bare
// non-ASCII values parse.
func isWordByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c >= 0x80:
		return true
	}
	return strings.IndexByte("._@*:/+-", c) >= 0
}

// opathExpr is a parsed filter.
type opathExpr interface {
	String() string
}

type opathAnd struct{ l, r opathExpr }
type opathOr struct{ l, r opathExpr }
type opathNot struct{ x opathExpr }

// opathCmp is one comparison; spec and the converted value are filled by binding.
type opathCmp struct {
	prop   string // as written
	op     string // eq, ne, lt, gt, le, ge, like, notlike
	val    token  // tString, tWord or tVar
	spec   *propSpec
	isNull bool
	b      bool
	t      time.Time
}

// String prints the filter back with only the parentheses the tree needs, so a printed filter nests no
// deeper than the one parsed (-and binds tighter than -or; both associate to the left).
func (e *opathAnd) String() string {
	l, r := e.l.String(), e.r.String()
	if _, ok := e.l.(*opathOr); ok {
		l = "(" + l + ")"
	}
	switch e.r.(type) {
	case *opathAnd, *opathOr:
		r = "(" + r + ")"
	}
	return l + " -and " + r
}

func (e *opathOr) String() string {
	r := e.r.String()
	if _, ok := e.r.(*opathOr); ok {
		r = "(" + r + ")"
	}
	return e.l.String() + " -or " + r
}

func (e *opathNot) String() string {
	switch e.x.(type) {
	case *opathAnd, *opathOr:
		return "-not(" + e.x.String() + ")"
	}
	return "-not " + e.x.String()
}
func (e *opathCmp) String() string {
	v := "'" + strings.ReplaceAll(e.val.text, "'", "''") + "'"
	if e.val.kind == tVar {
		v = "$" + e.val.text
	}
	return e.prop + " -" + e.op + " " + v
}

var comparisonOps = []string{"eq", "ne", "lt", "gt", "le", "ge", "like", "notlike"}

type opathParser struct {
	src   string
	toks  []token
	i     int
	depth int
}

// parseOPATH parses a -Filter value. A filter wrapped in braces (a PowerShell script block rendered as
// text) is accepted too.
func parseOPATH(filter string) (opathExpr, error) {
	src := strings.TrimSpace(filter)
	off := strings.Index(filter, src) // positions in errors refer to the filter as sent
	if len(src) >= 2 && src[0] == '{' && src[len(src)-1] == '}' {
		src = src[1 : len(src)-1]
		off++
	}
	toks, lerr := lexOPATH(src)
	if lerr != nil {
		lerr.filter = filter
		lerr.pos += off
		return nil, lerr
	}
	for i := range toks {
		toks[i].pos += off
	}
	p := &opathParser{src: filter, toks: toks}
	if toks[0].kind == tEOF {
		return nil, p.fail(toks[0], "empty filter")
	}
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.fail(t, "unexpected token after the end of the expression")
	}
	return e, nil
}

func (p *opathParser) peek() token { return p.toks[p.i] }
func (p *opathParser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *opathParser) fail(t token, reason string) error {
	return &opathSyntaxError{filter: p.src, pos: t.pos, reason: reason}
}

func (p *opathParser) parseOr() (opathExpr, error) {
	l, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for t := p.peek(); t.kind == tOp && t.text == "or"; t = p.peek() {
		p.next()
		r, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		l = &opathOr{l, r}
	}
	return l, nil
}

func (p *opathParser) parseAnd() (opathExpr, error) {
	l, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for t := p.peek(); t.kind == tOp && t.text == "and"; t = p.peek() {
		p.next()
		r, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		l = &opathAnd{l, r}
	}
	return l, nil
}

func (p *opathParser) parseUnary() (opathExpr, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > opathMaxDepth {
		return nil, p.fail(p.peek(), "expression nested too deeply")
	}
	t := p.peek()
	switch {
	case t.kind == tOp && t.text == "not":
		p.next()
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return &opathNot{x}, nil
	case t.kind == tLParen:
		p.next()
		e, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tRParen {
			return nil, p.fail(c, "missing closing parenthesis")
		}
		return e, nil
	}
	return p.parseComparison()
}

func (p *opathParser) parseComparison() (opathExpr, error) {
	prop := p.next()
	if prop.kind != tWord || !isIdentifier(prop.text) {
		return nil, p.fail(prop, "expected a property name")
	}
	op := p.next()
	if op.kind != tOp || !slices.Contains(comparisonOps, op.text) {
		return nil, p.fail(op, "expected a comparison operator")
	}
	val := p.next()
	switch val.kind {
	case tString, tWord, tVar:
	default:
		return nil, p.fail(val, "expected a value")
	}
	return &opathCmp{prop: prop.text, op: op.text, val: val}, nil
}

func isIdentifier(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && !(c >= '0' && c <= '9') && c != '_' {
			return false
		}
	}
	return true
}

// Property kinds decide how values convert and compare.
type propKind int

const (
	pString  propKind = iota // case-insensitive text; -like allowed
	pGUID                    // exact match only
	pBool                    // $true/$false/'True'/'False'
	pDate                    // culture-formatted or ISO date strings
	pProxies                 // EmailAddresses: multi-valued, prefixed; -eq ignores the prefix
	pAddress                 // ExternalEmailAddress: one prefixed address; -eq ignores the prefix
	pPrimary                 // PrimarySmtpAddress: -eq also matches any smtp proxy address
)

type propSpec struct {
	name string
	kind propKind
	get  func(o *tenant.Object) any // string, bool, time.Time or []string
}

var propSpecs = func() map[string]*propSpec {
	specs := []*propSpec{
		{"Alias", pString, func(o *tenant.Object) any { return o.Alias }},
		{"DisplayName", pString, func(o *tenant.Object) any { return o.DisplayName }},
		{"EmailAddresses", pProxies, func(o *tenant.Object) any { return o.EmailAddresses }},
		{"ExternalDirectoryObjectId", pGUID, func(o *tenant.Object) any { return o.ID }},
		{"ExternalEmailAddress", pAddress, func(o *tenant.Object) any { return o.ExternalEmailAddress }},
		{"Guid", pGUID, func(o *tenant.Object) any { return o.Guid }},
		{"HiddenFromAddressListsEnabled", pBool, func(o *tenant.Object) any { return o.HiddenFromAddressListsEnabled }},
		{"IsDirSynced", pBool, func(o *tenant.Object) any { return o.IsDirSynced }},
		{"Name", pString, func(o *tenant.Object) any { return o.Name }},
		{"PrimarySmtpAddress", pPrimary, func(o *tenant.Object) any { return o.PrimarySmtpAddress }},
		{"RecipientType", pString, func(o *tenant.Object) any { return o.RecipientType }},
		{"RecipientTypeDetails", pString, func(o *tenant.Object) any { return o.RecipientTypeDetails }},
		{"UserPrincipalName", pString, func(o *tenant.Object) any { return o.UserPrincipalName }},
		{"WhenChanged", pDate, func(o *tenant.Object) any { return o.WhenChanged }},
		{"WhenChangedUTC", pDate, func(o *tenant.Object) any { return o.WhenChanged }},
		{"WhenCreated", pDate, func(o *tenant.Object) any { return o.WhenCreated }},
		{"WhenCreatedUTC", pDate, func(o *tenant.Object) any { return o.WhenCreated }},
		{"WindowsEmailAddress", pString, func(o *tenant.Object) any { return o.WindowsEmailAddress }},
	}
	for i := range 15 {
		specs = append(specs, &propSpec{fmt.Sprintf("CustomAttribute%d", i+1), pString,
			func(o *tenant.Object) any { return o.CustomAttributes[i] }})
	}
	m := map[string]*propSpec{}
	for _, s := range specs {
		m[strings.ToLower(s.name)] = s
	}
	return m
}()

// filterSet is the set of properties one cmdlet's -Filter accepts (lowercased names).
type filterSet []string

// filterableFor returns the filterable properties of a cmdlet (research §4.3: UserPrincipalName only on
// Get-MailUser and Get-Mailbox; UseMapiRichTextFormat nowhere).
func filterableFor(cmdlet string) filterSet {
	var set filterSet
	for k := range propSpecs {
		if k == "userprincipalname" && !strings.EqualFold(cmdlet, "Get-MailUser") && !strings.EqualFold(cmdlet, "Get-Mailbox") {
			continue
		}
		set = append(set, k)
	}
	slices.Sort(set)
	return set
}

// opathBindError is a filter that parses but does not bind (unknown property, bad value).
type opathBindError struct{ msg string }

func (e *opathBindError) Error() string { return e.msg }

// bindOPATH checks every property against the cmdlet's filterable set and converts every value to the
// property's type; it fills the comparison nodes so match cannot fail later.
func bindOPATH(e opathExpr, set filterSet) error {
	switch e := e.(type) {
	case *opathAnd:
		if err := bindOPATH(e.l, set); err != nil {
			return err
		}
		return bindOPATH(e.r, set)
	case *opathOr:
		if err := bindOPATH(e.l, set); err != nil {
			return err
		}
		return bindOPATH(e.r, set)
	case *opathNot:
		return bindOPATH(e.x, set)
	case *opathCmp:
		return e.bind(set)
	}
	return &opathBindError{"unknown filter node"}
}

func (c *opathCmp) bind(set filterSet) error {
	key := strings.ToLower(c.prop)
	spec, ok := propSpecs[key]
	if !ok || !slices.Contains(set, key) {
		return &opathBindError{fmt.Sprintf("%q is not a recognized filterable property. Valid property names are: %s.",
			c.prop, strings.Join(set, ", "))}
	}
	c.spec = spec
	if c.val.kind == tVar && c.val.text == "null" {
		if c.op != "eq" && c.op != "ne" {
			return &opathBindError{fmt.Sprintf("The operator -%s can't be used with $null for property %q. Use -eq or -ne.", c.op, spec.name)}
		}
		c.isNull = true
		return nil
	}
	like := c.op == "like" || c.op == "notlike"
	switch spec.kind {
	case pBool:
		if c.op != "eq" && c.op != "ne" {
			return &opathBindError{fmt.Sprintf("The operator -%s isn't supported for the Boolean property %q. Use -eq or -ne.", c.op, spec.name)}
		}
		switch strings.ToLower(c.val.text) {
		case "true", "$true":
			c.b = true
		case "false", "$false":
			c.b = false
		default:
			return &opathBindError{fmt.Sprintf("The value %q could not be converted to type System.Boolean for property %q.", c.val.text, spec.name)}
		}
	case pDate:
		if like {
			return &opathBindError{fmt.Sprintf("Wildcards can't be used with the date property %q.", spec.name)}
		}
		t, ok := parseFilterDate(c.val.text)
		if !ok {
			return &opathBindError{fmt.Sprintf("The value %q could not be converted to type System.DateTime for property %q.", c.val.text, spec.name)}
		}
		c.t = t
	case pGUID:
		if like {
			return &opathBindError{fmt.Sprintf("Wildcards can't be used with the property %q; use -eq with the full value.", spec.name)}
		}
	}
	if c.val.kind == tVar && spec.kind != pBool {
		return &opathBindError{fmt.Sprintf("The value $%s could not be converted to the type of property %q.", c.val.text, spec.name)}
	}
	return nil
}

var filterDateLayouts = []string{
	"1/2/2006 3:04:05 PM", "1/2/2006 3:04 PM", "1/2/2006 15:04:05", "1/2/2006 15:04", "1/2/2006",
	"2006-01-02T15:04:05.9999999Z07:00", "2006-01-02T15:04:05.9999999", "2006-01-02 15:04:05", "2006-01-02",
}

func parseFilterDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, l := range filterDateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// matchOPATH evaluates a bound filter against an object.
func matchOPATH(e opathExpr, o *tenant.Object) bool {
	switch e := e.(type) {
	case *opathAnd:
		return matchOPATH(e.l, o) && matchOPATH(e.r, o)
	case *opathOr:
		return matchOPATH(e.l, o) || matchOPATH(e.r, o)
	case *opathNot:
		return !matchOPATH(e.x, o)
	case *opathCmp:
		return e.match(o)
	}
	return false
}

func (c *opathCmp) match(o *tenant.Object) bool {
	if c.spec == nil {
		return false
	}
	v := c.spec.get(o)
	if c.isNull {
		empty := isEmptyValue(v)
		if c.op == "eq" {
			return empty
		}
		return !empty
	}
	switch c.spec.kind {
	case pBool:
		b, _ := v.(bool)
		return (b == c.b) == (c.op == "eq")
	case pDate:
		t, _ := v.(time.Time)
		return compareOrdered(t.UTC().Compare(c.t), c.op)
	case pProxies:
		list, _ := v.([]string)
		return c.matchAny(list, true)
	case pAddress:
		s, _ := v.(string)
		if s == "" {
			return c.matchAny(nil, true)
		}
		return c.matchAny([]string{s}, true)
	case pPrimary:
		s, _ := v.(string)
		if c.op == "eq" || c.op == "ne" {
			// The doc: PrimarySmtpAddress -eq also matches any of the object's smtp addresses.
			cands := []string{s}
			for _, a := range o.EmailAddresses {
				if p, addr, ok := strings.Cut(a, ":"); ok && strings.EqualFold(p, "smtp") {
					cands = append(cands, addr)
				}
			}
			return c.matchAny(cands, false)
		}
		return c.matchAny([]string{s}, false)
	default:
		s, _ := v.(string)
		return c.matchAny([]string{s}, false)
	}
}

// matchAny applies the operator with "contains" semantics: eq/like/lt/... hold if any value satisfies
// them; ne/notlike hold if no value satisfies the positive form.
func (c *opathCmp) matchAny(vals []string, prefixed bool) bool {
	pos := c.op
	negate := false
	switch c.op {
	case "ne":
		pos, negate = "eq", true
	case "notlike":
		pos, negate = "like", true
	}
	want := c.val.text
	hit := false
	for _, v := range vals {
		if c.test(pos, v, want, prefixed) {
			hit = true
			break
		}
	}
	return hit != negate
}

func (c *opathCmp) test(op, have, want string, prefixed bool) bool {
	switch op {
	case "eq":
		if prefixed && !hasAddressPrefix(want) {
			// EmailAddresses -eq 'a@b' ignores the prefix of the stored value.
			if _, addr, ok := strings.Cut(have, ":"); ok {
				have = addr
			}
		}
		return strings.EqualFold(have, want)
	case "like":
		return wildcardMatch(want, have)
	default:
		return compareOrdered(compareFold(have, want), op)
	}
}

// hasAddressPrefix reports whether a filter value names an address type (smtp:, x500:, sip:, ...).
func hasAddressPrefix(s string) bool {
	p, _, ok := strings.Cut(s, ":")
	return ok && p != "" && isIdentifier(p) && !strings.Contains(p, "@")
}

func compareFold(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) }

func compareOrdered(cmp int, op string) bool {
	switch op {
	case "eq":
		return cmp == 0
	case "ne":
		return cmp != 0
	case "lt":
		return cmp < 0
	case "gt":
		return cmp > 0
	case "le":
		return cmp <= 0
	case "ge":
		return cmp >= 0
	}
	return false
}

func isEmptyValue(v any) bool {
	switch v := v.(type) {
	case string:
		return v == ""
	case []string:
		return len(v) == 0
	case time.Time:
		return v.IsZero()
	case bool:
		return false
	}
	return v == nil
}

// wildcardMatch matches a -like pattern case-insensitively. EXO supports the wildcard as a suffix (and
// inside); a leading wildcard matches nothing rather than failing, as observed on the service.
func wildcardMatch(pattern, s string) bool {
	if strings.HasPrefix(pattern, "*") {
		return false
	}
	p := strings.ToLower(pattern)
	s = strings.ToLower(s)
	parts := strings.Split(p, "*")
	if len(parts) == 1 {
		return p == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, last)
}

// compiledFilter is a parsed and bound -Filter ready to match objects.
type compiledFilter struct{ expr opathExpr }

// compileFilter parses and binds a filter for a cmdlet; the error is the full text EXO's parameter
// binder reports ("Cannot bind parameter 'Filter' to the target. ...").
func compileFilter(filter, cmdlet string) (*compiledFilter, error) {
	e, err := parseOPATH(filter)
	if err != nil {
		return nil, &opathBindError{filterBindText(err.Error())}
	}
	if err := bindOPATH(e, filterableFor(cmdlet)); err != nil {
		return nil, &opathBindError{filterBindText(err.Error())}
	}
	return &compiledFilter{expr: e}, nil
}

func filterBindText(inner string) string {
	return `Cannot bind parameter 'Filter' to the target. Exception setting "Filter": "` + inner + `"`
}

func (f *compiledFilter) match(o *tenant.Object) bool {
	if f == nil {
		return true
	}
	return matchOPATH(f.expr, o)
}

// isSingleQuote reports whether r is one of the characters PowerShell reads as a single quote.
func isSingleQuote(r rune) bool {
	return r == '\'' || r == '\u2018' || r == '\u2019' || r == '\u201a' || r == '\u201b'
}

func isSingleQuoteAt(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return isSingleQuote(r)
}
