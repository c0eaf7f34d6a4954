package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// ErrBusy means another live process holds the job's lease: it is running the job (or a revert of it) now.
// errors.Is(err, ErrBusy) holds for the *BusyError a refused run or revert returns; the CLI exits with its
// "busy" code so a wrapper can retry later instead of treating it as a failed run.
var ErrBusy = errors.New("another process holds the job's lease")

// BusyError is a refused lease: who holds it and until when.
type BusyError struct {
	Job string
	// Holder is the lease holder (host/pid/random, see store.DefaultOwner); empty when the store cannot say.
	Holder string
	// Expires is when the lease runs out unless its holder renews it (zero when unknown). A live holder
	// renews it every third of its lifetime.
	Expires time.Time
	// Alive says what is known of the holder: "alive on this host", "on another host", or "".
	Alive string
}

func (e *BusyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "another process holds the lease of job %s (it is running the job or a revert of it)", e.Job)
	if e.Holder != "" {
		fmt.Fprintf(&b, ": %s", e.Holder)
	}
	if e.Alive != "" {
		fmt.Fprintf(&b, ", %s", e.Alive)
	}
	if !e.Expires.IsZero() {
		fmt.Fprintf(&b, "; the lease expires at %s unless that process renews it (it does while it runs)",
			e.Expires.UTC().Format(time.RFC3339))
	}
	b.WriteString("; retry when it has finished (`worker history` shows its run)")
	return b.String()
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// leaseHolder is implemented by stores that can say who holds a lease (store.SQLite).
type leaseHolder interface {
	LeaseHolder(ctx context.Context, name string) (holder string, acquired, expires time.Time, ok bool, err error)
}

// holderGone reports whether a lease holder named by store.DefaultOwner ("host/pid/random") is a process on
// this host that no longer exists — killed, so it never released its lease — and says why. A holder on
// another host, or one whose name does not parse, is presumed alive: only its lease expiry can tell.
func holderGone(holder, self string) (gone bool, alive string) {
	parts := strings.Split(holder, "/")
	if len(parts) != 3 {
		return false, ""
	}
	host, err := os.Hostname()
	if err != nil || !strings.EqualFold(parts[0], host) {
		return false, "on host " + parts[0]
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 {
		return false, ""
	}
	if holder == self {
		return false, "this process"
	}
	if pid == os.Getpid() {
		// Same host, same pid, different random part: an earlier incarnation of this process (a container
		// restarted with pid 1), which is necessarily gone.
		return true, fmt.Sprintf("pid %d is this process now, so its earlier owner is gone", pid)
	}
	switch pidAlive(pid) {
	case pidGone:
		return true, fmt.Sprintf("pid %d no longer runs on this host", pid)
	case pidRunning:
		return false, fmt.Sprintf("pid %d, alive on this host", pid)
	}
	return false, ""
}

// takeOverDead releases the job's lease when its holder is a process of this host that no longer exists,
// so a run started right after a killed one need not wait for the lease to expire. It returns the refusal to
// report when the lease stays held, or nil when the caller may try again.
func (d *Daemon) takeOverDead(ctx context.Context, job string, log *zap.Logger) *BusyError {
	be := &BusyError{Job: job}
	lh, ok := d.st.(leaseHolder)
	if !ok {
		return be
	}
	holder, _, expires, held, err := lh.LeaseHolder(ctx, leaseName(job))
	if err != nil {
		log.Warn("lease holder not read", zap.Error(err))
		return be
	}
	if !held {
		return nil // it expired or was released in between: try again
	}
	be.Holder, be.Expires = holder, expires
	gone, why := holderGone(holder, d.owner)
	be.Alive = why
	if !gone {
		return be
	}
	// Released, the lease is taken by the caller, which then marks the dead holder's runs interrupted and
	// reconciles their pending journal entries, as for any run of a process that stopped.
	log.Warn("the job's lease is held by a process that is gone; taking it over", zap.String("holder", holder), zap.String("why", why))
	if err := d.st.ReleaseLease(ctx, leaseName(job), holder); err != nil {
		log.Warn("lease of the dead holder not released", zap.Error(err))
		return be
	}
	return nil
}
