package retry

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want time.Duration
		ok   bool
	}{
		{"seconds", "2", 2 * time.Second, true},
		{"seconds with spaces", " 3 ", 3 * time.Second, true},
		{"fraction", "0.25", 250 * time.Millisecond, true},
		{"trailing dot", "3.", 3 * time.Second, true},
		{"zero", "0", 0, true},
		{"HTTP date ahead", now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second, true},
		{"HTTP date in the past", now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"RFC 850 date", now.Add(10 * time.Second).Format("Monday, 02-Jan-06 15:04:05 GMT"), 10 * time.Second, true},
		{"ANSI C date", now.Add(10 * time.Second).Format(time.ANSIC), 10 * time.Second, true},
		{"an hour is kept", "3600", time.Hour, true},
		{"huge is clamped, not dropped", "99999", Ceiling, true},
		{"absurd is clamped", strings.Repeat("9", 400), Ceiling, true},
		{"date far ahead is clamped", now.Add(30 * 24 * time.Hour).Format(http.TimeFormat), Ceiling, true},
		{"empty", "", 0, false},
		{"negative", "-1", 0, false},
		{"plus sign", "+5", 0, false},
		{"word", "soon", 0, false},
		{"exponent", "1e3", 0, false},
		{"NaN", "NaN", 0, false},
		{"Inf", "Inf", 0, false},
		{"hex", "0x10", 0, false},
		{"two dots", "1.2.3", 0, false},
		{"lone dot", ".", 0, false},
		{"space inside", "1 0", 0, false},
		{"unit", "5s", 0, false},
		{"garbage date", "Mon, 32 Foo 2026 99:99:99 GMT", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "1", "2.5", "NaN", "Inf", "-0", "1e308", "Mon, 02 Jan 2006 15:04:05 GMT", "\x00", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseRetryAfter(s, now)
		if d < 0 || d > Ceiling || (!ok && d != 0) {
			t.Fatalf("%q: %v, %v", s, d, ok)
		}
	})
}

func TestWait(t *testing.T) {
	p := Policy{Base: time.Second, Max: 8 * time.Second, MaxWait: time.Minute}
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		lo, hi     time.Duration
		ok         bool
	}{
		{"Retry-After honoured", 1, 20 * time.Second, 20 * time.Second, 20 * time.Second, true},
		{"Retry-After at the limit", 3, time.Minute, time.Minute, time.Minute, true},
		{"Retry-After beyond the limit gives up", 1, time.Minute + time.Second, 0, 0, false},
		{"clamped huge gives up", 1, Ceiling, 0, 0, false},
		{"first backoff", 1, 0, 500 * time.Millisecond, time.Second, true},
		{"second backoff doubles", 2, 0, time.Second, 2 * time.Second, true},
		{"backoff capped", 10, 0, 4 * time.Second, 8 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 50 { // the jitter is random: every draw must stay in the band
				got, ok := p.Wait(tt.attempt, tt.retryAfter)
				if ok != tt.ok || got < tt.lo || got > tt.hi {
					t.Fatalf("Wait(%d, %v) = %v, %v; want %v..%v, %v", tt.attempt, tt.retryAfter, got, ok, tt.lo, tt.hi, tt.ok)
				}
			}
		})
	}
}

func TestZeroPolicyUsesDefaults(t *testing.T) {
	var p Policy
	if _, ok := p.Wait(1, DefaultMaxWait); !ok {
		t.Error("a Retry-After of DefaultMaxWait is refused by the zero policy")
	}
	if _, ok := p.Wait(1, DefaultMaxWait+time.Second); ok {
		t.Error("a Retry-After beyond DefaultMaxWait is accepted by the zero policy")
	}
	for range 50 {
		if d := p.Backoff(100); d < DefaultMax/2 || d > DefaultMax {
			t.Fatalf("Backoff(100) = %v, want within [%v, %v]", d, DefaultMax/2, DefaultMax)
		}
	}
	// A Max below Base is raised to Base rather than producing a zero wait.
	if d := (Policy{Base: time.Second, Max: time.Millisecond}).Backoff(1); d < 500*time.Millisecond {
		t.Errorf("Backoff with Max < Base = %v", d)
	}
}
