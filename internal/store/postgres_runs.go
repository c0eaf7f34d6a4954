package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// CreateRun is SQLite.CreateRun on PostgreSQL: same defaults, same refusals.
func (p *Postgres) CreateRun(ctx context.Context, r Run) (Run, error) {
	if r.ID == "" {
		r.ID = newULID(p.now())
	}
	if err := checkID("run id", r.ID); err != nil {
		return Run{}, fmt.Errorf("store: create run: %w", err)
	}
	if strings.TrimSpace(r.Job) == "" {
		return Run{}, fmt.Errorf("store: create run %s: empty job name", r.ID)
	}
	if r.Trigger == "" {
		r.Trigger = TriggerCLI
	}
	if !r.Trigger.Valid() {
		return Run{}, fmt.Errorf("store: create run %s: unknown trigger %q (want schedule, cli, api or alert)", r.ID, r.Trigger)
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = p.now()
	}
	r.StartedAt = pgTime(r.StartedAt)
	if r.Owner == "" {
		r.Owner = DefaultOwner()
	}
	r.Tenant = p.tenant
	r.Status = RunRunning
	r.FinishedAt = time.Time{}
	objects := r.Objects
	if objects == nil {
		objects = []string{}
	}
	_, err := p.pool.Exec(ctx, `INSERT INTO runs (`+runColumns+`)
	VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,NULL,$10,$11,$12,$13,$14,$15,$16,$17)`,
		r.Tenant, r.ID, r.Job, r.Mode, string(r.Trigger), r.Reason, objects, string(r.Status), r.StartedAt,
		r.Counts.InScope, r.Counts.Planned, r.Counts.Applied, r.Counts.Failed, r.Counts.Verified, r.Counts.Skipped,
		r.Error, r.Owner)
	if err != nil {
		if isUniqueViolation(err) {
			return Run{}, fmt.Errorf("store: create run %s: a run with this id already exists: %w", r.ID, err)
		}
		return Run{}, fmt.Errorf("store: create run %s for job %s: %w", r.ID, r.Job, err)
	}
	return r, nil
}

// FinishRun is SQLite.FinishRun on PostgreSQL.
func (p *Postgres) FinishRun(ctx context.Context, id string, res RunResult) error {
	if res.Status == RunRunning || !res.Status.Valid() {
		return fmt.Errorf("store: finish run %s: status %q is not a final status (want succeeded, failed, partial, aborted or interrupted)", id, res.Status)
	}
	at := res.FinishedAt
	if at.IsZero() {
		at = p.now()
	}
	c := res.Counts
	err := p.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE runs SET status = $1, finished_at = $2,
	in_scope = $3, planned = $4, applied = $5, failed = $6, verified = $7, skipped = $8, error = $9
	WHERE id = $10 AND tenant = $11 AND status = 'running'`,
			string(res.Status), pgTime(at), c.InScope, c.Planned, c.Applied, c.Failed, c.Verified, c.Skipped, res.Error, id, p.tenant)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		var status string
		switch err := tx.QueryRow(ctx, `SELECT status FROM runs WHERE id = $1 AND tenant = $2`, id, p.tenant).Scan(&status); {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		}
		return fmt.Errorf("%w: it is already %s", ErrRunNotRunning, status)
	})
	if err != nil {
		return fmt.Errorf("store: finish run %s as %s: %w", id, res.Status, err)
	}
	return nil
}

// GetRun returns one run, or an error wrapping ErrNotFound.
func (p *Postgres) GetRun(ctx context.Context, id string) (Run, error) {
	r, err := scanPGRun(p.pool.QueryRow(ctx, `SELECT `+runColumns+` FROM runs WHERE id = $1 AND tenant = $2`, id, p.tenant))
	if errors.Is(err, pgx.ErrNoRows) {
		return Run{}, fmt.Errorf("store: get run %s: %w (list runs with `worker history`)", id, ErrNotFound)
	}
	if err != nil {
		return Run{}, fmt.Errorf("store: get run %s: %w", id, err)
	}
	return r, nil
}

// pgArgs builds a WHERE clause with numbered placeholders.
type pgArgs struct {
	where []string
	args  []any
}

func (a *pgArgs) add(cond string, v any) {
	a.args = append(a.args, v)
	a.where = append(a.where, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(a.args))))
}

func (a *pgArgs) next(v any) string {
	a.args = append(a.args, v)
	return fmt.Sprintf("$%d", len(a.args))
}

func (a *pgArgs) clause() string { return strings.Join(a.where, " AND ") }

// ListRuns returns runs newest first.
func (p *Postgres) ListRuns(ctx context.Context, f RunFilter) ([]Run, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	var a pgArgs
	a.add("tenant = ?", p.tenant)
	if f.Job != "" {
		a.add("job = ?", f.Job)
	}
	if f.Status != "" {
		a.add("status = ?", string(f.Status))
	}
	if !f.Before.IsZero() {
		a.add("started_at < ?", pgTime(f.Before))
	}
	q := `SELECT ` + runColumns + ` FROM runs WHERE ` + a.clause() + ` ORDER BY started_at DESC, id DESC LIMIT ` + a.next(limit)
	rows, err := p.pool.Query(ctx, q, a.args...)
	if err != nil {
		return nil, fmt.Errorf("store: list runs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Run, error) { return scanPGRun(row) })
	if err != nil {
		return nil, fmt.Errorf("store: list runs: %w", err)
	}
	return out, nil
}

// MarkInterrupted is SQLite.MarkInterrupted on PostgreSQL. The runs are locked (FOR UPDATE) while they are
// marked, so a JournalBegin of one of them (which locks its run too) either commits first or sees it
// interrupted.
func (p *Postgres) MarkInterrupted(ctx context.Context, f InterruptFilter) ([]Run, error) {
	now := pgTime(p.now())
	var a pgArgs
	a.add("tenant = ?", p.tenant)
	a.where = append(a.where, "status = 'running'")
	if f.Job != "" {
		a.add("job = ?", f.Job)
	}
	if len(f.Owners) > 0 {
		a.add("owner = ANY(?)", f.Owners)
	}
	if f.ExceptOwner != "" {
		a.add("owner != ?", f.ExceptOwner)
	}
	if f.OrphansOnly {
		a.add("owner NOT IN (SELECT holder FROM leases WHERE expires_at > ?)", now)
	}
	var out []Run
	err := p.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+runColumns+` FROM runs WHERE `+a.clause()+` ORDER BY started_at, id FOR UPDATE`, a.args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Run, error) { return scanPGRun(row) })
		if err != nil {
			return err
		}
		for i := range out {
			reason := f.Reason
			if reason == "" {
				reason = fmt.Sprintf("interrupted: its process (%s) stopped before the run finished; "+
					"pending journal entries need reconciling and the next run completes the work", out[i].Owner)
			}
			if out[i].Error != "" {
				reason = out[i].Error + "; " + reason
			}
			if _, err := tx.Exec(ctx, `UPDATE runs SET status = 'interrupted', finished_at = $1, error = $2
	WHERE id = $3 AND status = 'running'`, now, reason, out[i].ID); err != nil {
				return err
			}
			out[i].Status = RunInterrupted
			out[i].FinishedAt = now
			out[i].Error = reason
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: mark interrupted runs: %w", err)
	}
	return out, nil
}

func scanPGRun(sc scanner) (Run, error) {
	var (
		r               Run
		trigger, status string
		finished        *time.Time
	)
	err := sc.Scan(&r.Tenant, &r.ID, &r.Job, &r.Mode, &trigger, &r.Reason, &r.Objects, &status, &r.StartedAt, &finished,
		&r.Counts.InScope, &r.Counts.Planned, &r.Counts.Applied, &r.Counts.Failed, &r.Counts.Verified, &r.Counts.Skipped,
		&r.Error, &r.Owner)
	if err != nil {
		return Run{}, err
	}
	r.Trigger = Trigger(trigger)
	r.Status = RunStatus(status)
	r.StartedAt = r.StartedAt.UTC()
	r.FinishedAt = pgNullTime(finished)
	if len(r.Objects) == 0 {
		r.Objects = nil
	}
	return r, nil
}
