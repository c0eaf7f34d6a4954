package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

const runColumns = `tenant, id, job, mode, triggered_by, reason, objects, status, started_at, finished_at,
	in_scope, planned, applied, failed, verified, skipped, error, owner`

// CreateRun records a new run as running. Empty fields get defaults: ID a new
// NewRunID, Trigger "cli", StartedAt now, Owner DefaultOwner(). Status and
// FinishedAt are ignored: a run always starts running. It returns the run as
// stored.
func (s *SQLite) CreateRun(ctx context.Context, r Run) (Run, error) {
	if r.ID == "" {
		r.ID = newULID(s.now())
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
		r.StartedAt = s.now()
	}
	r.StartedAt = fromTS(ts(r.StartedAt))
	if r.Owner == "" {
		r.Owner = DefaultOwner()
	}
	r.Tenant = s.tenant
	r.Status = RunRunning
	r.FinishedAt = time.Time{}
	objects := r.Objects
	if objects == nil {
		objects = []string{}
	}
	objJSON, err := json.Marshal(objects)
	if err != nil {
		return Run{}, fmt.Errorf("store: create run %s: encode objects: %w", r.ID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO runs (`+runColumns+`) VALUES (?,?,?,?,?,?,?,?,?,NULL,?,?,?,?,?,?,?,?)`,
			r.Tenant, r.ID, r.Job, r.Mode, string(r.Trigger), r.Reason, string(objJSON), string(r.Status), ts(r.StartedAt),
			r.Counts.InScope, r.Counts.Planned, r.Counts.Applied, r.Counts.Failed, r.Counts.Verified, r.Counts.Skipped,
			r.Error, r.Owner)
		return err
	})
	if err != nil {
		if isConstraint(err) {
			return Run{}, fmt.Errorf("store: create run %s: a run with this id already exists: %w", r.ID, err)
		}
		return Run{}, fmt.Errorf("store: create run %s for job %s: %w", r.ID, r.Job, err)
	}
	return r, nil
}

// FinishRun records how a running run ended. It fails with ErrRunNotRunning
// if the run was already finished — typically marked interrupted by another
// process that thought its owner dead — so the caller learns its result was
// not the one recorded.
func (s *SQLite) FinishRun(ctx context.Context, id string, res RunResult) error {
	if res.Status == RunRunning || !res.Status.Valid() {
		return fmt.Errorf("store: finish run %s: status %q is not a final status (want succeeded, failed, partial, aborted or interrupted)", id, res.Status)
	}
	at := res.FinishedAt
	if at.IsZero() {
		at = s.now()
	}
	c := res.Counts
	err := s.write(ctx, func(tx *sql.Tx) error {
		out, err := tx.ExecContext(ctx, `UPDATE runs SET status = ?, finished_at = ?,
	in_scope = ?, planned = ?, applied = ?, failed = ?, verified = ?, skipped = ?, error = ?
	WHERE id = ? AND tenant = ? AND status = 'running'`,
			string(res.Status), ts(at), c.InScope, c.Planned, c.Applied, c.Failed, c.Verified, c.Skipped, res.Error, id, s.tenant)
		if err != nil {
			return err
		}
		if n, _ := out.RowsAffected(); n == 1 {
			return nil
		}
		var status string
		switch err := tx.QueryRowContext(ctx, `SELECT status FROM runs WHERE id = ? AND tenant = ?`, id, s.tenant).Scan(&status); {
		case errors.Is(err, sql.ErrNoRows):
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
func (s *SQLite) GetRun(ctx context.Context, id string) (Run, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ? AND tenant = ?`, id, s.tenant)
	r, err := scanRun(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, fmt.Errorf("store: get run %s: %w (list runs with `worker history`)", id, ErrNotFound)
	}
	if err != nil {
		return Run{}, fmt.Errorf("store: get run %s: %w", id, err)
	}
	return r, nil
}

// ListRuns returns runs newest first.
func (s *SQLite) ListRuns(ctx context.Context, f RunFilter) ([]Run, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	where := []string{"tenant = ?"}
	args := []any{s.tenant}
	if f.Job != "" {
		where = append(where, "job = ?")
		args = append(args, f.Job)
	}
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, string(f.Status))
	}
	if !f.Before.IsZero() {
		where = append(where, "started_at < ?")
		args = append(args, ts(f.Before))
	}
	q := `SELECT ` + runColumns + ` FROM runs WHERE ` + strings.Join(where, " AND ")
	q += " ORDER BY started_at DESC, id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list runs: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list runs: %w", err)
	}
	return out, nil
}

// MarkInterrupted gives up on running runs whose owner is gone, marking them
// interrupted (finished now), and returns them so the caller can reconcile
// their pending journal entries. A daemon calls it at start and whenever it
// acquires a job's lease: once it holds the lease, any other running run of
// that job has lost its owner.
func (s *SQLite) MarkInterrupted(ctx context.Context, f InterruptFilter) ([]Run, error) {
	now := s.now()
	where := []string{"tenant = ?", "status = 'running'"}
	args := []any{s.tenant}
	if f.Job != "" {
		where = append(where, "job = ?")
		args = append(args, f.Job)
	}
	if len(f.Owners) > 0 {
		where = append(where, "owner IN ("+placeholders(len(f.Owners))+")")
		for _, o := range f.Owners {
			args = append(args, o)
		}
	}
	if f.ExceptOwner != "" {
		where = append(where, "owner != ?")
		args = append(args, f.ExceptOwner)
	}
	if f.OrphansOnly {
		where = append(where, "owner NOT IN (SELECT holder FROM leases WHERE expires_at > ?)")
		args = append(args, ts(now))
	}
	var out []Run
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+runColumns+` FROM runs WHERE `+strings.Join(where, " AND ")+
			` ORDER BY started_at, id`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
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
			if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?
	WHERE id = ? AND status = 'running'`, ts(now), reason, out[i].ID); err != nil {
				return err
			}
			out[i].Status = RunInterrupted
			out[i].FinishedAt = fromTS(ts(now))
			out[i].Error = reason
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: mark interrupted runs: %w", err)
	}
	return out, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanRun(sc scanner) (Run, error) {
	var (
		r               Run
		trigger, status string
		objects         string
		started         int64
		finished        sql.NullInt64
	)
	err := sc.Scan(&r.Tenant, &r.ID, &r.Job, &r.Mode, &trigger, &r.Reason, &objects, &status, &started, &finished,
		&r.Counts.InScope, &r.Counts.Planned, &r.Counts.Applied, &r.Counts.Failed, &r.Counts.Verified, &r.Counts.Skipped,
		&r.Error, &r.Owner)
	if err != nil {
		return Run{}, err
	}
	r.Trigger = Trigger(trigger)
	r.Status = RunStatus(status)
	r.StartedAt = fromTS(started)
	r.FinishedAt = fromNullTS(finished)
	if err := json.Unmarshal([]byte(objects), &r.Objects); err != nil {
		return Run{}, fmt.Errorf("run %s: objects column is not a JSON list: %w", r.ID, err)
	}
	if len(r.Objects) == 0 {
		r.Objects = nil
	}
	return r, nil
}

// checkID refuses ids that would be awkward in URLs, file names and logs.
func checkID(what, id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("%s %q must be 1 to 128 characters", what, id)
	}
	for _, c := range id {
		if !(unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune("-_.:", c)) {
			return fmt.Errorf("%s %q may contain only letters, digits and - _ . :", what, id)
		}
	}
	return nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}
