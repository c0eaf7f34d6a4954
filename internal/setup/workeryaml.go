package setup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/exo-worker/worker/config"
	"gopkg.in/yaml.v3"
)

// yamlMarker starts every worker.yaml setup writes; a file without it is the admin's and is never replaced.
const yamlMarker = "# Written by worker setup"

// WorkerYAML renders the worker configuration for the created identity: the base configuration's tenant
// (cloud, endpoint overrides, CA file), certificate authentication with the new app, the base's store and
// jobs (or meu-richtext with its safe defaults).
func WorkerYAML(base *config.Config, appID, certFile string, thumbprint string, now time.Time) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	q := strconv.Quote
	w("%s on %s: app %s, certificate %s.", yamlMarker, now.UTC().Format(time.RFC3339), appID, thumbprint)
	w("# Check it with: worker doctor --config <this file>")
	t := base.Tenant
	w("tenant:")
	w("  id: %s", q(t.ID))
	w("  cloud: %s", q(t.Cloud))
	if e := t.Endpoints; e.Authority != "" || e.Graph != "" || e.Exchange != "" {
		w("  endpoints:")
		for _, kv := range [][2]string{{"authority", e.Authority}, {"graph", e.Graph}, {"exchange", e.Exchange}} {
			if kv[1] != "" {
				w("    %s: %s", kv[0], q(kv[1]))
			}
		}
	}
	if t.CAFile != "" {
		w("  ca_file: %s", q(t.CAFile))
	}
	if t.DNSServer != "" {
		w("  dns_server: %s", q(t.DNSServer))
	}
	w("auth:")
	w("  method: certificate")
	w("  client_id: %s", q(appID))
	w("  certificate_file: %s", q(certFile))
	w("store:")
	w("  path: %s", q(base.Store.Path))
	w("jobs:")
	if len(base.Jobs) == 0 {
		w("  meu-richtext: {mode: remediate, target: Never, max_changes: 500, max_change_percent: 20}")
		return b.String()
	}
	names := make([]string, 0, len(base.Jobs))
	for n := range base.Jobs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		// Each job's configuration is its own type (jobs.Config): written back as YAML, every key the job has.
		out, err := yaml.Marshal(base.Jobs[n])
		if err != nil {
			w("  %s: {}  # not written: %v", n, err)
			continue
		}
		w("  %s:", n)
		for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
			w("    %s", l)
		}
	}
	return b.String()
}

// WriteWorkerYAML writes data to path, unless path holds a configuration setup did not write: then it
// writes path+".new" and returns that name, so an admin's own file is never lost.
func WriteWorkerYAML(path, data string) (string, error) {
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", err
	default:
		first, _ := bufio.NewReader(bytes.NewReader(old)).ReadString('\n')
		if !strings.HasPrefix(first, yamlMarker) {
			path += ".new"
		}
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		return "", err
	}
	return path, nil
}
