package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RecordFindings is SQLite.RecordFindings on PostgreSQL. It reads the existing records of the reported
// findings in one query, decides in Go (as SQLite's loop does) which are new, reopened or still open, and
// writes them in one batch, so a run with thousands of findings costs three round trips, not thousands.
func (p *Postgres) RecordFindings(ctx context.Context, runID, job string, findings []Finding, at time.Time) (FindingsSummary, error) {
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
		at = p.now()
	}
	t := pgTime(at)
	type key struct{ rule, object string }
	type state struct {
		exists, resolved bool
		lastRun          string
	}
	var sum FindingsSummary
	err := p.tx(ctx, func(tx pgx.Tx) error {
		var objects []string
		err := tx.QueryRow(ctx, `SELECT objects FROM runs WHERE id = $1 AND tenant = $2`, runID, p.tenant).Scan(&objects)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("run %s: %w (create the run before recording its findings)", runID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		rules, objs := make([]string, len(findings)), make([]string, len(findings))
		for i, f := range findings {
			rules[i], objs[i] = f.Rule, f.ObjectID
		}
		known := map[key]*state{}
		rows, err := tx.Query(ctx, `SELECT f.rule, f.object_id, f.resolved_at IS NOT NULL, f.last_run_id FROM findings f
	JOIN unnest($3::text[], $4::text[]) AS u(rule, object_id) ON f.rule = u.rule AND f.object_id = u.object_id
	WHERE f.tenant = $1 AND f.job = $2`, p.tenant, job, rules, objs)
		if err != nil {
			return err
		}
		var k key
		var st state
		if _, err := pgx.ForEachRow(rows, []any{&k.rule, &k.object, &st.resolved, &st.lastRun}, func() error {
			known[k] = &state{exists: true, resolved: st.resolved, lastRun: st.lastRun}
			return nil
		}); err != nil {
			return err
		}
		b := &pgx.Batch{}
		for _, f := range findings {
			var fix OnPremFix
			if f.OnPrem != nil {
				fix = *f.OnPrem
			}
			k := key{f.Rule, f.ObjectID}
			s := known[k]
			switch {
			case s == nil:
				b.Queue(`INSERT INTO findings (tenant, job, rule, object_id, display_name, severity, detail,
	onprem_attribute, onprem_value, onprem_action, first_seen, last_seen, last_run_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$11,$12)`,
					p.tenant, job, f.Rule, f.ObjectID, f.DisplayName, f.Severity, f.Detail, fix.Attribute, fix.Value, fix.Action, t, runID)
				sum.New++
				known[k] = &state{exists: true, lastRun: runID}
				continue
			case s.resolved:
				sum.Reopened++
			case s.lastRun != runID: // a duplicate within this call counts once
				sum.Open++
			}
			b.Queue(`UPDATE findings SET display_name = $1, severity = $2, detail = $3,
	onprem_attribute = $4, onprem_value = $5, onprem_action = $6, last_seen = $7, last_run_id = $8,
	first_seen = CASE WHEN resolved_at IS NULL THEN first_seen ELSE $7 END,
	reopened = reopened + CASE WHEN resolved_at IS NULL THEN 0 ELSE 1 END,
	resolved_at = NULL
	WHERE tenant = $9 AND job = $10 AND rule = $11 AND object_id = $12`,
				f.DisplayName, f.Severity, f.Detail, fix.Attribute, fix.Value, fix.Action, t, runID, p.tenant, job, f.Rule, f.ObjectID)
			s.resolved, s.lastRun = false, runID
		}
		if b.Len() > 0 {
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
		}
		var a pgArgs
		q := `UPDATE findings SET resolved_at = ` + a.next(t) + ` WHERE tenant = ` + a.next(p.tenant) + ` AND job = ` + a.next(job) +
			` AND resolved_at IS NULL AND last_run_id != ` + a.next(runID)
		if len(objects) > 0 {
			q += ` AND object_id = ANY(` + a.next(objects) + `)`
		}
		tag, err := tx.Exec(ctx, q, a.args...)
		if err != nil {
			return fmt.Errorf("resolve absent findings: %w", err)
		}
		sum.Resolved = int(tag.RowsAffected())
		return nil
	})
	if err != nil {
		return FindingsSummary{}, fmt.Errorf("store: record findings of run %s (job %s, %d findings): %w", runID, job, len(findings), err)
	}
	return sum, nil
}

// OpenFindings lists unresolved findings ordered by job, rule and object.
func (p *Postgres) OpenFindings(ctx context.Context, f FindingFilter) ([]FindingRecord, error) {
	var a pgArgs
	a.add("tenant = ?", p.tenant)
	a.where = append(a.where, "resolved_at IS NULL")
	for _, c := range []struct{ col, val string }{
		{"job", f.Job}, {"rule", f.Rule}, {"severity", f.Severity}, {"object_id", f.ObjectID},
	} {
		if c.val != "" {
			a.add(c.col+" = ?", c.val)
		}
	}
	if k := f.After; k != nil {
		j, r, o := a.next(k.Job), a.next(k.Rule), a.next(k.ObjectID)
		a.where = append(a.where, fmt.Sprintf("(job > %s OR (job = %s AND (rule > %s OR (rule = %s AND object_id > %s))))", j, j, r, r, o))
	}
	q := `SELECT tenant, job, rule, object_id, display_name, severity, detail, onprem_attribute, onprem_value, onprem_action,
	first_seen, last_seen, resolved_at, last_run_id, reopened FROM findings WHERE ` + a.clause() + ` ORDER BY job, rule, object_id`
	if f.Limit > 0 {
		q += ` LIMIT ` + a.next(f.Limit)
	}
	rows, err := p.pool.Query(ctx, q, a.args...)
	if err != nil {
		return nil, fmt.Errorf("store: open findings: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (FindingRecord, error) {
		var (
			r        FindingRecord
			fix      OnPremFix
			resolved *time.Time
		)
		if err := row.Scan(&r.Tenant, &r.Job, &r.Rule, &r.ObjectID, &r.DisplayName, &r.Severity, &r.Detail,
			&fix.Attribute, &fix.Value, &fix.Action, &r.FirstSeen, &r.LastSeen, &resolved, &r.LastRunID, &r.Reopened); err != nil {
			return r, err
		}
		if fix != (OnPremFix{}) {
			r.OnPrem = &fix
		}
		r.FirstSeen, r.LastSeen, r.ResolvedAt = r.FirstSeen.UTC(), r.LastSeen.UTC(), pgNullTime(resolved)
		return r, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: open findings: %w", err)
	}
	return out, nil
}

// SummarizeOpenFindings is SQLite.SummarizeOpenFindings on PostgreSQL.
func (p *Postgres) SummarizeOpenFindings(ctx context.Context) ([]FindingGroup, error) {
	rows, err := p.pool.Query(ctx, `SELECT job, rule, severity, COUNT(*), MIN(first_seen) FROM findings
	WHERE tenant = $1 AND resolved_at IS NULL GROUP BY job, rule, severity ORDER BY job, rule, severity`, p.tenant)
	if err != nil {
		return nil, fmt.Errorf("store: summarize open findings: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (FindingGroup, error) {
		var g FindingGroup
		var open int64
		err := row.Scan(&g.Job, &g.Rule, &g.Severity, &open, &g.FirstSeen)
		g.Open, g.FirstSeen = int(open), g.FirstSeen.UTC()
		return g, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: summarize open findings: %w", err)
	}
	return out, nil
}

// Prune is SQLite.Prune on PostgreSQL.
func (p *Postgres) Prune(ctx context.Context, r Retention) (Pruned, error) {
	var out Pruned
	err := p.tx(ctx, func(tx pgx.Tx) error {
		if !r.JournalBefore.IsZero() {
			cut := pgTime(r.JournalBefore)
			tag, err := tx.Exec(ctx, `DELETE FROM journal WHERE run_id IN
	(SELECT id FROM runs WHERE tenant = $1 AND status != 'running' AND started_at < $2)`, p.tenant, cut)
			if err != nil {
				return fmt.Errorf("journal: %w", err)
			}
			out.JournalEntries = int(tag.RowsAffected())
			tag, err = tx.Exec(ctx, `DELETE FROM runs WHERE tenant = $1 AND status != 'running' AND started_at < $2`, p.tenant, cut)
			if err != nil {
				return fmt.Errorf("runs: %w", err)
			}
			out.Runs = int(tag.RowsAffected())
		}
		if !r.RunsBefore.IsZero() {
			tag, err := tx.Exec(ctx, `DELETE FROM runs WHERE tenant = $1 AND status != 'running' AND started_at < $2
	AND NOT EXISTS (SELECT 1 FROM journal WHERE journal.run_id = runs.id)`, p.tenant, pgTime(r.RunsBefore))
			if err != nil {
				return fmt.Errorf("runs: %w", err)
			}
			out.Runs += int(tag.RowsAffected())
		}
		if !r.FindingsResolvedBefore.IsZero() {
			tag, err := tx.Exec(ctx, `DELETE FROM findings WHERE tenant = $1 AND resolved_at IS NOT NULL AND resolved_at < $2`,
				p.tenant, pgTime(r.FindingsResolvedBefore))
			if err != nil {
				return fmt.Errorf("findings: %w", err)
			}
			out.Findings = int(tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return Pruned{}, fmt.Errorf("store: prune: %w", err)
	}
	return out, nil
}
