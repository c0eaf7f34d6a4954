package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// GetSnapshot returns the blob saved under name for this tenant, or nil when there is none.
func (p *Postgres) GetSnapshot(ctx context.Context, name string) ([]byte, error) {
	var data []byte
	err := p.pool.QueryRow(ctx, `SELECT data FROM snapshots WHERE tenant = $1 AND name = $2`, p.tenant, name).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
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

// PutSnapshot saves data under name for this tenant, replacing any earlier blob.
func (p *Postgres) PutSnapshot(ctx context.Context, name string, data []byte) error {
	if name == "" || data == nil {
		return fmt.Errorf("store: put snapshot %q: name and data are required", name)
	}
	if _, err := p.pool.Exec(ctx, `INSERT INTO snapshots (tenant, name, data, updated_at) VALUES ($1, $2, $3, $4)
	ON CONFLICT (tenant, name) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
		p.tenant, name, data, pgTime(p.now())); err != nil {
		return fmt.Errorf("store: put snapshot %s: %w", name, err)
	}
	return nil
}

// DeleteSnapshot forgets the blob saved under name for this tenant; deleting a missing one does nothing.
func (p *Postgres) DeleteSnapshot(ctx context.Context, name string) error {
	if _, err := p.pool.Exec(ctx, `DELETE FROM snapshots WHERE tenant = $1 AND name = $2`, p.tenant, name); err != nil {
		return fmt.Errorf("store: delete snapshot %s: %w", name, err)
	}
	return nil
}
