package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/exo-worker/worker/config"
	"github.com/exo-worker/worker/internal/daemon"
	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs/executor"
)

// openConfiguredStore opens the store the configuration names: the SQLite file (migrated on open, as it
// always was) or the PostgreSQL database (which `worker store migrate` must have brought to this binary's
// schema; a schema that is older or newer is refused with the fix). Errors never show the connection string.
func openConfiguredStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	switch cfg.Store.Driver {
	case config.DriverPostgres:
		dsn, err := cfg.Store.ConnString()
		if err != nil {
			return nil, err
		}
		return store.OpenPostgres(ctx, dsn.Reveal(), storeOptions(cfg)...)
	default:
		return store.Open(ctx, cfg.Store.Path, storeOptions(cfg)...)
	}
}

// storeField is the config field an error opening the store points at.
func storeField(cfg *config.Config) string {
	if cfg.Store.Driver == config.DriverPostgres {
		return "store.dsn"
	}
	return "store.path"
}

func storeOptions(cfg *config.Config) []store.Option {
	opts := []store.Option{store.WithTenant(cfg.Tenant.Name)}
	if cfg.Store.Schema != "" {
		opts = append(opts, store.WithSchema(cfg.Store.Schema))
	}
	if cfg.Store.Driver == config.DriverPostgres {
		// River's fetcher, elector and notifier, one connection per running run (its lock) and the store's
		// own queries: pgxpool's default (4 on a small machine) would starve them.
		opts = append(opts, store.WithMaxConns(32))
	}
	return opts
}

func newStoreCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Manage the worker's database (runs, journal, findings)",
		Long: `The worker keeps its state in SQLite (store.driver: sqlite, the default: one file, migrated
automatically when opened) or PostgreSQL (store.driver: postgres: one database for a fleet of tenants and
several replicas). PostgreSQL is migrated explicitly, once, before the workers start: replicas refuse a
schema older or newer than their own.`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "migrate",
		Short: "Bring the database to this binary's schema",
		Long: `migrate applies the schema steps this binary knows and the database has not seen yet, each in its own
transaction, and prints the version before and after. Run it once per upgrade, before starting the
upgraded workers (several at once are safe: a lock lets one apply each step). A database migrated by a
newer binary is refused: upgrade this binary instead.

  worker store migrate --config worker.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := configPath(g.configFile)
			if path == "" {
				return withCode(executor.ExitUsage, errors.New("no configuration: pass --config FILE (or set WORKER_CONFIG)"))
			}
			cfg, err := loadConfig(g, path)
			if err != nil {
				return err
			}
			m, err := migrateStore(cmd.Context(), cfg)
			if err != nil {
				return withCode(executor.ExitUsage, err)
			}
			if m.From == m.To {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: schema version %d, already current\n", m.Where, m.To)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: schema version %d → %d\n", m.Where, m.From, m.To)
			}
			if m.Extra != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", m.Where, m.Extra)
			}
			return nil
		},
	})
	return cmd
}

// migrateStore migrates the configured database.
func migrateStore(ctx context.Context, cfg *config.Config) (store.Migration, error) {
	switch cfg.Store.Driver {
	case config.DriverPostgres:
		dsn, err := cfg.Store.ConnString()
		if err != nil {
			return store.Migration{}, err
		}
		m, err := store.MigratePostgres(ctx, dsn.Reveal(), storeOptions(cfg)...)
		if err != nil {
			return m, err
		}
		// River's own tables, in the same schema: runs are River jobs.
		pg, err := store.OpenPostgres(ctx, dsn.Reveal(), storeOptions(cfg)...)
		if err != nil {
			return m, err
		}
		defer pg.Close()
		from, to, err := daemon.MigrateRiver(ctx, pg)
		if err != nil {
			return m, err
		}
		m.Applied += to - from
		m.Extra = fmt.Sprintf("river schema version %d → %d", from, to)
		if from == to {
			m.Extra = fmt.Sprintf("river schema version %d, already current", to)
		}
		return m, nil
	default:
		return store.MigrateSQLite(ctx, cfg.Store.Path)
	}
}

// cliFleet is, with PostgreSQL, a River fleet that is never started: one-shot commands use it only for the
// job's advisory lock, so they never run beside a replica's run of the same job. Nil with SQLite.
func cliFleet(st store.Store, log *zap.Logger) (*daemon.RiverFleet, error) {
	pg, ok := st.(*store.Postgres)
	if !ok {
		return nil, nil
	}
	return daemon.NewRiverFleet(pg, daemon.RiverOptions{Log: log})
}
