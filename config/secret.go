package config

// Secret holds a credential read from the environment. Every way of printing it (fmt verbs, JSON, YAML, zap's
// Stringer path) shows "[redacted]", so a config or an Auth value can be logged without leaking it; only
// Reveal returns the value, at the one place that hands it to azidentity.
type Secret struct{ v string }

// NewSecret wraps a value.
func NewSecret(v string) Secret { return Secret{v: v} }

// Reveal returns the secret value.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether no secret is set.
func (s Secret) IsZero() bool { return s.v == "" }

const redacted = "[redacted]"

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s.v == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer (%#v).
func (s Secret) GoString() string { return `config.Secret("` + s.String() + `")` }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalText implements encoding.TextMarshaler (zap's reflection encoder and others).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
