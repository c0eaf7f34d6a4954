package executor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/directory"
	"github.com/exo-worker/worker/jobs"
)

// This file is the executor's Graph path: how a Graph change (jobs.GraphGroupMember) is sent, read back and
// observed for revert and reconciliation. The safety model around it — declaration check, exceptions, blast
// radius, journal, breaker — is the same code as for Exchange changes.

// GraphWriter is what the executor needs from the Graph client to make, read back and revert Graph changes.
// internal/graph implements it; the interface lives here so that jobs never compiles msgraph-sdk-go.
type GraphWriter interface {
	// AddGroupMember and RemoveGroupMember send one membership write and return its request-id. An error
	// whose AlreadyDone() is true (see alreadyDone) means the membership already was as wanted: nothing
	// was written.
	AddGroupMember(ctx context.Context, group, member string) (string, error)
	RemoveGroupMember(ctx context.Context, group, member string) (string, error)
	// IsGroupMember reads whether member is a direct member of group.
	IsGroupMember(ctx context.Context, group, member string) (bool, error)
	// GroupMembers lists the ids of group's direct members (a job's declared Description.GroupMembers).
	GroupMembers(ctx context.Context, group string) ([]string, error)
}

// GraphLicenseReader, when the GraphWriter also implements it, lets the read-back of a membership added to a
// licensing group check that the group's licences reached the member (group-based licensing applies them
// asynchronously).
type GraphLicenseReader interface {
	GroupLicenses(ctx context.Context, group string) ([]directory.AssignedLicense, error)
	UserLicenses(ctx context.Context, user string) ([]directory.AssignedLicense, []directory.AssignedPlan, error)
}

// graphConcurrency bounds the Graph writes in flight: Graph throttles per app and tenant, and the client
// retries 429s itself.
const graphConcurrency = 4

// alreadyDone reports an error that says the write's effect was already in place (internal/graph's
// *Error.AlreadyDone). The executor matches the behaviour, not the type, so it never imports the client.
func alreadyDone(err error) bool {
	var ad interface{ AlreadyDone() bool }
	return errors.As(err, &ad) && ad.AlreadyDone()
}

// graphRequestID is the request-id a Graph error carries, if any.
func graphRequestID(err error) string {
	var r interface{ GraphRequestID() string }
	if errors.As(err, &r) {
		return r.GraphRequestID()
	}
	return ""
}

// sendGraph sends the Graph changes among idx (positions graphIdx of out), a few at a time. The run was
// refused before any write if one is a Graph change and e.Graph is nil (checkDeclared).
func (e *Executor) sendGraph(ctx context.Context, changes []ChangeResult, idx, graphIdx []int, out []sendResult) {
	if len(graphIdx) == 0 {
		return
	}
	each(len(graphIdx), func(j int) {
		k := graphIdx[j]
		if err := ctx.Err(); err != nil {
			out[k].err = fmt.Errorf("not sent: %w", err)
			return
		}
		out[k] = e.sendOneGraph(ctx, changes[idx[k]].Change)
	})
}

func (e *Executor) sendOneGraph(ctx context.Context, c jobs.Change) sendResult {
	switch c.Graph {
	case jobs.GraphGroupMember:
		var reqID string
		var err error
		if c.Params[0].To.AsBool() {
			reqID, err = e.Graph.AddGroupMember(ctx, c.Group.ID, c.Object.ID)
		} else {
			reqID, err = e.Graph.RemoveGroupMember(ctx, c.Group.ID, c.Object.ID)
		}
		if reqID == "" && err != nil {
			reqID = graphRequestID(err)
		}
		return sendResult{requestID: reqID, err: err, unchanged: err != nil && alreadyDone(err)}
	}
	return sendResult{err: fmt.Errorf("the executor cannot send Graph operation %q", c.Graph)}
}

// observeGraphAll observes the Graph changes at idx into out, a few at a time.
func (e *Executor) observeGraphAll(ctx context.Context, changes []jobs.Change, idx []int, out []Observation) {
	each(len(idx), func(k int) { out[idx[k]] = e.observeGraph(ctx, changes[idx[k]]) })
}

// each runs f(0..n-1) with at most graphConcurrency calls in flight.
func each(n int, f func(k int)) {
	sem := make(chan struct{}, graphConcurrency)
	var wg sync.WaitGroup
	for k := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(k)
		}()
	}
	wg.Wait()
}

// observeGraph reads what a Graph change wrote.
func (e *Executor) observeGraph(ctx context.Context, c jobs.Change) Observation {
	if e.Graph == nil {
		return Observation{Err: fmt.Errorf("%s on %s cannot be read: no Graph writer is configured", c.Operation(), c.Object.ID)}
	}
	switch c.Graph {
	case jobs.GraphGroupMember:
		member, err := e.Graph.IsGroupMember(ctx, c.Group.ID, c.Object.ID)
		if err != nil {
			return Observation{Err: err, RequestID: graphRequestID(err)}
		}
		return Observation{Found: true, Values: map[string]jobs.Value{jobs.MemberParam: jobs.Bool(member)}}
	}
	return Observation{Err: fmt.Errorf("the executor cannot read Graph operation %q", c.Graph)}
}

// loadGroupMembers reads the direct members of the groups a job declares (Description.GroupMembers) into the
// snapshot.
func (e *Executor) loadGroupMembers(ctx context.Context, job string, groups []string, t *jobs.Tenant) error {
	if len(groups) == 0 {
		return nil
	}
	if e.Graph == nil {
		return fmt.Errorf("%s reads group members (Microsoft Graph) but no Graph client is configured", job)
	}
	t.GroupMembers = map[string][]string{}
	for _, g := range groups {
		ms, err := e.Graph.GroupMembers(ctx, g)
		if err != nil {
			return fmt.Errorf("%s: read the members of group %s: %w", job, g, err)
		}
		t.GroupMembers[strings.ToLower(g)] = ms
	}
	return nil
}

// checkGroupLicenses follows the memberships the run added (verified) into groups that assign licences, and
// notes on each change whether the group's licences reached the member: group-based licensing applies them
// after the membership, so they are read again with the read-back's backoff. A licence that has not arrived
// does not fail the change (the membership, which is what was written, is verified); it is noted and warned
// about, since the licence is why the membership was wanted.
func (e *Executor) checkGroupLicenses(ctx context.Context, s *Summary, idx []int) {
	lr, ok := e.Graph.(GraphLicenseReader)
	if !ok || e.Graph == nil {
		return
	}
	groupSKUs := map[string][]string{}
	var pending []int
	for _, i := range idx {
		cr := &s.Changes[i]
		if cr.Status != StatusVerified || cr.Graph != jobs.GraphGroupMember || !cr.Params[0].To.AsBool() {
			continue
		}
		g := strings.ToLower(cr.Group.ID)
		skus, seen := groupSKUs[g]
		if !seen {
			ls, err := lr.GroupLicenses(ctx, cr.Group.ID)
			if err != nil {
				cr.Note = "licence not checked: the group's licences could not be read: " + err.Error()
				continue
			}
			for _, l := range ls {
				skus = append(skus, strings.ToLower(l.SkuID))
			}
			groupSKUs[g] = skus
		}
		if len(skus) > 0 {
			pending = append(pending, i)
		}
	}
	retries, delay := e.readBackTiming()
	reads := 0
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			if attempt > retries || !sleep(ctx, delay) {
				break
			}
			delay *= 2
		}
		reads++
		waiting := make([]bool, len(pending))
		each(len(pending), func(k int) {
			cr := &s.Changes[pending[k]]
			have, plans, err := lr.UserLicenses(ctx, cr.Object.ID)
			if err != nil {
				cr.Note = "licence not checked: the member's licences could not be read: " + err.Error()
				return
			}
			missing := missingSKUs(groupSKUs[strings.ToLower(cr.Group.ID)], have)
			if len(missing) == 0 {
				cr.Note = fmt.Sprintf("the group's licence reached the member (%d service plans enabled)", enabledPlans(plans))
				return
			}
			cr.Note = fmt.Sprintf("member of %s, but its licence (%s) has not reached the user after %d reads: group-based licensing can take a while; if it does not arrive, look at the group's licence errors (Entra admin center → Groups → Licenses: not enough licences, conflicting plans)",
				cr.Group, strings.Join(missing, ", "), reads)
			waiting[k] = true
		})
		var still []int
		for k, i := range pending {
			if waiting[k] {
				still = append(still, i)
			}
		}
		pending = still
	}
	if len(pending) > 0 {
		var names []string
		for k, i := range pending {
			if k == 10 {
				names = append(names, fmt.Sprintf("and %d more", len(pending)-k))
				break
			}
			names = append(names, s.Changes[i].Object.String())
		}
		w := fmt.Sprintf("%d memberships were added but the group's licence has not reached the member yet (%s): group-based licensing can take a while; the next run reports the ones still without a licence",
			len(pending), strings.Join(names, "; "))
		s.Warnings = append(s.Warnings, w)
		e.log().Warn(w, zap.String("run", s.RunID), zap.String("job", s.Job))
	}
}

// readBackTiming is the read-back's retries and first delay, with their defaults.
func (e *Executor) readBackTiming() (int, time.Duration) {
	retries, delay := e.ReadBackRetries, e.ReadBackDelay
	if retries == 0 {
		retries = 3
	}
	if retries < 0 {
		retries = 0
	}
	if delay <= 0 {
		delay = 2 * time.Second
	}
	return retries, delay
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func missingSKUs(want []string, have []directory.AssignedLicense) []string {
	var out []string
	for _, w := range want {
		if !slices.ContainsFunc(have, func(l directory.AssignedLicense) bool { return strings.EqualFold(l.SkuID, w) }) {
			out = append(out, w)
		}
	}
	return out
}

func enabledPlans(plans []directory.AssignedPlan) int {
	n := 0
	for _, p := range plans {
		if strings.EqualFold(p.CapabilityStatus, "Enabled") {
			n++
		}
	}
	return n
}
