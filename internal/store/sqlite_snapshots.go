package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// GetSnapshot returns the blob saved under name, or nil when there is none.
func (s *SQLite) GetSnapshot(ctx context.Context, name string) ([]byte, error) {
	var data []byte
	err := s.r.QueryRowContext(ctx, `SELECT data FROM snapshots WHERE tenant = ? AND name = ?`, s.tenant, name).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: get snapshot %s: %w", name, err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// PutSnapshot saves data under name, replacing any earlier blob.
func (s *SQLite) PutSnapshot(ctx context.Context, name string, data []byte) error {
	if name == "" || data == nil {
		return fmt.Errorf("store: put snapshot %q: name and data are required", name)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO snapshots (tenant, name, data, updated_at) VALUES (?, ?, ?, ?)
	ON CONFLICT (tenant, name) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
			s.tenant, name, data, ts(s.now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: put snapshot %s: %w", name, err)
	}
	return nil
}

// DeleteSnapshot forgets the blob saved under name; deleting a missing one does nothing.
func (s *SQLite) DeleteSnapshot(ctx context.Context, name string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM snapshots WHERE tenant = ? AND name = ?`, s.tenant, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: delete snapshot %s: %w", name, err)
	}
	return nil
}
