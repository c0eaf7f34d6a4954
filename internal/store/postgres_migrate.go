package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgMigrations is the PostgreSQL schema history, versioned apart from SQLite's (each driver's list is only
// ever appended to). Version 1 already has the tenant on every record.
var pgMigrations = []migration{
	{name: "initial schema", sql: `
CREATE TABLE runs (
	tenant       text NOT NULL,
	id           text PRIMARY KEY,
	job          text NOT NULL,
	mode         text NOT NULL DEFAULT '',
	triggered_by text NOT NULL,
	reason       text NOT NULL DEFAULT '',
	objects      text[] NOT NULL DEFAULT '{}',
	status       text NOT NULL CHECK (status IN ('running','succeeded','failed','partial','aborted','interrupted')),
	started_at   timestamptz NOT NULL,
	finished_at  timestamptz,
	in_scope     integer NOT NULL DEFAULT 0,
	planned      integer NOT NULL DEFAULT 0,
	applied      integer NOT NULL DEFAULT 0,
	failed       integer NOT NULL DEFAULT 0,
	verified     integer NOT NULL DEFAULT 0,
	skipped      integer NOT NULL DEFAULT 0,
	error        text NOT NULL DEFAULT '',
	owner        text NOT NULL DEFAULT ''
);
CREATE INDEX runs_by_start ON runs (tenant, started_at DESC, id DESC);
CREATE INDEX runs_by_job ON runs (tenant, job, started_at DESC, id DESC);
CREATE INDEX runs_running ON runs (tenant, job) WHERE status = 'running';

CREATE TABLE journal (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant       text NOT NULL,
	run_id       text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	seq          integer NOT NULL,
	object_id    text NOT NULL,
	display_name text NOT NULL DEFAULT '',
	cmdlet       text NOT NULL,
	param        text NOT NULL,
	old_value    text NOT NULL,
	new_value    text NOT NULL,
	state        text NOT NULL CHECK (state IN ('pending','applied','failed','verified','skipped','reverted','reconciled')),
	error        text NOT NULL DEFAULT '',
	request_id   text NOT NULL DEFAULT '',
	created_at   timestamptz NOT NULL,
	updated_at   timestamptz NOT NULL,
	UNIQUE (run_id, seq)
);
CREATE INDEX journal_pending ON journal (tenant, run_id) WHERE state = 'pending';
CREATE INDEX journal_by_object ON journal (object_id);

CREATE TABLE findings (
	tenant           text NOT NULL,
	job              text NOT NULL,
	rule             text NOT NULL,
	object_id        text NOT NULL,
	display_name     text NOT NULL DEFAULT '',
	severity         text NOT NULL,
	detail           text NOT NULL DEFAULT '',
	onprem_attribute text NOT NULL DEFAULT '',
	onprem_value     text NOT NULL DEFAULT '',
	onprem_action    text NOT NULL DEFAULT '',
	first_seen       timestamptz NOT NULL,
	last_seen        timestamptz NOT NULL,
	resolved_at      timestamptz,
	last_run_id      text NOT NULL,
	reopened         integer NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant, job, rule, object_id)
);
CREATE INDEX findings_open ON findings (tenant, job, rule) WHERE resolved_at IS NULL;

CREATE TABLE delta_links (
	tenant     text NOT NULL,
	resource   text NOT NULL,
	link       text NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (tenant, resource)
);

CREATE TABLE leases (
	tenant      text NOT NULL,
	name        text NOT NULL,
	holder      text NOT NULL,
	acquired_at timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL,
	PRIMARY KEY (tenant, name)
);
CREATE INDEX leases_by_holder ON leases (holder, expires_at);

CREATE TABLE schedule_ticks (
	tenant     text NOT NULL,
	job        text NOT NULL,
	tick       timestamptz NOT NULL,
	holder     text NOT NULL,
	claimed_at timestamptz NOT NULL,
	PRIMARY KEY (tenant, job, tick)
);
`},
	{name: "snapshots", sql: `
CREATE TABLE snapshots (
	tenant     text NOT NULL,
	name       text NOT NULL,
	data       bytea NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (tenant, name)
);
`},
}

// Migration is what MigratePostgres did.
type Migration struct {
	From, To int    // schema versions before and after
	Applied  int    // steps this call applied (another process may have applied the rest)
	Extra    string // what else was migrated with it (River's tables), for the operator
	Where    string // the database, for messages
}

// MigratePostgres brings the database dsn names to this binary's schema, creating the schema (WithSchema)
// if missing. Steps run one per transaction under an advisory lock, so replicas racing to migrate apply
// each step once; a database newer than the binary is refused with ErrSchemaTooNew. Only WithSchema,
// WithClock and WithMaxConns matter here.
func MigratePostgres(ctx context.Context, dsn string, opts ...Option) (Migration, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return Migration{}, err
	}
	pool, where, err := connectPool(ctx, dsn, o)
	if err != nil {
		return Migration{}, err
	}
	defer pool.Close()
	m := Migration{Where: where}
	if o.schema != "" {
		if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{o.schema}.Sanitize()); err != nil {
			return m, fmt.Errorf("store: migrate postgres %s: create schema: %w (the user needs CREATE on the database, or create the schema for it)", where, err)
		}
	}
	m.From = -1
	for {
		before, v, done, err := pgMigrateOne(ctx, pool, where, o.schema, o.pgMigrations, o.now)
		if m.From < 0 {
			m.From = before
		}
		m.To = v
		if err != nil || done {
			return m, err
		}
		m.Applied++
	}
}

// pgMigrateOne applies the next step, if any, and reports the versions before and after it and whether the
// schema was already current.
func pgMigrateOne(ctx context.Context, pool *pgxpool.Pool, where, schema string, steps []migration, now func() time.Time) (int, int, bool, error) {
	var before, v int
	done := false
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "exo-worker migrate "+schema); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL
)`); err != nil {
			return fmt.Errorf("create schema_version: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		before = v
		if v > len(steps) {
			return checkPGVersion(where, v, len(steps))
		}
		if v == len(steps) {
			done = true
			return nil
		}
		step := steps[v]
		if _, err := tx.Exec(ctx, step.sql); err != nil {
			return fmt.Errorf("to version %d (%s): %w", v+1, step.name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)`,
			v+1, step.name, pgTime(now())); err != nil {
			return fmt.Errorf("to version %d: record version: %w", v+1, err)
		}
		v++
		return nil
	})
	if err != nil {
		return before, v, false, fmt.Errorf("store: migrate postgres %s: %w", where, err)
	}
	return before, v, done, nil
}

// pgSchemaVersion reads the schema version; 0 when the database was never migrated.
func pgSchemaVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// SchemaVersion reports the version the database is at.
func (p *Postgres) SchemaVersion(ctx context.Context) (int, error) {
	v, err := pgSchemaVersion(ctx, p.pool)
	if err != nil {
		return 0, fmt.Errorf("store: postgres %s: %w", p.where, err)
	}
	return v, nil
}
