package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// ValueType is what a Value holds.
type ValueType uint8

// The value types a change can carry: what Exchange parameters and Graph properties take.
const (
	TypeNull ValueType = iota // $null: no value
	TypeText                  // a string or an enum name (Never, jane@contoso.com)
	TypeBool                  // $true / $false
	TypeList                  // a multi-valued parameter (EmailAddresses)
)

// Value is one typed parameter value. It is sent as it is typed (JSON true for $true, never the string
// "True"), journalled as JSON of the same type and compared the way Exchange compares values. The zero
// Value is null.
type Value struct {
	typ  ValueType
	text string
	b    bool
	list []string
}

// Null is the absent value ($null).
var Null = Value{}

// Text is a string value.
func Text(s string) Value { return Value{typ: TypeText, text: s} }

// Bool is a boolean value.
func Bool(b bool) Value { return Value{typ: TypeBool, b: b} }

// List is a multi-valued value; its items keep their order when sent.
func List(items ...string) Value { return Value{typ: TypeList, list: slices.Clone(items)} }

// Type says what the value holds.
func (v Value) Type() ValueType { return v.typ }

// IsNull reports the absent value.
func (v Value) IsNull() bool { return v.typ == TypeNull }

// AsText returns a text value's string ("" for other types).
func (v Value) AsText() string { return v.text }

// AsBool returns a boolean value (false for other types).
func (v Value) AsBool() bool { return v.b }

// Native is the value as encoding/json sends it: string, bool, []string or nil. The exo client encodes a
// command's parameters from it.
func (v Value) Native() any {
	switch v.typ {
	case TypeText:
		return v.text
	case TypeBool:
		return v.b
	case TypeList:
		return slices.Clone(v.list)
	}
	return nil
}

// Equal reports whether two values are the same as Exchange sees them: text compares case-insensitively
// (enum names, addresses), lists as sets of case-insensitive items, and a boolean equals the text
// "True"/"False" (some cmdlets' output serialises booleans as text).
func (v Value) Equal(w Value) bool {
	switch {
	case v.typ == TypeBool && w.typ == TypeText:
		return strings.EqualFold(w.text, boolText(v.b))
	case v.typ == TypeText && w.typ == TypeBool:
		return strings.EqualFold(v.text, boolText(w.b))
	case v.typ != w.typ:
		return false
	}
	switch v.typ {
	case TypeText:
		return strings.EqualFold(v.text, w.text)
	case TypeBool:
		return v.b == w.b
	case TypeList:
		if len(v.list) != len(w.list) {
			return false
		}
		a, b := lowerSorted(v.list), lowerSorted(w.list)
		return slices.Equal(a, b)
	}
	return true
}

func boolText(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

func lowerSorted(items []string) []string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = strings.ToLower(s)
	}
	slices.Sort(out)
	return out
}

// String is the value as a PowerShell user writes it: Never, $true, $false, $null, {a, b}.
func (v Value) String() string {
	switch v.typ {
	case TypeText:
		return v.text
	case TypeBool:
		if v.b {
			return "$true"
		}
		return "$false"
	case TypeList:
		return "{" + strings.Join(v.list, ", ") + "}"
	}
	return "$null"
}

// MarshalJSON writes the value as JSON of its type: "Never", true, ["a","b"], null.
func (v Value) MarshalJSON() ([]byte, error) { return json.Marshal(v.Native()) }

// UnmarshalJSON reads a JSON string, boolean, array of strings or null. A number is kept as its text (no
// parameter the jobs write is numeric; the journal must still read back whatever a cmdlet returned).
func (v *Value) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return fmt.Errorf("jobs: empty JSON value")
	case bytes.Equal(b, []byte("null")):
		*v = Null
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = Text(s)
	case bytes.Equal(b, []byte("true")), bytes.Equal(b, []byte("false")):
		*v = Bool(b[0] == 't')
	case b[0] == '[':
		var items []any
		if err := json.Unmarshal(b, &items); err != nil {
			return err
		}
		list := make([]string, 0, len(items))
		for _, it := range items {
			switch x := it.(type) {
			case string:
				list = append(list, x)
			case nil:
			default:
				list = append(list, fmt.Sprint(x))
			}
		}
		*v = List(list...)
	case b[0] == '{':
		return fmt.Errorf("jobs: a JSON object is not a parameter value")
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("jobs: %s is not a parameter value", b)
		}
		*v = Text(n.String())
	}
	return nil
}
