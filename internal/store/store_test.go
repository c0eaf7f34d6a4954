package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain doubles as the entry point of helper child processes: the tests
// that need a second process re-run this test binary with storeChildEnv set,
// and the child does its part instead of running tests.
func TestMain(m *testing.M) {
	if role := os.Getenv(storeChildEnv); role != "" {
		os.Exit(runChild(role))
	}
	os.Exit(m.Run())
}

// clock is a settable time source for WithClock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 123456789, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// withMigrations replaces the schema history, to test upgrades and refusals.
func withMigrations(m []migration) Option {
	return func(o *options) { o.migrations = m }
}

// openAt opens the database at path and closes it when the test ends.
func openAt(t *testing.T, path string, opts ...Option) *SQLite {
	t.Helper()
	s, err := Open(t.Context(), path, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// openTest opens a fresh database in a temporary directory.
func openTest(t *testing.T, opts ...Option) *SQLite {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "worker.db"), opts...)
}

// mustRun creates a running run of job.
func mustRun(t *testing.T, s Store, r Run) Run {
	t.Helper()
	got, err := s.CreateRun(t.Context(), r)
	if err != nil {
		t.Fatalf("CreateRun(%+v): %v", r, err)
	}
	return got
}

// changes builds n journal changes on objects obj-<from>… .
func changes(from, n int) []Change {
	out := make([]Change, n)
	for i := range out {
		out[i] = Change{
			ObjectID:    fmt.Sprintf("00000000-0000-0000-0000-%012d", from+i),
			DisplayName: fmt.Sprintf("User %d", from+i),
			Cmdlet:      "Set-MailUser",
			Param:       "UseMapiRichTextFormat",
			Old:         []byte(`"UseDefaultSettings"`),
			New:         []byte(`"Never"`),
		}
	}
	return out
}

func TestOpenCreatesMigratedPrivateWALDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "worker.db")
	s := openAt(t, path)

	v, err := s.SchemaVersion(t.Context())
	if err != nil || v != len(migrations) {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, len(migrations))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode = %v, want 0600 (it holds names and addresses)", perm)
	}
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}

	pragmas := []struct {
		name string
		want string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
		{"synchronous", "2"}, // FULL
	}
	for _, p := range pragmas {
		var got string
		if err := s.w.QueryRowContext(t.Context(), "PRAGMA "+p.name).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", p.name, err)
		}
		if got != p.want {
			t.Errorf("writer PRAGMA %s = %s, want %s", p.name, got, p.want)
		}
	}
	var qo string
	if err := s.r.QueryRowContext(t.Context(), "PRAGMA query_only").Scan(&qo); err != nil || qo != "1" {
		t.Errorf("reader PRAGMA query_only = %q, %v; want 1 (reads must never write)", qo, err)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestOpenRefusesUnusablePaths(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("this is not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path, want string
	}{
		{"empty path", "", "empty path"},
		{"a directory", dir, dir},
		{"not an SQLite file", garbage, "garbage.db"},
		{"parent is a file", filepath.Join(blocker, "worker.db"), "create its directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.path)
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tc.path)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "store: ") {
				t.Errorf("Open(%q) error = %q, want it to start with \"store: \" and mention %q", tc.path, err, tc.want)
			}
		})
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "worker.db")
	ctx := t.Context()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	run, err := s.CreateRun(ctx, Run{Job: "meu-richtext", Mode: "remediate", Objects: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRun(ctx, run.ID, RunResult{Status: RunSucceeded, Counts: Counts{InScope: 7, Applied: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDeltaLink(ctx, "users", "https://graph.example/delta?token=1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openAt(t, path)
	got, err := s2.GetRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != RunSucceeded || got.Counts.InScope != 7 || got.Counts.Applied != 3 ||
		len(got.Objects) != 2 || got.Job != "meu-richtext" {
		t.Errorf("after reopen GetRun = %+v", got)
	}
	if link, err := s2.GetDeltaLink(ctx, "users"); err != nil || link != "https://graph.example/delta?token=1" {
		t.Errorf("after reopen GetDeltaLink = %q, %v", link, err)
	}
	if v, err := s2.SchemaVersion(ctx); err != nil || v != len(migrations) {
		t.Errorf("after reopen SchemaVersion = %d, %v", v, err)
	}
}

func TestMigrationsUpgradeOnceAndRefuseNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "worker.db")
	ctx := t.Context()
	extra := append(append([]migration(nil), migrations...), migration{
		name: "test: runs.note",
		sql:  `ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT 'added-by-v2'`,
	})

	// An older binary creates the database.
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	run, err := s.CreateRun(ctx, Run{Job: "meu-richtext"})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	// A newer binary upgrades it, keeping the data; opening again applies nothing twice
	// (ALTER TABLE ADD COLUMN would fail on a second run).
	for range 2 {
		s, err = Open(ctx, path, withMigrations(extra))
		if err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		var note string
		if err := s.r.QueryRowContext(ctx, `SELECT note FROM runs WHERE id = ?`, run.ID).Scan(&note); err != nil || note != "added-by-v2" {
			t.Fatalf("after upgrade note = %q, %v", note, err)
		}
		if v, _ := s.SchemaVersion(ctx); v != len(extra) {
			t.Fatalf("after upgrade version = %d, want %d", v, len(extra))
		}
		var rows int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_version`).Scan(&rows); err != nil || rows != len(extra) {
			t.Fatalf("schema_version rows = %d, %v; want %d", rows, err, len(extra))
		}
		_ = s.Close()
	}

	// The older binary must now refuse it instead of writing rows the newer schema does not expect.
	s, err = Open(ctx, path)
	if err == nil {
		_ = s.Close()
		t.Fatal("old binary opened a newer database")
	}
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("error %v does not wrap ErrSchemaTooNew", err)
	}
	want := fmt.Sprintf("schema version %d but this binary knows only up to %d", len(extra), len(migrations))
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestFailedMigrationRollsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "worker.db")
	bad := append(append([]migration(nil), migrations...), migration{
		name: "test: half-broken",
		sql:  `CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1);`,
	})
	s, err := Open(t.Context(), path, withMigrations(bad))
	if err == nil {
		_ = s.Close()
		t.Fatal("a failing migration was reported as applied")
	}
	if !strings.Contains(err.Error(), "test: half-broken") {
		t.Errorf("error %q does not name the failing step", err)
	}
	s = openAt(t, path)
	if v, _ := s.SchemaVersion(t.Context()); v != len(migrations) {
		t.Errorf("version after failed step = %d, want %d", v, len(migrations))
	}
	var n int
	if err := s.r.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM sqlite_schema WHERE name = 'half'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("table from the failed step exists (%d, %v): the step was not rolled back", n, err)
	}
}

func TestNewRunIDSortsByTime(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	prev := ""
	seen := map[string]bool{}
	for i := range 200 {
		id := newULID(base.Add(time.Duration(i) * time.Millisecond))
		if len(id) != 26 {
			t.Fatalf("id %q has %d characters, want 26", id, len(id))
		}
		if err := checkID("run id", id); err != nil {
			t.Fatal(err)
		}
		if id <= prev {
			t.Fatalf("id %q for a later time sorts before %q", id, prev)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id], prev = true, id
	}
	// Same millisecond: still unique thanks to the random part.
	if a, b := newULID(base), newULID(base); a == b || a[:10] != b[:10] {
		t.Errorf("same-millisecond ids %q, %q: want equal time prefix, different random part", a, b)
	}
	if got := NewRunID(); got[:1] != "0" {
		t.Errorf("NewRunID() = %q: a current time starts with 0 until the year 10889", got)
	}
}

func TestDefaultOwnerNamesThisProcess(t *testing.T) {
	o := DefaultOwner()
	if o != DefaultOwner() {
		t.Error("DefaultOwner changes between calls")
	}
	if !strings.Contains(o, fmt.Sprintf("/%d/", os.Getpid())) {
		t.Errorf("DefaultOwner() = %q does not carry the pid", o)
	}
}

// ctxTimeout is a context for tests that might hang on a lock.
func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
