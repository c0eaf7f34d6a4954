package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/exo-worker/worker/config"
)

func newJobsCmd(_ *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "jobs",
		Short: "List the job library: what each job does, what it may write, what it needs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The library as a configuration with no job settings builds it.
			reg, err := newRegistry(&config.Config{})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tKIND\tWRITES\tSUMMARY")
			for _, j := range reg.All() {
				d := j.Describe()
				var ws []string
				for _, w := range d.Writes {
					ws = append(ws, w.String())
				}
				writes := strings.Join(ws, ", ")
				if writes == "" {
					writes = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", j.Name(), d.Kind, writes, d.Summary)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "\nRun one with `worker run JOB --dry-run` first; permissions per job are in the README.")
			fmt.Fprintln(cmd.OutOrStdout(), "Audits report with `worker report --job JOB --format table|json|csv|html|ps1|ldif`; their rules: `worker rules`.")
			return nil
		},
	}
}
