package eventually

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestTrueReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	calls := 0
	True(t, "three increments", func() (bool, string) {
		calls++
		return n.Load() == 3, ""
	})
	if n.Load() != 3 || calls == 0 {
		t.Fatalf("returned at n=%d after %d checks", n.Load(), calls)
	}
}

func TestValueReturnsTheValue(t *testing.T) {
	i := 0
	got := Value(t, "the fifth check", func() (int, bool, string) {
		i++
		return i * 10, i == 5, ""
	})
	if got != 50 {
		t.Fatalf("got %d, want 50", got)
	}
}

// fakeTB records a failure instead of failing, and has a deadline already past, so the watchdog fires at once.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper()                     {}
func (f *fakeTB) Deadline() (time.Time, bool) { return time.Now().Add(-time.Second), true }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	panic(f)
}

func TestWatchdogNamesTheAwaitedState(t *testing.T) {
	f := &fakeTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != f {
				t.Fatalf("recovered %v", r)
			}
		}()
		True(f, "run r1 recorded", func() (bool, string) { return false, "status running" })
	}()
	if !strings.Contains(f.failed, "run r1 recorded") || !strings.Contains(f.failed, "status running") {
		t.Errorf("failure %q does not name the awaited state and the last note", f.failed)
	}
}
