package exo

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Clock is the time source of the client's waits (retry backoff, Retry-After pauses, rate pacing). Tests inject
// one that advances instantly; production uses the wall clock.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx is done, returning ctx.Err() in the latter case.
	Sleep(ctx context.Context, d time.Duration) error
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Tuning of the learning rate limiter. Exchange publishes no REST budget (research §7), so the client learns it:
// after a 429 it runs at cutFactor of what the service was accepting, climbs towards approachFactor of that
// ceiling, and only probes above it after a long quiet spell.
const (
	measureWindow  = time.Second // accepted sub-requests are counted over this window
	cutFactor      = 0.8         // new rate after a 429, as a fraction of the measured accepted rate
	approachFactor = 0.95        // the rate climbs towards this fraction of the learned ceiling
	approachGain   = 0.25        // fraction of the remaining gap closed per increase step
	increaseEvery  = 500 * time.Millisecond
	probeAfter     = 15 * time.Second // quiet time after which the ceiling is raised by probeFactor
	probeFactor    = 1.1
	easeFactor     = 0.98 // rate multiplier when Rate-Limit-Remaining runs low
	easeEvery      = 250 * time.Millisecond
	minRate        = 0.5 // sub-requests per second; never slower than this
	fallbackRate   = 10  // when a 429 arrives with nothing accepted in the window and no rate set yet
)

// limiter paces sub-requests (a $batch of n costs n). It runs at the configured rate (unlimited by default)
// until the first 429, then AIMD: a multiplicative cut to a fraction of the measured accepted throughput, a
// pause until Retry-After, then a slow climb that approaches the learned ceiling without crossing it.
type limiter struct {
	clock Clock
	log   *zap.Logger

	mu           sync.Mutex
	lim          *rate.Limiter
	burst        int
	pausedUntil  time.Time
	gen          int       // incremented on every throttle adjustment; waiters re-check when it changes
	learned      bool      // a 429 has been seen: the AIMD regime is on
	ceiling      float64   // accepted rate measured at the last 429
	lastCut      time.Time // when the rate was last cut
	lastIncrease time.Time
	lastProbe    time.Time
	lastEase     time.Time
	// lastRemaining is the last Rate-Limit-Remaining seen, to tell a falling budget from a recovering one.
	lastRemaining float64
	remainingSeen bool
	accepted      []stamp // sub-requests the service accepted, oldest first, within measureWindow
}

// unlimited is rate.Inf as a float64, for comparisons.
const unlimited = float64(rate.Inf)

type stamp struct {
	at time.Time
	n  int
}

func newLimiter(rps float64, burst int, clock Clock, log *zap.Logger) *limiter {
	l := &limiter{clock: clock, log: log, burst: max(burst, 1)}
	if rps > 0 {
		l.lim = rate.NewLimiter(rate.Limit(rps), l.burst)
	} else {
		l.lim = rate.NewLimiter(rate.Inf, l.burst)
	}
	return l
}

// wait blocks until n sub-requests may be sent: after any pause, and at the current rate.
func (l *limiter) wait(ctx context.Context, n int) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		l.mu.Lock()
		now := l.clock.Now()
		if now.Before(l.pausedUntil) {
			d := l.pausedUntil.Sub(now)
			l.mu.Unlock()
			if err := l.clock.Sleep(ctx, d); err != nil {
				return err
			}
			continue
		}
		if n > l.burst {
			l.burst = n
			l.lim.SetBurstAt(now, n)
		}
		lim, gen := l.lim, l.gen
		r := lim.ReserveN(now, n)
		l.mu.Unlock()
		d := r.DelayFrom(now)
		if d <= 0 {
			return nil
		}
		if err := l.clock.Sleep(ctx, d); err != nil {
			r.CancelAt(l.clock.Now())
			return err
		}
		l.mu.Lock()
		changed := l.gen != gen
		l.mu.Unlock()
		if !changed {
			return nil
		}
		// A 429 arrived while we waited: the reservation was made at the old rate; queue again at the new one.
	}
}

// record notes n sub-requests the service processed without throttling (successes and ordinary errors both
// count against its budget) and, in the AIMD regime, raises the rate a little.
func (l *limiter) record(n int) {
	if n <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.accepted = append(l.accepted, stamp{now, n})
	l.trim(now)
	if !l.learned || now.Before(l.pausedUntil) {
		return
	}
	if now.Sub(l.lastCut) >= probeAfter && now.Sub(l.lastEase) >= probeAfter && now.Sub(l.lastProbe) >= probeAfter {
		// Budgets change (other apps, time of day): after a quiet spell, allow a little more than learned.
		l.ceiling *= probeFactor
		l.lastProbe = now
	}
	if now.Sub(l.lastIncrease) < increaseEvery {
		return
	}
	cur := float64(l.lim.Limit())
	target := l.ceiling * approachFactor
	if cur >= target {
		return
	}
	next := cur + (target-cur)*approachGain
	if target-next < 0.5 {
		next = target
	}
	l.lim.SetLimitAt(now, rate.Limit(next))
	l.lastIncrease = now
}

// throttled handles a 429 on a request sent at sentAt: pause everyone for wait, and cut the rate unless the
// request was sent before the last cut (then it is an echo of the same overload, already acted on).
func (l *limiter) throttled(sentAt time.Time, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	if until := now.Add(wait); until.After(l.pausedUntil) {
		l.pausedUntil = until
	}
	l.gen++
	if l.learned && sentAt.Before(l.lastCut) {
		return
	}
	l.trim(now)
	sum := 0
	for _, s := range l.accepted {
		sum += s.n
	}
	measured := float64(sum) / measureWindow.Seconds()
	cur := float64(l.lim.Limit())
	next := measured * cutFactor
	switch {
	case measured == 0 && cur != unlimited:
		next = cur / 2
	case measured == 0:
		next = fallbackRate
	case cur != unlimited:
		next = min(next, cur*cutFactor)
	}
	next = max(next, minRate)
	if measured > 0 {
		l.ceiling = measured
	} else {
		l.ceiling = next / cutFactor
	}
	l.learned = true
	l.lastCut = now
	l.lastIncrease = now
	l.lastProbe = now
	// A fresh limiter starts with one burst of tokens, so the first batch after the pause goes at once and
	// the rest follow at the new rate.
	l.lim = rate.NewLimiter(rate.Limit(next), l.burst)
	if l.log != nil {
		l.log.Info("exo: throttled by Exchange Online, slowing down",
			zap.Float64("measured_per_second", measured), zap.Float64("new_rate_per_second", next),
			zap.Duration("pause", wait))
	}
}

// pauseUntil stops sending until t (Rate-Limit-Remaining exhausted until Rate-Limit-Reset).
func (l *limiter) pauseUntil(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.After(l.pausedUntil) {
		l.pausedUntil = t
		l.gen++
	}
}

// observe reads the Rate-Limit-* headers of a response. When the remaining budget is low and still falling
// while the client paces itself (after a 429), it eases off a little and stops climbing, like a congestion signal;
// when the service says the budget is exhausted until a reset time, everyone waits for the reset instead
// of spending requests on certain 429s.
func (l *limiter) observe(h http.Header) {
	rem := h.Get("Rate-Limit-Remaining")
	if rem == "" {
		return
	}
	n, err := strconv.ParseFloat(rem, 64)
	if err != nil {
		return
	}
	limit, err := strconv.ParseFloat(h.Get("Rate-Limit-Limit"), 64)
	if err != nil || limit <= 0 {
		limit = 0
	}
	now := l.clock.Now()
	l.mu.Lock()
	prev, seen := l.lastRemaining, l.remainingSeen
	l.lastRemaining, l.remainingSeen = n, true
	l.mu.Unlock()
	// Low and still falling: spending faster than the budget refills. Low but rising is a recovery.
	if lowWater := min(limit/4, 4*BatchLimit); n < lowWater && seen && n <= prev {
		l.ease(now)
	}
	if n > 0 {
		return
	}
	t, err := time.Parse(time.RFC3339Nano, h.Get("Rate-Limit-Reset"))
	if err != nil {
		return
	}
	if d := t.Sub(now); d > 0 && d <= time.Minute {
		l.pauseUntil(t)
	}
}

// ease lowers a learned rate by easeFactor, at most once per easeEvery, and holds off the next increase.
func (l *limiter) ease(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.learned || now.Sub(l.lastEase) < easeEvery {
		return
	}
	cur := float64(l.lim.Limit())
	next := max(cur*easeFactor, minRate)
	l.lim.SetLimitAt(now, rate.Limit(next))
	l.ceiling = min(l.ceiling, cur)
	l.lastEase = now
	l.lastIncrease = now
}

// rate returns the current pace in sub-requests per second, 0 meaning unlimited.
func (l *limiter) rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := float64(l.lim.Limit())
	if r == unlimited {
		return 0
	}
	return r
}

func (l *limiter) trim(now time.Time) {
	cut := 0
	for cut < len(l.accepted) && now.Sub(l.accepted[cut].at) > measureWindow {
		cut++
	}
	if cut > 0 {
		l.accepted = append(l.accepted[:0], l.accepted[cut:]...)
	}
}
