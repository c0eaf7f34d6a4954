package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/jobs"
)

// Journal records every write the executor makes: the change before it is sent, durably, and what came of it
// afterwards. A process killed between the two leaves the entry pending, and the next start reconciles it by
// reading the object (Executor.Observe). internal/daemon adapts internal/store to it.
//
// The interface speaks jobs' own types rather than the store's so that the job library (and its tests) never
// compiles the SQLite driver, and so that a job author cannot reach the store from a job.
type Journal interface {
	// JournalBegin records changes as pending, committed before it returns, and returns one id per change
	// in order. An error means nothing was recorded: the executor then sends none of them.
	JournalBegin(ctx context.Context, runID string, changes []jobs.Change) ([]int64, error)
	// JournalOutcomes records what happened to journalled changes.
	JournalOutcomes(ctx context.Context, outcomes []JournalOutcome) error
}

// JournalOutcome is what became of one journalled change. Status is the executor's status of the change;
// the store maps StatusUnverified to "applied" (written, not read back).
type JournalOutcome struct {
	ID        int64
	Status    Status
	RequestID string
	Error     string
}

// journalChunk records the planned changes s.Changes[start:end] before they are sent. On failure it marks
// them skipped and returns the error; nothing of the chunk may be sent then.
func (e *Executor) journalChunk(ctx context.Context, s *Summary, start, end int) error {
	if e.Journal == nil {
		return nil
	}
	var changes []jobs.Change
	var idx []int
	for i := start; i < end; i++ {
		if s.Changes[i].Status == StatusPlanned {
			changes = append(changes, s.Changes[i].Change)
			idx = append(idx, i)
		}
	}
	if len(changes) == 0 {
		return nil
	}
	ids, err := e.Journal.JournalBegin(ctx, s.RunID, changes)
	if err == nil && len(ids) != len(changes) {
		err = fmt.Errorf("the journal returned %d ids for %d changes", len(ids), len(changes))
	}
	if err != nil {
		for _, i := range idx {
			s.Changes[i].Status, s.Changes[i].Error = StatusSkipped, "not sent: the journal could not record it first"
		}
		return &JournalError{Job: s.Job, RunID: s.RunID, Err: err}
	}
	for k, i := range idx {
		s.Changes[i].entry = ids[k]
	}
	return nil
}

// journalOutcomes records the current status of the journalled changes among idx. It uses a context that
// survives cancellation: what was sent must be recorded even while the run is being stopped. A failure is
// logged and warned about, not fatal: the entries stay pending and the next start reconciles them.
func (e *Executor) journalOutcomes(ctx context.Context, s *Summary, idx []int) {
	if e.Journal == nil {
		return
	}
	var outs []JournalOutcome
	for _, i := range idx {
		cr := s.Changes[i]
		if cr.entry == 0 {
			continue
		}
		outs = append(outs, JournalOutcome{ID: cr.entry, Status: cr.Status, RequestID: cr.RequestID, Error: cr.Error})
	}
	if len(outs) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.stopGrace())
	defer cancel()
	if err := e.Journal.JournalOutcomes(wctx, outs); err != nil {
		msg := fmt.Sprintf("the journal could not record the outcome of %d changes (%v); they stay pending and are reconciled by reading the objects at the next start", len(outs), err)
		s.Warnings = append(s.Warnings, msg)
		e.log().Warn("journal outcome failed", zap.String("run", s.RunID), zap.Int("changes", len(outs)), zap.Error(err))
	}
}

// JournalError means the journal refused to record changes before they were sent, so they were not sent and
// the run stopped. Err is the journal's error (for the store: possibly store.ErrRunNotRunning, when another
// process gave up on this run).
type JournalError struct {
	Job, RunID string
	Err        error
}

func (e *JournalError) Error() string {
	return fmt.Sprintf("%s run %s: the change journal could not record the next writes, so they were not sent and the run stopped: %v. "+
		"Check the store (store.path) and rerun", e.Job, e.RunID, e.Err)
}

func (e *JournalError) Unwrap() error { return e.Err }

// Observation is what an object holds now for the parameters of one change.
type Observation struct {
	// Found is false when the object no longer exists (Err is then nil).
	Found bool
	// Values are the current values of the change's parameters, by parameter name as the change names it.
	Values map[string]jobs.Value
	// Err is set when the read itself failed: nothing is known about the object.
	Err error
	// RequestID of the read, for support cases.
	RequestID string
}

// HoldsNew reports whether the object holds every value c writes (c's To side).
func (o Observation) HoldsNew(c jobs.Change) bool { return o.holds(c, true) }

// HoldsOld reports whether the object holds every value c replaced (c's From side).
func (o Observation) HoldsOld(c jobs.Change) bool { return o.holds(c, false) }

func (o Observation) holds(c jobs.Change, to bool) bool {
	if o.Err != nil || !o.Found || len(c.Params) == 0 {
		return false
	}
	for _, p := range c.Params {
		want := p.From
		if to {
			want = p.To
		}
		got, ok := o.Values[p.Name]
		if !ok || !got.Equal(want) {
			return false
		}
	}
	return true
}

// String is what the object holds, for messages: "UseMapiRichTextFormat: Always; UsePreferMessageFormat: $false".
func (o Observation) String() string {
	names := make([]string, 0, len(o.Values))
	for n := range o.Values {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ": " + o.Values[n].String()
	}
	return strings.Join(parts, "; ")
}

// Observe reads, for each change, the object's current values of the change's parameters (through the
// read cmdlet the library pairs with the change's write, batched). Crash reconciliation and revert use it:
// both must look at the tenant before deciding, and reading belongs to the executor like writing does.
func (e *Executor) Observe(ctx context.Context, changes []jobs.Change) []Observation {
	out := make([]Observation, len(changes))
	if len(changes) == 0 {
		return out
	}
	var cmds []exo.Command
	var idx, graphIdx []int
	for i, c := range changes {
		if c.IsGraph() {
			graphIdx = append(graphIdx, i)
			continue
		}
		if _, ok := jobs.ReadCmdlet(c.Cmdlet); !ok {
			out[i].Err = fmt.Errorf("%s on %s cannot be read back: the library pairs no read with it", c.Operation(), c.Object.ID)
			continue
		}
		cmds = append(cmds, readCommand(c))
		idx = append(idx, i)
	}
	e.observeGraphAll(ctx, changes, graphIdx, out)
	for k, res := range e.Client.Batch(ctx, cmds) {
		i := idx[k]
		o := &out[i]
		if res.Response != nil {
			o.RequestID = res.Response.RequestID
		}
		switch {
		case res.Err != nil && exo.IsKind(res.Err, exo.KindNotFound):
			// Found stays false: the object is gone.
		case res.Err != nil:
			o.Err = res.Err
		case res.Response == nil || len(res.Response.Values) == 0:
			// An empty answer to a Get by identity is how some cmdlets say "not found".
		default:
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(res.Response.Values[0], &obj); err != nil {
				o.Err = fmt.Errorf("decode %s %s: %w", cmds[k].Name, changes[i].Object.ID, err)
				continue
			}
			*o = observe(obj, changes[i])
			if res.Response != nil {
				o.RequestID = res.Response.RequestID
			}
		}
	}
	return out
}

// observe is what obj, one object as Exchange returned it, holds for the parameters of c.
func observe(obj map[string]json.RawMessage, c jobs.Change) Observation {
	o := Observation{Found: true, Values: map[string]jobs.Value{}}
	for _, p := range c.Params {
		v, err := field(obj, p.Name)
		if err != nil {
			return Observation{Err: fmt.Errorf("%s did not return %s: %v", c.Object.ID, p.Name, err)}
		}
		o.Values[p.Name] = v
	}
	return o
}
