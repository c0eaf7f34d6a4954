// Package pgtest gives tests a PostgreSQL database of their own: the server named by WORKER_TEST_PG_DSN
// (which .ci/run starts and exports), and a fresh schema per test, dropped when the test ends.
//
// A test that needs PostgreSQL and finds no DSN fails under CI=true, so a CI run cannot pass by skipping
// what it was meant to check; on a developer's machine it skips with a message saying how to run it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DSNEnv names the variable holding the test server's connection string.
const DSNEnv = "WORKER_TEST_PG_DSN"

// DSN returns the test server's connection string, or ends the test: a failure under CI=true, a skip
// otherwise.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(DSNEnv)
	if dsn != "" {
		return dsn
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not set: this test needs PostgreSQL and CI=true forbids skipping it (.ci/run starts a server and sets it)", DSNEnv)
	}
	t.Skipf("needs PostgreSQL: set %s (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) or run .ci/run", DSNEnv)
	return ""
}

// Available reports whether a test server is configured, for code that picks drivers to test; under
// CI=true it is always true, so that DSN then fails loudly instead of the driver silently going untested.
func Available() bool {
	return os.Getenv(DSNEnv) != "" || os.Getenv("CI") == "true"
}

// Schema creates an empty schema with a random name on the server and drops it (with everything in it)
// when the test ends. Tests that start River clients need one each: leadership and periodic jobs are per
// schema.
func Schema(t testing.TB, dsn string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "wt_" + hex.EncodeToString(b[:])
	exec(t, dsn, `CREATE SCHEMA `+name)
	t.Cleanup(func() { exec(t, dsn, `DROP SCHEMA IF EXISTS `+name+` CASCADE`) })
	return name
}

func exec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", DSNEnv, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}
