package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestLoadDevZeroFailsBounded: `worker config validate --config /dev/zero` once grew to 24 GB. Reading stops
// after MaxConfigBytes+1 bytes, and the message names the file and the limit.
func TestLoadDevZeroFailsBounded(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero here")
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Load("/dev/zero", nil, testLib)
	runtime.ReadMemStats(&after)
	if err == nil || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
	for _, want := range []string{"/dev/zero", "1 MiB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not name %q", err, want)
		}
	}
	// Allocation, not time: reading the whole limit twice over is the most a bounded reader may cost.
	if got := after.TotalAlloc - before.TotalAlloc; got > 8*MaxConfigBytes {
		t.Errorf("reading /dev/zero allocated %d bytes, want at most %d", got, 8*MaxConfigBytes)
	}
}

func TestLoadRefusesOversizedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	data := "# " + strings.Repeat("x", MaxConfigBytes) + "\ntenant: {id: contoso.onmicrosoft.com}\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, nil, testLib)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err %v, want ErrTooLarge naming %s", err, path)
	}
}

// TestSecretFilesAreBounded: a secret, password or token file beyond MaxSecretBytes is a problem naming the
// field, the file and the limit, and so is a certificate beyond MaxCertificateBytes.
func TestSecretFilesAreBounded(t *testing.T) {
	f := newFiles(t)
	big := filepath.Join(f.dir, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("s", MaxSecretBytes+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(f.dir, "huge")
	if err := os.WriteFile(huge, []byte(strings.Repeat("c", MaxCertificateBytes+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	const id = "11111111-2222-3333-4444-555555555555"
	for _, tc := range []struct {
		name, yaml, path, limit string
	}{
		{"client secret", fmt.Sprintf("tenant: {id: contoso.onmicrosoft.com}\nauth: {method: secret, client_id: %s, client_secret_file: %s}\n", id, big), "auth.client_secret_file", "64 KiB"},
		{"token", fmt.Sprintf("tenant: {id: contoso.onmicrosoft.com}\nauth: {method: workload-identity, client_id: %s, token_file: %s}\n", id, big), "auth.token_file", "64 KiB"},
		{"pfx password", fmt.Sprintf("tenant: {id: contoso.onmicrosoft.com}\nauth: {method: certificate, client_id: %s, certificate_file: %s, certificate_password_file: %s}\n", id, f.cert, big), "auth.certificate_password_file", "64 KiB"},
		{"server token", fmt.Sprintf("tenant: {id: contoso.onmicrosoft.com}\nauth: {method: certificate, client_id: %s, certificate_file: %s}\nserver: {token_file: %s}\n", id, f.cert, big), "server.token_file", "64 KiB"},
		{"certificate", fmt.Sprintf("tenant: {id: contoso.onmicrosoft.com}\nauth: {method: certificate, client_id: %s, certificate_file: %s}\n", id, huge), "auth.certificate_file", "1 MiB"},
		{"ca", fmt.Sprintf("tenant: {id: contoso.onmicrosoft.com, ca_file: %s}\nauth: {method: certificate, client_id: %s, certificate_file: %s}\n", huge, id, f.cert), "tenant.ca_file", "1 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.yaml)
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err %v, want a ValidationError", err)
			}
			found := false
			for _, p := range verr.Problems {
				if p.Path == tc.path && strings.Contains(p.Message, tc.limit) && strings.Contains(p.Message, f.dir) {
					found = true
				}
			}
			if !found {
				t.Errorf("no problem at %s naming the file and %s in:\n%v", tc.path, tc.limit, err)
			}
		})
	}
}

func TestReadFileBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(strings.Repeat("a", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile("auth.client_secret_file", path, 100); err != nil || len(b) != 100 {
		t.Fatalf("at the limit: %d bytes, %v", len(b), err)
	}
	_, err := ReadFile("auth.client_secret_file", path, 99)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "auth.client_secret_file") || !strings.Contains(err.Error(), "99 bytes") {
		t.Fatalf("over the limit: %v", err)
	}
}

// TestProblemListIsCapped: a file of 300,000 unknown keys printed 38 MB of errors. The first MaxProblems are
// listed, then a count of the rest.
func TestProblemListIsCapped(t *testing.T) {
	var b strings.Builder
	const keys = 50_000
	for i := range keys {
		fmt.Fprintf(&b, "k%d: 1\n", i)
	}
	_, err := parse([]byte(b.String()), "many.yaml", nil, testLib)
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err %T %v", err, err)
	}
	if len(verr.Problems) != MaxProblems {
		t.Errorf("%d problems listed, want %d", len(verr.Problems), MaxProblems)
	}
	if verr.Omitted < keys-MaxProblems {
		t.Errorf("omitted %d, want at least %d", verr.Omitted, keys-MaxProblems)
	}
	msg := err.Error()
	if !strings.Contains(msg, fmt.Sprintf("and %d more", verr.Omitted)) {
		t.Errorf("message does not count the rest: %.300s…", msg[len(msg)-300:])
	}
	if len(msg) > 64<<10 {
		t.Errorf("message is %d bytes", len(msg))
	}
	// The first problem in the file comes first.
	if verr.Problems[0].Path != "k0" {
		t.Errorf("first problem at %q, want k0", verr.Problems[0].Path)
	}
}

// TestLongValuesAreClipped: a 20 MB value was echoed back whole; a message repeats its start and its size.
func TestLongValuesAreClipped(t *testing.T) {
	long := strings.Repeat("z", 500_000)
	for _, tc := range []struct{ name, yaml string }{
		{"value", "tenant: {id: " + long + "}\n"},
		{"key", "? " + long + "\n: 1\n"},
		{"endpoint", "tenant: {endpoints: {graph: http://" + long + "}}\n"},
		{"wrong type", "exo: {max_concurrency: " + long + "}\n"},
		{"date", "exceptions: [{object: a, owner: b, reason: c, expires: " + long + "}]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parse([]byte(tc.yaml), "long.yaml", nil, testLib)
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil {
				t.Fatal("no error")
			}
			if n := len(err.Error()); n > 8<<10 {
				t.Errorf("message is %d bytes, want it clipped", n)
			}
			if !strings.Contains(err.Error(), "500000 bytes in all") {
				t.Errorf("message does not give the value's size: %.600s", err)
			}
		})
	}
	if got := Clip("short"); got != "short" {
		t.Errorf("Clip(short) = %q", got)
	}
}

// TestScheduleIntervalsRefused: "@every 0s" (or negative, or under a second) once validated and ran every
// second. Validation refuses them at the field path.
func TestScheduleIntervalsRefused(t *testing.T) {
	f := newFiles(t)
	for _, spec := range []string{"@every 0s", "@every -1m", "@every 100ms", "CRON_TZ=Europe/Paris @every 0s"} {
		t.Run(spec, func(t *testing.T) {
			yml := strings.Replace(validYAML(f), `schedule: "*/30 * * * *"`, fmt.Sprintf("schedule: %q", spec), 1)
			_, err := load(t, yml)
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err %v, want a ValidationError", err)
			}
			if len(verr.Problems) != 1 || verr.Problems[0].Path != "jobs.meu-richtext.schedule" || !strings.Contains(verr.Problems[0].Message, "at least 1s") {
				t.Errorf("problems %v, want one at jobs.meu-richtext.schedule", verr.Problems)
			}
		})
	}
}

func TestRetention(t *testing.T) {
	f := newFiles(t)
	cfg, err := load(t, validYAML(f))
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Retention; r.RunsDays != 90 || r.JournalDays != 400 || r.ResolvedFindingsDays != 180 {
		t.Errorf("defaults %+v, want 90/400/180 days", r)
	}
	for _, tc := range []struct{ yaml, path, msg string }{
		{"retention: {runs_days: -1}\n", "retention.runs_days", "negative"},
		{"retention: {runs_days: 90, journal_days: 30}\n", "retention.journal_days", "audit trail"},
	} {
		_, err := load(t, validYAML(f)+tc.yaml)
		var verr *ValidationError
		if !errors.As(err, &verr) || len(verr.Problems) != 1 || verr.Problems[0].Path != tc.path || !strings.Contains(verr.Problems[0].Message, tc.msg) {
			t.Errorf("%s: %v, want one problem at %s", strings.TrimSpace(tc.yaml), err, tc.path)
		}
	}
	cfg, err = load(t, validYAML(f)+"retention: {runs_days: 0, journal_days: 0}\n", "WORKER_RETENTION_RESOLVED_FINDINGS_DAYS=0")
	if err != nil || cfg.Retention != (Retention{}) {
		t.Errorf("forever: %+v, %v", cfg.Retention, err)
	}
}
