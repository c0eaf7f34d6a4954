package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is the Store on PostgreSQL, for a fleet of tenants served by several replicas of the worker.
// It uses pgx v5 directly (not database/sql) because River, which dispatches runs across the replicas,
// takes a pgx pool: one pool serves both.
//
// Unlike SQLite, OpenPostgres does not migrate: replicas start concurrently and a schema change is an
// operator's decision, so `worker store migrate` (MigratePostgres) applies it once and OpenPostgres refuses
// a schema that is older (ErrSchemaTooOld) or newer (ErrSchemaTooNew) than this binary's.
//
// Times are timestamptz with microsecond precision, read back in UTC, as SQLite's are.
type Postgres struct {
	pool   *pgxpool.Pool
	tenant string
	schema string
	where  string // host:port/database (schema), for messages; never the password
	now    func() time.Time
}

var _ Store = (*Postgres)(nil)

// ErrSchemaTooOld means the database has not been migrated to this binary's schema yet: run
// `worker store migrate`.
var ErrSchemaTooOld = errors.New("database schema is older than this binary")

// poolConfig parses a connection string (URL or key=value) and points it at the schema. Parse errors from
// pgx redact the password; ours never include the string.
func poolConfig(dsn string, o options) (*pgxpool.Config, string, error) {
	if dsn == "" {
		return nil, "", errors.New("store: postgres: no connection string: set store.dsn_file, WORKER_STORE_DSN or store.dsn")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, "", fmt.Errorf("store: postgres: the connection string does not parse (check its syntax; " +
			"it is not shown because it may hold a password)")
	}
	if o.schema != "" {
		if err := checkSchemaName(o.schema); err != nil {
			return nil, "", fmt.Errorf("store: postgres: %w", err)
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = o.schema
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	where := net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))) + "/" + cfg.ConnConfig.Database
	if o.schema != "" {
		where += " (schema " + o.schema + ")"
	}
	return cfg, where, nil
}

// checkSchemaName keeps schema names to plain identifiers, so they can be quoted into DDL safely.
func checkSchemaName(s string) error {
	if s == "" || len(s) > 63 {
		return fmt.Errorf("schema name %q must be 1 to 63 characters", s)
	}
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return fmt.Errorf("schema name %q may contain only lower-case letters, digits and _ (not a digit first)", s)
		}
	}
	return nil
}

func connectPool(ctx context.Context, dsn string, o options) (*pgxpool.Pool, string, error) {
	cfg, where, err := poolConfig(dsn, o)
	if err != nil {
		return nil, "", err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, "", fmt.Errorf("store: postgres %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, "", fmt.Errorf("store: postgres %s does not answer: %w (check the host, port, user, password and that the database exists)", where, err)
	}
	return pool, where, nil
}

// OpenPostgres connects to the database dsn names and checks that its schema is the one this binary
// knows. It does not migrate: see MigratePostgres.
func OpenPostgres(ctx context.Context, dsn string, opts ...Option) (*Postgres, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	pool, where, err := connectPool(ctx, dsn, o)
	if err != nil {
		return nil, err
	}
	p := &Postgres{pool: pool, tenant: o.tenant, schema: o.schema, where: where, now: o.now}
	v, err := p.SchemaVersion(ctx)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if err := checkPGVersion(where, v, len(o.pgMigrations)); err != nil {
		pool.Close()
		return nil, err
	}
	return p, nil
}

func checkPGVersion(where string, v, known int) error {
	switch {
	case v > known:
		return fmt.Errorf("store: postgres %s has schema version %d but this binary knows only up to %d: "+
			"run a worker binary at least as new as the one that migrated it: %w", where, v, known, ErrSchemaTooNew)
	case v < known:
		return fmt.Errorf("store: postgres %s has schema version %d, this binary needs %d: "+
			"run `worker store migrate` once with this configuration, then start the workers: %w", where, v, known, ErrSchemaTooOld)
	}
	return nil
}

// ForTenant returns a handle on the same database bound to another tenant (see WithTenant). It shares the
// pool: close only the handle OpenPostgres returned.
func (p *Postgres) ForTenant(name string) (*Postgres, error) {
	if err := CheckTenantName(name); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	c := *p
	c.tenant = name
	return &c, nil
}

// Tenant is the tenant this handle reads and writes.
func (p *Postgres) Tenant() string { return p.tenant }

// Pool is the connection pool, for River to share.
func (p *Postgres) Pool() *pgxpool.Pool { return p.pool }

// Schema is the schema the tables live in ("" = the connection's search_path).
func (p *Postgres) Schema() string { return p.schema }

// Where names the database for messages: host:port/database and schema, never the password.
func (p *Postgres) Where() string { return p.where }

// Ping checks that the database answers.
func (p *Postgres) Ping(ctx context.Context) error {
	if err := p.pool.Ping(ctx); err != nil {
		return fmt.Errorf("store: ping postgres %s: %w", p.where, err)
	}
	return nil
}

// Close closes the pool.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}

// tx runs fn in one read-committed transaction and commits it.
func (p *Postgres) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, p.pool, fn)
}

// pgTime is a time as stored: UTC, microseconds.
func pgTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// pgNullTime turns a nullable timestamptz into a time (NULL = zero), in UTC.
func pgNullTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
