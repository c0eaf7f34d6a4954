package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/exo-worker/worker/exo"
)

// TestSetupThenDoctorThenRunWithTheCreatedIdentity is the README's road on a real tenant, against a running
// simulated tenant: worker setup (device-code admin sign-in) creates the identity and writes worker.yaml;
// worker doctor passes on it; worker run meu-richtext fixes every MEU with it; the same identity is refused
// a write to a mailbox or a guest; a second setup changes nothing; --remove deletes what setup made.
func TestSetupThenDoctorThenRunWithTheCreatedIdentity(t *testing.T) {
	p, simCfg := simProcess(t)
	defer p.cmd.Process.Kill()
	dir := t.TempDir()
	out := filepath.Join(dir, "worker.yaml")
	pem := filepath.Join(dir, "exo-worker.pem")

	stdout, stderr, code := runAll(t, "setup", "--config", simCfg, "--cert-file", pem, "--out", out)
	if code != 0 {
		t.Fatalf("setup exited %d\n%s\n%s", code, stdout, tail(stderr, 30))
	}
	if !strings.Contains(stderr, "enter the code") {
		t.Errorf("no device-code prompt on stderr:\n%s", tail(stderr, 10))
	}
	for _, want := range []string{"App registration   exo-worker  (app id ", "Write scope        exo-worker write scope", "Configuration      " + out} {
		if !strings.Contains(stdout, want) {
			t.Errorf("setup output lacks %q:\n%s", want, stdout)
		}
	}
	if st, err := os.Stat(pem); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("certificate key file: %v %v", st, err)
	}

	if stdout, stderr, code := runAll(t, "doctor", "--config", out); code != 0 || strings.Contains(stdout, "FAIL") {
		t.Fatalf("doctor on the created identity exited %d\n%s\n%s", code, stdout, tail(stderr, 20))
	}
	if stdout, stderr, code := runAll(t, "run", "meu-richtext", "--config", out, "--output", "json"); code != 0 {
		t.Fatalf("run with the created identity exited %d\n%s\n%s", code, tail(stdout, 20), tail(stderr, 20))
	} else if run := decodeRun(t, stdout); run.Applied == 0 || run.Failed != 0 || run.Verified != run.Applied {
		t.Fatalf("run: %+v", run)
	}
	for id, v := range inScope(t, tenantClient(t, simCfg)) {
		if v != "Never" {
			t.Fatalf("MEU %s still %s", id, v)
		}
	}

	// The same identity cannot touch a mailbox or a guest.
	app := tenantClient(t, out)
	admin := tenantClient(t, simCfg)
	var mailbox, guest string
	for r, err := range exo.Values[exo.Recipient](context.Background(), admin, exo.Command{Name: "Get-Recipient", Params: map[string]any{"ResultSize": "Unlimited"}}) {
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case r.RecipientTypeDetails == "UserMailbox" && mailbox == "":
			mailbox = r.ExternalDirectoryObjectId
		case r.RecipientTypeDetails == "GuestMailUser" && guest == "":
			guest = r.ExternalDirectoryObjectId
		}
	}
	_, err := app.Invoke(context.Background(), exo.Command{Name: "Set-Mailbox", Params: map[string]any{"Identity": mailbox, "UseMapiRichTextFormat": "Never"}})
	if e := (*exo.Error)(nil); !errors.As(err, &e) || !strings.Contains(e.Message, "is not recognized as the name of a cmdlet") {
		t.Errorf("mailbox write: %v", err)
	}
	_, err = app.Invoke(context.Background(), exo.Command{Name: "Set-MailUser", Params: map[string]any{"Identity": guest, "UseMapiRichTextFormat": "Never"}})
	if !exo.IsKind(err, exo.KindOutOfWriteScope) {
		t.Errorf("guest write: %v", err)
	}

	if stdout, _, code := runAll(t, "setup", "--config", simCfg, "--cert-file", pem, "--out", out); code != 0 || !strings.Contains(stdout, "nothing changed") {
		t.Errorf("second setup must change nothing (exit %d):\n%s", code, stdout)
	}
	if stdout, _, code := runAll(t, "setup", "--config", simCfg, "--remove"); code != 0 || !strings.Contains(stdout, "Removed 6 objects") {
		t.Errorf("remove (exit %d):\n%s", code, stdout)
	}
}
