package sim

import (
	"time"

	"github.com/exo-worker/worker/internal/sim/exoapi"
)

// SetClockOffset shifts the simulated Entra's clock (its Date headers and the time checks of client
// assertions) by d, as if this host's clock were off by -d: doctor's clock check and certificate sign-ins
// then see the skew a wrong NTP setup causes.
func (s *Server) SetClockOffset(d time.Duration) { s.auth.SetClockOffset(d) }

// AdminUPN is the administrator a device-code sign-in to the simulator signs in as (worker setup).
func (s *Server) AdminUPN() string { return s.auth.AdminUPN() }

// DeclineDeviceCodes makes device-code sign-ins fail with authorization_declined (a tenant whose Conditional
// Access blocks the flow) while v is true.
func (s *Server) DeclineDeviceCodes(v bool) { s.auth.DeclineDeviceCodes(v) }

// RemoteDomain is a remote domain of the simulated organisation (Get-RemoteDomain).
type RemoteDomain = exoapi.RemoteDomain

// SetRemoteDomain adds or replaces (by name) a remote domain; the tenant starts with "Default" for "*"
// with TNEFEnabled $null.
func (s *Server) SetRemoteDomain(rd RemoteDomain) { s.exo.SetRemoteDomain(rd) }

// SetNextLinkPort makes the EXO admin API's @odata.nextLink name port p ("446", as the service is seen to
// do) instead of the port the client called; "" restores it.
func (s *Server) SetNextLinkPort(p string) { s.exo.SetNextLinkPort(p) }
