package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// tickRetention is how long schedule-tick claims are kept: long enough that
// no daemon can still be deciding about a tick that old, short enough that
// the table stays small for a job running every minute.
const tickRetention = 7 * 24 * time.Hour

// AcquireLease takes the named lease for holder until now+ttl, and reports
// whether holder has it. It succeeds when the lease is free, expired, or
// already held by holder (which extends it). It is one UPSERT guarded by the
// expiry inside a write transaction, so of any number of processes racing on
// one database exactly one gets an unheld lease.
func (s *SQLite) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := checkLeaseArgs(name, holder, ttl); err != nil {
		return false, fmt.Errorf("store: acquire lease %s for %s: %w", name, holder, err)
	}
	now := s.now()
	var got bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO leases (tenant, name, holder, acquired_at, expires_at) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (tenant, name) DO UPDATE SET
		acquired_at = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > excluded.acquired_at
			THEN leases.acquired_at ELSE excluded.acquired_at END,
		holder = excluded.holder,
		expires_at = excluded.expires_at
	WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.acquired_at`,
			s.tenant, name, holder, ts(now), ts(now.Add(ttl)))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		got = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: acquire lease %s for %s: %w", name, holder, err)
	}
	return got, nil
}

// RenewLease extends a lease holder still has, and reports false when it has
// lost it (expired or released). A holder that gets false must assume another
// process may be acting and stop what the lease guarded; AcquireLease takes it
// again if nobody else has.
func (s *SQLite) RenewLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := checkLeaseArgs(name, holder, ttl); err != nil {
		return false, fmt.Errorf("store: renew lease %s for %s: %w", name, holder, err)
	}
	now := s.now()
	var got bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE leases SET expires_at = ? WHERE tenant = ? AND name = ? AND holder = ? AND expires_at > ?`,
			ts(now.Add(ttl)), s.tenant, name, holder, ts(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		got = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: renew lease %s for %s: %w", name, holder, err)
	}
	return got, nil
}

// ReleaseLease gives the lease up so another process need not wait for it to
// expire. Releasing a lease one does not hold does nothing.
func (s *SQLite) ReleaseLease(ctx context.Context, name, holder string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE tenant = ? AND name = ? AND holder = ?`, s.tenant, name, holder)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: release lease %s for %s: %w", name, holder, err)
	}
	return nil
}

// ClaimTick claims one schedule tick of a job for holder and reports whether
// this call won it. Every daemon sharing the database computes the same tick
// times from the same cron schedule; the first claim inserts (job, tick), every
// later one is ignored, so the job runs once per tick however many daemons
// there are. Claims older than a week are pruned on the way.
func (s *SQLite) ClaimTick(ctx context.Context, job string, tick time.Time, holder string) (bool, error) {
	if job == "" || holder == "" || tick.IsZero() {
		return false, fmt.Errorf("store: claim tick %s of job %q for %q: job, tick and holder are all required",
			tick.UTC().Format(time.RFC3339), job, holder)
	}
	var won bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO schedule_ticks (tenant, job, tick, holder, claimed_at) VALUES (?, ?, ?, ?, ?)`,
			s.tenant, job, ts(tick), holder, ts(s.now()))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		won = n == 1
		if won {
			_, err = tx.ExecContext(ctx, `DELETE FROM schedule_ticks WHERE tenant = ? AND job = ? AND tick < ?`, s.tenant, job, ts(tick.Add(-tickRetention)))
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: claim tick %s of job %s for %s: %w", tick.UTC().Format(time.RFC3339), job, holder, err)
	}
	return won, nil
}

func checkLeaseArgs(name, holder string, ttl time.Duration) error {
	if name == "" || holder == "" {
		return fmt.Errorf("lease name and holder are required")
	}
	if ttl <= 0 {
		return fmt.Errorf("ttl %s must be positive", ttl)
	}
	return nil
}
