package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// migration is one schema step. Steps are only ever appended: version N is
// migrations[N-1], and a released step is never edited, because databases in
// the field already ran it.
type migration struct {
	name string
	sql  string
}

// migrations is the schema history. Tables are STRICT so a value of the wrong
// type is refused instead of silently stored; times are INTEGER microseconds
// since the epoch (UTC); JSON values are TEXT.
var migrations = []migration{
	{name: "initial schema", sql: `
CREATE TABLE runs (
	id          TEXT PRIMARY KEY,
	job         TEXT NOT NULL,
	mode        TEXT NOT NULL DEFAULT '',
	triggered_by TEXT NOT NULL,
	reason      TEXT NOT NULL DEFAULT '',
	objects     TEXT NOT NULL DEFAULT '[]',
	status      TEXT NOT NULL CHECK (status IN ('running','succeeded','failed','partial','aborted','interrupted')),
	started_at  INTEGER NOT NULL,
	finished_at INTEGER,
	in_scope    INTEGER NOT NULL DEFAULT 0,
	planned     INTEGER NOT NULL DEFAULT 0,
	applied     INTEGER NOT NULL DEFAULT 0,
	failed      INTEGER NOT NULL DEFAULT 0,
	verified    INTEGER NOT NULL DEFAULT 0,
	skipped     INTEGER NOT NULL DEFAULT 0,
	error       TEXT NOT NULL DEFAULT '',
	owner       TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX runs_by_start ON runs (started_at DESC, id DESC);
CREATE INDEX runs_by_job ON runs (job, started_at DESC, id DESC);
CREATE INDEX runs_running ON runs (job) WHERE status = 'running';

CREATE TABLE journal (
	id           INTEGER PRIMARY KEY,
	run_id       TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	seq          INTEGER NOT NULL,
	object_id    TEXT NOT NULL,
	display_name TEXT NOT NULL DEFAULT '',
	cmdlet       TEXT NOT NULL,
	param        TEXT NOT NULL,
	old_value    TEXT NOT NULL,
	new_value    TEXT NOT NULL,
	state        TEXT NOT NULL CHECK (state IN ('pending','applied','failed','verified','skipped','reverted','reconciled')),
	error        TEXT NOT NULL DEFAULT '',
	request_id   TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	UNIQUE (run_id, seq)
) STRICT;
CREATE INDEX journal_pending ON journal (run_id) WHERE state = 'pending';
CREATE INDEX journal_by_object ON journal (object_id);

CREATE TABLE findings (
	job              TEXT NOT NULL,
	rule             TEXT NOT NULL,
	object_id        TEXT NOT NULL,
	display_name     TEXT NOT NULL DEFAULT '',
	severity         TEXT NOT NULL,
	detail           TEXT NOT NULL DEFAULT '',
	onprem_attribute TEXT NOT NULL DEFAULT '',
	onprem_value     TEXT NOT NULL DEFAULT '',
	onprem_action    TEXT NOT NULL DEFAULT '',
	first_seen       INTEGER NOT NULL,
	last_seen        INTEGER NOT NULL,
	resolved_at      INTEGER,
	last_run_id      TEXT NOT NULL,
	reopened         INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (job, rule, object_id)
) STRICT;
CREATE INDEX findings_open ON findings (job, rule) WHERE resolved_at IS NULL;

CREATE TABLE delta_links (
	resource   TEXT PRIMARY KEY,
	link       TEXT NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE leases (
	name        TEXT PRIMARY KEY,
	holder      TEXT NOT NULL,
	acquired_at INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE schedule_ticks (
	job        TEXT NOT NULL,
	tick       INTEGER NOT NULL,
	holder     TEXT NOT NULL,
	claimed_at INTEGER NOT NULL,
	PRIMARY KEY (job, tick)
) STRICT;
`},
	// Version 2: every record carries its tenant, so one database can hold a fleet. Records written before
	// belong to the single tenant of the configuration that wrote them: DefaultTenant. Tables whose key
	// gains the tenant are rebuilt (SQLite cannot change a primary key in place).
	{name: "tenant on every record", sql: `
ALTER TABLE runs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
DROP INDEX runs_by_start;
DROP INDEX runs_by_job;
DROP INDEX runs_running;
CREATE INDEX runs_by_start ON runs (tenant, started_at DESC, id DESC);
CREATE INDEX runs_by_job ON runs (tenant, job, started_at DESC, id DESC);
CREATE INDEX runs_running ON runs (tenant, job) WHERE status = 'running';

ALTER TABLE journal ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
DROP INDEX journal_pending;
CREATE INDEX journal_pending ON journal (tenant, run_id) WHERE state = 'pending';

CREATE TABLE findings2 (
	tenant           TEXT NOT NULL,
	job              TEXT NOT NULL,
	rule             TEXT NOT NULL,
	object_id        TEXT NOT NULL,
	display_name     TEXT NOT NULL DEFAULT '',
	severity         TEXT NOT NULL,
	detail           TEXT NOT NULL DEFAULT '',
	onprem_attribute TEXT NOT NULL DEFAULT '',
	onprem_value     TEXT NOT NULL DEFAULT '',
	onprem_action    TEXT NOT NULL DEFAULT '',
	first_seen       INTEGER NOT NULL,
	last_seen        INTEGER NOT NULL,
	resolved_at      INTEGER,
	last_run_id      TEXT NOT NULL,
	reopened         INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant, job, rule, object_id)
) STRICT;
INSERT INTO findings2 SELECT 'default', job, rule, object_id, display_name, severity, detail, onprem_attribute,
	onprem_value, onprem_action, first_seen, last_seen, resolved_at, last_run_id, reopened FROM findings;
DROP TABLE findings;
ALTER TABLE findings2 RENAME TO findings;
CREATE INDEX findings_open ON findings (tenant, job, rule) WHERE resolved_at IS NULL;

CREATE TABLE delta_links2 (
	tenant     TEXT NOT NULL,
	resource   TEXT NOT NULL,
	link       TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, resource)
) STRICT;
INSERT INTO delta_links2 SELECT 'default', resource, link, updated_at FROM delta_links;
DROP TABLE delta_links;
ALTER TABLE delta_links2 RENAME TO delta_links;

CREATE TABLE leases2 (
	tenant      TEXT NOT NULL,
	name        TEXT NOT NULL,
	holder      TEXT NOT NULL,
	acquired_at INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	PRIMARY KEY (tenant, name)
) STRICT;
INSERT INTO leases2 SELECT 'default', name, holder, acquired_at, expires_at FROM leases;
DROP TABLE leases;
ALTER TABLE leases2 RENAME TO leases;
CREATE INDEX leases_by_holder ON leases (holder, expires_at);

CREATE TABLE schedule_ticks2 (
	tenant     TEXT NOT NULL,
	job        TEXT NOT NULL,
	tick       INTEGER NOT NULL,
	holder     TEXT NOT NULL,
	claimed_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, job, tick)
) STRICT;
INSERT INTO schedule_ticks2 SELECT 'default', job, tick, holder, claimed_at FROM schedule_ticks;
DROP TABLE schedule_ticks;
ALTER TABLE schedule_ticks2 RENAME TO schedule_ticks;
`},
	// Version 3: compact snapshots of what the jobs read (the Graph directory per resource, Exchange query
	// results), one blob per tenant and name, so a new process resumes incrementally.
	{name: "snapshots", sql: `
CREATE TABLE snapshots (
	tenant     TEXT NOT NULL,
	name       TEXT NOT NULL,
	data       BLOB NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, name)
) STRICT;
`},
}

// migrate brings the database to len(steps). Each step runs in its own write
// transaction that re-reads the version first, so two processes opening a new
// database at once apply every step exactly once.
func migrate(ctx context.Context, db *sql.DB, path string, steps []migration, now func() time.Time) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at INTEGER NOT NULL
) STRICT`); err != nil {
		return fmt.Errorf("store: migrate %s: create schema_version: %w", path, err)
	}
	for {
		done, err := migrateOne(ctx, db, path, steps, now)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// migrateOne applies the next step, if any, and reports whether the schema is
// current.
func migrateOne(ctx context.Context, db *sql.DB, path string, steps []migration, now func() time.Time) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("store: migrate %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return false, fmt.Errorf("store: migrate %s: read schema version: %w", path, err)
	}
	if v > len(steps) {
		return false, fmt.Errorf("store: %s has schema version %d but this binary knows only up to %d: "+
			"run a worker binary at least as new as the one that last used it, or point store.path at another file: %w",
			path, v, len(steps), ErrSchemaTooNew)
	}
	if v == len(steps) {
		return true, tx.Commit()
	}
	step := steps[v]
	if _, err := tx.ExecContext(ctx, step.sql); err != nil {
		return false, fmt.Errorf("store: migrate %s to version %d (%s): %w", path, v+1, step.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)`,
		v+1, step.name, ts(now())); err != nil {
		return false, fmt.Errorf("store: migrate %s to version %d: record version: %w", path, v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store: migrate %s to version %d: commit: %w", path, v+1, err)
	}
	return false, nil
}

// SchemaVersion reports the version the database is at, for `worker version`
// and diagnostics.
func (s *SQLite) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: schema version of %s: %w", s.path, err)
	}
	return v, nil
}

// MigrateSQLite brings the SQLite database at path to this binary's schema (creating it if missing) and
// reports the versions before and after; Open does the same implicitly.
func MigrateSQLite(ctx context.Context, path string) (Migration, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Migration{}, fmt.Errorf("store: migrate %s: %w", path, err)
	}
	m := Migration{Where: abs}
	if _, err := os.Stat(abs); err == nil {
		if m.From, err = sqliteVersion(ctx, abs); err != nil {
			return m, err
		}
	}
	s, err := Open(ctx, abs)
	if err != nil {
		return m, err
	}
	defer s.Close()
	m.To, err = s.SchemaVersion(ctx)
	m.Applied = m.To - m.From
	return m, err
}

// sqliteVersion reads a database's schema version without migrating it.
func sqliteVersion(ctx context.Context, path string) (int, error) {
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: path}).String()+"?_pragma=query_only(1)")
	if err != nil {
		return 0, fmt.Errorf("store: %s: %w", path, err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE name = 'schema_version'`).Scan(&n); err != nil || n == 0 {
		return 0, err
	}
	var v int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: schema version of %s: %w", path, err)
	}
	return v, nil
}
