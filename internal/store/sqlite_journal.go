package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

const journalColumns = `tenant, id, run_id, seq, object_id, display_name, cmdlet, param, old_value, new_value,
	state, error, request_id, created_at, updated_at`

// JournalBegin records changes as pending, in one committed transaction, and
// returns their ids in the same order. Call it before sending the writes:
// once it returns, a crash at any later point leaves these entries pending,
// and the next start reconciles them by reading the objects. It refuses with
// ErrRunNotRunning when the run is no longer running (another process gave up
// on it), because writing on would race that process's reconciliation.
func (s *SQLite) JournalBegin(ctx context.Context, runID string, changes []Change) ([]EntryID, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	type row struct {
		c        Change
		old, new string
	}
	rows := make([]row, len(changes))
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
		rows[i] = row{c: c, old: old, new: nw}
	}
	now := ts(s.now())
	ids := make([]EntryID, 0, len(changes))
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := requireRunning(ctx, tx, s.tenant, runID); err != nil {
			return err
		}
		var seq int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM journal WHERE run_id = ?`, runID).Scan(&seq); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO journal (tenant, run_id, seq, object_id, display_name, cmdlet, param,
	old_value, new_value, state, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,'pending',?,?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range rows {
			seq++
			res, err := stmt.ExecContext(ctx, s.tenant, runID, seq, r.c.ObjectID, r.c.DisplayName, r.c.Cmdlet, r.c.Param, r.old, r.new, now, now)
			if err != nil {
				return fmt.Errorf("object %s: %w", r.c.ObjectID, err)
			}
			id, err := res.LastInsertId()
			if err != nil {
				return err
			}
			ids = append(ids, EntryID(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: journal begin run %s (%d changes): %w", runID, len(changes), err)
	}
	return ids, nil
}

// JournalOutcomes records the outcomes of several journalled changes (a $batch
// of up to ten) in one transaction, so the journal costs one commit per batch,
// not one per object. All or none are recorded: an unknown id fails the call
// with ErrNotFound. Outcomes may follow each other (applied, then verified;
// verified, then reverted); only "pending" cannot be set again.
func (s *SQLite) JournalOutcomes(ctx context.Context, outcomes []Outcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	for _, o := range outcomes {
		if o.State == ChangeStatePending || !o.State.Valid() {
			return fmt.Errorf("store: journal outcome for entry %d: state %q is not an outcome "+
				"(want applied, failed, verified, skipped, reverted or reconciled)", o.ID, o.State)
		}
	}
	now := ts(s.now())
	err := s.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE journal SET state = ?, request_id = ?, error = ?, updated_at = ? WHERE id = ? AND tenant = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, o := range outcomes {
			res, err := stmt.ExecContext(ctx, string(o.State), o.RequestID, o.Error, now, int64(o.ID), s.tenant)
			if err != nil {
				return fmt.Errorf("entry %d: %w", o.ID, err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("entry %d: %w", o.ID, ErrNotFound)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: journal outcome (%d entries): %w", len(outcomes), err)
	}
	return nil
}

// JournalPending lists entries that never got an outcome, in journal order:
// writes that may or may not have reached the tenant before a crash. runID ""
// lists them across every run.
func (s *SQLite) JournalPending(ctx context.Context, runID string) ([]JournalEntry, error) {
	q := `SELECT ` + journalColumns + ` FROM journal WHERE tenant = ? AND state = 'pending'`
	args := []any{s.tenant}
	if runID != "" {
		q += ` AND run_id = ?`
		args = append(args, runID)
	}
	q += ` ORDER BY run_id, seq`
	out, err := s.queryJournal(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: journal pending for run %q: %w", runID, err)
	}
	return out, nil
}

// Journal lists every entry of one run in the order it was journalled: what
// `worker show RUN` prints and what `worker revert RUN` walks.
func (s *SQLite) Journal(ctx context.Context, runID string) ([]JournalEntry, error) {
	out, err := s.queryJournal(ctx, `SELECT `+journalColumns+` FROM journal WHERE tenant = ? AND run_id = ? ORDER BY seq`, s.tenant, runID)
	if err != nil {
		return nil, fmt.Errorf("store: journal of run %s: %w", runID, err)
	}
	return out, nil
}

func (s *SQLite) queryJournal(ctx context.Context, q string, args ...any) ([]JournalEntry, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []JournalEntry
	for rows.Next() {
		var (
			e                JournalEntry
			old, nw, state   string
			created, updated int64
		)
		if err := rows.Scan(&e.Tenant, &e.ID, &e.RunID, &e.Seq, &e.ObjectID, &e.DisplayName, &e.Cmdlet, &e.Param, &old, &nw,
			&state, &e.Error, &e.RequestID, &created, &updated); err != nil {
			return nil, err
		}
		e.Old = json.RawMessage(old)
		e.New = json.RawMessage(nw)
		e.State = ChangeState(state)
		e.CreatedAt = fromTS(created)
		e.UpdatedAt = fromTS(updated)
		out = append(out, e)
	}
	return out, rows.Err()
}

// requireRunning fails unless the run exists and is running.
func requireRunning(ctx context.Context, tx *sql.Tx, tenant, runID string) error {
	var status string
	err := tx.QueryRowContext(ctx, `SELECT status FROM runs WHERE id = ? AND tenant = ?`, runID, tenant).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("run %s: %w", runID, ErrNotFound)
	}
	if err != nil {
		return err
	}
	if RunStatus(status) != RunRunning {
		return fmt.Errorf("%w: run %s is %s", ErrRunNotRunning, runID, status)
	}
	return nil
}

// jsonValue validates a JSON value and returns it compacted; empty means null.
func jsonValue(v json.RawMessage) (string, error) {
	if len(v) == 0 {
		return "null", nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return "", fmt.Errorf("%q is not valid JSON (encode the value with json.Marshal): %w", truncate(string(v), 80), err)
	}
	return b.String(), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
