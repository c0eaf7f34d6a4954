package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/exo-worker/worker/internal/store/pgtest"
)

// The Store contract suite: every test written with forEachDriver runs against SQLite and PostgreSQL
// (when a test server is configured; see pgtest), so both drivers keep one behaviour.

// testDB is one empty database of one driver; open returns another handle on it (as another process
// would have), closed when the test ends.
type testDB struct {
	driver string
	open   func(t *testing.T, opts ...Option) Store
	// loc locates the database for a child process: a file path, or "postgres:" + schema.
	loc string
}

// forEachDriver runs f once per driver, as subtests named after the driver, each on a fresh database.
func forEachDriver(t *testing.T, f func(t *testing.T, db testDB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { f(t, newSQLiteDB(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, newPostgresDB(t)) })
}

func newSQLiteDB(t *testing.T) testDB {
	path := filepath.Join(t.TempDir(), "worker.db")
	return testDB{driver: "sqlite", loc: path, open: func(t *testing.T, opts ...Option) Store {
		t.Helper()
		return openAt(t, path, opts...)
	}}
}

func newPostgresDB(t *testing.T) testDB {
	dsn := pgtest.DSN(t)
	schema := pgtest.Schema(t, dsn)
	if _, err := MigratePostgres(t.Context(), dsn, WithSchema(schema)); err != nil {
		t.Fatalf("MigratePostgres: %v", err)
	}
	return testDB{driver: "postgres", loc: "postgres:" + schema, open: func(t *testing.T, opts ...Option) Store {
		t.Helper()
		s, err := OpenPostgres(context.Background(), dsn, append([]Option{WithSchema(schema)}, opts...)...)
		if err != nil {
			t.Fatalf("OpenPostgres: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}}
}

// openLoc opens a database located by testDB.loc, outside a test (child processes).
func openLoc(ctx context.Context, loc, dsn string) (Store, error) {
	if schema, ok := strings.CutPrefix(loc, "postgres:"); ok {
		return OpenPostgres(ctx, dsn, WithSchema(schema))
	}
	return Open(ctx, loc)
}

// execSQL runs a statement written with ? placeholders on either driver, for tests that need a table or a
// look the Store API does not give.
func execSQL(ctx context.Context, s Store, q string, args ...any) error {
	switch s := s.(type) {
	case *SQLite:
		return s.write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, q, args...)
			return err
		})
	case *Postgres:
		_, err := s.pool.Exec(ctx, pgPlaceholders(q), args...)
		return err
	}
	return fmt.Errorf("execSQL: unknown store %T", s)
}

// queryInt runs a query returning one integer on either driver.
func queryInt(ctx context.Context, s Store, q string, args ...any) (int, error) {
	var n int
	switch s := s.(type) {
	case *SQLite:
		return n, s.r.QueryRowContext(ctx, q, args...).Scan(&n)
	case *Postgres:
		return n, s.pool.QueryRow(ctx, pgPlaceholders(q), args...).Scan(&n)
	}
	return 0, fmt.Errorf("queryInt: unknown store %T", s)
}

func pgPlaceholders(q string) string {
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// withPGMigrations replaces PostgreSQL's schema history, to test upgrades and refusals.
func withPGMigrations(m []migration) Option {
	return func(o *options) { o.pgMigrations = m }
}
