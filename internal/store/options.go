package store

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// Option adjusts Open and OpenPostgres.
type Option func(*options)

type options struct {
	now          func() time.Time
	tenant       string
	busyTimeout  time.Duration // SQLite only
	readConns    int           // SQLite only
	migrations   []migration   // SQLite only; tests replace the history
	pgMigrations []migration   // PostgreSQL only; tests replace the history
	schema       string        // PostgreSQL only: the schema holding the tables ("" = the search_path's first)
	maxConns     int32         // PostgreSQL only: pool size (0 = pgxpool's default)
}

func defaultOptions() options {
	return options{
		now:          time.Now,
		tenant:       DefaultTenant,
		busyTimeout:  5 * time.Second,
		readConns:    min(max(runtime.NumCPU(), 2), 8),
		migrations:   migrations,
		pgMigrations: pgMigrations,
	}
}

// WithClock replaces time.Now for lease expiry, timestamps and defaults, so
// tests can let a lease run out without sleeping. Every process sharing a
// database must agree on the clock; in production leave the default.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithBusyTimeout sets how long a statement waits for another connection's
// write lock before failing (default 5 s). Writes are short, so waiting is
// almost always better than failing a run over lock contention.
func WithBusyTimeout(d time.Duration) Option {
	return func(o *options) { o.busyTimeout = d }
}

// WithSchema names the PostgreSQL schema that holds the worker's tables (and River's), created by Migrate
// if missing. Default: the connection's search_path, usually public. Several fleets can share one database
// in separate schemas. SQLite ignores it.
func WithSchema(name string) Option {
	return func(o *options) { o.schema = name }
}

// WithMaxConns bounds the PostgreSQL connection pool (default pgxpool's: max(4, CPUs)). SQLite ignores it.
func WithMaxConns(n int32) Option {
	return func(o *options) { o.maxConns = n }
}

// WithTenant binds the handle to one tenant: every record it writes carries the name, and every read
// sees only that tenant's records. Default DefaultTenant, the name a single-tenant configuration uses.
func WithTenant(name string) Option {
	return func(o *options) { o.tenant = name }
}

// DefaultTenant is the tenant of a configuration with a single tenant: section and no name, and of every
// record written before records carried a tenant (migrated databases).
const DefaultTenant = "default"

// CheckTenantName refuses names that would be awkward in URLs, metric labels, file names and CLI flags:
// 1 to 64 of a-z, 0-9 and '-', starting with a letter or digit.
func CheckTenantName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("tenant name %q must be 1 to 64 characters", name)
	}
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0) {
			return fmt.Errorf("tenant name %q may contain only lower-case letters, digits and '-' (not first)", name)
		}
	}
	if strings.HasSuffix(name, "-") {
		return fmt.Errorf("tenant name %q must not end with '-'", name)
	}
	return nil
}

func buildOptions(opts []Option) (options, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := CheckTenantName(o.tenant); err != nil {
		return o, fmt.Errorf("store: %w", err)
	}
	return o, nil
}
