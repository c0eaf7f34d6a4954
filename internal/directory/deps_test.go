package directory_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreDoesNotCompileGraphSDK keeps msgraph-sdk-go out of everything but internal/graph: a cold build of the
// SDK costs minutes and gigabytes, and jobs, exo and config must build and test without it (DESIGN.md).
func TestCoreDoesNotCompileGraphSDK(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH; run: go list -deps ./jobs/... ./exo/... ./config/... ./internal/setup/... ./internal/doctor/... | grep msgraph (must print nothing)")
	}
	cmd := exec.Command(goBin, "list", "-deps", "./jobs/...", "./exo/...", "./config/...", "./internal/setup/...", "./internal/doctor/...")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "github.com/exo-worker/worker/jobs") {
		t.Fatalf("go list did not list the jobs package; is the working directory the module root?\n%s", out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "msgraph") || strings.Contains(line, "kiota") {
			t.Errorf("jobs, exo or config depend on %s; only internal/graph may import msgraph-sdk-go", line)
		}
	}
}
