package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/store/pgtest"
)

// forTenant rebinds a handle of either driver to another tenant.
func forTenant(t *testing.T, s Store, name string) Store {
	t.Helper()
	var (
		out Store
		err error
	)
	switch s := s.(type) {
	case *SQLite:
		out, err = s.ForTenant(name)
	case *Postgres:
		out, err = s.ForTenant(name)
	default:
		t.Fatalf("forTenant: unknown store %T", s)
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Two tenants in one database see nothing of each other: runs, journal, findings, delta links, leases and
// tick claims are all per tenant.
func TestTenantsAreIsolated(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		a := db.open(t, WithTenant("contoso"))
		b := forTenant(t, a, "fabrikam")

		ra := mustRun(t, a, Run{Job: "meu-richtext"})
		rb := mustRun(t, b, Run{Job: "meu-richtext"})
		if ra.Tenant != "contoso" || rb.Tenant != "fabrikam" {
			t.Fatalf("run tenants %q, %q", ra.Tenant, rb.Tenant)
		}
		if _, err := b.GetRun(ctx, ra.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("fabrikam read contoso's run: %v", err)
		}
		if err := b.FinishRun(ctx, ra.ID, RunResult{Status: RunSucceeded}); !errors.Is(err, ErrNotFound) {
			t.Errorf("fabrikam finished contoso's run: %v", err)
		}
		if runs, err := a.ListRuns(ctx, RunFilter{}); err != nil || len(runs) != 1 || runs[0].ID != ra.ID {
			t.Errorf("contoso lists %+v, %v; want only its own run", runs, err)
		}
		if _, err := b.JournalBegin(ctx, ra.ID, changes(0, 1)); !errors.Is(err, ErrNotFound) {
			t.Errorf("fabrikam journalled into contoso's run: %v", err)
		}
		ids, err := a.JournalBegin(ctx, ra.ID, changes(0, 2))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.JournalOutcomes(ctx, []Outcome{{ID: ids[0], State: ChangeStateApplied}}); !errors.Is(err, ErrNotFound) {
			t.Errorf("fabrikam recorded an outcome of contoso's entry: %v", err)
		}
		if p, err := b.JournalPending(ctx, ""); err != nil || len(p) != 0 {
			t.Errorf("fabrikam sees %d pending entries (%v), want 0", len(p), err)
		}
		if p, err := a.JournalPending(ctx, ""); err != nil || len(p) != 2 || p[0].Tenant != "contoso" {
			t.Errorf("contoso pending = %+v, %v", p, err)
		}

		// The same finding on the same object id in both tenants is two records.
		f := []Finding{{Rule: "address.primary", ObjectID: "obj-1", Severity: "error"}}
		for _, s := range []struct {
			st  Store
			run Run
		}{{a, ra}, {b, rb}} {
			if sum, err := s.st.RecordFindings(ctx, s.run.ID, "address-audit", f, time.Time{}); err != nil || sum.New != 1 {
				t.Fatalf("RecordFindings = %+v, %v; want one new finding per tenant", sum, err)
			}
		}
		// contoso resolves it; fabrikam's stays open.
		ra2 := mustRun(t, a, Run{Job: "address-audit"})
		if sum, err := a.RecordFindings(ctx, ra2.ID, "address-audit", nil, time.Time{}); err != nil || sum.Resolved != 1 {
			t.Fatalf("resolve in contoso = %+v, %v", sum, err)
		}
		if open, err := b.OpenFindings(ctx, FindingFilter{}); err != nil || len(open) != 1 || open[0].Tenant != "fabrikam" {
			t.Errorf("fabrikam open findings = %+v, %v; want its one finding still open", open, err)
		}

		if err := a.SetDeltaLink(ctx, "users", "https://graph/a"); err != nil {
			t.Fatal(err)
		}
		if l, err := b.GetDeltaLink(ctx, "users"); err != nil || l != "" {
			t.Errorf("fabrikam delta link = %q, %v; want none", l, err)
		}
		for _, s := range []Store{a, b} {
			if ok, err := s.AcquireLease(ctx, "job:meu-richtext", "proc-"+fmt.Sprint(s == a), time.Minute); err != nil || !ok {
				t.Errorf("lease per tenant: %v, %v", ok, err)
			}
			tick := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
			if won, err := s.ClaimTick(ctx, "meu-richtext", tick, "p"); err != nil || !won {
				t.Errorf("tick per tenant: %v, %v", won, err)
			}
		}
		// A process's runs are interrupted tenant by tenant.
		if marked, err := b.MarkInterrupted(ctx, InterruptFilter{}); err != nil || len(marked) != 1 || marked[0].ID != rb.ID {
			t.Errorf("fabrikam MarkInterrupted = %+v, %v; want its run only", marked, err)
		}
		if r, _ := a.GetRun(ctx, ra.ID); r.Status != RunRunning {
			t.Errorf("contoso's run became %s when fabrikam swept", r.Status)
		}
	})
}

func TestBadTenantNamesRefused(t *testing.T) {
	for _, name := range []string{"", "Contoso", "-x", "x-", "a b", "a/b", strings.Repeat("a", 65)} {
		if _, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.db"), WithTenant(name)); err == nil {
			t.Errorf("Open accepted tenant name %q", name)
		}
	}
	for _, name := range []string{"default", "contoso", "cust-042", "9lives"} {
		if err := CheckTenantName(name); err != nil {
			t.Errorf("CheckTenantName(%q) = %v", name, err)
		}
	}
}

// A database written by a binary from before tenants (schema version 1) migrates forward with every record
// in DefaultTenant, which is what a single-tenant configuration opens, so nothing of its history is lost.
func TestSQLiteSchemaV1MigratesToDefaultTenant(t *testing.T) {
	path := filepath.Join(t.TempDir(), "worker.db")
	ctx := t.Context()
	old, err := Open(ctx, path, withMigrations(migrations[:1]))
	if err != nil {
		t.Fatal(err)
	}
	// Version 1 has no tenant column: write as the old binary did.
	for _, q := range []string{
		`INSERT INTO runs (id, job, triggered_by, status, started_at, owner) VALUES ('r1', 'meu-richtext', 'cli', 'running', 1000, 'old')`,
		`INSERT INTO journal (run_id, seq, object_id, cmdlet, param, old_value, new_value, state, created_at, updated_at)
			VALUES ('r1', 1, 'obj-1', 'Set-MailUser', 'UseMapiRichTextFormat', '"Always"', '"Never"', 'pending', 1000, 1000)`,
		`INSERT INTO findings (job, rule, object_id, severity, first_seen, last_seen, last_run_id) VALUES ('a', 'r', 'obj-1', 'error', 1000, 1000, 'r1')`,
		`INSERT INTO delta_links (resource, link, updated_at) VALUES ('users', 'https://graph/d', 1000)`,
		`INSERT INTO leases (name, holder, acquired_at, expires_at) VALUES ('job:x', 'old', 1000, 2000)`,
		`INSERT INTO schedule_ticks (job, tick, holder, claimed_at) VALUES ('x', 1000, 'old', 1000)`,
	} {
		if err := execSQL(ctx, old, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_ = old.Close()

	s := openAt(t, path)
	if v, err := s.SchemaVersion(ctx); err != nil || v != len(migrations) {
		t.Fatalf("SchemaVersion = %d, %v", v, err)
	}
	if s.Tenant() != DefaultTenant {
		t.Fatalf("default handle tenant = %q", s.Tenant())
	}
	r, err := s.GetRun(ctx, "r1")
	if err != nil || r.Tenant != DefaultTenant {
		t.Fatalf("old run = %+v, %v", r, err)
	}
	if p, err := s.JournalPending(ctx, "r1"); err != nil || len(p) != 1 || p[0].Tenant != DefaultTenant {
		t.Errorf("old pending entry = %+v, %v", p, err)
	}
	if f, err := s.OpenFindings(ctx, FindingFilter{}); err != nil || len(f) != 1 {
		t.Errorf("old findings = %+v, %v", f, err)
	}
	if l, err := s.GetDeltaLink(ctx, "users"); err != nil || l != "https://graph/d" {
		t.Errorf("old delta link = %q, %v", l, err)
	}
	if won, err := s.ClaimTick(ctx, "x", time.UnixMicro(1000), "new"); err != nil || won {
		t.Errorf("old tick claim lost in migration: won again = %v, %v", won, err)
	}
	other, err := s.ForTenant("contoso")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.GetRun(ctx, "r1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("another tenant sees the migrated run: %v", err)
	}
}

// PostgreSQL is migrated explicitly: Open refuses a database that is behind (with the command that fixes
// it) or ahead of the binary, and replicas migrating at once apply each step once.
func TestPostgresMigrationsExplicitAndRefused(t *testing.T) {
	dsn := pgtest.DSN(t)
	schema := pgtest.Schema(t, dsn)
	ctx := t.Context()

	_, err := OpenPostgres(ctx, dsn, WithSchema(schema))
	if !errors.Is(err, ErrSchemaTooOld) || !strings.Contains(err.Error(), "worker store migrate") {
		t.Fatalf("Open of an unmigrated database = %v, want ErrSchemaTooOld naming `worker store migrate`", err)
	}

	extra := append(append([]migration(nil), pgMigrations...), migration{
		name: "test: runs.note", sql: `ALTER TABLE runs ADD COLUMN note text NOT NULL DEFAULT 'v2'`,
	})
	var wg sync.WaitGroup
	results := make([]Migration, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Go(func() { results[i], errs[i] = MigratePostgres(ctx, dsn, WithSchema(schema), withPGMigrations(extra)) })
	}
	wg.Wait()
	applied := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("concurrent migrate %d: %v", i, errs[i])
		}
		if results[i].To != len(extra) {
			t.Errorf("migrate %d ended at %d, want %d", i, results[i].To, len(extra))
		}
		applied += results[i].Applied
	}
	if applied != len(extra) {
		t.Errorf("the four migrations together applied %d steps, want each of the %d once", applied, len(extra))
	}
	s, err := OpenPostgres(ctx, dsn, WithSchema(schema), withPGMigrations(extra))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := queryInt(ctx, s, `SELECT COUNT(*) FROM schema_version`); err != nil || n != len(extra) {
		t.Errorf("schema_version rows = %d, %v", n, err)
	}
	_ = s.Close()

	_, err = OpenPostgres(ctx, dsn, WithSchema(schema))
	want := fmt.Sprintf("schema version %d but this binary knows only up to %d", len(extra), len(pgMigrations))
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), want) {
		t.Errorf("Open of a newer database = %v, want ErrSchemaTooNew saying %q", err, want)
	}
	if _, err := MigratePostgres(ctx, dsn, WithSchema(schema)); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("older binary's migrate of a newer database = %v, want ErrSchemaTooNew", err)
	}
}

func TestPostgresConnectionErrorsHideThePassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, dsn := range []string{
		"postgres://worker:s3cr3t-pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=2",
		"host=127.0.0.1 port=1 user=worker password=s3cr3t-pw dbname=db sslmode=disable connect_timeout=2",
		"postgres://worker:s3cr3t-pw@[bad",
	} {
		_, err := OpenPostgres(ctx, dsn)
		if err == nil {
			t.Fatalf("OpenPostgres(unreachable) succeeded")
		}
		if strings.Contains(err.Error(), "s3cr3t-pw") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}
