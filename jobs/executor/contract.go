package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/jobs"
)

// UndeclaredChangeError refuses a run whose plan holds a change the job's declaration does not allow: a
// write it did not declare, any write from an audit, or a change of the wrong shape. Nothing of the run
// was written.
type UndeclaredChangeError struct {
	Job    string
	Change jobs.Change
	// Reason says what the declaration lacks.
	Reason string
	// Others counts further refused changes of the same plan.
	Others int
}

func (e *UndeclaredChangeError) Error() string {
	more := ""
	if e.Others > 0 {
		more = fmt.Sprintf(" (and %d more changes like it)", e.Others)
	}
	return fmt.Sprintf("%s planned a change it may not make: %s: %s%s. Nothing was written; the run was aborted. "+
		"This is a bug in the job: declare the write in its Describe().Writes, or stop planning it",
		e.Job, e.Change, e.Reason, more)
}

// checkDeclared checks every change of the plan against the job's declaration (jobs.Description.Allows).
func (e *Executor) checkDeclared(run *Run) error {
	if len(run.Plan.Changes) == 0 {
		return nil
	}
	// The declaration itself: an audit's writes, a write with no read-back, a parameter sync owns.
	if err := run.Declared.Validate(e.SyncOwned); err != nil {
		return &UndeclaredChangeError{Job: run.Job, Change: run.Plan.Changes[0], Reason: "its declaration is refused: " + err.Error(),
			Others: len(run.Plan.Changes) - 1}
	}
	var first *UndeclaredChangeError
	for _, c := range run.Plan.Changes {
		err := run.Declared.Allows(c)
		if err == nil && c.IsGraph() && e.Graph == nil {
			err = fmt.Errorf("no Graph writer is configured for the executor")
		}
		if err == nil {
			continue
		}
		if first == nil {
			first = &UndeclaredChangeError{Job: run.Job, Change: c, Reason: err.Error()}
			continue
		}
		first.Others++
	}
	if first != nil {
		return first
	}
	return nil
}

// readsWritten reports whether re-running query q reads back every change at idx: it must be the read
// cmdlet the library pairs with each change's cmdlet.
func readsWritten(q jobs.Query, changes []ChangeResult, idx []int) bool {
	for _, i := range idx {
		c := changes[i].Change
		read, ok := jobs.ReadCmdlet(c.Cmdlet)
		if c.IsGraph() || !ok || !strings.EqualFold(read, q.Cmdlet) {
			return false
		}
	}
	return true
}

// sendResult is what became of one write.
type sendResult struct {
	requestID string
	err       error
	// unchanged: the service said the write's effect was already in place (err says how).
	unchanged bool
}

// send writes the changes at idx: Exchange changes in one $batch run (the exo client splits and paces it),
// Graph changes one call each through the GraphWriter (graph.go). Results are in idx order.
func (e *Executor) send(ctx context.Context, changes []ChangeResult, idx []int) []sendResult {
	out := make([]sendResult, len(idx))
	var cmds []exo.Command
	var exIdx []int
	var graphIdx []int
	for k, i := range idx {
		c := changes[i].Change
		if c.IsGraph() {
			graphIdx = append(graphIdx, k)
			continue
		}
		cmds = append(cmds, writeCommand(c))
		exIdx = append(exIdx, k)
	}
	e.sendGraph(ctx, changes, idx, graphIdx, out)
	if len(cmds) == 0 {
		return out
	}
	for j, res := range e.Client.Batch(ctx, cmds) {
		r := &out[exIdx[j]]
		if res.Response != nil {
			r.requestID = res.Response.RequestID
		}
		if res.Err != nil {
			r.err = res.Err
			var xe *exo.Error
			if errors.As(res.Err, &xe) {
				r.requestID = xe.RequestID
			}
		}
	}
	return out
}
