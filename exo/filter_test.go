package exo

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type stringer string

func (s stringer) String() string { return string(s) }

func TestFilterBuild(t *testing.T) {
	tests := []struct {
		name    string
		f       Filter
		want    string
		wantErr string
	}{
		{"string", Eq("RecipientTypeDetails", "MailUser"), "RecipientTypeDetails -eq 'MailUser'", ""},
		{"bool true", Eq("IsDirSynced", true), "IsDirSynced -eq 'True'", ""},
		{"bool false", Eq("HiddenFromAddressListsEnabled", false), "HiddenFromAddressListsEnabled -eq 'False'", ""},
		{"nil", Eq("ExternalEmailAddress", nil), "ExternalEmailAddress -eq $null", ""},
		{"integer", Gt("CustomAttribute1", 42), "CustomAttribute1 -gt 42", ""},
		{"int64 and friends", Gt("A1", int64(-7)), "A1 -gt -7", ""},
		{"quote doubled", Eq("DisplayName", "O'Brien"), "DisplayName -eq 'O''Brien'", ""},
		{"typographic quote doubled", Eq("DisplayName", "O\u2019Brien"), "DisplayName -eq 'O\u2019\u2019Brien'", ""},
		{"injection attempt stays a literal", Eq("Alias", "x' -or Alias -like '*"), "Alias -eq 'x'' -or Alias -like ''*'", ""},
		{"a wildcard stays as it is", Eq("EmailAddresses", "smtp:jane*"), "EmailAddresses -eq 'smtp:jane*'", ""},
		{"date", Gt("WhenCreated", time.Date(2017, 8, 1, 14, 0, 0, 0, time.UTC)), "WhenCreated -gt '8/1/2017 2:00:00 PM'", ""},
		{"stringer", Eq("Guid", stringer("0b6d2f7a")), "Guid -eq '0b6d2f7a'", ""},
		{"and", And(Eq("IsDirSynced", true), Eq("RecipientTypeDetails", "MailUser")),
			"(IsDirSynced -eq 'True') -and (RecipientTypeDetails -eq 'MailUser')", ""},
		{"and of one is itself", And(Eq("A", "b")), "A -eq 'b'", ""},
		{"nested and", And(And(Eq("A", "1"), Eq("B", "2")), Eq("C", nil)),
			"((A -eq '1') -and (B -eq '2')) -and (C -eq $null)", ""},
		{"empty string value", Eq("CustomAttribute1", ""), "CustomAttribute1 -eq ''", ""},
		{"bad property", Eq("Display Name", "x"), "", "property name"},
		{"property injection", Eq("A -or B", "x"), "", "property name"},
		{"property starting with a digit", Eq("1A", "x"), "", "property name"},
		{"unsupported value", Eq("A", []string{"x"}), "", "unsupported value type"},
		{"control character", Eq("A", "x\ny"), "", "control character"},
		{"invalid UTF-8", Eq("A", "x\xffy"), "", "UTF-8"},
		{"error propagates through And", And(Eq("A", "x"), Eq("B C", "y")), "", "property name"},
		{"error propagates through nested And", And(Eq("A", "x"), And(Eq("", "x"))), "", "property name"},
		{"empty And", And(), "", "of nothing"},
		{"zero Filter in And", And(Eq("A", "x"), Filter{}), "", "empty operand"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.f.Build()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Build() error = %v, want one containing %q", err, tt.wantErr)
				}
				if s := tt.f.String(); s == "" || !strings.HasPrefix(s, "-") {
					t.Errorf("String() of an invalid filter = %q; must be a text the service refuses, never empty", s)
				}
				return
			}
			if err != nil {
				t.Fatalf("Build() error = %v", err)
			}
			if got != tt.want || tt.f.String() != tt.want {
				t.Errorf("Build() = %q, want %q", got, tt.want)
			}
		})
	}
}

// unquote reads one single-quoted literal at the start of s the way PowerShell does (any of the four
// single-quote characters ends it; a doubled one is a literal quote) and returns the value and the rest.
func unquote(s string) (string, string, error) {
	rs := []rune(s)
	if len(rs) == 0 || !strings.ContainsRune(singleQuotes, rs[0]) {
		return "", "", errors.New("no opening quote")
	}
	var b strings.Builder
	for i := 1; i < len(rs); i++ {
		if strings.ContainsRune(singleQuotes, rs[i]) {
			if i+1 < len(rs) && strings.ContainsRune(singleQuotes, rs[i+1]) {
				b.WriteRune(rs[i])
				i++
				continue
			}
			return b.String(), string(rs[i+1:]), nil
		}
		b.WriteRune(rs[i])
	}
	return "", "", errors.New("unterminated literal")
}

func FuzzQuoteRoundTrip(f *testing.F) {
	for _, s := range []string{"", "plain", "O'Brien", "''", "'", "x' -or Alias -like '*", "O\u2019Brien", "\u2018\u201a\u201b", "a\tb", "ünï©ødé"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		flt := Eq("DisplayName", v)
		text, err := flt.Build()
		if err != nil {
			// Only values the builder refuses on purpose may fail.
			if !strings.Contains(err.Error(), "control character") && !strings.Contains(err.Error(), "UTF-8") {
				t.Fatalf("unexpected error for %q: %v", v, err)
			}
			return
		}
		const prefix = "DisplayName -eq "
		if !strings.HasPrefix(text, prefix) {
			t.Fatalf("filter %q lost its shape", text)
		}
		got, rest, err := unquote(text[len(prefix):])
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if rest != "" {
			t.Fatalf("value %q escaped its literal: %q remains after it in %q", v, rest, text)
		}
		if got != v {
			t.Fatalf("round trip: got %q, want %q", got, v)
		}
		// The same value inside a combinator keeps the structure intact.
		both, err := And(Eq("Alias", v), Eq("IsDirSynced", true)).Build()
		if err != nil || !strings.HasSuffix(both, ") -and (IsDirSynced -eq 'True')") {
			t.Fatalf("combined filter %q (%v) broken by the value", both, err)
		}
	})
}
