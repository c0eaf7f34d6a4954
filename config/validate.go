package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Problem is one thing wrong with the configuration.
type Problem struct {
	// Path is the field path as written in the file: "tenant.cloud", "jobs.meu-richtext.mode",
	// "exceptions[0].owner" ("" = the file as a whole).
	Path string
	// Message says what is wrong and what would be right.
	Message string
	// Line in the file, when the problem is at a key the file sets (0 = unknown or not from the file).
	Line int
	// Env is the environment variable that set the value, if one did.
	Env string
}

func (p Problem) String() string {
	var where []string
	if p.Line > 0 {
		where = append(where, "line "+strconv.Itoa(p.Line))
	}
	if p.Env != "" {
		where = append(where, "from "+p.Env)
	}
	loc := p.Path
	if len(where) > 0 {
		loc += " (" + strings.Join(where, ", ") + ")"
	}
	if loc == "" {
		return p.Message
	}
	return loc + ": " + p.Message
}

// ValidationError lists the problems of a configuration: every one, up to MaxProblems.
type ValidationError struct {
	Source   string // the file ("" = environment only)
	Problems []Problem
	// Omitted counts the problems beyond MaxProblems that are not listed: a file of 300,000 unknown keys
	// needs its first screenful of problems and a count, not 38 MB of them.
	Omitted int
}

// MaxProblems is how many problems a ValidationError lists.
const MaxProblems = 100

func (e *ValidationError) Error() string {
	var b strings.Builder
	n := len(e.Problems) + e.Omitted
	fmt.Fprintf(&b, "config %s: %d problem", sourceName(e.Source), n)
	if n != 1 {
		b.WriteString("s")
	}
	b.WriteString(":")
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	if e.Omitted > 0 {
		fmt.Fprintf(&b, "\n  … and %d more (the first %d are listed; fix them and validate again)", e.Omitted, len(e.Problems))
	}
	return b.String()
}

// capProblems keeps the first MaxProblems of ps and says how many it dropped.
func capProblems(ps []Problem) ([]Problem, int) {
	if len(ps) <= MaxProblems {
		return ps, 0
	}
	return ps[:MaxProblems:MaxProblems], len(ps) - MaxProblems
}

// sortProblems orders problems as they appear in the file, then by path, so the list reads top to bottom.
func sortProblems(ps []Problem) []Problem {
	sort.SliceStable(ps, func(i, j int) bool {
		li, lj := ps[i].Line, ps[j].Line
		if li == 0 {
			li = math.MaxInt
		}
		if lj == 0 {
			lj = math.MaxInt
		}
		if li != lj {
			return li < lj
		}
		return ps[i].Path < ps[j].Path
	})
	return ps
}

// validator collects problems; add fills in line and environment variable from what Load recorded.
type validator struct {
	c        *Config
	problems []Problem
	omitted  int // problems beyond MaxProblems, counted only
}

func (v *validator) add(path, format string, args ...any) {
	if len(v.problems) >= MaxProblems {
		v.omitted++
		return
	}
	v.problems = append(v.problems, Problem{Path: Clip(path), Message: fmt.Sprintf(format, clipArgs(format, args)...), Line: v.c.lines[path], Env: v.c.env[path]})
}

var (
	guidRE   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	domainRE = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$`)
	jobRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	// tenantNameRE is internal/store's CheckTenantName rule.
	tenantNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$`)
)

// Validate checks the whole configuration and returns a *ValidationError listing every problem, or nil.
// It reads the files the configuration names (CA, certificate, secret, token) to check they exist and are
// readable; it does not contact any service.
func (c *Config) Validate() error {
	v := &validator{c: c}
	v.tenant()
	v.auth()
	v.exo()
	v.store()
	v.server()
	v.log()
	v.retention()
	v.jobs()
	v.exceptions()
	v.triggers()
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Source: c.source, Problems: sortProblems(v.problems), Omitted: v.omitted}
}

func (v *validator) tenant() {
	t := v.c.Tenant
	if t.Name != "" && !tenantNameRE.MatchString(t.Name) {
		v.add("tenant.name", "%q is not a tenant name; use 1 to 64 lower-case letters, digits and '-' (not first or last), e.g. contoso", t.Name)
	}
	switch id := strings.TrimSpace(t.ID); {
	case id == "":
		v.add("tenant.id", "required: the tenant id (a GUID) or its initial domain, e.g. contoso.onmicrosoft.com")
	case !guidRE.MatchString(id) && !domainRE.MatchString(id):
		v.add("tenant.id", "%q is neither a tenant GUID (00000000-0000-0000-0000-000000000000) nor a domain (contoso.onmicrosoft.com)", id)
	}
	if _, ok := cloudEndpoints[strings.ToLower(strings.TrimSpace(t.Cloud))]; !ok && strings.TrimSpace(t.Cloud) != "" {
		v.add("tenant.cloud", "%q is not a cloud; use one of %s", t.Cloud, strings.Join(Clouds, ", "))
	}
	for _, e := range []struct{ path, value string }{
		{"tenant.endpoints.authority", t.Endpoints.Authority},
		{"tenant.endpoints.graph", t.Endpoints.Graph},
		{"tenant.endpoints.exchange", t.Endpoints.Exchange},
	} {
		if strings.TrimSpace(e.value) == "" {
			continue
		}
		if _, err := checkEndpoint(e.value); err != nil {
			v.add(e.path, "%v", err)
		}
	}
	if t.CAFile != "" {
		v.caFile("tenant.ca_file", t.CAFile)
	}
	if d := strings.TrimSpace(t.DNSServer); d != "" {
		if host, port, err := net.SplitHostPort(d); err != nil || host == "" || port == "" {
			v.add("tenant.dns_server", "%q is not host:port; use e.g. 10.0.0.53:53 (or leave it empty for the system resolver)", d)
		}
	}
}

// caFile checks that path is a readable PEM file holding at least one certificate.
func (v *validator) caFile(path, file string) {
	data, ok := v.readFile(path, file, "the CA certificate(s) to trust, in PEM form", MaxCertificateBytes)
	if !ok {
		return
	}
	certs := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				v.add(path, "%s holds a certificate that does not parse: %v", file, err)
				return
			}
			certs++
		}
	}
	if certs == 0 {
		v.add(path, "%s holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the CA certificate(s) in PEM form", file)
	}
}

func (v *validator) auth() {
	a := v.c.Auth
	method := strings.ToLower(strings.TrimSpace(a.Method))
	switch {
	case method == "":
		if m := a.inferredMethods(); len(m) > 1 {
			v.add("auth.method", "required: credentials for %s are all set; choose one with auth.method", strings.Join(m, " and "))
		} else {
			v.add("auth.method", "required: one of %s (certificate is recommended: auth.certificate_file with the app's certificate and key)", strings.Join(Methods, ", "))
		}
	case !slices.Contains(Methods, method):
		v.add("auth.method", "%q is not a method; use one of %s", a.Method, strings.Join(Methods, ", "))
		method = ""
	}

	id := strings.TrimSpace(a.ClientID)
	switch {
	case id == "" && method != MethodManagedIdentity:
		v.add("auth.client_id", "required: the application (client) id of the app registration, a GUID (Entra admin center > App registrations > Overview)")
	case id != "" && !guidRE.MatchString(id):
		v.add("auth.client_id", "%q is not a GUID; use the application (client) id of the app registration, e.g. 00000000-0000-0000-0000-000000000000", id)
	}
	if method == "" {
		return
	}

	// Credentials of other methods are a mistake, not harmless extras: which one would be used is a guess.
	unused := func(path string, set bool) {
		if set {
			v.add(path, "is set but auth.method is %s; remove it, or change auth.method", method)
		}
	}
	switch method {
	case MethodCertificate:
		if a.CertificateFile == "" {
			v.add("auth.certificate_file", "required for method certificate: a PEM file (certificate and private key) or a PFX/PKCS#12 file")
		} else {
			v.readable("auth.certificate_file", a.CertificateFile, "the app's certificate and private key (PEM or PFX)", MaxCertificateBytes)
		}
		if a.CertificatePasswordFile != "" {
			v.readable("auth.certificate_password_file", a.CertificatePasswordFile, "the PFX password", MaxSecretBytes)
			if !a.CertificatePassword.IsZero() {
				v.add("auth.certificate_password_file", "and %s are both set; keep one", envCertPassword)
			}
		}
		unused("auth.client_secret_file", a.ClientSecretFile != "")
		unused("auth.client_secret", !a.ClientSecret.IsZero())
		unused("auth.token_file", a.TokenFile != "")
	case MethodSecret:
		switch {
		case a.ClientSecretFile == "" && a.ClientSecret.IsZero():
			v.add("auth.client_secret_file", "required for method secret: a file holding the client secret (or set %s)", envClientSecret)
		case a.ClientSecretFile != "" && !a.ClientSecret.IsZero():
			v.add("auth.client_secret_file", "and %s are both set; keep one", envClientSecret)
		case a.ClientSecretFile != "":
			v.readable("auth.client_secret_file", a.ClientSecretFile, "the client secret", MaxSecretBytes)
		}
		unused("auth.certificate_file", a.CertificateFile != "")
		unused("auth.token_file", a.TokenFile != "")
	case MethodWorkloadIdentity:
		if a.TokenFile == "" {
			v.add("auth.token_file", "required for method workload-identity: the federated token file (the Azure workload identity webhook sets AZURE_FEDERATED_TOKEN_FILE)")
		} else {
			v.readable("auth.token_file", a.TokenFile, "the federated token", MaxSecretBytes)
		}
		unused("auth.certificate_file", a.CertificateFile != "")
		unused("auth.client_secret_file", a.ClientSecretFile != "")
		unused("auth.client_secret", !a.ClientSecret.IsZero())
	case MethodManagedIdentity:
		unused("auth.certificate_file", a.CertificateFile != "")
		unused("auth.client_secret_file", a.ClientSecretFile != "")
		unused("auth.client_secret", !a.ClientSecret.IsZero())
		unused("auth.token_file", a.TokenFile != "")
		if v.c.Tenant.Endpoints.Authority != "" {
			// ManagedIdentityCredential talks to the host's identity endpoint, never to an authority.
			v.add("tenant.endpoints.authority", "has no effect with auth.method managed-identity (tokens come from the host's identity endpoint); remove it")
		}
	}
}

// readable checks that file is a regular, readable, non-empty file. Only regular files: a FIFO or a device
// (/dev/stdin, /dev/zero) would block or never end. Kubernetes secret mounts are symlinks to regular files,
// which Stat follows.
func (v *validator) readable(path, file, what string, limit int64) {
	_, _ = v.readFile(path, file, what, limit)
}

// readFile is readable that also returns the content, at most limit bytes (MaxSecretBytes,
// MaxCertificateBytes).
func (v *validator) readFile(path, file, what string, limit int64) ([]byte, bool) {
	st, err := os.Stat(file)
	switch {
	case err != nil:
		v.add(path, "cannot read %s: %v; give the path of the file holding %s", file, unwrapPathErr(err), what)
		return nil, false
	case st.IsDir():
		v.add(path, "%s is a directory; give the path of the file holding %s", file, what)
		return nil, false
	case !st.Mode().IsRegular():
		v.add(path, "%s is not a regular file; give the path of the file holding %s", file, what)
		return nil, false
	case st.Size() == 0:
		v.add(path, "%s is empty; it should hold %s", file, what)
		return nil, false
	case st.Size() > limit:
		v.add(path, "%s is %d bytes, larger than %s, the most the worker reads for %s; is it the right file?", file, st.Size(), byteSize(limit), what)
		return nil, false
	}
	data, err := ReadFile(path, file, limit)
	switch {
	case errors.Is(err, ErrTooLarge): // it grew since Stat
		v.add(path, "%s is larger than %s, the most the worker reads for %s; is it the right file?", file, byteSize(limit), what)
		return nil, false
	case errors.Is(err, fs.ErrPermission):
		v.add(path, "cannot read %s: permission denied; the worker's user needs read access", file)
		return nil, false
	case err != nil:
		v.add(path, "cannot read %s: %v", file, unwrapPathErr(errors.Unwrap(err)))
		return nil, false
	}
	return data, true
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func (v *validator) exo() {
	e := v.c.EXO
	if e.MaxConcurrency < 1 || e.MaxConcurrency > 64 {
		v.add("exo.max_concurrency", "%d is out of range; use 1 to 64 (EXO budgets per tenant; 3 is a good start)", e.MaxConcurrency)
	}
	if !(e.RequestsPerSecond >= 0) || math.IsInf(e.RequestsPerSecond, 0) {
		v.add("exo.requests_per_second", "%v is not a rate; use 0 (unlimited until throttled, then learned) or a positive number", e.RequestsPerSecond)
	}
	if e.MaxRetries < 0 || e.MaxRetries > 20 {
		v.add("exo.max_retries", "%d is out of range; use 0 (never retry) to 20", e.MaxRetries)
	}
	if e.PageSize < 1 || e.PageSize > 1000 {
		v.add("exo.page_size", "%d is out of range; use 1 to 1000 (the admin API's maximum page size)", e.PageSize)
	}
	if f := strings.TrimSpace(e.FullReadEvery); f != "" {
		if d, err := time.ParseDuration(f); err != nil || d < time.Hour {
			v.add("exo.full_read_every", "%q is not a duration of at least 1h; use e.g. 24h (how often the kept Exchange results are read again in full)", f)
		}
	}
}

func (v *validator) store() {
	s := v.c.Store
	switch s.Driver {
	case DriverSQLite, "":
		if strings.TrimSpace(s.Path) == "" {
			v.add("store.path", "required: the SQLite database file, e.g. ./data/worker.db")
		}
	case DriverPostgres:
		v.storeDSN()
		if s.Schema != "" && !schemaRE.MatchString(s.Schema) {
			v.add("store.schema", "%q is not a plain schema name; use lower-case letters, digits and _ (e.g. exo_worker)", s.Schema)
		}
	default:
		v.add("store.driver", "%q is not a store driver; use sqlite (one tenant, one machine) or postgres (a fleet, several replicas)", s.Driver)
	}
}

var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// storeDSN checks where PostgreSQL's connection string comes from: exactly one place, and the password
// never in the config file.
func (v *validator) storeDSN() {
	s := v.c.Store
	var set []string
	if strings.TrimSpace(s.DSN) != "" {
		set = append(set, "store.dsn")
	}
	if s.DSNFile != "" {
		set = append(set, "store.dsn_file")
	}
	if !s.SecretDSN.IsZero() {
		set = append(set, envStoreDSN)
	}
	switch {
	case len(set) == 0:
		v.add("store.dsn", "required with driver postgres: set store.dsn_file (a file holding the connection string), "+
			envStoreDSN+", or store.dsn without a password (e.g. postgres://worker@db.example:5432/exo_worker, password from PGPASSWORD or ~/.pgpass)")
		return
	case len(set) > 1:
		v.add("store.dsn", "set only one of %s: they would disagree about which database to use", strings.Join(set, ", "))
		return
	}
	if set[0] == "store.dsn" && dsnHasPassword(s.DSN) {
		v.add("store.dsn", "holds a password, which is not read from the config file (files get printed, copied and committed); "+
			"put the connection string in a file and set store.dsn_file, or set "+envStoreDSN+", or use PGPASSWORD / ~/.pgpass")
	}
	if set[0] == "store.dsn_file" {
		if _, err := s.ConnString(); err != nil {
			v.add("store.dsn_file", "%v", strings.TrimPrefix(err.Error(), "store.dsn_file: "))
		}
	}
}

var kvPasswordRE = regexp.MustCompile(`(^|\s)password\s*=`)

// dsnHasPassword reports whether a connection string (URL or key=value form) carries a password.
func dsnHasPassword(dsn string) bool {
	dsn = strings.TrimSpace(dsn)
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			if _, ok := u.User.Password(); ok {
				return true
			}
			return u.Query().Has("password")
		}
		return strings.Contains(dsn, "password")
	}
	return kvPasswordRE.MatchString(dsn)
}

func (v *validator) server() {
	s := v.c.Server
	host, port, err := net.SplitHostPort(s.Listen)
	if err != nil {
		v.add("server.listen", "%q is not host:port; e.g. 127.0.0.1:8080 (or :8080 for every interface)", s.Listen)
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		v.add("server.listen", "port %q is not a port number (0-65535)", port)
	}
	if s.TokenFile != "" {
		v.readable("server.token_file", s.TokenFile, "the webhook bearer token", MaxSecretBytes)
	} else if !isLoopback(host) {
		v.add("server.token_file", "required when server.listen (%s) is reachable from other machines: the webhook starts runs and must be authenticated; give a file holding a long random token", s.Listen)
	}
	switch {
	case s.TLSCertFile != "" && s.TLSKeyFile == "":
		v.add("server.tls_key_file", "required with server.tls_cert_file: the PEM file of the certificate's private key")
	case s.TLSCertFile == "" && s.TLSKeyFile != "":
		v.add("server.tls_cert_file", "required with server.tls_key_file: the PEM file of the certificate (and its chain)")
	case s.TLSCertFile != "":
		cert, okc := v.readFile("server.tls_cert_file", s.TLSCertFile, "the server's PEM certificate (and chain)", MaxCertificateBytes)
		key, okk := v.readFile("server.tls_key_file", s.TLSKeyFile, "the server certificate's PEM private key", MaxSecretBytes)
		if okc && okk {
			if _, err := tls.X509KeyPair(cert, key); err != nil {
				v.add("server.tls_cert_file", "%s and %s (server.tls_key_file) are not a usable pair: %v; give the PEM certificate and its unencrypted PEM key", s.TLSCertFile, s.TLSKeyFile, err)
			}
		}
	case !isLoopback(host) && !s.AllowPlaintextNonLoopback:
		v.add("server.listen", "%s is reachable from other machines, and without TLS the token would cross the network in clear text; set server.tls_cert_file and server.tls_key_file, or listen on 127.0.0.1, or (with a TLS proxy in front) set server.allow_plaintext_non_loopback: true", s.Listen)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (v *validator) retention() {
	r := v.c.Retention
	for _, f := range []struct {
		path string
		days int
	}{{"retention.runs_days", r.RunsDays}, {"retention.journal_days", r.JournalDays}, {"retention.resolved_findings_days", r.ResolvedFindingsDays}} {
		if f.days < 0 {
			v.add(f.path, "%d is negative; give days to keep (0 = forever)", f.days)
		}
	}
	if r.JournalDays > 0 && (r.RunsDays == 0 || r.JournalDays < r.RunsDays) {
		v.add("retention.journal_days", "%d days is shorter than the runs are kept (retention.runs_days: %d); the journal is the audit trail of every change and what revert reads: keep it at least as long (default 400)", r.JournalDays, r.RunsDays)
	}
}

var logLevels = []string{"debug", "info", "warn", "error"}

func (v *validator) log() {
	if !slices.Contains(logLevels, v.c.Log.Level) {
		v.add("log.level", "%q is not a level; use one of %s", v.c.Log.Level, strings.Join(logLevels, ", "))
	}
}

// jobs has each named job check its own configuration (JobLibrary.Check: the settings every job has, the
// job's own keys, and the job built from them); a name the library does not know was reported when decoding.
func (v *validator) jobs() {
	names := make([]string, 0, len(v.c.Jobs))
	for name := range v.c.Jobs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		jc := v.c.Jobs[name]
		if jc == nil || v.c.lib == nil {
			continue
		}
		for _, fe := range v.c.lib.Check(name, jc) {
			v.add(join("jobs."+name, fe.Field), "%s", fe.Message)
		}
	}
}

// knownJob checks a job name an exception or a trigger refers to.
func (v *validator) knownJob(path, job string) bool {
	if !jobRE.MatchString(job) {
		v.add(path, "%q is not a job name; e.g. meu-richtext (see `worker jobs`)", job)
		return false
	}
	if v.c.lib != nil && !slices.Contains(v.c.lib.Names(), job) {
		v.add(path, "no job %q; known jobs: %s (see `worker jobs`)", job, strings.Join(v.c.lib.Names(), ", "))
		return false
	}
	return true
}

func (v *validator) exceptions() {
	seen := map[string]string{}
	for i, x := range v.c.Exceptions {
		p := fmt.Sprintf("exceptions[%d]", i)
		obj := strings.ToLower(strings.TrimSpace(x.Object))
		if obj == "" {
			v.add(p+".object", "required: the object's ExternalDirectoryObjectId or primary SMTP address")
		} else {
			key := obj + "|" + strings.ToLower(strings.Join(x.Jobs, ","))
			if first, dup := seen[key]; dup {
				v.add(p+".object", "%q is excepted twice for the same jobs (also %s); keep one", x.Object, first)
			}
			seen[key] = p
		}
		if strings.TrimSpace(x.Owner) == "" {
			v.add(p+".owner", "required: who asked for the exception (a person or team address), so someone can be asked before it is removed")
		}
		if strings.TrimSpace(x.Reason) == "" {
			v.add(p+".reason", "required: why the object is excepted")
		}
		for j, job := range x.Jobs {
			v.knownJob(fmt.Sprintf("%s.jobs[%d]", p, j), job)
		}
	}
}

var triggerSources = []string{"alertmanager", "azure-monitor"}

// triggers checks each alert rule: its shape, and that its job is one the configuration names (an alert may
// only start a job a person configured, with its mode and blast radius).
func (v *validator) triggers() {
	for i, tr := range v.c.Triggers {
		p := fmt.Sprintf("triggers[%d]", i)
		if !slices.Contains(triggerSources, tr.Source) {
			v.add(p+".source", "%q is not a webhook source; use one of %s", tr.Source, strings.Join(triggerSources, ", "))
		}
		switch {
		case strings.TrimSpace(tr.Job) == "":
			v.add(p+".job", "required: the job the alert runs, e.g. meu-richtext (see `worker jobs`)")
		case !v.knownJob(p+".job", tr.Job):
		case v.c.Jobs[tr.Job] == nil:
			v.add(p+".job", "job %s is not configured: add jobs.%s (its mode and blast radius) before alerts may start it", tr.Job, tr.Job)
		}
		for k := range tr.Match {
			if strings.TrimSpace(k) == "" {
				v.add(p+".match", "has an empty key; each key names an alert label or field to compare")
			}
		}
	}
}
