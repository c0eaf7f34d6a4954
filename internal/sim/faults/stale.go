package faults

import (
	"strings"
	"sync"
	"time"

	"github.com/exo-worker/worker/internal/sim/tenant"
)

// StaleReads models Exchange Online's read-after-write lag: a Get-* right after a Set-* may be answered by a
// domain controller that replication has not reached yet, and show the value from before the write. With
// Faults.StaleReads set, an object keeps showing its previous UseMapiRichTextFormat for that long after a
// write, so clients can be tested on not mistaking lag for a failed write.
type StaleReads struct {
	mu  sync.Mutex
	old map[string]staleValue // by lower-case object id
}

type staleValue struct {
	richText string
	until    time.Time
}

// remember records the value an object held before a write, unless an older one is still being shown.
func (sr *StaleReads) Remember(id, before string, now time.Time, lag time.Duration) {
	if lag <= 0 {
		return
	}
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if sr.old == nil {
		sr.old = map[string]staleValue{}
	}
	key := strings.ToLower(id)
	if v, ok := sr.old[key]; ok && now.Before(v.until) {
		return
	}
	sr.old[key] = staleValue{richText: before, until: now.Add(lag)}
}

// view returns o as a lagging reader sees it: a copy with the previous value while the lag lasts.
func (sr *StaleReads) View(o *tenant.Object, now time.Time) *tenant.Object {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	v, ok := sr.old[strings.ToLower(o.ID)]
	if !ok {
		return o
	}
	if !now.Before(v.until) {
		delete(sr.old, strings.ToLower(o.ID))
		return o
	}
	c := *o
	c.UseMapiRichTextFormat = v.richText
	return &c
}
