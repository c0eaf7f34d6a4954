package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDoctorSimPassesAndPrintsJSON(t *testing.T) {
	out, errOut, code := runAll(t, "doctor", "--sim", "--output", "json")
	if code != 0 {
		t.Fatalf("doctor --sim exited %d\n%s\n%s", code, out, tail(errOut, 20))
	}
	var rep struct {
		Schema  string `json:"schema"`
		Results []struct{ Check, Status, Detail string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Schema != "exo-worker/doctor/v1" {
		t.Fatalf("one JSON document expected: %v\n%s", err, out)
	}
	seen := map[string]string{}
	for _, r := range rep.Results {
		seen[r.Check] = r.Status
		if r.Status == "FAIL" || r.Status == "WARN" {
			t.Errorf("%s: %s %s", r.Check, r.Status, r.Detail)
		}
	}
	for _, c := range []string{"token exchange", "exo write probe", "graph read probe"} {
		if seen[c] != "PASS" {
			t.Errorf("%s: %q", c, seen[c])
		}
	}
}

func TestDoctorExits1OnFailure(t *testing.T) {
	out, _, code := runAll(t, "doctor", "--config", "/nonexistent/worker.yaml")
	if code != 1 || !strings.Contains(out, "FAIL  config") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}
