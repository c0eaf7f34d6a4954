package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// GetDeltaLink returns the Graph delta link saved for resource (e.g. "users"),
// or "" when there is none and the caller must start a full delta round.
func (s *SQLite) GetDeltaLink(ctx context.Context, resource string) (string, error) {
	var link string
	err := s.r.QueryRowContext(ctx, `SELECT link FROM delta_links WHERE tenant = ? AND resource = ?`, s.tenant, resource).Scan(&link)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: get delta link for %s: %w", resource, err)
	}
	return link, nil
}

// SetDeltaLink saves the delta link for resource, replacing any earlier one.
// Save it only after the whole delta round was processed, so a crash mid-round
// repeats the round instead of skipping changes.
func (s *SQLite) SetDeltaLink(ctx context.Context, resource, link string) error {
	if resource == "" || link == "" {
		return fmt.Errorf("store: set delta link for %q: resource and link are required", resource)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO delta_links (tenant, resource, link, updated_at) VALUES (?, ?, ?, ?)
	ON CONFLICT (tenant, resource) DO UPDATE SET link = excluded.link, updated_at = excluded.updated_at`,
			s.tenant, resource, link, ts(s.now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: set delta link for %s: %w", resource, err)
	}
	return nil
}

// DeleteDeltaLink forgets the delta link for resource, e.g. after Graph
// answered that the token expired (410 / resyncRequired). Deleting a missing
// link does nothing.
func (s *SQLite) DeleteDeltaLink(ctx context.Context, resource string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM delta_links WHERE tenant = ? AND resource = ?`, s.tenant, resource)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: delete delta link for %s: %w", resource, err)
	}
	return nil
}
