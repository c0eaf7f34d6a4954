package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/exo-worker/worker/config"
	"github.com/exo-worker/worker/internal/auth"
	"github.com/exo-worker/worker/internal/schedule"
	"github.com/exo-worker/worker/internal/store"
)

// Clock skew thresholds. MSAL signs client assertions valid from now for 10 minutes and Entra allows about
// 5 minutes of skew (setup-protocol §6): past 5 minutes sign-ins fail, past 1 minute it is time to fix NTP.
const (
	skewWarn = time.Minute
	skewFail = 5 * time.Minute
)

// checkClock compares the local clock with the Date header of the authority's discovery document.
func (d *doc) checkClock(ctx context.Context) {
	if d.o.HTTPClient == nil {
		d.add("clock", Skip, "no HTTP client", "")
		return
	}
	u := d.o.Endpoints.Authority + url.PathEscape(d.o.Config.Tenant.ID) + "/v2.0/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		d.add("clock", Fail, err.Error(), "check tenant.endpoints.authority")
		return
	}
	sent := d.o.Now()
	resp, err := d.o.HTTPClient.Do(req)
	if err != nil {
		d.add("clock", Skip, "the authority did not answer (see network checks)", "")
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	got := d.o.Now()
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		d.add("clock", Warn, "the authority's answer carries no Date header to compare with", "make sure NTP runs on this host (timedatectl set-ntp true)")
		return
	}
	// Date has a one-second resolution and was stamped between sent and got.
	mid := sent.Add(got.Sub(sent) / 2)
	skew := mid.Sub(date)
	abs := skew.Abs()
	detail := fmt.Sprintf("local clock is %s %s the authority's (Date %s)", abs.Round(time.Second), map[bool]string{true: "ahead of", false: "behind"}[skew > 0], date.UTC().Format(time.RFC3339))
	switch {
	case abs > skewFail:
		d.add("clock", Fail, detail+"; Entra refuses client assertions outside their validity window (AADSTS700024)", "synchronise this host's clock (timedatectl set-ntp true, or chronyc makestep)")
	case abs > skewWarn+time.Second:
		d.add("clock", Warn, detail, "synchronise this host's clock (timedatectl set-ntp true) before it drifts past 5 minutes")
	default:
		d.add("clock", Pass, fmt.Sprintf("within %s of the authority", max(abs.Round(time.Second), time.Second)), "")
	}
}

// checkNetwork resolves and connects (TLS) to the authority, Graph and Exchange, through the proxy the
// environment names.
func (d *doc) checkNetwork(ctx context.Context) {
	ep := d.o.Endpoints
	for _, t := range []struct{ name, base string }{{"authority", ep.Authority}, {"graph", ep.GraphURL}, {"exchange", ep.ExchangeURL}} {
		d.checkEndpoint(ctx, t.name, strings.TrimRight(t.base, "/"))
	}
}

func (d *doc) checkEndpoint(ctx context.Context, name, base string) {
	check := "network " + name
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		d.add(check, Fail, fmt.Sprintf("%q is not a URL", base), "check tenant.endpoints."+name)
		return
	}
	host := u.Hostname()
	var notes []string
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
	proxy := d.o.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	pu, perr := proxy(req)
	switch {
	case perr != nil:
		d.add(check, Fail, "proxy setting: "+perr.Error(), "correct HTTPS_PROXY / NO_PROXY")
		return
	case pu != nil:
		notes = append(notes, "via proxy "+pu.Redacted())
	case net.ParseIP(host) == nil:
		lookup := d.o.LookupHost
		if lookup == nil {
			lookup = net.DefaultResolver.LookupHost
		}
		addrs, err := lookup(ctx, host)
		if err != nil {
			d.add(check, Fail, fmt.Sprintf("DNS: %s does not resolve: %v", host, err), "check /etc/resolv.conf and that this host may resolve public names, or set HTTPS_PROXY")
			return
		}
		notes = append(notes, fmt.Sprintf("%s → %s", host, strings.Join(first(addrs, 2), ", ")))
	}
	resp, err := d.o.HTTPClient.Do(req)
	if err != nil {
		var uerr x509.UnknownAuthorityError
		var herr x509.HostnameError
		var verr *tls.CertificateVerificationError
		switch {
		case errors.As(err, &uerr), errors.As(err, &verr) && errors.As(verr.Err, &uerr):
			d.add(check, Fail, fmt.Sprintf("TLS: the certificate of %s is signed by an authority this host does not trust: %v", u.Host, err),
				"if a TLS-inspecting proxy sits in between, put its CA certificate (PEM) in tenant.ca_file; otherwise check the system CA bundle (ca-certificates)")
		case errors.As(err, &herr):
			d.add(check, Fail, "TLS: "+err.Error(), "the host answering is not "+host+": check DNS and tenant.endpoints."+name)
		default:
			d.add(check, Fail, fmt.Sprintf("cannot reach %s: %v", u.Host, err), "open outbound HTTPS (443) to "+host+" or set HTTPS_PROXY")
		}
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	tlsNote := "TLS ok"
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		tlsNote = "TLS ok (" + resp.TLS.PeerCertificates[0].Issuer.CommonName + ")"
	}
	notes = append(notes, tlsNote)
	d.add(check, Pass, u.Host+": "+strings.Join(notes, ", "), "")
}

func first(l []string, n int) []string {
	if len(l) > n {
		return l[:n]
	}
	return l
}

// tokenClaims are the claims doctor reads from an access token, for diagnosis only: the token is not
// validated here (the resource does that), only decoded.
type tokenClaims struct {
	Aud   string   `json:"aud"`
	AppID string   `json:"appid"`
	Azp   string   `json:"azp"`
	Tid   string   `json:"tid"`
	Roles []string `json:"roles"`
	Exp   int64    `json:"exp"`
}

func decodeClaims(tok string) (tokenClaims, error) {
	var c tokenClaims
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return c, errors.New("the access token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return c, fmt.Errorf("the access token's claims are not base64url: %w", err)
	}
	return c, json.Unmarshal(b, &c)
}

// checkTokens asks for a token per audience the enabled jobs use and compares its roles claim with what
// they declare. A role missing from the token is missing consent (or a token cached before the grant).
func (d *doc) checkTokens(ctx context.Context) {
	if d.o.Credential == nil {
		d.add("token", Skip, "no credential", "")
		return
	}
	ep := d.o.Endpoints
	for _, t := range []struct {
		name, scope, api string
		need             []string
	}{
		{"token exchange", ep.ExchangeScope, "Office 365 Exchange Online", d.o.Req.ExchangeRoles},
		{"token graph", ep.GraphScope, "Microsoft Graph", d.o.Req.GraphRoles},
	} {
		if len(t.need) == 0 {
			d.add(t.name, Skip, "no enabled job calls "+t.api, "")
			continue
		}
		tok, err := d.o.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{t.scope}})
		if err != nil {
			fix := "check auth.client_id and the certificate or secret; worker setup repairs the app registration"
			var ae *auth.Error
			if errors.As(err, &ae) && ae.Hint != "" {
				fix = ae.Hint
			}
			if strings.Contains(err.Error(), "700024") {
				fix = "synchronise this host's clock (timedatectl set-ntp true): Entra refused the assertion's time range"
			}
			d.add(t.name, Fail, err.Error(), fix)
			continue
		}
		c, err := decodeClaims(tok.Token)
		if err != nil {
			d.add(t.name, Warn, "token issued, but its claims cannot be read: "+err.Error(), "")
			continue
		}
		var missing []string
		for _, r := range t.need {
			if !slices.Contains(c.Roles, r) {
				missing = append(missing, r)
			}
		}
		app := c.AppID
		if app == "" {
			app = c.Azp
		}
		if len(missing) > 0 {
			have := "none"
			if len(c.Roles) > 0 {
				have = strings.Join(c.Roles, ", ")
			}
			d.add(t.name, Fail, fmt.Sprintf("token for %s (app %s) lacks %s application permission %s; it carries: %s", c.Aud, app, t.api, strings.Join(missing, ", "), have),
				fmt.Sprintf("grant admin consent for %s on %s (worker setup does it; Entra admin center → App registrations → API permissions → Grant admin consent); a new grant shows in tokens issued after it", strings.Join(missing, ", "), t.api))
			continue
		}
		d.add(t.name, Pass, fmt.Sprintf("token for %s (app %s) carries %s", c.Aud, app, strings.Join(t.need, ", ")), "")
	}
}

// checkStore checks that the store's directory accepts a new file and the database, if present, opens for
// writing. Nothing is written to the database.
func (d *doc) checkStore() {
	if d.o.Config.Store.Driver == config.DriverPostgres {
		d.checkPostgres()
		return
	}
	p := d.o.Config.Store.Path
	dir := filepath.Dir(p)
	if st, err := os.Stat(dir); err != nil {
		d.add("store", Warn, fmt.Sprintf("directory %s does not exist yet: %v", dir, err), "it is created at the first run; or create it now: mkdir -p "+dir)
		return
	} else if !st.IsDir() {
		d.add("store", Fail, dir+" is not a directory", "point store.path at a file in a writable directory")
		return
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		d.add("store", Fail, fmt.Sprintf("cannot create files in %s: %v", dir, err), "give the worker's user write access to "+dir+" (SQLite needs its journal beside the database)")
		return
	}
	f.Close()
	os.Remove(f.Name())
	if _, err := os.Stat(p); err == nil {
		db, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			d.add("store", Fail, fmt.Sprintf("%s cannot be opened for writing: %v", p, err), "give the worker's user write access to "+p)
			return
		}
		db.Close()
		d.add("store", Pass, p+" is writable", "")
		return
	}
	d.add("store", Pass, fmt.Sprintf("%s will be created in %s (writable)", filepath.Base(p), dir), "")
}

// checkPostgres connects to the configured PostgreSQL database and checks that its schema is this
// binary's (OpenPostgres refuses any other, naming the fix). Nothing is written.
func (d *doc) checkPostgres() {
	dsn, err := d.o.Config.Store.ConnString()
	if err != nil {
		d.add("store", Fail, err.Error(), "point store.dsn_file at a readable file holding the connection string")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var opts []store.Option
	if d.o.Config.Store.Schema != "" {
		opts = append(opts, store.WithSchema(d.o.Config.Store.Schema))
	}
	st, err := store.OpenPostgres(ctx, dsn.Reveal(), opts...)
	switch {
	case errors.Is(err, store.ErrSchemaTooOld):
		d.add("store", Fail, err.Error(), "worker store migrate --config <this file>")
		return
	case err != nil:
		d.add("store", Fail, err.Error(), "check store.dsn / dsn_file / WORKER_STORE_DSN and that the server accepts the worker's user")
		return
	}
	defer st.Close()
	d.add("store", Pass, "PostgreSQL "+st.Where()+" answers with this binary's schema", "")
}

// checkTokenFile checks that server.token_file is readable by its owner only.
func (d *doc) checkTokenFile() {
	p := d.o.Config.Server.TokenFile
	if p == "" {
		d.add("api token file", Skip, "server.token_file is not set (the HTTP API's mutating endpoints are then closed)", "")
		return
	}
	st, err := os.Stat(p)
	if err != nil {
		d.add("api token file", Fail, err.Error(), "create it with a random token: head -c 32 /dev/urandom | base64 > "+p+" && chmod 600 "+p)
		return
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		d.add("api token file", Fail, fmt.Sprintf("%s is readable by others (mode %v)", p, perm), "chmod 600 "+p)
		return
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != d.o.Uid {
		d.add("api token file", Warn, fmt.Sprintf("%s is owned by uid %d, the worker runs as uid %d", p, sys.Uid, d.o.Uid), "chown it to the worker's user")
		return
	}
	d.add("api token file", Pass, p+" is readable by its owner only", "")
}

// checkSchedules lists each schedule's next three times, so a schedule that means something else than
// intended shows before the daemon runs it.
func (d *doc) checkSchedules() {
	names := make([]string, 0, len(d.o.Schedules))
	for n, s := range d.o.Schedules {
		if s != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		d.add("schedules", Skip, "no job has a schedule (worker serve would only run on demand)", "")
		return
	}
	for _, n := range names {
		spec := d.o.Schedules[n]
		sch, err := schedule.Parse(spec) // the parser the daemon and config validation use
		if err != nil {
			d.add("schedule "+n, Fail, fmt.Sprintf("%q: %v", spec, err), "write it as 5 cron fields (or 6 with seconds), e.g. \"*/30 * * * *\"")
			continue
		}
		t := d.o.Now()
		var next []string
		for range 3 {
			t = sch.Next(t)
			next = append(next, t.Format("2006-01-02 15:04:05 MST"))
		}
		d.add("schedule "+n, Pass, fmt.Sprintf("%q next: %s", spec, strings.Join(next, ", ")), "")
	}
}
