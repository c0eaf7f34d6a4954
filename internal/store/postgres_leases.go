package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AcquireLease is SQLite.AcquireLease on PostgreSQL: one guarded UPSERT, so of any number of processes
// racing for an unheld lease exactly one gets it. (With River dispatching runs, leases guard only what the
// in-process dispatcher does; they stay for tools that share the database.)
func (p *Postgres) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := checkLeaseArgs(name, holder, ttl); err != nil {
		return false, fmt.Errorf("store: acquire lease %s for %s: %w", name, holder, err)
	}
	now := pgTime(p.now())
	tag, err := p.pool.Exec(ctx, `INSERT INTO leases (tenant, name, holder, acquired_at, expires_at) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (tenant, name) DO UPDATE SET
		acquired_at = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > excluded.acquired_at
			THEN leases.acquired_at ELSE excluded.acquired_at END,
		holder = excluded.holder,
		expires_at = excluded.expires_at
	WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.acquired_at`,
		p.tenant, name, holder, now, now.Add(ttl))
	if err != nil {
		return false, fmt.Errorf("store: acquire lease %s for %s: %w", name, holder, err)
	}
	return tag.RowsAffected() == 1, nil
}

// RenewLease extends a lease holder still has, and reports false when it has lost it.
func (p *Postgres) RenewLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := checkLeaseArgs(name, holder, ttl); err != nil {
		return false, fmt.Errorf("store: renew lease %s for %s: %w", name, holder, err)
	}
	now := pgTime(p.now())
	tag, err := p.pool.Exec(ctx, `UPDATE leases SET expires_at = $1 WHERE tenant = $2 AND name = $3 AND holder = $4 AND expires_at > $5`,
		now.Add(ttl), p.tenant, name, holder, now)
	if err != nil {
		return false, fmt.Errorf("store: renew lease %s for %s: %w", name, holder, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseLease gives the lease up; releasing a lease one does not hold does nothing.
func (p *Postgres) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := p.pool.Exec(ctx, `DELETE FROM leases WHERE tenant = $1 AND name = $2 AND holder = $3`, p.tenant, name, holder); err != nil {
		return fmt.Errorf("store: release lease %s for %s: %w", name, holder, err)
	}
	return nil
}

// ClaimTick is SQLite.ClaimTick on PostgreSQL.
func (p *Postgres) ClaimTick(ctx context.Context, job string, tick time.Time, holder string) (bool, error) {
	if job == "" || holder == "" || tick.IsZero() {
		return false, fmt.Errorf("store: claim tick %s of job %q for %q: job, tick and holder are all required",
			tick.UTC().Format(time.RFC3339), job, holder)
	}
	var won bool
	err := p.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO schedule_ticks (tenant, job, tick, holder, claimed_at) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT DO NOTHING`, p.tenant, job, pgTime(tick), holder, pgTime(p.now()))
		if err != nil {
			return err
		}
		won = tag.RowsAffected() == 1
		if won {
			_, err = tx.Exec(ctx, `DELETE FROM schedule_ticks WHERE tenant = $1 AND job = $2 AND tick < $3`,
				p.tenant, job, pgTime(tick.Add(-tickRetention)))
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: claim tick %s of job %s for %s: %w", tick.UTC().Format(time.RFC3339), job, holder, err)
	}
	return won, nil
}

// GetDeltaLink returns the Graph delta link saved for resource, or "" when there is none.
func (p *Postgres) GetDeltaLink(ctx context.Context, resource string) (string, error) {
	var link string
	err := p.pool.QueryRow(ctx, `SELECT link FROM delta_links WHERE tenant = $1 AND resource = $2`, p.tenant, resource).Scan(&link)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: get delta link for %s: %w", resource, err)
	}
	return link, nil
}

// SetDeltaLink saves the delta link for resource, replacing any earlier one.
func (p *Postgres) SetDeltaLink(ctx context.Context, resource, link string) error {
	if resource == "" || link == "" {
		return fmt.Errorf("store: set delta link for %q: resource and link are required", resource)
	}
	if _, err := p.pool.Exec(ctx, `INSERT INTO delta_links (tenant, resource, link, updated_at) VALUES ($1, $2, $3, $4)
	ON CONFLICT (tenant, resource) DO UPDATE SET link = excluded.link, updated_at = excluded.updated_at`,
		p.tenant, resource, link, pgTime(p.now())); err != nil {
		return fmt.Errorf("store: set delta link for %s: %w", resource, err)
	}
	return nil
}

// DeleteDeltaLink forgets the delta link for resource; deleting a missing link does nothing.
func (p *Postgres) DeleteDeltaLink(ctx context.Context, resource string) error {
	if _, err := p.pool.Exec(ctx, `DELETE FROM delta_links WHERE tenant = $1 AND resource = $2`, p.tenant, resource); err != nil {
		return fmt.Errorf("store: delete delta link for %s: %w", resource, err)
	}
	return nil
}
