package main

import (
	"os"
	"strings"
	"testing"
)

// TestRunJob1InSovereignClouds runs meu-richtext with cloud usgov-high and china against the simulator:
// the hosts are overridden, the token scopes stay the cloud's (https://outlook.office365.us/.default,
// https://partner.outlook.cn/.default), and the simulated APIs accept those audiences.
func TestRunJob1InSovereignClouds(t *testing.T) {
	for _, cloud := range []string{"usgov-high", "china"} {
		t.Run(cloud, func(t *testing.T) {
			p, cfg := simProcess(t)
			defer p.cmd.Process.Kill()
			b, err := os.ReadFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			y := strings.Replace(string(b), "cloud: global", "cloud: "+cloud, 1)
			if y == string(b) {
				t.Fatal("the simulator's config has no cloud line")
			}
			if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := runAll(t, "run", "meu-richtext", "--config", cfg, "--output", "json")
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, tail(out, 20), tail(errOut, 20))
			}
			if run := decodeRun(t, out); run.Verified == 0 || run.Failed != 0 {
				t.Fatalf("run in %s: %+v", cloud, run)
			}
		})
	}
}
