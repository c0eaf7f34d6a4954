package daemon

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/executor"
)

// NewJournal adapts the store's change journal to the executor's executor.Journal. The executor speaks its own
// types so that the job library never compiles SQLite; this is the one place the two meet.
func NewJournal(st store.Store) executor.Journal { return storeJournal{st: st} }

type storeJournal struct{ st store.Store }

// JournalBegin implements executor.Journal. Values are stored as JSON strings: EXO parameters the jobs write are
// strings (enum names, addresses), and a revert sends back exactly the string that was read.
func (j storeJournal) JournalBegin(ctx context.Context, runID string, changes []jobs.Change) ([]int64, error) {
	sc := make([]store.Change, len(changes))
	for i, c := range changes {
		sc[i] = storeChange(c)
	}
	ids, err := j.st.JournalBegin(ctx, runID, sc)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out, nil
}

// JournalOutcomes implements executor.Journal.
func (j storeJournal) JournalOutcomes(ctx context.Context, outcomes []executor.JournalOutcome) error {
	so := make([]store.Outcome, 0, len(outcomes))
	for _, o := range outcomes {
		st, ok := changeState(o.Status)
		if !ok {
			continue // still planned: nothing happened to it yet
		}
		so = append(so, store.Outcome{ID: store.EntryID(o.ID), State: st, RequestID: o.RequestID, Error: o.Error})
	}
	return j.st.JournalOutcomes(ctx, so)
}

func storeChange(c jobs.Change) store.Change {
	return store.Change{
		ObjectID:    c.Object.ID,
		DisplayName: c.Object.DisplayName,
		Cmdlet:      c.Cmdlet,
		Param:       c.Param,
		Old:         jsonString(c.From),
		New:         jsonString(c.To),
	}
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// changeState maps the executor's status of a change onto the journal's state.
func changeState(s executor.Status) (store.ChangeState, bool) {
	switch s {
	case executor.StatusApplied, executor.StatusUnverified:
		// Unverified: written, but the read-back could not tell; the error text says so.
		return store.ChangeStateApplied, true
	case executor.StatusVerified:
		return store.ChangeStateVerified, true
	case executor.StatusFailed:
		return store.ChangeStateFailed, true
	case executor.StatusSkipped:
		return store.ChangeStateSkipped, true
	}
	return "", false
}

// entryChange turns a journal entry back into the change it recorded. ok is false when a value is not a JSON
// string (null: never read), which a revert must not guess at.
func entryChange(e store.JournalEntry) (c jobs.Change, ok bool) {
	c = jobs.Change{
		Object: jobs.ObjectRef{ID: e.ObjectID, DisplayName: e.DisplayName},
		Cmdlet: e.Cmdlet,
		Param:  e.Param,
	}
	return c, decodeString(e.Old, &c.From) && decodeString(e.New, &c.To)
}

// decodeString decodes a JSON string; null (which json.Unmarshal accepts silently) and other types are refused.
func decodeString(raw json.RawMessage, into *string) bool {
	if len(raw) == 0 || raw[0] != '"' {
		return false
	}
	return json.Unmarshal(raw, into) == nil
}

// describeEntry names a journal entry for messages.
func describeEntry(e store.JournalEntry) string {
	if e.DisplayName != "" {
		return fmt.Sprintf("%s (%s) %s", e.DisplayName, e.ObjectID, e.Param)
	}
	return fmt.Sprintf("%s %s", e.ObjectID, e.Param)
}
