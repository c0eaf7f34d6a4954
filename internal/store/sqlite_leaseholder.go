package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// LeaseHolder says who holds the named lease and until when, so that a
// process refused a lease can tell the person which process has it, until
// when, and whether that process is still alive (the daemon checks the pid of
// a holder on its own host). ok is false when nobody holds it (no row, or the
// row expired).
func (s *SQLite) LeaseHolder(ctx context.Context, name string) (holder string, acquired, expires time.Time, ok bool, err error) {
	var acq, exp int64
	err = s.r.QueryRowContext(ctx, `SELECT holder, acquired_at, expires_at FROM leases WHERE tenant = ? AND name = ?`, s.tenant, name).Scan(&holder, &acq, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, time.Time{}, false, fmt.Errorf("store: read lease %s: %w", name, err)
	}
	acquired, expires = fromTS(acq), fromTS(exp)
	if !expires.After(s.now()) {
		return "", time.Time{}, time.Time{}, false, nil
	}
	return holder, acquired, expires, true, nil
}

// LeaseHolder is SQLite.LeaseHolder on PostgreSQL.
func (p *Postgres) LeaseHolder(ctx context.Context, name string) (holder string, acquired, expires time.Time, ok bool, err error) {
	err = p.pool.QueryRow(ctx, `SELECT holder, acquired_at, expires_at FROM leases WHERE tenant = $1 AND name = $2`, p.tenant, name).
		Scan(&holder, &acquired, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", time.Time{}, time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, time.Time{}, false, fmt.Errorf("store: read lease %s: %w", name, err)
	}
	if !expires.After(p.now()) {
		return "", time.Time{}, time.Time{}, false, nil
	}
	return holder, acquired.UTC(), expires.UTC(), true, nil
}
