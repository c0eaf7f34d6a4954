package main

import (
	"errors"
	"fmt"

	"github.com/exo-worker/worker/jobs/executor"
	"github.com/spf13/cobra"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check the configuration",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate",
		Short: "Read the configuration and report every problem at once, each with its field path",
		Long: `Read the configuration file (and WORKER_* environment overrides), apply defaults and check every field.
All problems are listed at once, each with its field path, what is wrong and what would be right.
Exit 0 when the configuration is valid, 1 otherwise.`,
		Example: "  worker config validate --config /etc/exo-worker/worker.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := configPath(g.configFile)
			if path == "" {
				return withCode(executor.ExitUsage, errors.New("no configuration: pass --config FILE (or set WORKER_CONFIG)"))
			}
			if _, err := loadConfig(g, path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: configuration is valid\n", path)
			return nil
		},
	})
	return cmd
}
