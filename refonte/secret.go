package refonte

import (
	"fmt"
	"log/slog"
)

// Redacted is what a Secret prints in place of its value.
const Redacted = "[redacted]"

// Secret is a string that never prints its value: String, GoString, every
// fmt verb, JSON and text marshalling and slog all give "[redacted]". Use
// Reveal to get the value where it is really needed (an Authorization
// header, a constant-time comparison).
type Secret string

// Reveal returns the secret value. Call it only where the value is used,
// never to print or log it.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]".
func (s Secret) String() string { return Redacted }

// GoString returns "[redacted]", so that %#v does not print the value.
func (s Secret) GoString() string { return Redacted }

// Format prints "[redacted]" for every verb (%v, %+v, %#v, %s, %q, %x…).
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", Redacted)
		return
	}
	_, _ = f.Write([]byte(Redacted))
}

// MarshalJSON returns the JSON string "[redacted]".
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText returns "[redacted]"; zap and encoding/* use it.
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue returns "[redacted]" for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s == "" }
