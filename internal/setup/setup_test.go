package setup

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/audit"
	"github.com/exo-worker/worker/jobs/meurichtext"
)

var update = flag.Bool("update", false, "rewrite golden files")

func library(t *testing.T) []jobs.Job {
	t.Helper()
	rt, err := meurichtext.New("")
	if err != nil {
		t.Fatal(err)
	}
	return append([]jobs.Job{rt}, audit.Audits()...)
}

func TestRequirementsComeFromTheJobDeclarations(t *testing.T) {
	js := library(t)
	req, err := FromJobs(js)
	if err != nil {
		t.Fatal(err)
	}
	// Every cmdlet a job reads or writes, and nothing else.
	var want []string
	for _, j := range js {
		d := j.Describe()
		for _, q := range d.Reads {
			want = appendUnique(want, q.Cmdlet)
		}
		for _, w := range declaredWrites(d) {
			want = appendUnique(want, w.Cmdlet)
		}
	}
	slices.Sort(want)
	if got := req.CmdletNames(); !slices.Equal(got, want) {
		t.Errorf("cmdlets %v, want %v", got, want)
	}
	wantParams := []string{"Identity"}
	for _, w := range js[0].Describe().Writes {
		wantParams = append(wantParams, w.Params...)
	}
	slices.Sort(wantParams)
	if got := req.Cmdlets["Set-MailUser"]; !slices.Equal(got, wantParams) {
		t.Errorf("Set-MailUser parameters %v, want Identity and what meu-richtext declares: %v", got, wantParams)
	}
	if req.Cmdlets["Get-MailUser"] != nil {
		t.Errorf("a read keeps every parameter: %v", req.Cmdlets["Get-MailUser"])
	}
	if !sameFilter(req.WriteFilter, "IsDirSynced -eq 'True' -and RecipientTypeDetails -eq 'MailUser'") {
		t.Errorf("write filter %q", req.WriteFilter)
	}
	if !slices.Equal(req.ExchangeRoles, []string{"Exchange.ManageAsApp"}) || !slices.Contains(req.GraphRoles, "User.Read.All") {
		t.Errorf("roles %v %v", req.ExchangeRoles, req.GraphRoles)
	}

	// Job 1 alone needs no Graph permission and no view-only configuration role.
	only, err := FromJobs(js[:1])
	if err != nil {
		t.Fatal(err)
	}
	if len(only.GraphRoles) != 0 || !slices.Equal(only.CmdletNames(), []string{"Get-MailUser", "Get-RemoteDomain", "Set-MailUser"}) {
		t.Errorf("meu-richtext alone: %+v", only)
	}
	d, err := NewDesired("contoso.onmicrosoft.com", "", only, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Writes come from Mail Recipients; the remote-domain read from the view-only configuration role.
	if len(d.Roles) != 2 || d.Roles[0].Name != "exo-worker Mail Recipients" || d.Roles[1].Parent != "View-Only Configuration" ||
		d.Roles[0].Cmdlets["Get-RemoteDomain"] != nil {
		t.Errorf("roles %+v", d.Roles)
	}
}

func TestDesiredRefusesUnknownCmdletsAndLongNames(t *testing.T) {
	req := Requirements{Cmdlets: map[string][]string{"Get-Frobnicator": nil}}
	if _, err := NewDesired("t", "x", req, nil); err == nil || !strings.Contains(err.Error(), "Get-ManagementRole -Cmdlet Get-Frobnicator") {
		t.Errorf("unknown cmdlet: %v", err)
	}
	req = Requirements{Cmdlets: map[string][]string{"Get-MailUser": nil}}
	if _, err := NewDesired("t", strings.Repeat("n", 60), req, nil); err == nil || !strings.Contains(err.Error(), "64") {
		t.Errorf("long name: %v", err)
	}
}

// TestScriptGolden pins the PowerShell script; refresh with go test ./internal/setup -run Golden -update.
func TestScriptGolden(t *testing.T) {
	req, err := FromJobs(library(t))
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDesired("contoso.onmicrosoft.com", "exo-worker", req, []byte("fixed certificate bytes for the golden file"))
	if err != nil {
		t.Fatal(err)
	}
	got := Script(d, "exo-worker.crt")
	golden := filepath.Join("testdata", "setup.ps1")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("script differs from %s; rerun with -update if the change is intended\n%s", golden, got)
	}
	// Every step marker names an operation setup performs.
	for _, s := range ScriptSteps(got) {
		if s[0] == "" || s[1] == "" {
			t.Errorf("bad marker %v", s)
		}
	}
}

func TestCertificateIsOwnerOnlyAndReused(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.pem")
	now := timeNow()
	c, err := EnsureCertificate(p, "exo-worker", now, false)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 || !c.Created {
		t.Fatalf("key file mode %v created %v: %v", st.Mode().Perm(), c.Created, err)
	}
	pub, err := os.ReadFile(c.PublicFile)
	if err != nil || strings.Contains(string(pub), "PRIVATE") {
		t.Fatalf("public file holds a private key or is missing: %v", err)
	}
	again, err := EnsureCertificate(p, "exo-worker", now, false)
	if err != nil || again.Created || Thumbprint(again.DER) != Thumbprint(c.DER) {
		t.Fatalf("second run must reuse the certificate: %v", err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureCertificate(p, "exo-worker", now, false); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a key readable by others must be refused: %v", err)
	}
	dry, err := EnsureCertificate(filepath.Join(dir, "dry.pem"), "exo-worker", now, true)
	if err != nil || !dry.Created {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dry.pem")); err == nil {
		t.Fatal("a dry run wrote a key")
	}
}

func timeNow() time.Time { return time.Now() }
