//go:build !unix

package daemon

type pidState int

const (
	pidUnknown pidState = iota
	pidRunning
	pidGone
)

// pidAlive cannot tell on this platform: a lease held by a killed process waits for its expiry.
func pidAlive(int) pidState { return pidUnknown }
