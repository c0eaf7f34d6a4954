package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"modernc.org/sqlite" // registers the pure-Go "sqlite" driver: no cgo, static builds
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite is the embedded Store: one database file shared safely by every
// process that opens it (daemon, one-shot CLI, a second daemon).
//
// It keeps two connection pools on the file. Writes go through a pool of one
// connection whose transactions start with BEGIN IMMEDIATE: SQLite allows one
// writer at a time anyway, and taking the write lock up front means a
// transaction never has to upgrade a read lock, the case SQLite answers with
// SQLITE_BUSY at once instead of waiting out the busy timeout. Reads go
// through a small read-only pool, which WAL lets run beside the writer.
type SQLite struct {
	path   string
	tenant string
	w      *sql.DB // one connection, BEGIN IMMEDIATE
	r      *sql.DB // read-only connections
	now    func() time.Time
}

var _ Store = (*SQLite)(nil)

// Open opens (creating it and its parent directories if needed) the SQLite
// database at path and migrates it to the current schema. It refuses, with
// ErrSchemaTooNew, a database written by a newer binary.
func Open(ctx context.Context, path string, opts ...Option) (*SQLite, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New("store: open: empty path: set store.path in the config to a file such as ./data/worker.db")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("store: open %s: create its directory: %w", abs, err)
	}
	// Create the file ourselves so it is private: runs and findings name
	// people and addresses. SQLite gives the -wal and -shm files the same mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w (check the path and its permissions)", abs, err)
	}
	_ = f.Close()

	uri := (&url.URL{Scheme: "file", Path: abs}).String()
	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", o.busyTimeout.Milliseconds())
	// synchronous(FULL): a committed journal entry must survive a power cut,
	// not only a process crash, because the write it announces may have
	// reached the tenant.
	wdsn := uri + "?" + busy +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
	w, err := sql.Open("sqlite", wdsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	s := &SQLite{path: abs, tenant: o.tenant, w: w, now: o.now}
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("store: open %s: %w (is it an SQLite database?)", abs, err)
	}
	if err := migrate(ctx, w, abs, o.migrations, s.now); err != nil {
		_ = w.Close()
		return nil, err
	}

	rdsn := uri + "?" + busy + "&_pragma=foreign_keys(1)&_pragma=query_only(1)"
	r, err := sql.Open("sqlite", rdsn)
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	r.SetMaxOpenConns(o.readConns)
	r.SetMaxIdleConns(o.readConns)
	r.SetConnMaxIdleTime(5 * time.Minute)
	s.r = r
	return s, nil
}

// ForTenant returns a handle on the same database bound to another tenant (see WithTenant). It shares the
// connections: close only the handle Open returned.
func (s *SQLite) ForTenant(name string) (*SQLite, error) {
	if err := CheckTenantName(name); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	c := *s
	c.tenant = name
	return &c, nil
}

// Tenant is the tenant this handle reads and writes.
func (s *SQLite) Tenant() string { return s.tenant }

// Path is the absolute path of the database file.
func (s *SQLite) Path() string { return s.path }

// Ping checks that the database answers a read and that the writer connection
// is usable.
func (s *SQLite) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("store: ping %s: %w", s.path, err)
	}
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping %s: %w", s.path, err)
	}
	return nil
}

// Close closes both pools. Committed data is already durable; Close only
// lets SQLite checkpoint the WAL back into the main file.
func (s *SQLite) Close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close %s: %w", s.path, err)
	}
	return nil
}

// write runs fn in one write transaction (BEGIN IMMEDIATE) and commits it.
func (s *SQLite) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// ts converts a time to its stored form: UTC microseconds since the epoch.
func ts(t time.Time) int64 { return t.UnixMicro() }

// fromTS converts a stored time back.
func fromTS(v int64) time.Time { return time.UnixMicro(v).UTC() }

// fromNullTS converts a nullable stored time; NULL becomes the zero time.
func fromNullTS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromTS(v.Int64)
}

// isConstraint reports whether err is an SQLite constraint violation (unique
// key, foreign key, check).
func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}
