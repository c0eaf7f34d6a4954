// Package retry is the one policy the Exchange Online client (exo) and the Graph client (internal/graph) follow
// between attempts, so that both services are treated alike:
//
//   - A Retry-After the service sends is read by ParseRetryAfter: delay-seconds (fractions kept, as the
//     ExchangeOnlineManagement module reads them) or an HTTP date (one in the past means now). Anything else
//     — empty, negative, exponents, NaN, words — counts as no Retry-After. A value is never shortened:
//     it is what the service asked for, clamped only at Ceiling so that arithmetic cannot overflow.
//   - Policy.Wait honours a Retry-After up to MaxWait. A longer one is not waited and not ignored either:
//     the call ends with the service's error, whose RetryAfter tells the caller (and the person reading the
//     run) how long the service wants to be left alone. Waiting hours inside a run, or retrying early
//     against the service's word, would both be wrong.
//   - Without a Retry-After the wait is capped exponential backoff with jitter: Base·2^(attempt-1), capped
//     at Max, then a random 50–100 % of it, so that many workers do not retry in step.
//
// Which failures are retryable, and how many attempts a call gets, stay with each client: they depend on the
// service's error shapes (EXO exception names, Graph status codes).
package retry

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Ceiling is the largest wait ParseRetryAfter returns; longer values are clamped to it (they exceed any
// MaxWait, so the call gives up either way). It keeps absurd values from overflowing time.Duration.
const Ceiling = 24 * time.Hour

// Defaults of a zero Policy.
const (
	DefaultBase    = time.Second
	DefaultMax     = 30 * time.Second
	DefaultMaxWait = 5 * time.Minute
)

// Policy is the waiting policy of one client. The zero value uses the defaults.
type Policy struct {
	// Base and Max shape the backoff when the service named no wait: Base·2^(attempt-1), capped at Max.
	Base, Max time.Duration
	// MaxWait is the longest Retry-After honoured; a longer one ends the call with the service's error.
	MaxWait time.Duration
}

func (p Policy) withDefaults() Policy {
	if p.Base <= 0 {
		p.Base = DefaultBase
	}
	if p.Max <= 0 {
		p.Max = DefaultMax
	}
	if p.Max < p.Base {
		p.Max = p.Base
	}
	if p.MaxWait <= 0 {
		p.MaxWait = DefaultMaxWait
	}
	return p
}

// Backoff is the wait before retry number attempt (1 = the first retry) when the service named none: capped
// exponential with jitter in the upper half.
func (p Policy) Backoff(attempt int) time.Duration {
	p = p.withDefaults()
	d := p.Base
	for i := 1; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// Wait decides the wait before retry number attempt, given the Retry-After the service sent (0: none): the
// Retry-After when there is one and it is within MaxWait, else the backoff. ok is false when the service
// asked for longer than MaxWait: the caller gives up and reports the service's error.
func (p Policy) Wait(attempt int, retryAfter time.Duration) (wait time.Duration, ok bool) {
	p = p.withDefaults()
	switch {
	case retryAfter > p.MaxWait:
		return 0, false
	case retryAfter > 0:
		return retryAfter, true
	}
	return p.Backoff(attempt), true
}

// ParseRetryAfter reads a Retry-After header value (see the package doc for the rules). ok is false when the
// value is absent or unreadable; a date in the past gives 0 with ok true (retry now).
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if isDecimal(v) {
		// The syntax is checked, so ParseFloat can only report a range error: +Inf for overflow (clamped
		// below) or 0 for an underflowing fraction (retry now).
		secs, _ := strconv.ParseFloat(v, 64)
		if secs >= Ceiling.Seconds() {
			return Ceiling, true
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), Ceiling), true
	}
	return 0, false
}

// isDecimal accepts delay-seconds (digits) with an optional fraction: "2", "0.25", "3.". No sign, exponent,
// hex or spaces inside.
func isDecimal(s string) bool {
	digits, dot := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}
