package doctor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/config"
	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/auth"
	"github.com/exo-worker/worker/internal/setup"
	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/audit"
	"github.com/exo-worker/worker/jobs/library"
	"github.com/exo-worker/worker/jobs/meurichtext"
)

// simYAML points a worker at s with the simulated app's secret; extra is appended.
func simYAML(s *sim.Server, extra string) string {
	return fmt.Sprintf(`tenant:
  id: %s
  endpoints: {authority: %s, graph: %s, exchange: %s}
  ca_file: %s
auth:
  method: secret
  client_id: %s
  client_secret_file: %s
store:
  path: %s
%s`, s.Creds.TenantID, s.URL, s.URL, s.URL, s.CAFile, s.Creds.ClientID, s.Creds.SecretFile, filepath.Join(s.Dir, "worker.db"), extra)
}

func startSim(t *testing.T) *sim.Server {
	t.Helper()
	s, err := sim.Start(sim.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// options builds doctor's options from a configuration file the way `worker doctor` does, with the whole
// job library enabled.
func options(t *testing.T, yaml string) Options {
	t.Helper()
	path := filepath.Join(t.TempDir(), "worker.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{Uid: os.Getuid()}
	lib, err := library.New()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil, lib)
	if err == nil {
		err = cfg.Validate()
	}
	o.Config, o.ConfigErr = cfg, err
	if err != nil {
		return o
	}
	rt, _ := meurichtext.New("")
	if o.Req, err = setup.FromJobs(append([]jobs.Job{rt}, audit.Audits()...)); err != nil {
		t.Fatal(err)
	}
	o.Schedules = map[string]string{}
	for n, jc := range cfg.Jobs {
		o.Schedules[n] = jc.Common().Schedule
	}
	if o.Endpoints, err = cfg.Tenant.Resolve(); err != nil {
		t.Fatal(err)
	}
	if o.HTTPClient, err = auth.HTTPClient(cfg); err != nil {
		t.Fatal(err)
	}
	if o.Credential, err = auth.NewCredential(cfg, o.HTTPClient, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	o.EXO, err = exo.New(exo.Options{BaseURL: o.Endpoints.ExchangeURL, Tenant: cfg.Tenant.ID, Credential: o.Credential,
		Scope: o.Endpoints.ExchangeScope, HTTPClient: o.HTTPClient, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func statusOf(t *testing.T, r *Report, check string) *Result {
	t.Helper()
	res := r.Find(check)
	if res == nil {
		var b strings.Builder
		r.WriteText(&b)
		t.Fatalf("no %q check in the report:\n%s", check, b.String())
	}
	return res
}

func dump(r *Report) string {
	var b strings.Builder
	r.WriteText(&b)
	return b.String()
}

func TestDoctorPassesOnTheSimulatedTenant(t *testing.T) {
	s := startSim(t)
	rep := Run(context.Background(), options(t, simYAML(s, "jobs:\n  meu-richtext: {schedule: \"*/30 * * * *\"}\n")))
	if !rep.OK() || rep.Count(Warn) > 0 {
		t.Fatalf("doctor on the simulator:\n%s", dump(rep))
	}
	for _, c := range []string{"config", "clock", "network authority", "network graph", "network exchange", "token exchange",
		"token graph", "exo read probe", "exo write probe", "graph read probe", "store", "schedule meu-richtext"} {
		if got := statusOf(t, rep, c); got.Status != Pass {
			t.Errorf("%s: %s %s", c, got.Status, got.Detail)
		}
	}
	// The write probe wrote the value the object holds: nothing changed in the tenant.
	for _, e := range s.Log.Entries() {
		if e.Cmdlet == "Set-MailUser" && e.Status != 200 {
			t.Errorf("write probe answered %d", e.Status)
		}
	}
	if got := statusOf(t, rep, "schedule meu-richtext").Detail; strings.Count(got, ", ") != 2 {
		t.Errorf("schedule detail should list three times: %s", got)
	}
	// JSON is one document with the schema name.
	b, _ := json.Marshal(rep)
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.Schema != Schema || len(back.Results) != len(rep.Results) {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
}

// otherCA writes a CA certificate that did not sign the simulator's certificate.
func otherCA(t *testing.T) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "some proxy CA"}, IsCA: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDoctorNamesAnUntrustedCA(t *testing.T) {
	s := startSim(t)
	yaml := strings.Replace(simYAML(s, ""), s.CAFile, otherCA(t), 1)
	rep := Run(context.Background(), options(t, yaml))
	if rep.OK() {
		t.Fatalf("doctor passed with the wrong CA:\n%s", dump(rep))
	}
	for _, c := range []string{"network authority", "network graph", "network exchange"} {
		r := statusOf(t, rep, c)
		if r.Status != Fail || !strings.Contains(r.Detail, "does not trust") || !strings.Contains(r.Fix, "tenant.ca_file") {
			t.Errorf("%s: %+v", c, r)
		}
	}
}

func TestDoctorNamesClockSkew(t *testing.T) {
	s := startSim(t)
	o := options(t, simYAML(s, ""))
	for _, tc := range []struct {
		offset time.Duration
		want   Status
	}{{0, Pass}, {-3 * time.Minute, Warn}, {12 * time.Minute, Fail}} {
		o.Now = func() time.Time { return time.Now().Add(tc.offset) }
		d := &doc{o: o, rep: &Report{}}
		d.checkClock(context.Background())
		r := statusOf(t, d.rep, "clock")
		if r.Status != tc.want {
			t.Errorf("offset %v: %s %s", tc.offset, r.Status, r.Detail)
		}
		if tc.want == Fail && !strings.Contains(r.Detail, "ahead of") {
			t.Errorf("offset %v: detail should say the local clock is ahead: %s", tc.offset, r.Detail)
		}
	}
}

func TestDoctorChecksTokenFileAndSchedules(t *testing.T) {
	s := startSim(t)
	tf := filepath.Join(t.TempDir(), "api.token")
	if err := os.WriteFile(tf, []byte("secret-token"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := options(t, simYAML(s, "server: {token_file: "+tf+"}\njobs:\n  meu-richtext: {schedule: \"0 6 * * 1\"}\n"))
	o.Now = func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }
	d := &doc{o: o, rep: &Report{}}
	d.checkTokenFile()
	d.checkSchedules()
	if r := statusOf(t, d.rep, "api token file"); r.Status != Fail || r.Fix != "chmod 600 "+tf {
		t.Errorf("token file 0644: %+v", r)
	}
	r := statusOf(t, d.rep, "schedule meu-richtext")
	if !strings.Contains(r.Detail, "2026-11-30 06:00:00") || !strings.Contains(r.Detail, "2026-12-14 06:00:00") {
		t.Errorf("next Mondays 06:00: %s", r.Detail)
	}
	if err := os.Chmod(tf, 0o600); err != nil {
		t.Fatal(err)
	}
	d = &doc{o: o, rep: &Report{}}
	d.checkTokenFile()
	if r := statusOf(t, d.rep, "api token file"); r.Status != Pass {
		t.Errorf("token file 0600: %+v", r)
	}
}

func TestDoctorStopsAtAnInvalidConfig(t *testing.T) {
	s := startSim(t)
	rep := Run(context.Background(), options(t, strings.Replace(simYAML(s, ""), "method: secret", "method: password", 1)))
	if rep.OK() || len(rep.Results) != 1 || rep.Results[0].Check != "config" || !strings.Contains(rep.Results[0].Detail, "auth.method") {
		t.Fatalf("invalid config:\n%s", dump(rep))
	}
}

func TestDoctorReportsRemoteDomainsThatForceTNEF(t *testing.T) {
	s := startSim(t)
	on := true
	s.SetRemoteDomain(sim.RemoteDomain{Name: "Default", DomainName: "*", TNEFEnabled: &on})
	rep := Run(context.Background(), options(t, simYAML(s, "")))
	r := statusOf(t, rep, "remote domains")
	if r.Status != Warn || !strings.Contains(r.Detail, "Default (*)") || !strings.Contains(r.Fix, "prefer_message_format") {
		t.Fatalf("%+v", r)
	}
}
