package graphapi

import (
	"fmt"
	"strconv"
	"strings"
)

// A small OData $filter evaluator for the Graph collections, with the advanced-query rule of research §1.6:
// ne, not, endsWith and /$count need ConsistencyLevel: eventual and $count=true, else the service answers
// 400 Request_UnsupportedQuery. Supported: eq, ne, gt, ge, lt, le against 'strings', true, false, null,
// numbers and bare GUIDs; startsWith/endsWith(prop,'x'); prop in ('a','b'); and, or, not, parentheses;
// coll/any(x: x eq 'v'), coll/any(x: x/prop eq v), coll/all(...); coll/$count eq n. String comparisons
// ignore case, as the directory does.

type fexpr interface {
	eval(obj jobj, vars map[string]any) bool
}

type fparser struct {
	toks []ftok
	pos  int
	typ  string
	// props are the entity's property names (a filter naming another one is a 400).
	props []string
	// advanced names the first operator that needs advanced-query parameters, if any.
	advanced string
	depth    int // nesting, bounded so a hostile filter cannot exhaust the stack
}

type ftok struct {
	kind byte // 'i' identifier/keyword/guid, 's' string, 'n' number, 'p' punctuation
	text string
}

func tokenizeFilter(s string) ([]ftok, error) {
	var out []ftok
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case strings.IndexByte("(),/:", c) >= 0:
			out = append(out, ftok{'p', string(c)})
			i++
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for ; ; j++ {
				if j >= len(s) {
					return nil, fmt.Errorf("unterminated string literal at position %d", i)
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' { // '' is an escaped quote
						b.WriteByte('\'')
						j++
						continue
					}
					break
				}
				b.WriteByte(s[j])
			}
			out = append(out, ftok{'s', b.String()})
			i = j + 1
		case identByte(c):
			// The loop accepts exactly what starts a token here, so every pass makes progress.
			j := i
			for j < len(s) && identByte(s[j]) {
				j++
			}
			text := s[i:j]
			kind := byte('i')
			if _, err := strconv.ParseFloat(text, 64); err == nil {
				kind = 'n'
			}
			out = append(out, ftok{kind, text})
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q at position %d", c, i)
		}
	}
	return out, nil
}

// identByte reports whether c may appear in an identifier, keyword, number or bare GUID (ASCII only).
func identByte(c byte) bool {
	return c == '-' || c == '.' || c == '_' || c == '$' || c == '@' ||
		c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// parseFilter parses raw for an entity; the error is the service's 400.
func parseFilter(raw, typ string, props []string) (fexpr, string, *graphErr) {
	bad := func(msg string) *graphErr {
		return &graphErr{status: 400, code: "BadRequest", msg: "Invalid filter clause: " + msg}
	}
	toks, err := tokenizeFilter(raw)
	if err != nil {
		return nil, "", bad(err.Error())
	}
	p := &fparser{toks: toks, typ: typ, props: props}
	e, perr := p.or(nil)
	if perr == nil && p.pos < len(p.toks) {
		perr = fmt.Errorf("unexpected '%s'", p.toks[p.pos].text)
	}
	if perr != nil {
		var ge *graphErr
		if asGraphErr(perr, &ge) {
			return nil, "", ge
		}
		return nil, "", bad(perr.Error())
	}
	return e, p.advanced, nil
}

// graphErrWrap lets parser helpers return a finished Graph error through the error interface.
type graphErrWrap struct{ ge *graphErr }

func (w graphErrWrap) Error() string { return w.ge.msg }

func asGraphErr(err error, out **graphErr) bool {
	w, ok := err.(graphErrWrap)
	if ok {
		*out = w.ge
	}
	return ok
}

func (p *fparser) peek() (ftok, bool) {
	if p.pos >= len(p.toks) {
		return ftok{}, false
	}
	return p.toks[p.pos], true
}

func (p *fparser) isWord(w string) bool {
	t, ok := p.peek()
	return ok && t.kind == 'i' && strings.EqualFold(t.text, w)
}

func (p *fparser) isPunct(c string) bool {
	t, ok := p.peek()
	return ok && t.kind == 'p' && t.text == c
}

func (p *fparser) expect(c string) error {
	if !p.isPunct(c) {
		if t, ok := p.peek(); ok {
			return fmt.Errorf("expected '%s', found '%s'", c, t.text)
		}
		return fmt.Errorf("expected '%s' at the end", c)
	}
	p.pos++
	return nil
}

func (p *fparser) need(op string) {
	if p.advanced == "" {
		p.advanced = op
	}
}

// scope holds the lambda variables in scope.
type scope map[string]bool

func (p *fparser) or(sc scope) (fexpr, error) {
	l, err := p.and(sc)
	if err != nil {
		return nil, err
	}
	for p.isWord("or") {
		p.pos++
		r, err := p.and(sc)
		if err != nil {
			return nil, err
		}
		l = fbin{l, r, false}
	}
	return l, nil
}

func (p *fparser) and(sc scope) (fexpr, error) {
	l, err := p.unary(sc)
	if err != nil {
		return nil, err
	}
	for p.isWord("and") {
		p.pos++
		r, err := p.unary(sc)
		if err != nil {
			return nil, err
		}
		l = fbin{l, r, true}
	}
	return l, nil
}

func (p *fparser) unary(sc scope) (fexpr, error) {
	if p.depth++; p.depth > 64 {
		return nil, fmt.Errorf("the filter nests deeper than 64 levels")
	}
	defer func() { p.depth-- }()
	if p.isWord("not") {
		p.pos++
		p.need("not")
		e, err := p.unary(sc)
		if err != nil {
			return nil, err
		}
		return fnot{e}, nil
	}
	if p.isPunct("(") {
		p.pos++
		e, err := p.or(sc)
		if err != nil {
			return nil, err
		}
		return e, p.expect(")")
	}
	if p.isWord("startsWith") || p.isWord("endsWith") {
		fn := strings.ToLower(p.toks[p.pos].text)
		p.pos++
		if fn == "endswith" {
			p.need("endsWith")
		}
		if err := p.expect("("); err != nil {
			return nil, err
		}
		path, err := p.path(sc)
		if err != nil {
			return nil, err
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
		lit, err := p.literal()
		if err != nil {
			return nil, err
		}
		s, ok := lit.(string)
		if !ok {
			return nil, fmt.Errorf("%s needs a string", fn)
		}
		return ffunc{path, strings.ToLower(s), fn == "startswith"}, p.expect(")")
	}
	return p.comparison(sc)
}

// fpath is a property path: a property of the object, or a lambda variable and an optional property of it.
type fpath struct {
	variable string
	prop     string
}

func (p *fparser) path(sc scope) (fpath, error) {
	t, ok := p.peek()
	if !ok || t.kind != 'i' {
		return fpath{}, fmt.Errorf("expected a property name")
	}
	p.pos++
	if sc[t.text] {
		fp := fpath{variable: t.text}
		if p.isPunct("/") && p.pos+1 < len(p.toks) && p.toks[p.pos+1].kind == 'i' && !strings.HasPrefix(p.toks[p.pos+1].text, "$") {
			p.pos += 2
			fp.prop = p.toks[p.pos-1].text
		}
		return fp, nil
	}
	name := ""
	for _, pr := range p.props {
		if strings.EqualFold(pr, t.text) {
			name = pr
		}
	}
	if name == "" {
		return fpath{}, graphErrWrap{&graphErr{status: 400, code: "Request_BadRequest",
			msg: fmt.Sprintf("Could not find a property named '%s' on type '%s'.", t.text, p.typ)}}
	}
	return fpath{prop: name}, nil
}

func (p *fparser) literal() (any, error) {
	t, ok := p.peek()
	if !ok {
		return nil, fmt.Errorf("expected a value at the end")
	}
	p.pos++
	switch {
	case t.kind == 's':
		return t.text, nil
	case t.kind == 'n':
		f, _ := strconv.ParseFloat(t.text, 64)
		return f, nil
	case t.kind == 'i' && strings.EqualFold(t.text, "null"):
		return nil, nil
	case t.kind == 'i' && strings.EqualFold(t.text, "true"):
		return true, nil
	case t.kind == 'i' && strings.EqualFold(t.text, "false"):
		return false, nil
	case t.kind == 'i' && len(t.text) == 36 && strings.Count(t.text, "-") == 4: // a bare GUID
		return t.text, nil
	}
	return nil, fmt.Errorf("'%s' is not a value", t.text)
}

func (p *fparser) comparison(sc scope) (fexpr, error) {
	path, err := p.path(sc)
	if err != nil {
		return nil, err
	}
	// coll/any(x: ...), coll/all(x: ...), coll/$count op n
	if p.isPunct("/") {
		p.pos++
		t, ok := p.peek()
		if !ok || t.kind != 'i' {
			return nil, fmt.Errorf("expected any, all or $count after '/'")
		}
		p.pos++
		switch strings.ToLower(t.text) {
		case "$count":
			p.need("$count")
			op, err := p.operator()
			if err != nil {
				return nil, err
			}
			lit, err := p.literal()
			if err != nil {
				return nil, err
			}
			n, ok := lit.(float64)
			if !ok {
				return nil, fmt.Errorf("$count compares with a number")
			}
			return fcount{path, op, n}, nil
		case "any", "all":
			if err := p.expect("("); err != nil {
				return nil, err
			}
			v, ok := p.peek()
			if !ok || v.kind != 'i' {
				return nil, fmt.Errorf("expected a lambda variable")
			}
			p.pos++
			if err := p.expect(":"); err != nil {
				return nil, err
			}
			inner := scope{v.text: true}
			for k := range sc {
				inner[k] = true
			}
			body, err := p.or(inner)
			if err != nil {
				return nil, err
			}
			return flambda{path, v.text, body, strings.EqualFold(t.text, "all")}, p.expect(")")
		}
		return nil, fmt.Errorf("'%s' is not supported after '/'", t.text)
	}
	if p.isWord("in") {
		p.pos++
		if err := p.expect("("); err != nil {
			return nil, err
		}
		var vals []any
		for {
			lit, err := p.literal()
			if err != nil {
				return nil, err
			}
			vals = append(vals, lit)
			if p.isPunct(",") {
				p.pos++
				continue
			}
			break
		}
		return fin{path, vals}, p.expect(")")
	}
	op, err := p.operator()
	if err != nil {
		return nil, err
	}
	if op == "ne" {
		p.need("ne")
	}
	lit, err := p.literal()
	if err != nil {
		return nil, err
	}
	return fcmp{path, op, lit}, nil
}

func (p *fparser) operator() (string, error) {
	t, ok := p.peek()
	if ok && t.kind == 'i' {
		switch op := strings.ToLower(t.text); op {
		case "eq", "ne", "gt", "ge", "lt", "le":
			p.pos++
			return op, nil
		}
	}
	if ok {
		return "", fmt.Errorf("expected an operator, found '%s'", t.text)
	}
	return "", fmt.Errorf("expected an operator at the end")
}

// --- evaluation ---

func lookup(obj jobj, vars map[string]any, p fpath) any {
	var v any
	if p.variable != "" {
		v = vars[p.variable]
		if p.prop == "" {
			return v
		}
		o, ok := v.(jobj)
		if !ok {
			return nil
		}
		obj = o
	}
	for _, kv := range obj {
		if strings.EqualFold(kv.k, p.prop) {
			return kv.v
		}
	}
	return nil
}

func compare(v any, op string, lit any) bool {
	if lit == nil || v == nil {
		eq := lit == nil && v == nil
		switch op {
		case "eq":
			return eq
		case "ne":
			return !eq
		}
		return false
	}
	c := 0
	switch x := v.(type) {
	case string:
		s, ok := lit.(string)
		if !ok {
			return false
		}
		c = strings.Compare(strings.ToLower(x), strings.ToLower(s))
	case bool:
		b, ok := lit.(bool)
		if !ok {
			return false
		}
		if x != b {
			c = 1
		}
		if op != "eq" && op != "ne" {
			return false
		}
	case int:
		f, ok := lit.(float64)
		if !ok {
			return false
		}
		c = cmpFloat(float64(x), f)
	default:
		return false
	}
	switch op {
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	case "le":
		return c <= 0
	}
	return false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// items returns a collection property as a slice of values.
func items(v any) []any {
	switch x := v.(type) {
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	case []jobj:
		out := make([]any, len(x))
		for i, o := range x {
			out[i] = o
		}
		return out
	}
	return nil
}

type fbin struct {
	l, r fexpr
	and  bool
}

func (b fbin) eval(o jobj, v map[string]any) bool {
	if b.and {
		return b.l.eval(o, v) && b.r.eval(o, v)
	}
	return b.l.eval(o, v) || b.r.eval(o, v)
}

type fnot struct{ e fexpr }

func (n fnot) eval(o jobj, v map[string]any) bool { return !n.e.eval(o, v) }

type fcmp struct {
	path fpath
	op   string
	lit  any
}

func (c fcmp) eval(o jobj, v map[string]any) bool { return compare(lookup(o, v, c.path), c.op, c.lit) }

type ffunc struct {
	path   fpath
	arg    string // lower case
	prefix bool
}

func (f ffunc) eval(o jobj, v map[string]any) bool {
	s, ok := lookup(o, v, f.path).(string)
	if !ok {
		return false
	}
	if f.prefix {
		return strings.HasPrefix(strings.ToLower(s), f.arg)
	}
	return strings.HasSuffix(strings.ToLower(s), f.arg)
}

type fin struct {
	path fpath
	vals []any
}

func (f fin) eval(o jobj, v map[string]any) bool {
	x := lookup(o, v, f.path)
	for _, l := range f.vals {
		if compare(x, "eq", l) {
			return true
		}
	}
	return false
}

type fcount struct {
	path fpath
	op   string
	n    float64
}

func (f fcount) eval(o jobj, v map[string]any) bool {
	return compare(len(items(lookup(o, v, f.path))), f.op, f.n)
}

type flambda struct {
	path     fpath
	variable string
	body     fexpr
	all      bool
}

func (f flambda) eval(o jobj, v map[string]any) bool {
	inner := map[string]any{}
	for k, x := range v {
		inner[k] = x
	}
	for _, it := range items(lookup(o, v, f.path)) {
		inner[f.variable] = it
		if f.body.eval(o, inner) != f.all {
			return !f.all
		}
	}
	return f.all
}
