package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/config"
	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/jobs/library"
)

// workerBin is the worker binary the integration tests run as real child processes, built once.
var workerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "worker-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(1)
	}
	workerBin = filepath.Join(dir, "worker")
	build := exec.Command("go", "build", "-o", workerBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build worker binary:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a worker child process: stdout lines are collected for the test to wait on, stderr (the log)
// goes to a file printed when the test fails.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	notify chan struct{}
	done   chan struct{}
	err    error // exit error, set when done is closed
	log    string
}

func startWorker(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, notify: make(chan struct{}, 1), done: make(chan struct{})}
	p.log = filepath.Join(t.TempDir(), name+".log")
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(workerBin, args...)
	p.cmd.Env = append(filteredEnv(), "WORKER_LOG_LEVEL=info")
	p.cmd.Stderr = logf
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			select {
			case p.notify <- struct{}{}:
			default:
			}
		}
		p.err = p.cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, b)
		}
	})
	return p
}

// filteredEnv is the environment without WORKER_* settings that could point a child at another config.
func filteredEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WORKER_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitLine waits for a stdout line starting with prefix and returns it.
func (p *proc) waitLine(prefix string, within time.Duration) string {
	p.t.Helper()
	deadline := time.After(within)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if strings.HasPrefix(l, prefix) {
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		select {
		case <-p.notify:
		case <-p.done:
			p.t.Fatalf("%s exited (%v) before printing %q", p.name, p.err, prefix)
		case <-deadline:
			p.t.Fatalf("%s printed no %q within %s", p.name, prefix, within)
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(within time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("%s did not exit within %s", p.name, within)
	}
	return p.cmd.ProcessState.ExitCode()
}

// simProcess starts `worker sim serve` writing its config into a new directory, and returns the process
// and the config path. The daemon tests append a server section and point `worker serve` at it.
func simProcess(t *testing.T, args ...string) (*proc, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "worker.yaml")
	p := startWorker(t, "sim", append([]string{"sim", "serve", "--dir", dir, "--write-config", cfg}, args...)...)
	p.waitLine("simulated tenant at", 30*time.Second)
	return p, cfg
}

const testToken = "0123456789abcdef0123456789abcdef"

// addServerSection appends a server token and an Alertmanager trigger to a config written by the simulator.
func addServerSection(t *testing.T, cfgPath string) {
	t.Helper()
	tok := filepath.Join(filepath.Dir(cfgPath), "token")
	if err := os.WriteFile(tok, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "server:\n  token_file: %s\n", tok)
}

// tenantClient is an exo client for the simulated tenant of a config: the test's own view of the ground
// truth, through the real client.
func tenantClient(t *testing.T, cfgPath string) *exo.Client {
	t.Helper()
	lib, err := library.New()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath, nil, lib)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newEXOClient(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// inScope reads every directory-synced mail user: id → UseMapiRichTextFormat.
func inScope(t *testing.T, c *exo.Client) map[string]string {
	t.Helper()
	out := map[string]string{}
	filter := exo.And(exo.Eq("IsDirSynced", true), exo.Eq("RecipientTypeDetails", "MailUser")).String()
	for mu, err := range c.MailUsers(context.Background(), filter, "ExternalDirectoryObjectId", "UseMapiRichTextFormat") {
		if err != nil {
			t.Fatalf("read mail users: %v", err)
		}
		out[strings.ToLower(mu.ExternalDirectoryObjectId)] = mu.UseMapiRichTextFormat
	}
	if len(out) == 0 {
		t.Fatal("no in-scope mail users")
	}
	return out
}

func setRichText(t *testing.T, c *exo.Client, id, v string) {
	t.Helper()
	_, err := c.Invoke(context.Background(), exo.Command{Name: "Set-MailUser",
		Params: map[string]any{"Identity": id, "UseMapiRichTextFormat": v}})
	if err != nil {
		t.Fatalf("set %s: %v", id, err)
	}
}

// runWorker runs a short worker command to completion and returns stdout and the exit code.
func runWorker(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(workerBin, args...)
	cmd.Env = filteredEnv()
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("worker %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	if code != 0 {
		t.Logf("worker %s: exit %d, stderr:\n%s", strings.Join(args, " "), code, tail(errb.String(), 3000))
	}
	return out.String(), code
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
