package exoapi

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAppendJSONString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", `"plain"`},
		{`O'Brien "x" \ y`, `"O'Brien \"x\" \\ y"`},
		{"Zoë", `"Zo\u00eb"`},
		{"line\nbreak\ttab\x01", `"line\nbreak\ttab\u0001"`},
		{"emoji 😀", `"emoji \ud83d\ude00"`},
		{"<html>&", `"<html>&"`},
	} {
		if got := string(appendJSONString(nil, tc.in)); got != tc.want {
			t.Errorf("appendJSONString(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// FuzzAppendJSONString checks the hand-written encoder against encoding/json: always valid JSON, and the
// same text back (each invalid UTF-8 byte becomes U+FFFD), and only ASCII bytes on the wire.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a", "Þórsdóttir", "\x00\x1f\"\\", "\xff\xfe", "😀𝄞", "\u2028\u2029"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q encoded as %s: not JSON: %v", s, b, err)
		}
		// Like a []rune conversion, the encoder turns each invalid byte into U+FFFD.
		want := string([]rune(s))
		if back != want {
			t.Fatalf("%q round-tripped to %q", s, back)
		}
		for _, c := range b {
			if c >= 0x80 {
				t.Fatalf("%q encoded with a non-ASCII byte: %s", s, b)
			}
		}
	})
}

func TestRecordProjectionAndAnnotations(t *testing.T) {
	r := record{{"Guid", aGUID, "x"}, {"EmailAddresses", aStrings, []string{"a"}}, {"Gone", aNone, nil}, {"N", aInt, 3}}
	var got map[string]any
	if err := json.Unmarshal(r.appendJSON(nil), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"Guid@data.type": "System.Guid", "Guid@odata.type": "#Guid", "Guid": "x",
		"EmailAddresses@odata.type": "#Collection(String)", "EmailAddresses": []any{"a"}, "Gone": nil,
		"N@data.type": "System.Int32", "N": float64(3)}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if gv, ok := got[k]; !ok || (v != nil && !strings.EqualFold(jsonText(gv), jsonText(v))) {
			t.Errorf("%s = %v, want %v", k, gv, v)
		}
	}
	if p := r.project([]string{"guid", "n"}); len(p) != 2 || p[0].name != "Guid" || p[1].name != "N" {
		t.Errorf("project = %v", p)
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
