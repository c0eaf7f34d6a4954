package store

import (
	"context"
	"database/sql"
	"fmt"
)

// Prune deletes what r says is old enough, of this store's tenant, in one transaction. The SQL is plain (DELETE … WHERE … with NOT
// EXISTS) so that the PostgreSQL store can say the same.
func (s *SQLite) Prune(ctx context.Context, r Retention) (Pruned, error) {
	var p Pruned
	count := func(res sql.Result) int {
		n, _ := res.RowsAffected()
		return int(n)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if !r.JournalBefore.IsZero() {
			cut := ts(r.JournalBefore)
			res, err := tx.ExecContext(ctx, `DELETE FROM journal WHERE run_id IN
	(SELECT id FROM runs WHERE tenant = ? AND status != 'running' AND started_at < ?)`, s.tenant, cut)
			if err != nil {
				return fmt.Errorf("journal: %w", err)
			}
			p.JournalEntries = count(res)
			res, err = tx.ExecContext(ctx, `DELETE FROM runs WHERE tenant = ? AND status != 'running' AND started_at < ?`, s.tenant, cut)
			if err != nil {
				return fmt.Errorf("runs: %w", err)
			}
			p.Runs = count(res)
		}
		if !r.RunsBefore.IsZero() {
			cut := ts(r.RunsBefore)
			res, err := tx.ExecContext(ctx, `DELETE FROM runs WHERE tenant = ? AND status != 'running' AND started_at < ?
	AND NOT EXISTS (SELECT 1 FROM journal WHERE journal.run_id = runs.id)`, s.tenant, cut)
			if err != nil {
				return fmt.Errorf("runs: %w", err)
			}
			p.Runs += count(res)
		}
		if !r.FindingsResolvedBefore.IsZero() {
			res, err := tx.ExecContext(ctx, `DELETE FROM findings WHERE tenant = ? AND resolved_at IS NOT NULL AND resolved_at < ?`,
				s.tenant, ts(r.FindingsResolvedBefore))
			if err != nil {
				return fmt.Errorf("findings: %w", err)
			}
			p.Findings = count(res)
		}
		return nil
	})
	if err != nil {
		return Pruned{}, fmt.Errorf("store: prune: %w", err)
	}
	return p, nil
}
