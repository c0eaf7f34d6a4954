package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/meurichtext"
)

// files is a temp dir with the files a valid config names.
type files struct {
	dir, ca, cert, secret, token, pfxPassword, webhook string
}

func newFiles(t *testing.T) files {
	t.Helper()
	dir := t.TempDir()
	f := files{dir: dir}
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f.ca = write("ca.pem", caPEM(t))
	f.cert = write("app.pem", "not parsed by config")
	f.secret = write("secret", "s3cr3t-value-from-file")
	f.token = write("token", "federated.jwt.token")
	f.pfxPassword = write("pfx-password", "pw")
	f.webhook = write("webhook-token", "abcdefghijklmnopqrstuvwxyz")
	return f
}

func caPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// validYAML is a complete certificate configuration over f's files.
func validYAML(f files) string {
	return fmt.Sprintf(`tenant:
  id: contoso.onmicrosoft.com
  cloud: global
  ca_file: %s
auth:
  method: certificate
  client_id: 11111111-2222-3333-4444-555555555555
  certificate_file: %s
jobs:
  meu-richtext: {schedule: "*/30 * * * *", mode: remediate, target: Never, max_changes: 500, max_change_percent: 20}
  address-audit: {schedule: "0 6 * * *"}
exceptions:
  - {object: jane@contoso.com, jobs: [meu-richtext], owner: it-ops@contoso.com, reason: "pilot", expires: 2027-01-31}
`, f.ca, f.cert)
}

func load(t *testing.T, yml string, env ...string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "worker.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, env, testLib)
	if err == nil {
		err = cfg.Validate()
	}
	return cfg, err
}

func TestLoadValid(t *testing.T) {
	f := newFiles(t)
	cfg, err := load(t, validYAML(f))
	if err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if cfg.Tenant.ID != "contoso.onmicrosoft.com" || cfg.Auth.Method != MethodCertificate || cfg.Auth.CertificateFile != f.cert {
		t.Errorf("tenant/auth not read: %+v %+v", cfg.Tenant, cfg.Auth)
	}
	// Defaults for what the file leaves out.
	if cfg.EXO != (EXO{MaxConcurrency: 3, RequestsPerSecond: 0, MaxRetries: 5, PageSize: 1000}) {
		t.Errorf("exo defaults %+v", cfg.EXO)
	}
	if cfg.Server.Listen != "127.0.0.1:8080" || cfg.Store.Path != "./data/worker.db" || cfg.Log.Level != "info" {
		t.Errorf("defaults: server %+v store %+v log %+v", cfg.Server, cfg.Store, cfg.Log)
	}
	rt, ok := cfg.Jobs["meu-richtext"].(*meurichtext.Config)
	if !ok || rt.Mode != jobs.ModeRemediate || rt.Target != "Never" || rt.MaxChanges != 500 ||
		rt.MaxChangePercent != 20 || rt.Schedule != "*/30 * * * *" {
		t.Errorf("jobs.meu-richtext = %#v, want the job's own configuration type, read", cfg.Jobs["meu-richtext"])
	}
	// What the file leaves out of a job's settings is the job's default: finite limits, an audit reports.
	if aa := cfg.Jobs["address-audit"].Common(); aa.MaxChanges != jobs.DefaultMaxChanges || aa.MaxChangePercent != jobs.DefaultMaxChangePercent ||
		aa.Mode != jobs.ModeReport || aa.Schedule != "0 6 * * *" {
		t.Errorf("jobs.address-audit = %+v, want its schedule and the defaults", aa)
	}
	if _, named := cfg.Jobs["meu-audit"]; named {
		t.Error("a job the file does not name is in cfg.Jobs")
	}
	if len(cfg.Exceptions) != 1 || cfg.Exceptions[0].Owner != "it-ops@contoso.com" ||
		!cfg.Exceptions[0].Expires.Equal(time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)) || cfg.Exceptions[0].Jobs[0] != "meu-richtext" {
		t.Errorf("exceptions = %+v", cfg.Exceptions)
	}
}

func TestExampleFileMatchesSchema(t *testing.T) {
	// The shipped example must only fail on the files it names (which do not exist here), never on a key.
	cfg, err := Load("example.yaml", nil, testLib)
	if err != nil {
		t.Fatalf("example.yaml: %v", err)
	}
	err = cfg.Validate()
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Validate = %v, want only the missing certificate file", err)
	}
	if len(verr.Problems) != 1 || verr.Problems[0].Path != "auth.certificate_file" {
		t.Errorf("problems %v, want only auth.certificate_file (the file does not exist here)", verr.Problems)
	}
}

// want is an expected problem: its path and a piece of its message.
type want struct{ path, text string }

func TestProblems(t *testing.T) {
	f := newFiles(t)
	valid := validYAML(f)
	tests := []struct {
		name string
		yml  string
		env  []string
		want []want
	}{
		{
			name: "issue 2: unknown key, bad cloud, no client id: all three with paths",
			yml: fmt.Sprintf(`tenant:
  id: contoso.onmicrosoft.com
  cloud: mars
  colour: blue
auth:
  method: certificate
  certificate_file: %s
`, f.cert),
			want: []want{
				{"tenant.colour", "unknown key"},
				{"tenant.cloud", `"mars" is not a cloud; use one of global, usgov-high, usgov-dod, china`},
				{"auth.client_id", "required: the application (client) id of the app registration"},
			},
		},
		{
			name: "every unknown key, at any depth, with a suggestion",
			yml:  valid + "stroe: {path: x}\nexo: {max_concurency: 3, page_size: 10}\njobs2: {}\n",
			want: []want{
				{"stroe", `did you mean "store"?`},
				{"exo.max_concurency", `did you mean "max_concurrency"?`},
				{"jobs2", "unknown key"},
			},
		},
		{
			name: "unknown key inside a job and an exception",
			yml: strings.Replace(strings.Replace(valid, "target: Never,", "target: Never, dryrun: true,", 1),
				`reason: "pilot",`, `reason: "pilot", ownr: x,`, 1),
			want: []want{{"jobs.meu-richtext.dryrun", "unknown key"}, {"exceptions[0].ownr", `did you mean "owner"?`}},
		},
		{
			name: "inline secret refused with where to put it",
			yml:  strings.Replace(valid, "  method: certificate\n", "  method: certificate\n  client_secret: hunter2\n", 1),
			want: []want{{"auth.client_secret", "auth.client_secret_file, or set WORKER_AUTH_CLIENT_SECRET"}},
		},
		{
			name: "wrong types, every one",
			yml:  valid + "exo: {max_concurrency: many, requests_per_second: fast, page_size: [1]}\nlog: info\n",
			want: []want{
				{"exo.max_concurrency", `"many" is not a whole number`},
				{"exo.requests_per_second", `"fast" is not a number`},
				{"exo.page_size", "must be a whole number, not a list"},
				{"log", "must be a mapping of keys (level)"},
			},
		},
		{
			name: "duplicate key",
			yml:  valid + "store: {path: a}\nstore: {path: b}\n",
			want: []want{{"store", "is set twice"}},
		},
		{
			name: "out of range tuning and bad listen",
			yml:  valid + "exo: {max_concurrency: 0, requests_per_second: -1, max_retries: 99, page_size: 5000, full_read_every: 5m}\nserver: {listen: nonsense}\nlog: {level: loud}\nstore: {path: \"\"}\n",
			want: []want{
				{"exo.max_concurrency", "use 1 to 64"},
				{"exo.requests_per_second", "use 0"},
				{"exo.max_retries", "use 0 (never retry) to 20"},
				{"exo.page_size", "use 1 to 1000"},
				{"exo.full_read_every", "at least 1h"},
				{"server.listen", "not host:port"},
				{"log.level", `"loud" is not a level`},
				{"store.path", "required"},
			},
		},
		{
			name: "listening on all interfaces needs a webhook token",
			yml:  valid + "server: {listen: \":8080\", allow_plaintext_non_loopback: true}\n",
			want: []want{{"server.token_file", "must be authenticated"}},
		},
		{
			name: "listening on all interfaces without TLS is refused unless allowed",
			yml:  valid + "server: {listen: \"0.0.0.0:8080\", token_file: " + f.webhook + "}\n",
			want: []want{{"server.listen", "server.allow_plaintext_non_loopback: true"}},
		},
		{
			name: "tls certificate without key",
			yml:  valid + "server: {tls_cert_file: " + f.ca + "}\n",
			want: []want{{"server.tls_key_file", "required with server.tls_cert_file"}},
		},
		{
			name: "tls pair that does not match",
			yml:  valid + "server: {tls_cert_file: " + f.ca + ", tls_key_file: " + f.secret + "}\n",
			want: []want{{"server.tls_cert_file", "not a usable pair"}},
		},
		{
			name: "bad jobs",
			yml: strings.Replace(valid, `address-audit: {schedule: "0 6 * * *"}`,
				`address-audit: {schedule: "every day", mode: fix, target: Never, max_changes: -1, max_change_percent: 150}
  meu-audit: {mode: remediate, max_changes: 0}
  meu-richtxt: {target: Never}
  Bad_Name: {}`, 1),
			want: []want{
				{"jobs.address-audit.schedule", "not a schedule"},
				{"jobs.address-audit.mode", `"fix" is not a mode; use one of report, dry-run, remediate`},
				{"jobs.address-audit.target", "unknown key"},
				{"jobs.address-audit.max_changes", "use 1 or more"},
				{"jobs.address-audit.max_change_percent", "more than 0 and at most 100"},
				{"jobs.meu-audit.mode", "an audit only reports"},
				{"jobs.meu-audit.max_changes", "use 1 or more"},
				{"jobs.meu-richtxt", `no job "meu-richtxt"; did you mean "meu-richtext"? (known jobs: address-audit, identity-audit, license-audit, mailbox-license`},
				{"jobs.Bad_Name", "no job"},
			},
		},
		{
			name: "mailbox-license needs its group, by object id",
			yml: strings.Replace(valid, `address-audit: {schedule: "0 6 * * *"}`, `address-audit: {schedule: "0 6 * * *"}
  mailbox-license: {mode: dry-run}`, 1),
			want: []want{{"jobs.mailbox-license.group_id", "required: the Object ID of the licensing group"}},
		},
		{
			name: "mailbox-license group by name",
			yml: strings.Replace(valid, `address-audit: {schedule: "0 6 * * *"}`, `address-audit: {schedule: "0 6 * * *"}
  mailbox-license: {group_id: LIC-Exchange}`, 1),
			want: []want{{"jobs.mailbox-license.group_id", `"LIC-Exchange" is not an object id`}},
		},
		{
			name: "meu-richtext target",
			yml:  strings.Replace(valid, "target: Never", "target: Sometimes", 1),
			want: []want{{"jobs.meu-richtext.target", "use one of Never, Always, UseDefaultSettings"}},
		},
		{
			name: "trigger of an unconfigured job, exception of an unknown one",
			yml: valid + "  - {object: bob@contoso.com, jobs: [meu-richtxt], owner: a, reason: b}\n" +
				"triggers:\n  - {source: alertmanager, job: meu-audit}\n  - {source: alertmanager, job: nope}\n",
			want: []want{
				{"exceptions[1].jobs[0]", `no job "meu-richtxt"`},
				{"triggers[0].job", "job meu-audit is not configured: add jobs.meu-audit"},
				{"triggers[1].job", `no job "nope"`},
			},
		},
		{
			name: "exceptions need object, owner, reason and a date",
			yml:  valid + "  - {jobs: [meu-richtext], expires: \"31/01/2027\"}\n  - {object: jane@contoso.com, jobs: [meu-richtext], owner: a, reason: b}\n",
			want: []want{
				{"exceptions[1].expires", "is not a date; write it as 2027-01-31"},
				{"exceptions[1].object", "required"},
				{"exceptions[1].owner", "required"},
				{"exceptions[1].reason", "required"},
				{"exceptions[2].object", "excepted twice"},
			},
		},
		{
			name: "triggers",
			yml:  valid + "triggers:\n  - {source: alertmanager, match: {alertname: MEUDrift}, job: meu-richtext, object_label: ids}\n  - {source: pagerduty, match: {\"\": x}}\n",
			want: []want{
				{"triggers[1].source", `"pagerduty" is not a webhook source`},
				{"triggers[1].job", "required"},
				{"triggers[1].match", "empty key"},
			},
		},
		{
			name: "quoted date is fine",
			yml:  strings.Replace(valid, "expires: 2027-01-31", `expires: "2027-01-31"`, 1),
		},
		{
			name: "endpoints must be https hosts; ca file must hold a certificate",
			yml: strings.Replace(strings.Replace(valid, "  cloud: global\n",
				"  cloud: global\n  endpoints: {authority: \"http://127.0.0.1:9443\", graph: \"https://g.example/v1.0\", exchange: \"not a url\"}\n", 1),
				f.ca, f.cert, 1),
			want: []want{
				{"tenant.endpoints.authority", "must use https"},
				{"tenant.endpoints.graph", "give only the host: https://g.example"},
				{"tenant.endpoints.exchange", "is not a URL"},
				{"tenant.ca_file", "holds no PEM certificate"},
			},
		},
		{
			name: "dns server must be host:port",
			yml:  strings.Replace(valid, "  cloud: global\n", "  cloud: global\n  dns_server: 10.0.0.53\n", 1),
			want: []want{{"tenant.dns_server", `"10.0.0.53" is not host:port`}},
		},
		{
			name: "missing files",
			yml:  strings.Replace(strings.Replace(valid, f.ca, "/nonexistent/ca.pem", 1), f.cert, "/nonexistent/app.pem", 1),
			want: []want{
				{"tenant.ca_file", "cannot read /nonexistent/ca.pem: no such file or directory"},
				{"auth.certificate_file", "cannot read /nonexistent/app.pem"},
			},
		},
		{
			name: "tenant id and client id formats",
			yml:  strings.Replace(strings.Replace(valid, "id: contoso.onmicrosoft.com", "id: not a tenant", 1), "11111111-2222-3333-4444-555555555555", "my-app", 1),
			want: []want{{"tenant.id", "neither a tenant GUID"}, {"auth.client_id", `"my-app" is not a GUID`}},
		},
		{
			name: "secret method needs exactly one secret source",
			yml:  fmt.Sprintf("tenant: {id: contoso.onmicrosoft.com}\nauth: {method: secret, client_id: 11111111-2222-3333-4444-555555555555, client_secret_file: %s}\n", f.secret),
			env:  []string{"WORKER_AUTH_CLIENT_SECRET=also"},
			want: []want{{"auth.client_secret_file", "and WORKER_AUTH_CLIENT_SECRET are both set"}},
		},
		{
			name: "secret method without a secret",
			yml:  "tenant: {id: contoso.onmicrosoft.com}\nauth: {method: secret, client_id: 11111111-2222-3333-4444-555555555555}\n",
			want: []want{{"auth.client_secret_file", "required for method secret"}},
		},
		{
			name: "credentials of another method",
			yml:  strings.Replace(valid, "  method: certificate\n", fmt.Sprintf("  method: certificate\n  token_file: %s\n", f.token), 1),
			want: []want{{"auth.token_file", "is set but auth.method is certificate"}},
		},
		{
			name: "method inferred when one credential is given",
			yml:  fmt.Sprintf("tenant: {id: contoso.onmicrosoft.com}\nauth: {client_id: 11111111-2222-3333-4444-555555555555, client_secret_file: %s}\n", f.secret),
		},
		{
			name: "method ambiguous",
			yml:  fmt.Sprintf("tenant: {id: contoso.onmicrosoft.com}\nauth: {client_id: 11111111-2222-3333-4444-555555555555, client_secret_file: %s, certificate_file: %s}\n", f.secret, f.cert),
			want: []want{{"auth.method", "certificate and secret are all set; choose one"}},
		},
		{
			name: "bad method",
			yml:  "tenant: {id: contoso.onmicrosoft.com}\nauth: {method: password, client_id: 11111111-2222-3333-4444-555555555555}\n",
			want: []want{{"auth.method", `"password" is not a method; use one of certificate, secret, workload-identity, managed-identity`}},
		},
		{
			name: "managed identity needs no client id",
			yml:  "tenant: {id: contoso.onmicrosoft.com}\nauth: {method: managed-identity}\n",
		},
		{
			name: "workload identity from the webhook's variables",
			yml:  "auth: {method: workload-identity}\n",
			env:  []string{"AZURE_FEDERATED_TOKEN_FILE=" + f.token, "AZURE_CLIENT_ID=11111111-2222-3333-4444-555555555555", "AZURE_TENANT_ID=22222222-3333-4444-5555-666666666666"},
		},
		{
			name: "empty file: what is required",
			yml:  "",
			want: []want{{"tenant.id", "required"}, {"auth.method", "required"}, {"auth.client_id", "required"}},
		},
		{
			name: "env value of the wrong type",
			yml:  valid,
			env:  []string{"WORKER_EXO_PAGE_SIZE=lots", "WORKER_TENANT_CLOUD=mars"},
			want: []want{{"exo.page_size", `WORKER_EXO_PAGE_SIZE="lots" is not a whole number`}, {"tenant.cloud", `"mars" is not a cloud`}},
		},
		{
			name: "two documents",
			yml:  valid + "---\ntenant: {id: x}\n",
			want: []want{{"", "more than one YAML document"}},
		},
		{
			name: "not a mapping at the top",
			yml:  "- a\n- b\n",
			want: []want{{"", "must be a mapping of keys"}, {"tenant.id", "required"}, {"auth.method", "required"}, {"auth.client_id", "required"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.yml, tc.env...)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error %v (%T), want *ValidationError", err, err)
			}
			var got []string
			for _, p := range verr.Problems {
				got = append(got, p.Path)
			}
			for _, w := range tc.want {
				i := slices.IndexFunc(verr.Problems, func(p Problem) bool { return p.Path == w.path })
				if i < 0 {
					t.Errorf("no problem at %q; got %v", w.path, err)
					continue
				}
				if !strings.Contains(verr.Problems[i].Message, w.text) {
					t.Errorf("%s: message %q does not contain %q", w.path, verr.Problems[i].Message, w.text)
				}
			}
			if len(verr.Problems) != len(tc.want) {
				t.Errorf("%d problems %v, want %d:\n%v", len(verr.Problems), got, len(tc.want), err)
			}
		})
	}
}

func TestProblemsCarryLinesAndEnv(t *testing.T) {
	f := newFiles(t)
	yml := validYAML(f) + "log: {level: loud}\n"
	_, err := load(t, strings.Replace(yml, "cloud: global", "cloud: mars", 1), "WORKER_AUTH_CLIENT_ID=bad")
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatal(err)
	}
	msg := err.Error()
	for _, s := range []string{
		`tenant.cloud (line 3): "mars" is not a cloud`,
		`auth.client_id (line 7, from WORKER_AUTH_CLIENT_ID): "bad" is not a GUID`,
		`log.level (line 14): "loud" is not a level`,
		"worker.yaml: 3 problems:",
	} {
		if !strings.Contains(msg, s) {
			t.Errorf("error does not contain %q:\n%s", s, msg)
		}
	}
	// Problems read top to bottom in file order.
	if !(strings.Index(msg, "tenant.cloud") < strings.Index(msg, "auth.client_id") && strings.Index(msg, "auth.client_id") < strings.Index(msg, "log.level")) {
		t.Errorf("problems not in file order:\n%s", msg)
	}
}

func TestEnvOverrides(t *testing.T) {
	f := newFiles(t)
	cfg, err := load(t, validYAML(f),
		"WORKER_TENANT_ID=22222222-3333-4444-5555-666666666666",
		"WORKER_TENANT_CLOUD=usgov-high",
		"WORKER_TENANT_ENDPOINTS_EXCHANGE=https://127.0.0.1:9443",
		"WORKER_AUTH_CLIENT_ID=33333333-4444-5555-6666-777777777777",
		"WORKER_EXO_MAX_CONCURRENCY=8",
		"WORKER_EXO_REQUESTS_PER_SECOND=2.5",
		"WORKER_AUTH_SEND_CERTIFICATE_CHAIN=true",
		"WORKER_LOG_LEVEL=DEBUG",
		"WORKER_STORE_PATH=", // empty counts as unset
		"WORKER_AUTH_CERTIFICATE_PASSWORD=pfx-pw",
		"UNRELATED=1",
	)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"tenant.id", cfg.Tenant.ID, "22222222-3333-4444-5555-666666666666"},
		{"tenant.cloud", cfg.Tenant.Cloud, CloudUSGovHigh},
		{"tenant.endpoints.exchange", cfg.Tenant.Endpoints.Exchange, "https://127.0.0.1:9443"},
		{"auth.client_id", cfg.Auth.ClientID, "33333333-4444-5555-6666-777777777777"},
		{"exo.max_concurrency", cfg.EXO.MaxConcurrency, 8},
		{"exo.requests_per_second", cfg.EXO.RequestsPerSecond, 2.5},
		{"auth.send_certificate_chain", cfg.Auth.SendCertificateChain, true},
		{"log.level", cfg.Log.Level, "debug"},
		{"store.path", cfg.Store.Path, "./data/worker.db"},
		{"certificate password", cfg.Auth.CertificatePassword.Reveal(), "pfx-pw"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestEnvNames(t *testing.T) {
	for path, want := range map[string]string{
		"tenant.id": "WORKER_TENANT_ID", "tenant.cloud": "WORKER_TENANT_CLOUD", "auth.client_id": "WORKER_AUTH_CLIENT_ID",
		"auth.client_secret_file": "WORKER_AUTH_CLIENT_SECRET_FILE", "tenant.endpoints.authority": "WORKER_TENANT_ENDPOINTS_AUTHORITY",
	} {
		if got := EnvName(path); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestSecretFromEnv(t *testing.T) {
	cfg, err := load(t, "tenant: {id: contoso.onmicrosoft.com}\nauth: {method: secret, client_id: 11111111-2222-3333-4444-555555555555}\n",
		"WORKER_AUTH_CLIENT_SECRET=hunter2-very-secret")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.ClientSecret.Reveal() != "hunter2-very-secret" {
		t.Fatalf("secret not read from env")
	}
	// Nothing that prints the config may show the secret.
	js, _ := json.Marshal(cfg)
	printed := []string{
		cfg.String(),
		fmt.Sprint(cfg.Auth), fmt.Sprintf("%+v", cfg.Auth), fmt.Sprintf("%#v", cfg.Auth), fmt.Sprintf("%v", *cfg), fmt.Sprintf("%q", cfg.Auth.ClientSecret),
		string(js),
	}
	for i, s := range printed {
		if strings.Contains(s, "hunter2") {
			t.Errorf("form %d leaks the secret: %s", i, s)
		}
	}
	if !strings.Contains(cfg.String(), "# auth client secret: set from WORKER_AUTH_CLIENT_SECRET (redacted)") {
		t.Errorf("String() does not say where the secret came from:\n%s", cfg.String())
	}
	if _, err := parse([]byte(cfg.String()), "printed.yaml", nil, testLib); err != nil {
		t.Errorf("printed config does not load back: %v", err)
	}
}

func TestStringRoundTrips(t *testing.T) {
	f := newFiles(t)
	cfg, err := load(t, validYAML(f))
	if err != nil {
		t.Fatal(err)
	}
	again, err := load(t, cfg.String())
	if err != nil {
		t.Fatalf("printed config does not load back: %v\n%s", err, cfg.String())
	}
	if again.String() != cfg.String() {
		t.Errorf("round trip changed the config:\n%s\n---\n%s", cfg.String(), again.String())
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		tenant  Tenant
		want    Endpoints
		wantErr string
	}{
		{"global by default", Tenant{}, Endpoints{Cloud: "global", Authority: "https://login.microsoftonline.com/", GraphURL: "https://graph.microsoft.com",
			ExchangeURL: "https://outlook.office365.com", GraphScope: "https://graph.microsoft.com/.default", ExchangeScope: "https://outlook.office365.com/.default"}, ""},
		{"usgov-high", Tenant{Cloud: "usgov-high"}, Endpoints{Cloud: "usgov-high", Authority: "https://login.microsoftonline.us/", GraphURL: "https://graph.microsoft.us",
			ExchangeURL: "https://outlook.office365.us", GraphScope: "https://graph.microsoft.us/.default", ExchangeScope: "https://outlook.office365.us/.default"}, ""},
		{"usgov-dod", Tenant{Cloud: "USGov-DoD"}, Endpoints{Cloud: "usgov-dod", Authority: "https://login.microsoftonline.us/", GraphURL: "https://dod-graph.microsoft.us",
			ExchangeURL: "https://outlook-dod.office365.us", GraphScope: "https://dod-graph.microsoft.us/.default", ExchangeScope: "https://outlook-dod.office365.us/.default"}, ""},
		{"china", Tenant{Cloud: "china"}, Endpoints{Cloud: "china", Authority: "https://login.chinacloudapi.cn/", GraphURL: "https://microsoftgraph.chinacloudapi.cn",
			ExchangeURL: "https://partner.outlook.cn", GraphScope: "https://microsoftgraph.chinacloudapi.cn/.default", ExchangeScope: "https://partner.outlook.cn/.default"}, ""},
		{"overrides keep the cloud's scopes", Tenant{Cloud: "usgov-high", Endpoints: EndpointOverrides{Authority: "https://127.0.0.1:9443/", Graph: "https://127.0.0.1:9443", Exchange: "https://exo.internal"}},
			Endpoints{Cloud: "usgov-high", Authority: "https://127.0.0.1:9443/", GraphURL: "https://127.0.0.1:9443", ExchangeURL: "https://exo.internal",
				GraphScope: "https://graph.microsoft.us/.default", ExchangeScope: "https://outlook.office365.us/.default", CustomAuthority: true}, ""},
		{"bad cloud", Tenant{Cloud: "mars"}, Endpoints{}, `tenant.cloud: "mars" is not a cloud`},
		{"bad override", Tenant{Endpoints: EndpointOverrides{Graph: "http://x"}}, Endpoints{}, "tenant.endpoints.graph"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.tenant.Resolve()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil, testLib)
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("err %v, want one naming the file", err)
	}
}

func TestSyntaxError(t *testing.T) {
	_, err := load(t, "tenant:\n  id: [unclosed\n")
	if err == nil || !strings.Contains(err.Error(), "worker.yaml") || !strings.Contains(err.Error(), "line") {
		t.Fatalf("err %v, want the file and the line", err)
	}
}

// FuzzLoad feeds arbitrary files to the loader: it must never panic, and an error must say something.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		"", "tenant: {id: x, cloud: mars}\nbogus: 1\n", "jobs:\n  a: {max_changes: 3, max_change_percent: 1.5}\n",
		"exceptions:\n  - {object: x, expires: 2027-01-31}\n  - {expires: \"2027-01-31T10:00:00Z\"}\n",
		"a: &x {b: 1}\nc: *x\n", "tenant: *unknown\n", "- 1\n", "tenant: {endpoints: {authority: https://h:1/}}\n",
		"jobs: {x: null, y: ~}\nexo: {max_concurrency: 1e9, page_size: 0x10}\n", "auth: {client_secret: x}\n---\n",
		"store: {path: a}\nstore: {path: b}\n", "tenant: {id: !!binary aGVsbG8=}\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		cfg, err := parse([]byte(data), "fuzz.yaml", []string{"WORKER_EXO_PAGE_SIZE=7"}, testLib)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if cfg == nil {
			t.Fatal("nil config without error")
		}
		_ = cfg.Validate()
		_ = cfg.String()
		_, _ = cfg.Tenant.Resolve()
	})
}

func TestAliasExpansionIsBounded(t *testing.T) {
	// One 1000-item list aliased by 1000 exceptions: a small file that expands to a million values.
	var b strings.Builder
	b.WriteString("x-jobs: &l [")
	for i := range 1000 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "job-%d", i)
	}
	b.WriteString("]\nx-exc: &e {object: a, owner: b, reason: c, jobs: *l}\nexceptions: [")
	for i := range 1000 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("*e")
	}
	b.WriteString("]\n")
	_, err := parse([]byte(b.String()), "bomb.yaml", nil, testLib)
	if err == nil || !strings.Contains(err.Error(), "expands to more than") {
		t.Fatalf("err %.500v, want the expansion refused", err)
	}
}

func TestStorePostgres(t *testing.T) {
	base := "tenant: {id: contoso.onmicrosoft.com}\nauth: {method: secret, client_id: 11111111-2222-3333-4444-555555555555}\n"
	dsnFile := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(dsnFile, []byte("postgres://worker:from-file-pw@db:5432/w\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		yml     string
		env     []string
		problem want   // zero = valid
		conn    string // the connection string when valid
	}{
		{name: "dsn without password", yml: "store: {driver: postgres, dsn: \"postgres://worker@db:5432/w\"}\n", conn: "postgres://worker@db:5432/w"},
		{name: "dsn file", yml: "store: {driver: postgres, dsn_file: " + dsnFile + "}\n", conn: "postgres://worker:from-file-pw@db:5432/w"},
		{name: "env secret", yml: "store: {driver: Postgres}\n", env: []string{"WORKER_STORE_DSN=host=db password=env-pw"}, conn: "host=db password=env-pw"},
		{name: "no dsn", yml: "store: {driver: postgres}\n", problem: want{"store.dsn", "required with driver postgres"}},
		{name: "password in url", yml: "store: {driver: postgres, dsn: \"postgres://worker:hunter2@db/w\"}\n", problem: want{"store.dsn", "holds a password"}},
		{name: "password in key=value", yml: "store: {driver: postgres, dsn: \"host=db password=hunter2\"}\n", problem: want{"store.dsn", "holds a password"}},
		{name: "two sources", yml: "store: {driver: postgres, dsn: \"postgres://db/w\", dsn_file: " + dsnFile + "}\n", problem: want{"store.dsn", "set only one of store.dsn, store.dsn_file"}},
		{name: "empty dsn file", yml: "store: {driver: postgres, dsn_file: " + empty + "}\n", problem: want{"store.dsn_file", "is empty"}},
		{name: "bad schema", yml: "store: {driver: postgres, dsn: \"postgres://db/w\", schema: \"Exo-Worker\"}\n", problem: want{"store.schema", "not a plain schema name"}},
		{name: "unknown driver", yml: "store: {driver: mysql}\n", problem: want{"store.driver", `"mysql" is not a store driver`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parse([]byte(base+tc.yml), "t.yaml", append([]string{"WORKER_AUTH_CLIENT_SECRET=x"}, tc.env...), testLib)
			if err == nil {
				err = cfg.Validate()
			}
			if tc.problem == (want{}) {
				if err != nil {
					t.Fatalf("problems: %v", err)
				}
				got, err := cfg.Store.ConnString()
				if err != nil || got.Reveal() != tc.conn {
					t.Errorf("ConnString = %q, %v; want %q", got.Reveal(), err, tc.conn)
				}
				for _, printed := range []string{cfg.String(), fmt.Sprintf("%+v", cfg.Store)} {
					if strings.Contains(printed, "env-pw") {
						t.Errorf("the connection string from the environment is printed: %s", printed)
					}
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err = %v, want a problem at %s", err, tc.problem.path)
			}
			found := false
			for _, p := range verr.Problems {
				if p.Path == tc.problem.path && strings.Contains(p.Message, tc.problem.text) {
					found = true
				}
				if strings.Contains(p.Message, "hunter2") {
					t.Errorf("problem repeats the password: %s", p)
				}
			}
			if !found {
				t.Errorf("problems %v, want %s: …%s…", verr.Problems, tc.problem.path, tc.problem.text)
			}
		})
	}
}

func TestTenantName(t *testing.T) {
	base := "tenant: {id: contoso.onmicrosoft.com%s}\nauth: {method: secret, client_id: 11111111-2222-3333-4444-555555555555}\n"
	env := []string{"WORKER_AUTH_CLIENT_SECRET=x"}
	cfg, err := parse([]byte(fmt.Sprintf(base, "")), "t.yaml", env, testLib)
	if err != nil || cfg.Validate() != nil || cfg.Tenant.Name != DefaultTenantName {
		t.Fatalf("no name: %v, %v, name %q; want the default", err, cfg.Validate(), cfg.Tenant.Name)
	}
	cfg, err = parse([]byte(fmt.Sprintf(base, ", name: cust-042")), "t.yaml", env, testLib)
	if err != nil || cfg.Validate() != nil || cfg.Tenant.Name != "cust-042" {
		t.Fatalf("name cust-042: %v, %v, %q", err, cfg.Validate(), cfg.Tenant.Name)
	}
	for _, bad := range []string{"Contoso", "-x", "x-", "a b", "a/b"} {
		cfg, err := parse([]byte(fmt.Sprintf(base, ", name: \""+bad+"\"")), "t.yaml", env, testLib)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), "tenant.name") {
			t.Errorf("name %q: %v, want a tenant.name problem", bad, err)
		}
	}
}
