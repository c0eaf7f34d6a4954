package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// JournalBegin is SQLite.JournalBegin on PostgreSQL: the changes are inserted in one statement, in one
// committed transaction that holds the run's row lock, so the sequence numbers of concurrent calls for one
// run never collide and a run being marked interrupted cannot gain entries.
func (p *Postgres) JournalBegin(ctx context.Context, runID string, changes []Change) ([]EntryID, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	n := len(changes)
	objs, names, cmdlets, params, olds, news := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n)
	for i, c := range changes {
		if c.ObjectID == "" || c.Cmdlet == "" || c.Param == "" {
			return nil, fmt.Errorf("store: journal begin run %s: change %d (%q %s -%s) needs an object id, a cmdlet and a parameter",
				runID, i, c.ObjectID, c.Cmdlet, c.Param)
		}
		old, err := jsonValue(c.Old)
		if err != nil {
			return nil, fmt.Errorf("store: journal begin run %s: object %s %s: old value: %w", runID, c.ObjectID, c.Param, err)
		}
		nw, err := jsonValue(c.New)
		if err != nil {
			return nil, fmt.Errorf("store: journal begin run %s: object %s %s: new value: %w", runID, c.ObjectID, c.Param, err)
		}
		objs[i], names[i], cmdlets[i], params[i], olds[i], news[i] = c.ObjectID, c.DisplayName, c.Cmdlet, c.Param, old, nw
	}
	now := pgTime(p.now())
	ids := make([]EntryID, n)
	err := p.tx(ctx, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM runs WHERE id = $1 AND tenant = $2 FOR UPDATE`, runID, p.tenant).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("run %s: %w", runID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if RunStatus(status) != RunRunning {
			return fmt.Errorf("%w: run %s is %s", ErrRunNotRunning, runID, status)
		}
		var seq int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM journal WHERE run_id = $1`, runID).Scan(&seq); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `INSERT INTO journal (tenant, run_id, seq, object_id, display_name, cmdlet, param,
	old_value, new_value, state, created_at, updated_at)
	SELECT $1, $2, $3 + u.ord, u.obj, u.name, u.cmdlet, u.param, u.old, u.new, 'pending', $10, $10
	FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[]) WITH ORDINALITY
		AS u(obj, name, cmdlet, param, old, new, ord)
	RETURNING id, seq`, p.tenant, runID, seq, objs, names, cmdlets, params, olds, news, now)
		if err != nil {
			return err
		}
		var id int64
		var s int
		_, err = pgx.ForEachRow(rows, []any{&id, &s}, func() error {
			if i := s - seq - 1; i >= 0 && i < n {
				ids[i] = EntryID(id)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: journal begin run %s (%d changes): %w", runID, len(changes), err)
	}
	return ids, nil
}

// JournalOutcomes is SQLite.JournalOutcomes on PostgreSQL: one transaction, one round trip (a pgx batch),
// all or none.
func (p *Postgres) JournalOutcomes(ctx context.Context, outcomes []Outcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	for _, o := range outcomes {
		if o.State == ChangeStatePending || !o.State.Valid() {
			return fmt.Errorf("store: journal outcome for entry %d: state %q is not an outcome "+
				"(want applied, failed, verified, skipped, reverted or reconciled)", o.ID, o.State)
		}
	}
	now := pgTime(p.now())
	err := p.tx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, o := range outcomes {
			b.Queue(`UPDATE journal SET state = $1, request_id = $2, error = $3, updated_at = $4 WHERE id = $5 AND tenant = $6`,
				string(o.State), o.RequestID, o.Error, now, int64(o.ID), p.tenant)
		}
		br := tx.SendBatch(ctx, b)
		for _, o := range outcomes {
			tag, err := br.Exec()
			if err != nil {
				_ = br.Close()
				return fmt.Errorf("entry %d: %w", o.ID, err)
			}
			if tag.RowsAffected() != 1 {
				_ = br.Close()
				return fmt.Errorf("entry %d: %w", o.ID, ErrNotFound)
			}
		}
		return br.Close()
	})
	if err != nil {
		return fmt.Errorf("store: journal outcome (%d entries): %w", len(outcomes), err)
	}
	return nil
}

// JournalPending lists entries that never got an outcome, in journal order; runID "" = every run.
func (p *Postgres) JournalPending(ctx context.Context, runID string) ([]JournalEntry, error) {
	var a pgArgs
	a.add("tenant = ?", p.tenant)
	a.where = append(a.where, "state = 'pending'")
	if runID != "" {
		a.add("run_id = ?", runID)
	}
	out, err := p.queryJournal(ctx, `SELECT `+journalColumns+` FROM journal WHERE `+a.clause()+` ORDER BY run_id, seq`, a.args...)
	if err != nil {
		return nil, fmt.Errorf("store: journal pending for run %q: %w", runID, err)
	}
	return out, nil
}

// Journal lists every entry of one run in the order it was journalled.
func (p *Postgres) Journal(ctx context.Context, runID string) ([]JournalEntry, error) {
	out, err := p.queryJournal(ctx, `SELECT `+journalColumns+` FROM journal WHERE tenant = $1 AND run_id = $2 ORDER BY seq`, p.tenant, runID)
	if err != nil {
		return nil, fmt.Errorf("store: journal of run %s: %w", runID, err)
	}
	return out, nil
}

func (p *Postgres) queryJournal(ctx context.Context, q string, args ...any) ([]JournalEntry, error) {
	rows, err := p.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (JournalEntry, error) {
		var (
			e              JournalEntry
			old, nw, state string
		)
		if err := row.Scan(&e.Tenant, &e.ID, &e.RunID, &e.Seq, &e.ObjectID, &e.DisplayName, &e.Cmdlet, &e.Param, &old, &nw,
			&state, &e.Error, &e.RequestID, &e.CreatedAt, &e.UpdatedAt); err != nil {
			return e, err
		}
		e.Old, e.New = []byte(old), []byte(nw)
		e.State = ChangeState(state)
		e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
		return e, nil
	})
}
