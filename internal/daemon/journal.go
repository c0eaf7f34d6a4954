package daemon

import (
	"context"
	"encoding/json"
	"strings"

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

// storeChange is how a change is journalled. The store keeps one operation, one parameter name and one
// old and one new JSON value per entry, so:
//   - an Exchange change of one parameter is Cmdlet, Param and its values as typed JSON ("Never", true,
//     ["a","b"]) — the shape every journal row has had, so old rows read back unchanged;
//   - an Exchange change of several parameters joins their names with "," in Param and journals the values
//     as JSON objects by parameter name ({"UseMapiRichTextFormat":"Never","UsePreferMessageFormat":true});
//   - a Graph change is journalled as Cmdlet "graph:<operation>:<group id>", Param "member".
func storeChange(c jobs.Change) store.Change {
	sc := store.Change{ObjectID: c.Object.ID, DisplayName: c.Object.DisplayName, Cmdlet: c.Cmdlet}
	if c.IsGraph() {
		sc.Cmdlet = graphPrefix + string(c.Graph) + ":" + c.Group.ID
	}
	if len(c.Params) == 1 {
		sc.Param = c.Params[0].Name
		sc.Old, _ = json.Marshal(c.Params[0].From) // a Value always marshals
		sc.New, _ = json.Marshal(c.Params[0].To)
		return sc
	}
	old, nw := map[string]jobs.Value{}, map[string]jobs.Value{}
	for _, p := range c.Params {
		old[p.Name], nw[p.Name] = p.From, p.To
	}
	sc.Param = strings.Join(c.ParamNames(), ",")
	sc.Old, _ = json.Marshal(old)
	sc.New, _ = json.Marshal(nw)
	return sc
}

const graphPrefix = "graph:"

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
	case executor.StatusSkipped, executor.StatusUnchanged:
		// Unchanged: the service said the value was already there, so nothing was written and a revert
		// must leave it alone, like a change never sent. The error text says which.
		return store.ChangeStateSkipped, true
	}
	return "", false
}

// entryChange turns a journal entry back into the change it recorded (storeChange's inverse). ok is false
// when a value is missing or null where a value was read (never read), which a revert must not guess at.
func entryChange(e store.JournalEntry) (c jobs.Change, ok bool) {
	c = jobs.Change{Object: jobs.ObjectRef{ID: e.ObjectID, DisplayName: e.DisplayName}, Cmdlet: e.Cmdlet}
	if rest, isGraph := strings.CutPrefix(e.Cmdlet, graphPrefix); isGraph {
		op, group, _ := strings.Cut(rest, ":")
		c.Cmdlet, c.Graph, c.Group = "", jobs.GraphOp(op), jobs.ObjectRef{ID: group}
	}
	names := strings.Split(e.Param, ",")
	if len(names) == 1 {
		from, okFrom := decodeValue(e.Old)
		to, okTo := decodeValue(e.New)
		c.Params = []jobs.Param{{Name: e.Param, From: from, To: to}}
		return c, okFrom && okTo
	}
	var old, nw map[string]json.RawMessage
	if json.Unmarshal(e.Old, &old) != nil || json.Unmarshal(e.New, &nw) != nil {
		return c, false
	}
	ok = true
	for _, n := range names {
		from, okFrom := decodeValue(old[n])
		to, okTo := decodeValue(nw[n])
		ok = ok && okFrom && okTo
		c.Params = append(c.Params, jobs.Param{Name: n, From: from, To: to})
	}
	return c, ok
}

// decodeValue decodes a journalled value; null (never read) and anything that is not a value are refused.
func decodeValue(raw json.RawMessage) (jobs.Value, bool) {
	var v jobs.Value
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil || v.IsNull() {
		return jobs.Null, false
	}
	return v, true
}
