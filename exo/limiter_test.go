package exo

import (
	"context"
	"math"
	"net/http"
	"sync"
	"testing"
	"time"
)

// fakeClock advances only when something sleeps, so pacing tests run instantly and deterministically.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.advance(d)
	return nil
}

func (c *fakeClock) advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// bucket is a server-side token bucket like the simulator's throttle (budget per second, burst = budget).
type bucket struct {
	rate, tokens float64
	last         time.Time
}

func (b *bucket) take(now time.Time) (bool, time.Duration) {
	b.tokens = math.Min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

func TestLimiterUnlimitedUntilFirst429(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(0, BatchLimit, clk, nil)
	start := clk.Now()
	for range 1000 {
		if err := l.wait(context.Background(), 10); err != nil {
			t.Fatal(err)
		}
	}
	if clk.Now() != start || l.rate() != 0 {
		t.Fatalf("an unlimited limiter waited %v (rate %v)", clk.Now().Sub(start), l.rate())
	}
}

func TestLimiterConfiguredRate(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(20, BatchLimit, clk, nil)
	start := clk.Now()
	for range 21 { // 210 sub-requests at 20/s after a burst of 10: 10 s
		if err := l.wait(context.Background(), 10); err != nil {
			t.Fatal(err)
		}
	}
	if el := clk.Now().Sub(start); el < 9900*time.Millisecond || el > 10100*time.Millisecond {
		t.Fatalf("210 sub-requests at 20/s took %v, want 10s", el)
	}
}

func TestLimiterCutsToMeasuredThroughputAndPauses(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(0, BatchLimit, clk, nil)
	// 100 accepted within the last second, then a 429 asking for 2 s.
	for range 10 {
		l.record(10)
		clk.advance(50 * time.Millisecond)
	}
	sent := clk.Now()
	l.throttled(sent, 2*time.Second)
	if got := l.rate(); math.Abs(got-100*cutFactor) > 0.01 {
		t.Fatalf("rate after 429 = %v, want %v", got, 100*cutFactor)
	}
	// An echo of the same overload (sent before the cut) does not cut again.
	l.throttled(sent.Add(-time.Millisecond), time.Second)
	if got := l.rate(); math.Abs(got-100*cutFactor) > 0.01 {
		t.Fatalf("an echo 429 cut the rate again to %v", got)
	}
	before := clk.Now()
	if err := l.wait(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	if waited := clk.Now().Sub(before); waited < 2*time.Second {
		t.Fatalf("waited %v, want the Retry-After pause of 2s", waited)
	}
	// A cancelled context ends a wait at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.wait(ctx, 10); err == nil {
		t.Fatal("wait with a cancelled context returned nil")
	}
}

func TestLimiterClimbsTowardsButNotPastCeiling(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(0, BatchLimit, clk, nil)
	for range 10 {
		l.record(10)
		clk.advance(100 * time.Millisecond)
	}
	l.throttled(clk.Now(), 0)
	low := l.rate()
	for range 100 { // 10 s of steady success
		clk.advance(100 * time.Millisecond)
		l.record(5)
	}
	got := l.rate()
	if got <= low || got > 100*approachFactor+1e-9 {
		t.Fatalf("rate after 10 s of success = %v; want above %v and at most %v", got, low, 100*approachFactor)
	}
	for range 200 { // 20 more seconds: the probe lifts the ceiling a little
		clk.advance(100 * time.Millisecond)
		l.record(5)
	}
	if r := l.rate(); r <= got || r > 100*probeFactor*probeFactor*approachFactor+1e-9 {
		t.Fatalf("rate after a quiet spell = %v; want a modest rise above %v", r, got)
	}
}

func TestLimiterObservesExhaustedRateLimitHeaders(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(0, BatchLimit, clk, nil)
	h := http.Header{}
	h.Set("Rate-Limit-Limit", "100")
	h.Set("Rate-Limit-Remaining", "0")
	h.Set("Rate-Limit-Reset", clk.Now().Add(700*time.Millisecond).Format(time.RFC3339Nano))
	l.observe(h)
	before := clk.Now()
	if err := l.wait(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if w := clk.Now().Sub(before); w != 700*time.Millisecond {
		t.Fatalf("waited %v, want 700ms until Rate-Limit-Reset", w)
	}
	h.Set("Rate-Limit-Remaining", "5")
	h.Set("Rate-Limit-Reset", clk.Now().Add(time.Second).Format(time.RFC3339Nano))
	l.observe(h)
	before = clk.Now()
	_ = l.wait(context.Background(), 1)
	if clk.Now() != before {
		t.Fatal("paused although budget remained")
	}
}

func TestLimiterEasesWhenRemainingRunsLow(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(0, BatchLimit, clk, nil)
	low := http.Header{"Rate-Limit-Limit": {"100"}, "Rate-Limit-Remaining": {"5"}}
	l.observe(low)
	if l.rate() != 0 {
		t.Fatalf("eased an unlimited limiter to %v before any 429", l.rate())
	}
	for range 10 {
		l.record(10)
		clk.advance(100 * time.Millisecond)
	}
	l.throttled(clk.Now(), 0)
	r0 := l.rate()
	l.observe(http.Header{"Rate-Limit-Limit": {"100"}, "Rate-Limit-Remaining": {"7"}})
	l.observe(low)
	l.observe(low) // within easeEvery: once only
	if got, want := l.rate(), r0*easeFactor; math.Abs(got-want) > 1e-9 {
		t.Fatalf("rate %v after low Remaining, want %v", got, want)
	}
	clk.advance(easeEvery)
	l.observe(http.Header{"Rate-Limit-Limit": {"100"}, "Rate-Limit-Remaining": {"8"}}) // low but recovering
	l.observe(http.Header{"Rate-Limit-Limit": {"100"}, "Rate-Limit-Remaining": {"60"}})
	if got, want := l.rate(), r0*easeFactor; math.Abs(got-want) > 1e-9 {
		t.Fatalf("rate %v after a recovering Remaining, want it unchanged at %v", got, want)
	}
}

// TestLimiterAgainstTokenBucket drives the limiter against a simulated service budget, one batch of 10 at a
// time with a fixed round trip, and bounds the 429s: one episode to learn, then (almost) none.
func TestLimiterAgainstTokenBucket(t *testing.T) {
	tests := []struct {
		name     string
		budget   float64
		total    int
		rtt      time.Duration
		inflight int
		max429   int
	}{
		{"budget 100/s, 2000 sub-requests", 100, 2000, 50 * time.Millisecond, 4, 25},
		{"budget 50/s, 300 sub-requests", 50, 300, 20 * time.Millisecond, 4, 20},
		{"budget 20/s, 1000 sub-requests", 20, 1000, 50 * time.Millisecond, 2, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			l := newLimiter(0, BatchLimit, clk, nil)
			srv := &bucket{rate: tt.budget, tokens: tt.budget, last: clk.Now()}
			done, throttled, episodes := 0, 0, 0
			start := clk.Now()
			firstEpisodeEnd := time.Time{}
			late := 0
			for done < tt.total {
				if err := l.wait(context.Background(), 10); err != nil {
					t.Fatal(err)
				}
				sent := clk.Now()
				// The batch is processed after half the round trip; the limiter hears back after the rest.
				clk.advance(tt.rtt / time.Duration(2*tt.inflight))
				acc, wait := 0, time.Duration(0)
				for range min(10, tt.total-done) {
					if ok, w := srv.take(clk.Now()); ok {
						acc++
					} else {
						wait = max(wait, w)
					}
				}
				clk.advance(tt.rtt / time.Duration(2*tt.inflight))
				done += acc
				l.record(acc)
				if acc < min(10, tt.total-done+acc) {
					n := min(10, tt.total-done+acc) - acc
					throttled += n
					if firstEpisodeEnd.IsZero() || clk.Now().After(firstEpisodeEnd) {
						episodes++
					}
					if firstEpisodeEnd.IsZero() {
						firstEpisodeEnd = clk.Now().Add(time.Second)
					} else if clk.Now().After(firstEpisodeEnd) {
						late += n
					}
					l.throttled(sent, max(wait, time.Second))
				}
			}
			el := clk.Now().Sub(start)
			ideal := time.Duration(float64(tt.total-int(tt.budget)) / tt.budget * float64(time.Second))
			t.Logf("%d sub-requests in %v (ideal %v), %d throttled, %d after the first second of throttling, final rate %.1f/s",
				tt.total, el, ideal, throttled, late, l.rate())
			if throttled > tt.max429 {
				t.Errorf("%d sub-requests throttled, want at most %d", throttled, tt.max429)
			}
			if late > 20 {
				t.Errorf("%d sub-requests throttled after the first episode, want at most 20", late)
			}
			if el > ideal*2+3*time.Second {
				t.Errorf("took %v, more than twice the ideal %v: the limiter is too timid", el, ideal)
			}
		})
	}
}
