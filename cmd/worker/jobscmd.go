package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/exo-worker/worker/config"
)

func newJobsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "jobs",
		Short: "List the job library: what each job does, may write and needs, and how it would run",
		Long: `List every job of the library: its kind, the mode and blast radius it runs with, what it may write
and what it does.

With --config (or WORKER_CONFIG), the mode and limits are the ones that configuration gives, and CONFIGURED
says whether it names the job: only configured jobs are scheduled by ` + "`worker serve`" + ` or started through its
API and webhooks. Without a configuration, every job is shown with its defaults.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := &config.Config{}
			configured := "-"
			if path := configPath(g.configFile); path != "" {
				c, err := loadConfig(g, path)
				if err != nil {
					return err
				}
				cfg = c
			}
			reg, err := newRegistry(cfg)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tKIND\tMODE\tMAX CHANGES\tCONFIGURED\tWRITES\tSUMMARY")
			for _, name := range reg.Names() {
				e, _ := reg.Entry(name)
				d := e.Job.Describe()
				var ws []string
				for _, w := range d.Writes {
					ws = append(ws, w.String())
				}
				writes := strings.Join(ws, ", ")
				if writes == "" {
					writes = "-"
				}
				if cfg.Source() != "" {
					configured = "no (defaults; not scheduled)"
					if e.Configured {
						configured = "yes"
						if s := e.Settings().Schedule; s != "" {
							configured += " (" + s + ")"
						}
					}
				}
				st := e.Settings()
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d / %g%%\t%s\t%s\t%s\n", name, d.Kind, st.Mode, st.MaxChanges, st.MaxChangePercent,
					configured, writes, d.Summary)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "\nRun one with `worker run JOB --dry-run` first; `worker setup` builds the identity the jobs' declared permissions need.")
			fmt.Fprintln(cmd.OutOrStdout(), "Audits report with `worker report --job JOB --format table|json|csv|html|ps1|ldif`; their rules: `worker rules`.")
			return nil
		},
	}
}
