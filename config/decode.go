package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/exo-worker/worker/jobs"
	"gopkg.in/yaml.v3"
)

// decoder reads a yaml.Node tree into the Config struct itself, field by field, instead of yaml.v3's
// Decode with KnownFields(true): that stops at the first unknown key (and a quoted date aborts the whole
// decode), while an operator wants every problem of the file in one go. yaml.v3 still converts each scalar,
// so values mean what they mean in YAML.
type decoder struct {
	lib      JobLibrary // reads jobs.<name>
	problems []Problem
	omitted  int // problems beyond MaxProblems, counted only
	lines    map[string]int
	visited  int  // nodes decoded, aliases counted each time they are followed
	tooBig   bool // the budget ran out (reported once)
}

// maxNodes bounds the work of one decode: a config has a few hundred nodes, and YAML aliases can expand a small
// file exponentially ("billion laughs"), which yaml.v3 guards against in its own decoder but not in a Node walk.
const maxNodes = 100_000

func (d *decoder) addf(path string, line int, format string, args ...any) {
	if len(d.problems) >= MaxProblems {
		d.omitted++
		return
	}
	d.problems = append(d.problems, Problem{Path: Clip(path), Line: line, Message: fmt.Sprintf(format, clipArgs(format, args)...)})
}

// inlineSecrets are keys that look like configuration but would put a secret in the file.
var inlineSecrets = map[string]string{
	"auth.client_secret":        "a secret is not read from the config file (files get printed, copied and committed); put it in a file and set auth.client_secret_file, or set " + envClientSecret,
	"auth.certificate_password": "a password is not read from the config file (files get printed, copied and committed); put it in a file and set auth.certificate_password_file, or set " + envCertPassword,
}

func (d *decoder) decodeDocument(doc *yaml.Node, cfg *Config) {
	n := doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if isNull(n) {
		return
	}
	d.decode(n, reflect.ValueOf(cfg).Elem(), "")
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// decode sets v (addressable) from n; path is the field path of v ("" for the root).
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if d.visited++; d.visited > maxNodes {
		if !d.tooBig {
			d.tooBig = true
			d.addf(path, n.Line, "the file expands to more than %d values (aliases?); a configuration is far smaller", maxNodes)
		}
		return
	}
	if path != "" {
		d.lines[path] = n.Line
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.addf(path, n.Line, "%s", err.Error())
		}
		return
	}
	if isNull(n) {
		// "key:" with no value keeps the default, rather than silently zeroing a limit.
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		before := len(d.problems)
		d.decode(n, nv.Elem(), path)
		if len(d.problems) == before {
			v.Set(nv)
		}
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		if v.Type() == jobsMapType {
			d.decodeJobs(n, v, path)
			return
		}
		d.decodeMap(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	default:
		d.decodeScalar(n, v, path)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.addf(path, n.Line, "must be a mapping of keys (%s), not %s", strings.Join(yamlKeys(v.Type()), ", "), describeNode(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		kp := join(path, key)
		if first, dup := seen[key]; dup {
			d.addf(kp, k.Line, "is set twice (first on line %d); keep one", first)
			continue
		}
		seen[key] = k.Line
		idx, ok := fieldByKey(v.Type(), key)
		if !ok {
			if msg, secret := inlineSecrets[kp]; secret {
				d.addf(kp, k.Line, "%s", msg)
				continue
			}
			d.addf(kp, k.Line, "unknown key%s", suggest(key, yamlKeys(v.Type())))
			continue
		}
		d.decode(val, v.FieldByIndex(idx), kp)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.addf(path, n.Line, "must be a mapping (name: settings), not %s", describeNode(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.addf(kp, k.Line, "is set twice (first on line %d); keep one", first)
			continue
		}
		seen[k.Value] = k.Line
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, elem, kp)
		v.SetMapIndex(reflect.ValueOf(k.Value), elem)
	}
}

var jobsMapType = reflect.TypeFor[map[string]jobs.Config]()

// decodeJobs reads jobs: each key names a job of the library, whose own configuration type (holding its
// defaults) the value is decoded into.
func (d *decoder) decodeJobs(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.addf(path, n.Line, "must be a mapping (job name: settings), not %s", describeNode(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	var known []string
	if d.lib != nil {
		known = d.lib.Names()
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.addf(kp, k.Line, "is set twice (first on line %d); keep one", first)
			continue
		}
		seen[k.Value] = k.Line
		var jc jobs.Config
		ok := false
		if d.lib != nil {
			jc, ok = d.lib.Defaults(k.Value)
		}
		if !ok {
			d.addf(kp, k.Line, "no job %q%s", k.Value, suggestJob(k.Value, known))
			continue
		}
		d.lines[kp] = k.Line
		if !isNull(val) {
			d.decode(val, reflect.ValueOf(jc).Elem(), kp)
		}
		v.SetMapIndex(reflect.ValueOf(k.Value), reflect.ValueOf(jc))
	}
}

// suggestJob names the closest known job and lists them all.
func suggestJob(name string, known []string) string {
	if len(known) == 0 {
		return "; this worker knows no jobs"
	}
	best, bestDist := "", 1<<30
	for _, k := range known {
		if dist := editDistance(strings.ToLower(name), k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	list := strings.Join(known, ", ")
	if bestDist <= max(2, len(name)/3) {
		return fmt.Sprintf("; did you mean %q? (known jobs: %s; see `worker jobs`)", best, list)
	}
	return fmt.Sprintf("; known jobs: %s (see `worker jobs`)", list)
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.addf(path, n.Line, "must be a list (- item lines or [a, b]), not %s", describeNode(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, item := range n.Content {
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(item, elem, fmt.Sprintf("%s[%d]", path, i))
		s = reflect.Append(s, elem)
	}
	v.Set(s)
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	want := kindName(v.Kind())
	if n.Kind != yaml.ScalarNode {
		d.addf(path, n.Line, "must be %s, not %s", want, describeNode(n))
		return
	}
	// yaml.v3 turns any scalar into a string; a number or a word where text is expected is fine.
	nv := reflect.New(v.Type())
	if err := n.Decode(nv.Interface()); err != nil {
		d.addf(path, n.Line, "%q is not %s", n.Value, want)
		return
	}
	v.Set(nv.Elem())
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	}
	return "a text value"
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "this"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlName is the key a struct field is written as ("" = not read from YAML).
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

// fieldByKey finds the field a key sets, looking into embedded structs tagged `yaml:",inline"` (a job's
// configuration embeds jobs.Settings so); the result is an index path for FieldByIndex.
func fieldByKey(t reflect.Type, key string) ([]int, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if isInline(f) {
			if sub, ok := fieldByKey(f.Type, key); ok {
				return append([]int{i}, sub...), true
			}
			continue
		}
		if name := yamlName(f); name != "" && name == key {
			return []int{i}, true
		}
	}
	return nil, false
}

func isInline(f reflect.StructField) bool {
	_, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return f.Anonymous && f.Type.Kind() == reflect.Struct && slices.Contains(strings.Split(opts, ","), "inline")
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if f := t.Field(i); isInline(f) {
			keys = append(keys, yamlKeys(f.Type)...)
		} else if k := yamlName(f); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// suggest names the closest known key (a typo is the usual cause) and lists the rest.
func suggest(key string, known []string) string {
	best, bestDist := "", 1<<30
	for _, k := range known {
		if dist := editDistance(strings.ToLower(key), k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	list := strings.Join(known, ", ")
	if best != "" && bestDist <= max(2, len(key)/3) {
		return fmt.Sprintf("; did you mean %q? (keys here: %s)", best, list)
	}
	return fmt.Sprintf("; remove it (keys here: %s)", list)
}

// editDistance is the Levenshtein distance, for "did you mean".
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = slices.Min([]int{prev[j] + 1, cur[j-1] + 1, prev[j-1] + cost})
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
