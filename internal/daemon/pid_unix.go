//go:build unix

package daemon

import (
	"errors"
	"syscall"
)

type pidState int

const (
	pidUnknown pidState = iota
	pidRunning
	pidGone
)

// pidAlive asks the kernel whether a process exists (signal 0 sends nothing). EPERM means it exists but
// belongs to another user.
func pidAlive(pid int) pidState {
	err := syscall.Kill(pid, 0)
	switch {
	case err == nil, errors.Is(err, syscall.EPERM):
		return pidRunning
	case errors.Is(err, syscall.ESRCH):
		return pidGone
	}
	return pidUnknown
}
