package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Leaser is the part of a Store that HoldLease needs.
type Leaser interface {
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	RenewLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// HeldLease is a lease kept alive in the background until released or lost.
// Run the guarded work under Context(): it is cancelled the moment the lease
// is lost, so a process that stalled past its lease stops writing instead of
// running beside the process that took the lease over.
type HeldLease struct {
	name, holder string
	ctx          context.Context
	cancel       context.CancelCauseFunc
	stop         chan struct{}
	done         chan struct{}
	once         sync.Once
	s            Leaser

	mu   sync.Mutex
	lost error
}

// ErrLeaseLost is the cause of a HeldLease's context when the lease could not
// be renewed in time.
var ErrLeaseLost = errors.New("lease lost")

// HoldLease acquires the named lease and renews it every ttl/3 until Release
// or until ctx ends. It returns (nil, false, nil) when another holder has the
// lease. A renewal that fails with an error is retried; the lease counts as
// lost once the last successful renewal is a full ttl old, or at once when a
// renewal reports that another holder has it.
func HoldLease(ctx context.Context, s Leaser, name, holder string, ttl time.Duration) (*HeldLease, bool, error) {
	ok, err := s.AcquireLease(ctx, name, holder, ttl)
	if err != nil || !ok {
		return nil, ok, err
	}
	lctx, cancel := context.WithCancelCause(ctx)
	l := &HeldLease{name: name, holder: holder, ctx: lctx, cancel: cancel, s: s,
		stop: make(chan struct{}), done: make(chan struct{})}
	go l.keep(ttl)
	return l, true, nil
}

func (l *HeldLease) keep(ttl time.Duration) {
	defer close(l.done)
	every := max(ttl/3, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-l.stop:
			return
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(l.ctx, every)
		ok, err := l.s.RenewLease(rctx, l.name, l.holder, ttl)
		cancel()
		switch {
		case err == nil && ok:
			last = time.Now()
		case err == nil && !ok:
			l.lose(fmt.Errorf("%w: %s is no longer held by %s (it expired or another process took it)", ErrLeaseLost, l.name, l.holder))
			return
		case time.Since(last) >= ttl:
			l.lose(fmt.Errorf("%w: %s could not be renewed for %s: %v", ErrLeaseLost, l.name, ttl, err))
			return
		}
	}
}

func (l *HeldLease) lose(err error) {
	l.mu.Lock()
	l.lost = err
	l.mu.Unlock()
	l.cancel(err)
}

// Context is cancelled when the lease is lost (cause wraps ErrLeaseLost), is
// released, or the context HoldLease was given ends.
func (l *HeldLease) Context() context.Context { return l.ctx }

// Lost reports why the lease was lost, or nil while it is held (and after a
// release of a lease that was never lost).
func (l *HeldLease) Lost() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// Release stops renewing, gives the lease up so another process need not wait
// for it to expire, and cancels Context(). Give it a live context (on
// shutdown, not the one that just ended). Calling it again does nothing.
func (l *HeldLease) Release(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.cancel(context.Canceled)
		// Safe even after a loss: ReleaseLease only deletes the lease while
		// this holder still has it.
		err = l.s.ReleaseLease(ctx, l.name, l.holder)
	})
	return err
}
