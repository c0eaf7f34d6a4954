package exoapi

import (
	"net"
	"strings"
	"sync"
)

// This file is the organisation's remote domains (Get-RemoteDomain, Set-RemoteDomain, New-RemoteDomain):
// per destination domain, whether mail goes out as TNEF. TNEFEnabled $true or $false on the remote domain
// overrides a mail user's UseMapiRichTextFormat unless the mail user's UsePreferMessageFormat is $true
// (Set-MailUser and Set-RemoteDomain docs). A tenant starts with the built-in "Default" for "*", TNEFEnabled
// $null.

// RemoteDomain is one remote domain of the simulated organisation; TNEFEnabled nil is $null.
type RemoteDomain struct {
	Name, DomainName string
	TNEFEnabled      *bool
	ContentType      string
}

type orgState struct {
	mu      sync.Mutex
	remotes []RemoteDomain
}

func newOrg() *orgState {
	return &orgState{remotes: []RemoteDomain{{Name: "Default", DomainName: "*", ContentType: "MimeHtmlText"}}}
}

// SetRemoteDomain adds or replaces (by name) a remote domain, for tests and scenarios.
func (s *Service) SetRemoteDomain(rd RemoteDomain) {
	s.org.mu.Lock()
	defer s.org.mu.Unlock()
	if rd.ContentType == "" {
		rd.ContentType = "MimeHtmlText"
	}
	for i, x := range s.org.remotes {
		if strings.EqualFold(x.Name, rd.Name) {
			s.org.remotes[i] = rd
			return
		}
	}
	s.org.remotes = append(s.org.remotes, rd)
}

func remoteRecord(rd RemoteDomain) record {
	var tnef any
	if rd.TNEFEnabled != nil {
		tnef = *rd.TNEFEnabled
	}
	return record{{name: "Identity", val: rd.Name}, {name: "Name", val: rd.Name}, {name: "DomainName", val: rd.DomainName},
		{name: "TNEFEnabled", val: tnef}, {name: "ContentType", val: rd.ContentType}, {name: "IsInternal", val: false}}
}

func init() {
	cmdlets["get-remotedomain"] = &cmdletSpec{name: "Get-RemoteDomain", params: []string{"Identity", "ResultSize"},
		run: func(s *Service, c *cmdletCall, _ pageRequest) (*cmdletOutput, *cmdletError) {
			id, err := c.str("Identity")
			if err != nil {
				return nil, err
			}
			s.org.mu.Lock()
			defer s.org.mu.Unlock()
			out := none()
			for _, rd := range s.org.remotes {
				if id == "" || strings.EqualFold(rd.Name, id) {
					out.values = append(out.values, remoteRecord(rd))
				}
			}
			if id != "" && len(out.values) == 0 {
				return nil, notFoundErr(id)
			}
			return out, nil
		}}
	cmdlets["set-remotedomain"] = &cmdletSpec{name: "Set-RemoteDomain", params: []string{"Identity", "TNEFEnabled", "ContentType"},
		run: func(s *Service, c *cmdletCall, _ pageRequest) (*cmdletOutput, *cmdletError) {
			v, err := required(c, "Identity")
			if err != nil {
				return nil, err
			}
			s.org.mu.Lock()
			defer s.org.mu.Unlock()
			for i := range s.org.remotes {
				rd := &s.org.remotes[i]
				if !strings.EqualFold(rd.Name, v["Identity"]) {
					continue
				}
				if _, ok := c.params["tnefenabled"]; ok {
					if !c.has("TNEFEnabled") {
						rd.TNEFEnabled = nil
					} else {
						b, err := c.boolean("TNEFEnabled")
						if err != nil {
							return nil, err
						}
						rd.TNEFEnabled = &b
					}
				}
				if ct, _ := c.str("ContentType"); ct != "" {
					rd.ContentType = ct
				}
				return none(), nil
			}
			return nil, notFoundErr(v["Identity"])
		}}
}

// SetNextLinkPort makes @odata.nextLink name port p (e.g. "446", as the service is seen to do) instead of the
// port the client called; "" restores the called host.
func (s *Service) SetNextLinkPort(p string) { s.linkPort.Store(p) }

func (s *Service) linkHost(called string) string {
	p, _ := s.linkPort.Load().(string)
	if p == "" {
		return called
	}
	h, _, err := net.SplitHostPort(called)
	if err != nil {
		h = called
	}
	return net.JoinHostPort(h, p)
}
