// Command worker keeps a Microsoft 365 tenant healthy while on-premises Active Directory syncs into it:
// it fixes directory-synced mail users through the Exchange Online admin API and audits what sync got wrong.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/exo-worker/worker/config"
)

// Version is set at build time (-ldflags "-X main.Version=...").
var Version = "dev"

// exitError carries an exit code through cobra to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode wraps err so that main exits with code.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// globals are the flags every command shares.
type globals struct {
	configFile  string
	logLevel    string
	logLevelSet bool // --log-level given: it wins over log.level and WORKER_LOG_LEVEL
	level       zap.AtomicLevel
	log         *zap.Logger
}

func main() {
	g := &globals{}
	root := newRoot(g)
	err := root.Execute()
	if g.log != nil {
		_ = g.log.Sync()
	}
	if err == nil {
		return
	}
	var ee *exitError
	code := 1
	if errors.As(err, &ee) {
		code = ee.code
	}
	if code != 0 {
		fmt.Fprintln(os.Stderr, "error:", err)
	}
	os.Exit(code)
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "worker",
		Short: "Keep an Exchange Online tenant healthy while Active Directory syncs into it",
		Long: `worker fixes directory-synced mail users (MEUs) in Exchange Online through the admin API that the
ExchangeOnlineManagement module uses, and audits what directory sync got wrong.

Job meu-richtext sets UseMapiRichTextFormat=Never on every directory-synced mail user, so meeting invites
from cloud mailboxes reach users who are still on-premises as rich invites, not plain text.

Try it without a tenant: the --sim flag starts a simulated tenant in-process.

  worker run meu-richtext --sim --dry-run          # show what would change
  worker run meu-richtext --sim                    # fix and verify
  worker report --sim --format html --out a.html   # audit: what sync got wrong, with the AD fix for each
  worker jobs                                      # the job library
  worker config validate --config worker.yaml

Against a real tenant: "worker setup --tenant contoso.onmicrosoft.com" creates the least-privileged identity
and worker.yaml, "worker doctor --config worker.yaml" checks everything before a write, and the commands
above take --config FILE instead of --sim (README: "Against a real tenant"). "worker serve" runs the jobs on their schedules, with an HTTP API, alert webhooks and metrics.

` + exitCodesHelp(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			g.logLevelSet = cmd.Flags().Changed("log-level")
			log, level, err := newLogger(startLevel(g.logLevel, g.logLevelSet, os.Getenv(config.EnvName("log.level"))))
			if err != nil {
				return withCode(1, err)
			}
			g.log, g.level = log, level
			return nil
		},
	}
	root.PersistentFlags().StringVarP(&g.configFile, "config", "c", "", "configuration file (YAML); env WORKER_CONFIG")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error (default: log.level of the configuration, env WORKER_LOG_LEVEL, else info)")
	root.AddCommand(newRunCmd(g), newJobsCmd(g), newSimCmd(g), newConfigCmd(g), newVersionCmd())
	root.AddCommand(newServeCmd(g), newHistoryCmd(g), newShowCmd(g), newRevertCmd(g))
	root.AddCommand(newReportCmd(g), newRulesCmd(g), newDoctorCmd(g), newSetupCmd(g), newStoreCmd(g), newBenchCmd(g))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withCode(1, err) })
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "worker", Version)
			return nil
		},
	}
}
