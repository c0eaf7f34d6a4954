package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/exo-worker/worker/config"
	"github.com/exo-worker/worker/internal/auth"
	"github.com/exo-worker/worker/internal/doctor"
	wsetup "github.com/exo-worker/worker/internal/setup"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/executor"
)

type doctorFlags struct {
	sim    bool
	output string
	jobs   []string
}

func newDoctorCmd(g *globals) *cobra.Command {
	f := &doctorFlags{}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check configuration, network, consent, Exchange roles and write scope before anything is written",
		Long: `doctor checks everything a first run depends on and says, for each, PASS, WARN, FAIL or SKIP with a
one-line fix: the configuration; the clock against the token endpoint's Date; DNS, TLS and proxy to the
authority, Graph and Exchange; a token per API with its roles compared to what the enabled jobs declare;
an Exchange read probe (Get-MailUser -ResultSize 1 in the job's scope); an Exchange write probe that changes
nothing (Set-MailUser writing the value the object already holds, which Exchange answers with "no settings
have been modified" — proving role, parameters and write scope); a Graph read probe; remote domains that
would override the fix; the store; the API token file; each schedule's next three times.

The enabled jobs are the whole library (job meu-richtext and the audits) unless --jobs names some. Exit 0
when nothing FAILed, 1 otherwise.`,
		Example: `  worker doctor --config worker.yaml
  worker doctor --config worker.yaml --output json
  worker doctor --sim`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDoctor(cmd, g, f) },
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.sim, "sim", false, "check a simulated tenant started in-process")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	fl.StringSliceVar(&f.jobs, "jobs", nil, "the jobs whose permissions to check (default: every job of the library)")
	return cmd
}

// enabledJobs are the jobs whose declared permissions setup requests and doctor checks: those named, or
// every job of the library.
func enabledJobs(reg *jobs.Registry, names []string) ([]jobs.Job, error) {
	if len(names) == 0 {
		return reg.All(), nil
	}
	var out []jobs.Job
	for _, n := range names {
		j, err := reg.Get(strings.TrimSpace(n))
		if err != nil {
			return nil, withCode(executor.ExitUsage, fmt.Errorf("--jobs: %w", err))
		}
		out = append(out, j)
	}
	return out, nil
}

func runDoctor(cmd *cobra.Command, g *globals, f *doctorFlags) error {
	if f.output != "text" && f.output != "json" {
		return withCode(executor.ExitUsage, fmt.Errorf("--output %q: use text or json", f.output))
	}
	ctx := cmd.Context()
	o := doctor.Options{Uid: os.Getuid()}
	var st *simTenant
	path := configPath(g.configFile)
	switch {
	case f.sim && path != "":
		return withCode(executor.ExitUsage, errors.New("--sim and --config exclude each other: --sim writes its own configuration"))
	case f.sim:
		var err error
		if st, err = startSimTenant(simSetup{}); err != nil {
			return err
		}
		defer st.Close()
		path = st.config
	case path == "":
		return withCode(executor.ExitUsage, errors.New("no configuration: pass --config FILE (worker setup writes one), or try --sim"))
	}
	lib, err := jobLibrary()
	if err != nil {
		return err
	}
	cfg, err := config.Load(path, os.Environ(), lib)
	if err == nil {
		err = cfg.Validate()
	}
	o.Config, o.ConfigErr = cfg, err
	if err == nil {
		o.Schedules = map[string]string{}
		for n, jc := range cfg.Jobs {
			o.Schedules[n] = jc.Common().Schedule
		}
		reg, rerr := newRegistry(cfg)
		if rerr != nil {
			o.ConfigErr = rerr
		} else if js, jerr := enabledJobs(reg, f.jobs); jerr != nil {
			return jerr
		} else if o.Req, err = wsetup.FromJobs(js); err != nil {
			o.ConfigErr = err
		}
	}
	if o.ConfigErr == nil {
		if o.Endpoints, err = cfg.Tenant.Resolve(); err != nil {
			o.ConfigErr = err
		} else if o.HTTPClient, err = auth.HTTPClient(cfg); err != nil {
			o.ConfigErr = err
		} else if o.Credential, err = auth.NewCredential(cfg, o.HTTPClient, g.log.Named("auth")); err != nil {
			o.ConfigErr = err
		} else {
			tc := &tenantConn{cfg: cfg, ep: o.Endpoints, hc: o.HTTPClient, cred: o.Credential, log: g.log}
			// Probes are single requests: no retries, so a refusal is reported at once.
			tc.cfg.EXO.MaxRetries = 1
			if o.EXO, err = tc.exo(); err != nil {
				o.ConfigErr = err
			}
		}
	}
	rep := doctor.Run(ctx, o)
	out := cmd.OutOrStdout()
	if f.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.WriteText(out)
	}
	if !rep.OK() {
		return withCode(executor.ExitUsage, fmt.Errorf("doctor: %d checks failed", rep.Count(doctor.Fail)))
	}
	return nil
}
