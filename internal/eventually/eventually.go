// Package eventually is the tests' one way to wait for a state another goroutine or process reaches (a run
// recorded, a schedule fired, writes under way): poll a condition until it holds, instead of sleeping a
// guessed time or hand-writing a loop. It asserts no wall-clock bound: the only limit is a watchdog (the
// test's deadline, else a minute) that turns a state never reached into a failure naming it rather than a
// hung test.
package eventually

import (
	"fmt"
	"testing"
	"time"
)

// Interval is the pause between two checks.
const Interval = 10 * time.Millisecond

// watchdog is how long to wait without a test deadline.
const watchdog = time.Minute

// True polls cond until it returns true. Otherwise, when the watchdog expires, it fails the test with
// what (a description of the awaited state, e.g. "run r1 recorded") and the last note cond gave.
func True(t testing.TB, what string, cond func() (ok bool, note string)) {
	t.Helper()
	Value(t, what, func() (struct{}, bool, string) {
		ok, note := cond()
		return struct{}{}, ok, note
	})
}

// Value polls get until it reports ok, and returns its value; see True.
func Value[T any](t testing.TB, what string, get func() (v T, ok bool, note string)) T {
	t.Helper()
	limit := time.Now().Add(watchdog)
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, set := d.Deadline(); set {
			// Leave a little for the failure message and cleanups.
			limit = dl.Add(-time.Until(dl) / 20)
		}
	}
	for {
		v, ok, note := get()
		if ok {
			return v
		}
		if time.Now().After(limit) {
			if note != "" {
				note = " (last: " + note + ")"
			}
			t.Fatalf("%s", fmt.Sprintf("gave up waiting for %s%s", what, note))
		}
		time.Sleep(Interval)
	}
}
