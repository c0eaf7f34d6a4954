package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/exo-worker/worker/internal/store/pgtest"
)

// usePostgres points a simulator's config at a fresh PostgreSQL schema, the connection string in a file,
// and returns the connection string and the schema.
func usePostgres(t *testing.T, cfgPath string) (string, string) {
	t.Helper()
	dsn := pgtest.DSN(t)
	schema := pgtest.Schema(t, dsn)
	dsnFile := filepath.Join(filepath.Dir(cfgPath), "dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^store:\n  path: .*$`)
	if !re.Match(b) {
		t.Fatalf("no store section in %s", b)
	}
	b = re.ReplaceAll(b, []byte("store:\n  driver: postgres\n  dsn_file: "+dsnFile+"\n  schema: "+schema))
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dsn, schema
}

// With PostgreSQL, the schema is an operator's step: a run before `worker store migrate` is refused with
// that command named, the migration reports what it did (and nothing the second time), and then runs are
// recorded in PostgreSQL for history to show.
func TestStoreMigrateThenRunOnPostgres(t *testing.T) {
	_, cfg := simProcess(t)
	usePostgres(t, cfg)
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), "tenant:\n", "tenant:\n  name: contoso\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}

	_, stderr, code := runAll(t, "run", "meu-richtext", "--config", cfg, "--dry-run")
	if code != 1 || !strings.Contains(stderr, "worker store migrate") {
		t.Fatalf("run before migrate: exit %d, stderr %q; want exit 1 naming `worker store migrate`", code, tail(stderr, 600))
	}
	out, code := runWorker(t, "store", "migrate", "--config", cfg)
	if code != 0 || !regexp.MustCompile(`schema version 0 → \d+`).MatchString(out) {
		t.Fatalf("migrate: exit %d, %q", code, out)
	}
	out, code = runWorker(t, "store", "migrate", "--config", cfg)
	if code != 0 || !strings.Contains(out, "already current") {
		t.Fatalf("second migrate: exit %d, %q", code, out)
	}
	out, _, code = runAll(t, "run", "meu-richtext", "--config", cfg, "--output", "json")
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, tail(out, 2000))
	}
	run := decodeRun(t, out)
	if run.Applied == 0 || run.Verified != run.Applied {
		t.Fatalf("run applied %d verified %d", run.Applied, run.Verified)
	}
	hist, code := runWorker(t, "history", "--config", cfg, "--output", "json")
	if code != 0 || !strings.Contains(hist, run.RunID) || !strings.Contains(hist, `"tenant": "contoso"`) {
		t.Errorf("history: exit %d, %s; want the run %s of tenant contoso", code, tail(hist, 1000), run.RunID)
	}
}

// SQLite stays migrated on open; `worker store migrate` reports it and changes nothing.
func TestStoreMigrateSQLite(t *testing.T) {
	_, cfg := simProcess(t)
	out, code := runWorker(t, "store", "migrate", "--config", cfg)
	if code != 0 || !regexp.MustCompile(`worker\.db: schema version 0 → \d+`).MatchString(out) {
		t.Fatalf("migrate of a new file: exit %d, %q", code, out)
	}
	out, code = runWorker(t, "store", "migrate", "--config", cfg)
	if code != 0 || !strings.Contains(out, "already current") {
		t.Fatalf("second migrate: exit %d, %q", code, out)
	}
}
