// Package config is the worker's one configuration: a YAML file, WORKER_* environment overrides and defaults,
// checked as a whole before anything runs. Every mistake is reported at once with its field path (as written
// in the file, e.g. "tenant.cloud"), what is wrong and what would be right, because a worker that refuses to
// start one typo at a time wastes an operator's afternoon.
//
// Paths in the file (ca_file, certificate_file, client_secret_file, token_file, store.path) are used as
// written: relative paths are relative to the worker's working directory.
//
// Secrets never live in the file, which gets printed, copied and committed: the client secret and the
// certificate password come from a file named in the config (client_secret_file, certificate_password_file)
// or from the environment (WORKER_AUTH_CLIENT_SECRET, WORKER_AUTH_CERTIFICATE_PASSWORD). See env.go for the
// environment mapping.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/exo-worker/worker/jobs"
	"gopkg.in/yaml.v3"
)

// Config is the whole configuration of a worker.
type Config struct {
	Tenant    Tenant    `yaml:"tenant"`
	Auth      Auth      `yaml:"auth"`
	EXO       EXO       `yaml:"exo"`
	Store     Store     `yaml:"store"`
	Server    Server    `yaml:"server"`
	Log       Log       `yaml:"log"`
	Retention Retention `yaml:"retention"`
	// Jobs holds each named job's typed configuration (the job's own type, from the job library: see
	// JobLibrary); a job the file does not name is not in the map.
	Jobs       map[string]jobs.Config `yaml:"jobs"`
	Exceptions []Exception            `yaml:"exceptions"`
	Triggers   []Trigger              `yaml:"triggers"`

	// source is the file the config came from ("" = environment only), for messages.
	source string
	// lines maps a field path to the line it was written on, so Validate's problems can point at the file.
	lines map[string]int
	// lib is the job library jobs.<name> was read with.
	lib JobLibrary
	// env records which fields an environment variable set (path → variable), for messages.
	env map[string]string
}

// Tenant names the Microsoft 365 tenant and the cloud it lives in.
type Tenant struct {
	// Name is the short name the worker keeps the tenant's records under (runs, journal, findings) and shows
	// in logs; lower-case letters, digits and '-'. Default "default". Changing it later hides the records
	// kept under the old name.
	Name string `yaml:"name"`
	// ID is the tenant GUID or one of its domains (contoso.onmicrosoft.com); it goes into the authority URL
	// and the EXO admin API path.
	ID string `yaml:"id"`
	// Cloud selects authority, Graph and Exchange hosts and token scopes: global, usgov-high, usgov-dod, china.
	Cloud string `yaml:"cloud"`
	// Endpoints override the cloud's hosts (private endpoints, proxies, the simulator). Scopes keep the cloud's
	// values, because the token audience is the resource, not the host it is reached through.
	Endpoints EndpointOverrides `yaml:"endpoints"`
	// CAFile is a PEM file of extra CA certificates to trust besides the system roots (the simulator's CA,
	// a TLS-inspecting proxy).
	CAFile string `yaml:"ca_file"`
	// DNSServer (host:port) answers the audits' MX lookups instead of the system resolver: a split-horizon
	// resolver that sees the public MX records, or the simulator's own DNS server.
	DNSServer string `yaml:"dns_server"`
}

// DefaultTenantName is the name of a tenant whose configuration sets none: the name every record written
// before tenants had names is kept under.
const DefaultTenantName = "default"

// EndpointOverrides replace a cloud's hosts; each is an https URL of a host (no path), empty = the cloud's.
type EndpointOverrides struct {
	Authority string `yaml:"authority"`
	Graph     string `yaml:"graph"`
	Exchange  string `yaml:"exchange"`
}

// Authentication methods.
const (
	MethodCertificate      = "certificate"
	MethodSecret           = "secret"
	MethodWorkloadIdentity = "workload-identity"
	MethodManagedIdentity  = "managed-identity"
)

// Methods lists the authentication methods, certificate (the recommended one) first.
var Methods = []string{MethodCertificate, MethodSecret, MethodWorkloadIdentity, MethodManagedIdentity}

// Auth is how the worker obtains tokens: an app registration's certificate or secret, a federated workload
// identity, or an Azure managed identity.
type Auth struct {
	// Method is one of Methods. Empty means: inferred from what is set (certificate_file → certificate,
	// a client secret → secret, token_file → workload-identity); Load fills it in.
	Method string `yaml:"method"`
	// ClientID is the application (client) id of the app registration; for managed identity, the client id of
	// a user-assigned identity (empty = system-assigned).
	ClientID string `yaml:"client_id"`
	// CertificateFile is a PEM (certificate + unencrypted key) or PKCS#12/PFX file.
	CertificateFile string `yaml:"certificate_file"`
	// CertificatePasswordFile holds the PFX password (or set WORKER_AUTH_CERTIFICATE_PASSWORD).
	CertificatePasswordFile string `yaml:"certificate_password_file"`
	// SendCertificateChain sends the x5c header (needed for subject name/issuer authentication).
	SendCertificateChain bool `yaml:"send_certificate_chain"`
	// ClientSecretFile holds the client secret (or set WORKER_AUTH_CLIENT_SECRET).
	ClientSecretFile string `yaml:"client_secret_file"`
	// TokenFile is the federated token file of workload identity (default $AZURE_FEDERATED_TOKEN_FILE).
	TokenFile string `yaml:"token_file"`

	// ClientSecret and CertificatePassword come from the environment only (never from the file).
	ClientSecret        Secret `yaml:"-"`
	CertificatePassword Secret `yaml:"-"`
}

// EXO tunes the Exchange Online admin API client.
type EXO struct {
	// MaxConcurrency bounds in-flight requests to the tenant (EXO budgets per tenant); default 3, the
	// practical ceiling reported for app-only callers (each request may carry a $batch of 10).
	MaxConcurrency int `yaml:"max_concurrency"`
	// RequestsPerSecond is the initial pace; 0 (default) = unlimited until the first 429, then learned.
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	// MaxRetries per request for throttling, 5xx and transient errors; default 5, 0 = never retry.
	MaxRetries int `yaml:"max_retries"`
	// PageSize is the Prefer: odata.maxpagesize value, 1..1000; default 1000.
	PageSize int `yaml:"page_size"`
	// FullReadEvery is how often the kept Exchange results are replaced by a full read (a Go duration,
	// e.g. 24h); between full reads each run reads only what changed. Default 24h.
	FullReadEvery string `yaml:"full_read_every"`
}

// FullReadInterval is exo.full_read_every as a duration (24h when unset; Validate refuses a bad value).
func (e EXO) FullReadInterval() time.Duration {
	d, err := time.ParseDuration(strings.TrimSpace(e.FullReadEvery))
	if err != nil || d <= 0 {
		return 24 * time.Hour
	}
	return d
}

// Store drivers.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Store is the worker's state (runs, journal, findings): SQLite in one file (the default, for one tenant on
// one machine) or PostgreSQL (for a fleet of tenants and several replicas).
type Store struct {
	// Driver is sqlite (default) or postgres.
	Driver string `yaml:"driver"`
	// Path of the SQLite database; default ./data/worker.db.
	Path string `yaml:"path"`
	// DSN is the PostgreSQL connection string (URL or key=value) without a password: the password comes
	// from DSNFile, WORKER_STORE_DSN, PGPASSWORD or ~/.pgpass, never from this file.
	DSN string `yaml:"dsn"`
	// DSNFile holds the whole connection string, password included (a mounted secret).
	DSNFile string `yaml:"dsn_file"`
	// Schema is the PostgreSQL schema for the worker's and River's tables; empty = the connection's
	// search_path (usually public).
	Schema string `yaml:"schema"`

	// SecretDSN is the connection string from WORKER_STORE_DSN (environment only, may hold a password).
	SecretDSN Secret `yaml:"-"`
}

// ConnString is the PostgreSQL connection string to use: WORKER_STORE_DSN, else the content of dsn_file,
// else dsn. It is a Secret so that it cannot be logged by accident.
func (s Store) ConnString() (Secret, error) {
	if !s.SecretDSN.IsZero() {
		return s.SecretDSN, nil
	}
	if s.DSNFile != "" {
		b, err := os.ReadFile(s.DSNFile)
		if err != nil {
			return Secret{}, fmt.Errorf("store.dsn_file: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return Secret{}, fmt.Errorf("store.dsn_file %s is empty: write the connection string into it", s.DSNFile)
		}
		return NewSecret(v), nil
	}
	return NewSecret(strings.TrimSpace(s.DSN)), nil
}

// Server is the daemon's HTTP listener (health, metrics, the alert webhook).
type Server struct {
	// Listen is host:port; default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token webhook callers must present; required when Listen is not loopback.
	TokenFile string `yaml:"token_file"`
	// TLSCertFile and TLSKeyFile (PEM) turn on HTTPS; both or neither. They are read again when they change,
	// so a renewed certificate needs no restart.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// AllowPlaintextNonLoopback permits plain HTTP on an address other machines reach, for a TLS proxy (an
	// ingress, a service mesh) in front. Without it and without TLS, such an address is refused.
	AllowPlaintextNonLoopback bool `yaml:"allow_plaintext_non_loopback"`
}

// Retention bounds the history `worker serve` keeps in the store; it prunes at start and every few hours.
// Each is in days; 0 keeps that history forever.
type Retention struct {
	// RunsDays keeps runs that wrote nothing (audits, dry runs, runs with nothing to change); default 90.
	RunsDays int `yaml:"runs_days"`
	// JournalDays keeps runs that wrote, with their journal: the audit trail of every change to the tenant
	// and what `worker revert` puts back; default 400 (over a year).
	JournalDays int `yaml:"journal_days"`
	// ResolvedFindingsDays keeps findings after they were resolved; default 180. Open findings stay.
	ResolvedFindingsDays int `yaml:"resolved_findings_days"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
}

// JobLibrary is what the configuration needs from the job library (jobs/library builds it) to read and
// check jobs.<name>: each job owns its typed configuration, its defaults and their validation, so config/
// knows no job by name.
type JobLibrary interface {
	// Names are the jobs there are.
	Names() []string
	// Defaults returns a new configuration of the named job holding its defaults (ok false: no such job).
	Defaults(name string) (c jobs.Config, ok bool)
	// Check returns the problems of the named job's configuration, by key below jobs.<name>.
	Check(name string, c jobs.Config) []jobs.FieldError
}

// Exception keeps jobs away from one object until it expires.
type Exception struct {
	// Object is the object's ExternalDirectoryObjectId or primary SMTP address.
	Object string `yaml:"object"`
	// Jobs the exception covers; empty = every job.
	Jobs []string `yaml:"jobs"`
	// Owner (whom to ask) and Reason (why) are required: an exception nobody can explain is never removed.
	Owner  string `yaml:"owner"`
	Reason string `yaml:"reason"`
	// Expires is the date (or instant) the exception stops applying; zero = never.
	Expires Date `yaml:"expires"`
}

// Trigger maps alerts that reach a webhook of the daemon to a run of a job (internal/server.TriggerRule;
// `worker serve` checks the rules against the job list at start).
type Trigger struct {
	// Source is the webhook: alertmanager or azure-monitor.
	Source string `yaml:"source"`
	// Match lists what an alert must carry: every key equals the alert's value (Alertmanager label names;
	// Azure Monitor essentials fields, customProperties.<key>, dimensions.<name>).
	Match map[string]string `yaml:"match"`
	// Job is the job to run.
	Job string `yaml:"job"`
	// ObjectLabel names the key whose value holds ExternalDirectoryObjectIds (comma-separated); an alert
	// carrying it triggers a rerun of just those objects, one without it (or no ObjectLabel) the whole scope.
	ObjectLabel string `yaml:"object_label"`
}

// Date is a calendar date (2027-01-31, midnight UTC) or an RFC 3339 instant, quoted or not. (yaml.v3 decodes an
// unquoted date into time.Time but fails on a quoted one.)
type Date struct{ time.Time }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Date) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("must be a date like 2027-01-31")
	}
	v := strings.TrimSpace(n.Value)
	if v == "" || n.Tag == "!!null" {
		d.Time = time.Time{}
		return nil
	}
	t, err := ParseDate(v)
	if err != nil {
		return err
	}
	d.Time = t
	return nil
}

// MarshalYAML writes the date back as it is usually written.
func (d Date) MarshalYAML() (any, error) {
	if d.IsZero() {
		return nil, nil
	}
	u := d.UTC()
	if u.Equal(u.Truncate(24 * time.Hour)) {
		return u.Format(time.DateOnly), nil
	}
	return u.Format(time.RFC3339), nil
}

// ParseDate reads YYYY-MM-DD (midnight UTC) or an RFC 3339 instant.
func ParseDate(v string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date; write it as 2027-01-31 (or 2027-01-31T18:00:00Z)", Clip(v))
}

// Default returns the configuration before the file and the environment are applied.
func Default() Config {
	return Config{
		Tenant:    Tenant{Cloud: CloudGlobal},
		EXO:       EXO{MaxConcurrency: 3, RequestsPerSecond: 0, MaxRetries: 5, PageSize: 1000},
		Store:     Store{Driver: DriverSQLite, Path: "./data/worker.db"},
		Server:    Server{Listen: "127.0.0.1:8080"},
		Log:       Log{Level: "info"},
		Retention: Retention{RunsDays: 90, JournalDays: 400, ResolvedFindingsDays: 180},
	}
}

// Load reads the YAML file at path (empty = no file), applies env (os.Environ() form, KEY=value) and the
// defaults, and returns the configuration. The file is strict: an unknown key, a value of the wrong type or a
// secret written inline is a problem naming its path and line. If there are such problems, Load also runs
// Validate and returns every problem together as a *ValidationError (with the partly read config), so one run
// of `worker config validate` lists everything. Without them it returns a nil error; call Validate next.
//
// lib is the job library: jobs.<name> is decoded into the named job's own configuration type and checked by
// it; a name the library does not know is a problem listing the jobs there are. A nil lib knows no job.
func Load(path string, env []string, lib JobLibrary) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = ReadFile("config", path, MaxConfigBytes); err != nil {
			return nil, err
		}
	}
	return parse(data, path, env, lib)
}

// parse is Load after the file has been read.
func parse(data []byte, source string, env []string, lib JobLibrary) (*Config, error) {
	cfg := Default()
	cfg.source = source
	cfg.lib = lib
	cfg.lines = map[string]int{}
	cfg.env = map[string]string{}
	d := &decoder{lines: cfg.lines, lib: lib}
	if len(strings.TrimSpace(string(data))) > 0 {
		var doc yaml.Node
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("config %s: %w", sourceName(source), err)
		}
		var extra yaml.Node
		if err := dec.Decode(&extra); err == nil {
			d.addf("", extra.Line, "the file holds more than one YAML document (---); keep one")
		}
		d.decodeDocument(&doc, &cfg)
	}
	applyEnv(&cfg, env, d)
	cfg.applyDefaults()
	if len(d.problems) == 0 {
		return &cfg, nil
	}
	problems, omitted := d.problems, d.omitted
	if verr := (*ValidationError)(nil); errors.As(cfg.Validate(), &verr) {
		// Keep one problem per path: a field that could not be read would otherwise also be reported as
		// missing.
		seen := map[string]bool{}
		for _, p := range problems {
			seen[p.Path] = true
		}
		for _, p := range verr.Problems {
			if !seen[p.Path] {
				problems = append(problems, p)
			}
		}
		omitted += verr.Omitted
	}
	problems, more := capProblems(sortProblems(problems))
	return &cfg, &ValidationError{Source: source, Problems: problems, Omitted: omitted + more}
}

func sourceName(source string) string {
	if source == "" {
		return "(environment)"
	}
	return source
}

// applyDefaults fills what depends on other fields: the auth method inferred from the credentials given.
func (c *Config) applyDefaults() {
	c.Tenant.Cloud = strings.ToLower(strings.TrimSpace(c.Tenant.Cloud))
	if strings.TrimSpace(c.Tenant.Name) == "" {
		c.Tenant.Name = DefaultTenantName
	}
	if c.Tenant.Cloud == "" {
		c.Tenant.Cloud = CloudGlobal
	}
	c.Auth.Method = strings.ToLower(strings.TrimSpace(c.Auth.Method))
	if c.Auth.Method == "" {
		if m := c.Auth.inferredMethods(); len(m) == 1 {
			c.Auth.Method = m[0]
		}
	}
	c.Log.Level = strings.ToLower(strings.TrimSpace(c.Log.Level))
	c.Store.Driver = strings.ToLower(strings.TrimSpace(c.Store.Driver))
	if c.Store.Driver == "" {
		c.Store.Driver = DriverSQLite
	}
}

// inferredMethods lists the methods the set credentials point at.
func (a Auth) inferredMethods() []string {
	var m []string
	if a.CertificateFile != "" {
		m = append(m, MethodCertificate)
	}
	if a.ClientSecretFile != "" || !a.ClientSecret.IsZero() {
		m = append(m, MethodSecret)
	}
	if a.TokenFile != "" {
		m = append(m, MethodWorkloadIdentity)
	}
	return m
}

// Source is the file the configuration was read from ("" = none).
func (c *Config) Source() string { return c.source }

// String prints the effective configuration as YAML, secrets redacted (they are never fields of the file;
// a comment says where they came from), for `worker config show` and logs. The output loads back.
func (c *Config) String() string {
	var b strings.Builder
	if !c.Auth.ClientSecret.IsZero() {
		b.WriteString("# auth client secret: set from " + envClientSecret + " (redacted)\n")
	}
	if !c.Auth.CertificatePassword.IsZero() {
		b.WriteString("# auth certificate password: set from " + envCertPassword + " (redacted)\n")
	}
	if !c.Store.SecretDSN.IsZero() {
		b.WriteString("# store connection string: set from " + envStoreDSN + " (redacted)\n")
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Sprintf("config: %v", err)
	}
	b.Write(out)
	return b.String()
}
