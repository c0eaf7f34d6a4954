package mx

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func startServer(t *testing.T, z Zone) *Server {
	t.Helper()
	s, err := Serve(z)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestLookupMXThroughLocalServer(t *testing.T) {
	s := startServer(t, Zone{
		MX: map[string][]string{
			"contoso.com":    {"mail.contoso.com", "backup.contoso.com"},
			"eu.contoso.com": {"EU-Contoso-com.mail.protection.outlook.com"},
			"nomail.com":     {},
		},
		ServFail: []string{"broken.contoso.com"},
	})
	r := &Resolver{Server: s.Addr(), Timeout: 2 * time.Second}
	tests := []struct {
		domain  string
		want    []string
		wantErr string
	}{
		{domain: "contoso.com", want: []string{"mail.contoso.com", "backup.contoso.com"}},
		{domain: "Contoso.COM", want: []string{"mail.contoso.com", "backup.contoso.com"}},
		{domain: "eu.contoso.com", want: []string{"eu-contoso-com.mail.protection.outlook.com"}},
		{domain: "nomail.com", want: nil},
		{domain: "does-not-exist.example", want: nil},
		{domain: "broken.contoso.com", wantErr: "broken.contoso.com"},
	}
	for _, tc := range tests {
		t.Run(tc.domain, func(t *testing.T) {
			got, err := r.LookupMX(context.Background(), tc.domain)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), s.Addr()) {
					t.Fatalf("LookupMX = %v, %v; want an error naming the domain and the server", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("LookupMX(%s) = %q, want %q", tc.domain, got, tc.want)
			}
		})
	}
	if s.Queries() < int64(len(tests)) {
		t.Errorf("the server answered %d queries for %d lookups: the resolver did not ask it", s.Queries(), len(tests))
	}
}

func TestLookupMXTimesOut(t *testing.T) {
	// A UDP socket that never answers, and no TCP listener.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	r := &Resolver{Server: pc.LocalAddr().String(), Timeout: 300 * time.Millisecond}
	start := time.Now()
	_, err = r.LookupMX(context.Background(), "contoso.com")
	if err == nil {
		t.Fatal("a lookup against a silent server succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the lookup took %s, beyond its 300ms timeout", d)
	}
}

func TestLookupMXHonoursCancellation(t *testing.T) {
	s := startServer(t, Zone{MX: map[string][]string{"contoso.com": {"mail.contoso.com"}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (&Resolver{Server: s.Addr()}).LookupMX(ctx, "contoso.com"); err == nil {
		t.Error("a cancelled lookup succeeded")
	}
}

func TestServerCloseIsIdempotent(t *testing.T) {
	s, err := Serve(Zone{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
