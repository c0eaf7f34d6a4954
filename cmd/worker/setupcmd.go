package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/exo-worker/worker/config"
	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/auth"
	wsetup "github.com/exo-worker/worker/internal/setup"
	"github.com/exo-worker/worker/jobs/executor"
)

type setupFlags struct {
	tenant, cloud    string
	name             string
	certFile         string
	out              string
	jobs             []string
	graphClientID    string
	exchangeClientID string
	dryRun           bool
	script           bool
	remove           bool
	output           string
}

func newSetupCmd(g *globals) *cobra.Command {
	f := &setupFlags{}
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Create the worker's least-privileged identity in a tenant (app, certificate, consent, Exchange role and scope)",
		Long: `setup signs you in as an admin (device code: open the URL it prints, enter the code) and creates
everything the worker needs, with no more rights than the enabled jobs declare:

  - a certificate, generated on this machine (the private key never leaves it; written with mode 0600)
  - an app registration holding the certificate and requesting exactly the declared application
    permissions, its service principal, and admin consent for them (app role assignments)
  - the app's service principal in Exchange Online (New-ServicePrincipal)
  - custom management roles derived from the built-in ones (Mail Recipients, and view-only roles for reads)
    that keep only the cmdlets the jobs call and, on Set-MailUser, only the parameters they write
  - a management scope whose filter is the jobs' write scope
    (IsDirSynced -eq 'True' -and RecipientTypeDetails -eq 'MailUser'): even a stolen certificate cannot
    change a mailbox, a guest or a cloud-only object
  - a role group holding the roles with that write scope, with the service principal as member
  - a ready worker.yaml (an existing file setup did not write is kept: the new one goes to worker.yaml.new)

Run it again at any time: it finds what exists, repairs what is missing or wrong and changes nothing else.
--dry-run prints the plan; --script prints the same steps as a PowerShell script to review and run
yourself (Microsoft Graph PowerShell + ExchangeOnlineManagement); --remove deletes what setup created.

Signing in needs an admin who may create apps and grant consent (Privileged Role Administrator or Global
Administrator for Microsoft Graph application permissions) and manage Exchange roles (Organization
Management). The public clients signed in with default to Microsoft's "Microsoft Graph Command Line Tools"
(` + wsetup.DefaultGraphClientID + `) and the ExchangeOnlineManagement module's client
(` + wsetup.DefaultExchangeClientID + `).

Exchange applies role changes within minutes, sometimes up to 30: if worker doctor reports a missing role
right after setup, wait and run it again.`,
		Example: `  worker setup --tenant contoso.onmicrosoft.com
  worker setup --tenant contoso.onmicrosoft.com --dry-run
  worker setup --tenant contoso.onmicrosoft.com --script > exo-worker-setup.ps1
  worker setup --config worker.yaml --remove`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSetup(cmd, g, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.tenant, "tenant", "", "tenant domain or GUID (or take tenant: from --config)")
	fl.StringVar(&f.cloud, "cloud", "", "cloud: "+strings.Join(config.Clouds, ", ")+" (default global, or the --config's)")
	fl.StringVar(&f.name, "name", "exo-worker", "display name of the app, the role group and the prefix of roles and scope")
	fl.StringVar(&f.certFile, "cert-file", "exo-worker.pem", "certificate + private key file (created 0600 if missing; reused otherwise)")
	fl.StringVar(&f.out, "out", "worker.yaml", "configuration file to write")
	fl.StringSliceVar(&f.jobs, "jobs", nil, "jobs whose permissions to grant (default: every job of the library)")
	fl.StringVar(&f.graphClientID, "graph-client-id", wsetup.DefaultGraphClientID, "public client id for the admin's Graph sign-in")
	fl.StringVar(&f.exchangeClientID, "exchange-client-id", wsetup.DefaultExchangeClientID, "public client id for the admin's Exchange Online sign-in")
	fl.BoolVar(&f.dryRun, "dry-run", false, "sign in and print what would be created or repaired; change nothing")
	fl.BoolVar(&f.script, "script", false, "print the steps as a PowerShell script instead of running them (no sign-in)")
	fl.BoolVar(&f.remove, "remove", false, "delete what setup created (app, service principals, roles, scope, role group)")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	return cmd
}

// setupBase is the configuration setup starts from: --config's tenant section, or --tenant/--cloud.
func setupBase(g *globals, f *setupFlags) (*config.Config, error) {
	var cfg *config.Config
	if path := configPath(g.configFile); path != "" {
		lib, err := jobLibrary()
		if err != nil {
			return nil, err
		}
		c, err := config.Load(path, os.Environ(), lib)
		var verr *config.ValidationError
		if err != nil && !errors.As(err, &verr) {
			return nil, withCode(executor.ExitUsage, err)
		}
		cfg = c
	} else {
		d := config.Default()
		cfg = &d
	}
	if f.tenant != "" {
		cfg.Tenant.ID = f.tenant
	}
	if f.cloud != "" {
		cfg.Tenant.Cloud = f.cloud
	}
	if strings.TrimSpace(cfg.Tenant.ID) == "" {
		return nil, withCode(executor.ExitUsage, errors.New("no tenant: pass --tenant contoso.onmicrosoft.com (or --config with tenant.id)"))
	}
	return cfg, nil
}

func runSetup(cmd *cobra.Command, g *globals, f *setupFlags) error {
	if f.output != "text" && f.output != "json" {
		return withCode(executor.ExitUsage, fmt.Errorf("--output %q: use text or json", f.output))
	}
	if n := btoi(f.dryRun) + btoi(f.script) + btoi(f.remove); n > 1 {
		return withCode(executor.ExitUsage, errors.New("--dry-run, --script and --remove exclude each other"))
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()

	base, err := setupBase(g, f)
	if err != nil {
		return err
	}
	ep, err := base.Tenant.Resolve()
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	reg, err := newRegistry(base)
	if err != nil {
		return err
	}
	js, err := enabledJobs(reg, f.jobs)
	if err != nil {
		return err
	}
	req, err := wsetup.FromJobs(js)
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	var cert *wsetup.Certificate
	if !f.remove {
		if cert, err = wsetup.EnsureCertificate(f.certFile, f.name, time.Now(), f.dryRun); err != nil {
			return withCode(executor.ExitUsage, fmt.Errorf("--cert-file: %w", err))
		}
	}
	var der []byte
	if cert != nil {
		der = cert.DER
	}
	d, err := wsetup.NewDesired(base.Tenant.ID, f.name, req, der)
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	if f.script {
		fmt.Fprint(out, wsetup.Script(d, cert.PublicFile))
		return nil
	}

	hc, err := auth.HTTPClient(base)
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	signIn := func(clientID, label string) (*wsetup.SignInOptions, error) {
		if strings.TrimSpace(clientID) == "" {
			return nil, withCode(executor.ExitUsage, fmt.Errorf("the public client id for %s is empty", label))
		}
		return &wsetup.SignInOptions{Tenant: base.Tenant.ID, Authority: ep.Authority, CustomAuthority: ep.CustomAuthority,
			ClientID: clientID, HTTPClient: hc, Prompt: errOut, Label: label}, nil
	}
	gso, err := signIn(f.graphClientID, "Microsoft Graph")
	if err != nil {
		return err
	}
	graphCred, err := wsetup.DeviceCode(*gso)
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	eso, err := signIn(f.exchangeClientID, "Exchange Online")
	if err != nil {
		return err
	}
	exoCred, err := wsetup.DeviceCode(*eso)
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	ec, err := exo.New(exo.Options{BaseURL: ep.ExchangeURL, Tenant: base.Tenant.ID, Credential: exoCred, Scope: ep.ExchangeScope,
		HTTPClient: hc, MaxConcurrency: 1, Logger: g.log.Named("exo")})
	if err != nil {
		return withCode(executor.ExitUsage, err)
	}
	rn := &wsetup.Runner{
		Graph:  &wsetup.Graph{BaseURL: ep.GraphURL, Scopes: wsetup.GraphScopes(strings.TrimSuffix(ep.GraphScope, "/.default")), Credential: graphCred, HTTPClient: hc},
		EXO:    ec,
		DryRun: f.dryRun,
	}
	if f.output == "text" {
		rn.OnStep = func(s wsetup.Step) { printStep(out, s) }
	}
	var o *wsetup.Outcome
	if f.remove {
		o, err = rn.Remove(ctx, d)
	} else {
		o, err = rn.Apply(ctx, d)
	}
	if err != nil {
		if f.output == "json" {
			_ = json.NewEncoder(out).Encode(o)
		}
		return withCode(executor.ExitFailed, fmt.Errorf("setup: %w", err))
	}
	written := ""
	if !f.remove && !f.dryRun {
		y := wsetup.WorkerYAML(base, o.AppID, cert.PEMFile, wsetup.Thumbprint(cert.DER), time.Now())
		if written, err = wsetup.WriteWorkerYAML(f.out, y); err != nil {
			return withCode(executor.ExitFailed, fmt.Errorf("write %s: %w", f.out, err))
		}
	}
	if f.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			*wsetup.Outcome
			Config      string `json:"config,omitempty"`
			Certificate string `json:"certificate,omitempty"`
		}{o, written, certPath(cert)})
	}
	printOutcome(out, f, o, cert, written)
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func certPath(c *wsetup.Certificate) string {
	if c == nil {
		return ""
	}
	return c.PEMFile
}

func printStep(w io.Writer, s wsetup.Step) {
	mark := "done "
	if !s.Done {
		mark = "plan "
	}
	line := mark + s.Summary
	if s.ID != "" {
		line += " [id " + s.ID + "]"
	}
	fmt.Fprintln(w, line)
}

func printOutcome(w io.Writer, f *setupFlags, o *wsetup.Outcome, cert *wsetup.Certificate, written string) {
	switch {
	case len(o.Steps) == 0 && f.remove:
		fmt.Fprintln(w, "Nothing to remove: setup's objects are not in this tenant.")
		return
	case len(o.Steps) == 0:
		fmt.Fprintln(w, "Everything is in place; nothing changed.")
	case f.dryRun:
		fmt.Fprintf(w, "\nDry run: %d steps above would run; nothing was changed.\n", len(o.Steps))
	case f.remove:
		fmt.Fprintf(w, "\nRemoved %d objects.\n", len(o.Steps))
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "App registration   %s  (app id %s, object id %s)\n", f.name, orDash(o.AppID), orDash(o.AppObjectID))
	fmt.Fprintf(w, "Service principal  %s\n", orDash(o.SPObjectID))
	fmt.Fprintf(w, "Consent            %s\n", strings.Join(o.Grants, ", "))
	fmt.Fprintf(w, "Exchange roles     %s\n", strings.Join(o.Roles, ", "))
	if o.Scope != "" {
		fmt.Fprintf(w, "Write scope        %s\n", o.Scope)
	}
	fmt.Fprintf(w, "Role group         %s\n", o.RoleGroup)
	if cert != nil {
		state := "reused"
		if cert.Created {
			state = "created"
		}
		fmt.Fprintf(w, "Certificate        %s (%s, thumbprint %s, expires %s; public part %s)\n", cert.PEMFile, state,
			wsetup.Thumbprint(cert.DER), cert.NotAfter.Format(time.DateOnly), cert.PublicFile)
	}
	if written != "" {
		fmt.Fprintf(w, "Configuration      %s\n", written)
		fmt.Fprintf(w, "\nNext: worker doctor --config %s, then worker run meu-richtext --config %s --dry-run\n", written, written)
	}
}

func orDash(s string) string {
	if s == "" {
		return "(to be created)"
	}
	return s
}
