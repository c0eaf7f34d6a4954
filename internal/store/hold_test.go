package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestHoldLeaseRenewsUntilReleased(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		s := db.open(t)
		ctx := t.Context()
		const ttl = 300 * time.Millisecond // renewed every 100 ms: room for a slow fsync on a loaded machine
		l, ok, err := HoldLease(ctx, s, "job:meu-richtext", "A", ttl)
		if err != nil || !ok {
			t.Fatalf("HoldLease = %v, %v", ok, err)
		}
		if _, ok, err := HoldLease(ctx, s, "job:meu-richtext", "B", ttl); ok || err != nil {
			t.Fatalf("second HoldLease = %v, %v; want false, nil", ok, err)
		}
		// Three TTLs later, renewals have kept B out all along.
		deadline := time.Now().Add(3 * ttl)
		for time.Now().Before(deadline) {
			if got, err := s.AcquireLease(ctx, "job:meu-richtext", "B", ttl); err != nil || got {
				t.Fatalf("B acquired a held lease (%v, %v) after %v", got, err, time.Until(deadline))
			}
			time.Sleep(10 * time.Millisecond)
		}
		if l.Context().Err() != nil || l.Lost() != nil {
			t.Fatalf("lease context ended (%v) or lost (%v) while renewed", l.Context().Err(), l.Lost())
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if l.Context().Err() == nil {
			t.Error("context still live after Release")
		}
		if l.Lost() != nil {
			t.Errorf("Lost() = %v after a plain release", l.Lost())
		}
		if got, err := s.AcquireLease(ctx, "job:meu-richtext", "B", ttl); err != nil || !got {
			t.Errorf("B could not take a released lease: %v, %v", got, err)
		}
		if err := l.Release(ctx); err != nil {
			t.Errorf("second Release: %v", err)
		}
	})
}

func TestHoldLeaseNoticesLoss(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		s := db.open(t)
		ctx := t.Context()
		const ttl = 150 * time.Millisecond
		l, ok, err := HoldLease(ctx, s, "job:x", "A", ttl)
		if err != nil || !ok {
			t.Fatalf("HoldLease = %v, %v", ok, err)
		}
		// Another process takes the lease over (as if A had stalled past its expiry), for long enough that
		// it is still the thief's when B tries below, however slow the machine.
		var until any = time.Now().Add(time.Hour)
		if _, ok := s.(*SQLite); ok {
			until = ts(time.Now().Add(time.Hour))
		}
		if err := execSQL(ctx, s, `UPDATE leases SET holder = 'thief', expires_at = ? WHERE name = 'job:x'`, until); err != nil {
			t.Fatal(err)
		}
		select {
		case <-l.Context().Done():
		case <-time.After(2 * ttl):
			t.Fatal("lease context not cancelled after the lease was taken over")
		}
		if cause := context.Cause(l.Context()); !errors.Is(cause, ErrLeaseLost) {
			t.Errorf("context cause = %v, want ErrLeaseLost", cause)
		}
		if !errors.Is(l.Lost(), ErrLeaseLost) {
			t.Errorf("Lost() = %v, want ErrLeaseLost", l.Lost())
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(l.Lost(), ErrLeaseLost) {
			t.Errorf("Lost() after Release = %v, want it kept", l.Lost())
		}
		// A's release must not free the thief's lease.
		if got, err := s.AcquireLease(ctx, "job:x", "B", time.Minute); err != nil || got {
			t.Errorf("B took the thief's lease after A's release: %v, %v", got, err)
		}
	})
}

func TestHoldLeaseStopsWithItsContext(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		s := db.open(t)
		ctx, cancel := context.WithCancel(t.Context())
		l, ok, err := HoldLease(ctx, s, "job:x", "A", time.Minute)
		if err != nil || !ok {
			t.Fatalf("HoldLease = %v, %v", ok, err)
		}
		cancel()
		<-l.Context().Done()
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got, err := s.AcquireLease(t.Context(), "job:x", "B", time.Minute); err != nil || !got {
			t.Errorf("lease not released after the holder's context ended: %v, %v", got, err)
		}
	})
}
