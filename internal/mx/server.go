package mx

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// Zone is what a local Server answers: the MX hosts of each domain (by preference), and domains whose
// queries fail with SERVFAIL (to test how the audits report a failed lookup). Any other name is NXDOMAIN.
type Zone struct {
	MX       map[string][]string
	ServFail []string
}

// Server is an authoritative DNS server on 127.0.0.1 (UDP and TCP on one port) answering from a Zone. Tests
// point a Resolver at it; `worker report --sim` uses it so the simulated tenant's domains resolve without
// any network.
type Server struct {
	udp, tcp *dns.Server
	addr     string
	zone     map[string][]string
	fail     map[string]bool
	queries  atomic.Int64
	mu       sync.Mutex
	closed   bool
}

// Serve starts a server for z on a free loopback port.
func Serve(z Zone) (*Server, error) {
	s := &Server{zone: map[string][]string{}, fail: map[string]bool{}}
	for d, hosts := range z.MX {
		s.zone[dns.Fqdn(strings.ToLower(d))] = hosts
	}
	for _, d := range z.ServFail {
		s.fail[dns.Fqdn(strings.ToLower(d))] = true
	}
	// UDP and TCP must share a port: the resolver retries over TCP on the same address. A port free for
	// UDP may be taken for TCP, so try a few.
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("mx: listen udp on loopback: %w", err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			_ = pc.Close()
			lastErr = err
			continue
		}
		s.addr = pc.LocalAddr().String()
		h := dns.HandlerFunc(s.answer)
		s.udp = &dns.Server{PacketConn: pc, Handler: h}
		s.tcp = &dns.Server{Listener: l, Handler: h}
		started := make(chan error, 2)
		for _, srv := range []*dns.Server{s.udp, s.tcp} {
			ready := make(chan struct{})
			srv.NotifyStartedFunc = func() { close(ready) }
			go func() {
				if err := srv.ActivateAndServe(); err != nil {
					started <- err
				}
			}()
			select {
			case <-ready:
			case err := <-started:
				_ = s.Close()
				return nil, fmt.Errorf("mx: start DNS server: %w", err)
			}
		}
		return s, nil
	}
	return nil, fmt.Errorf("mx: no loopback port free for both UDP and TCP: %w", lastErr)
}

// Addr is the "127.0.0.1:port" to give a Resolver.
func (s *Server) Addr() string { return s.addr }

// Queries counts the questions answered, so tests can tell a lookup really went through DNS.
func (s *Server) Queries() int64 { return s.queries.Load() }

// Close stops both listeners.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		if srv != nil {
			if err := srv.Shutdown(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Server) answer(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	hosts, known := s.zone[name]
	switch {
	case s.fail[name]:
		m.Rcode = dns.RcodeServerFailure
	case !known:
		m.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeMX:
		for i, h := range hosts {
			m.Answer = append(m.Answer, &dns.MX{
				Hdr:        dns.RR_Header{Name: q.Name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 300},
				Preference: uint16(10 * (i + 1)),
				Mx:         dns.Fqdn(h),
			})
		}
	}
	// A known name asked for another type gets NOERROR with no answer (NODATA), as a real server does.
	_ = w.WriteMsg(m)
}
