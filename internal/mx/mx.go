// Package mx looks up MX records for the audits, through the system resolver or a DNS server named
// explicitly (split DNS, or a local server in tests and in `worker report --sim`). It also provides that
// local server: a small authoritative DNS server on loopback that answers MX queries from a table.
package mx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Resolver looks up MX records. The zero value uses the system's resolver with a 5-second timeout.
type Resolver struct {
	// Server is the "host:port" of the DNS server to ask; "" uses the system's configured resolver.
	Server string
	// Timeout bounds one lookup (default 5s).
	Timeout time.Duration
}

// LookupMX returns the mail exchangers of domain by preference, lower case, without the trailing dot. A
// domain that does not exist or has no MX record yields no hosts and no error: its mail does not go to
// Exchange Online, which is all the audits ask. Any other failure (timeout, SERVFAIL, refused) is an error
// that names the domain and the server.
func (r *Resolver) LookupMX(ctx context.Context, domain string) ([]string, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	res := net.DefaultResolver
	if r.Server != "" {
		server := r.Server
		res = &net.Resolver{
			PreferGo: true,
			// The Go resolver dials "udp" first and "tcp" when an answer is truncated; both go to Server.
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, server)
			},
		}
	}
	recs, err := res.LookupMX(ctx, domain)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, nil
		}
		via := "the system resolver"
		if r.Server != "" {
			via = "DNS server " + r.Server
		}
		return nil, fmt.Errorf("look up MX of %s via %s: %w", domain, via, err)
	}
	hosts := make([]string, 0, len(recs))
	// net.LookupMX sorts by preference (and randomises ties); keep that order, drop the null MX (".",
	// RFC 7505: the domain accepts no mail).
	for _, rec := range recs {
		h := strings.TrimSuffix(strings.ToLower(rec.Host), ".")
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts, nil
}
