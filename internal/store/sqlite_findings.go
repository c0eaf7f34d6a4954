package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// RecordFindings records one run's complete findings for a job: findings seen
// now are inserted or have last_seen moved to at; findings of the job that
// were open and are absent now are marked resolved at at. If the run was a
// targeted rerun (Run.Objects set), only findings on those objects can be
// resolved, since the run did not look at the others.
//
// Call it once per run with every finding of the job: a second call for the
// same run would resolve what the first recorded and the second did not repeat.
func (s *SQLite) RecordFindings(ctx context.Context, runID, job string, findings []Finding, at time.Time) (FindingsSummary, error) {
	if job == "" {
		return FindingsSummary{}, fmt.Errorf("store: record findings of run %s: empty job name", runID)
	}
	for i, f := range findings {
		if f.Rule == "" || f.ObjectID == "" {
			return FindingsSummary{}, fmt.Errorf("store: record findings of run %s (job %s): finding %d needs a rule and an object id (got %q, %q)",
				runID, job, i, f.Rule, f.ObjectID)
		}
	}
	if at.IsZero() {
		at = s.now()
	}
	t := ts(at)
	var sum FindingsSummary
	err := s.write(ctx, func(tx *sql.Tx) error {
		var objects string
		err := tx.QueryRowContext(ctx, `SELECT objects FROM runs WHERE id = ? AND tenant = ?`, runID, s.tenant).Scan(&objects)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("run %s: %w (create the run before recording its findings)", runID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		get, err := tx.PrepareContext(ctx, `SELECT resolved_at, last_run_id FROM findings WHERE tenant = ? AND job = ? AND rule = ? AND object_id = ?`)
		if err != nil {
			return err
		}
		defer get.Close()
		ins, err := tx.PrepareContext(ctx, `INSERT INTO findings (tenant, job, rule, object_id, display_name, severity, detail,
	onprem_attribute, onprem_value, onprem_action, first_seen, last_seen, last_run_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		// first_seen restarts and reopened counts up when a resolved finding
		// comes back (resolved_at IS NOT NULL before this update).
		upd, err := tx.PrepareContext(ctx, `UPDATE findings SET display_name = ?, severity = ?, detail = ?,
	onprem_attribute = ?, onprem_value = ?, onprem_action = ?, last_seen = ?, last_run_id = ?,
	first_seen = CASE WHEN resolved_at IS NULL THEN first_seen ELSE ? END,
	reopened = reopened + (resolved_at IS NOT NULL),
	resolved_at = NULL
	WHERE tenant = ? AND job = ? AND rule = ? AND object_id = ?`)
		if err != nil {
			return err
		}
		defer upd.Close()
		for _, f := range findings {
			var fix OnPremFix
			if f.OnPrem != nil {
				fix = *f.OnPrem
			}
			var resolved sql.NullInt64
			var lastRun string
			err := get.QueryRowContext(ctx, s.tenant, job, f.Rule, f.ObjectID).Scan(&resolved, &lastRun)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				if _, err := ins.ExecContext(ctx, s.tenant, job, f.Rule, f.ObjectID, f.DisplayName, f.Severity, f.Detail,
					fix.Attribute, fix.Value, fix.Action, t, t, runID); err != nil {
					return fmt.Errorf("finding %s on %s: %w", f.Rule, f.ObjectID, err)
				}
				sum.New++
				continue
			case err != nil:
				return fmt.Errorf("finding %s on %s: %w", f.Rule, f.ObjectID, err)
			case resolved.Valid:
				sum.Reopened++
			case lastRun != runID: // a duplicate within this call counts once
				sum.Open++
			}
			if _, err := upd.ExecContext(ctx, f.DisplayName, f.Severity, f.Detail, fix.Attribute, fix.Value, fix.Action,
				t, runID, t, s.tenant, job, f.Rule, f.ObjectID); err != nil {
				return fmt.Errorf("finding %s on %s: %w", f.Rule, f.ObjectID, err)
			}
		}
		q := `UPDATE findings SET resolved_at = ? WHERE tenant = ? AND job = ? AND resolved_at IS NULL AND last_run_id != ?`
		args := []any{t, s.tenant, job, runID}
		if objects != "" && objects != "[]" {
			q += ` AND object_id IN (SELECT value FROM json_each(?))`
			args = append(args, objects)
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("resolve absent findings: %w", err)
		}
		n, _ := res.RowsAffected()
		sum.Resolved = int(n)
		return nil
	})
	if err != nil {
		return FindingsSummary{}, fmt.Errorf("store: record findings of run %s (job %s, %d findings): %w", runID, job, len(findings), err)
	}
	return sum, nil
}

// OpenFindings lists unresolved findings ordered by job, rule and object.
func (s *SQLite) OpenFindings(ctx context.Context, f FindingFilter) ([]FindingRecord, error) {
	where := []string{"tenant = ?", "resolved_at IS NULL"}
	args := []any{s.tenant}
	for _, c := range []struct{ col, val string }{
		{"job", f.Job}, {"rule", f.Rule}, {"severity", f.Severity}, {"object_id", f.ObjectID},
	} {
		if c.val != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.val)
		}
	}
	if k := f.After; k != nil {
		where = append(where, "(job > ? OR (job = ? AND (rule > ? OR (rule = ? AND object_id > ?))))")
		args = append(args, k.Job, k.Job, k.Rule, k.Rule, k.ObjectID)
	}
	q := `SELECT tenant, job, rule, object_id, display_name, severity, detail, onprem_attribute, onprem_value, onprem_action,
	first_seen, last_seen, resolved_at, last_run_id, reopened FROM findings WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY job, rule, object_id`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: open findings: %w", err)
	}
	defer rows.Close()
	var out []FindingRecord
	for rows.Next() {
		var (
			r           FindingRecord
			fix         OnPremFix
			first, last int64
			resolved    sql.NullInt64
		)
		if err := rows.Scan(&r.Tenant, &r.Job, &r.Rule, &r.ObjectID, &r.DisplayName, &r.Severity, &r.Detail,
			&fix.Attribute, &fix.Value, &fix.Action, &first, &last, &resolved, &r.LastRunID, &r.Reopened); err != nil {
			return nil, fmt.Errorf("store: open findings: %w", err)
		}
		if fix != (OnPremFix{}) {
			r.OnPrem = &fix
		}
		r.FirstSeen, r.LastSeen, r.ResolvedAt = fromTS(first), fromTS(last), fromNullTS(resolved)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: open findings: %w", err)
	}
	return out, nil
}

// SummarizeOpenFindings counts open findings by job, rule and severity, ordered by job, rule, severity.
func (s *SQLite) SummarizeOpenFindings(ctx context.Context) ([]FindingGroup, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT job, rule, severity, COUNT(*), MIN(first_seen) FROM findings
	WHERE tenant = ? AND resolved_at IS NULL GROUP BY job, rule, severity ORDER BY job, rule, severity`, s.tenant)
	if err != nil {
		return nil, fmt.Errorf("store: summarize open findings: %w", err)
	}
	defer rows.Close()
	var out []FindingGroup
	for rows.Next() {
		var g FindingGroup
		var first int64
		if err := rows.Scan(&g.Job, &g.Rule, &g.Severity, &g.Open, &first); err != nil {
			return nil, fmt.Errorf("store: summarize open findings: %w", err)
		}
		g.FirstSeen = fromTS(first)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: summarize open findings: %w", err)
	}
	return out, nil
}
