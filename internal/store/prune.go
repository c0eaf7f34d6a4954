package store

import "time"

// Retention says what Prune deletes: records older than each cutoff. A zero cutoff keeps that kind of record
// forever. Running runs, their journal and open findings are never pruned, whatever their age.
type Retention struct {
	// RunsBefore: finished runs started before it that have no journal entries (audits, dry runs, runs that
	// changed nothing). (Schedule-tick claims prune themselves: ClaimTick.)
	RunsBefore time.Time
	// JournalBefore: finished runs started before it, with their journal entries. The journal is the audit
	// trail of what was written to the tenant and what `worker revert` puts back: keep it longer than runs.
	JournalBefore time.Time
	// FindingsResolvedBefore: findings resolved before it.
	FindingsResolvedBefore time.Time
}

// Pruned counts what one Prune deleted.
type Pruned struct {
	Runs           int
	JournalEntries int
	Findings       int
}

// Total is the number of records deleted.
func (p Pruned) Total() int { return p.Runs + p.JournalEntries + p.Findings }
