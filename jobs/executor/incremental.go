package executor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/jobs"
)

// SnapshotStore keeps compact copies of Exchange query results between runs and processes. internal/store
// implements it (SQLite, PostgreSQL); the executor owns the encoding.
type SnapshotStore interface {
	GetSnapshot(ctx context.Context, name string) ([]byte, error)
	PutSnapshot(ctx context.Context, name string, data []byte) error
}

// Incremental reads of Exchange (Executor.State). Each recipient query's result is kept with its high-water
// mark, the newest WhenChangedUTC seen. The next run asks only for what changed since:
//
//	(<the job's filter>) -and (WhenChangedUTC -gt '<mark minus SafetyMargin>')
//
// and merges the answer into the kept objects. What that filter cannot see is caught two ways:
//   - an object that changed so that it no longer matches the job's filter (a mail user that became a
//     mailbox, a user no longer synced) or was deleted: one Get-Recipient -IncludeSoftDeletedRecipients over
//     the same window, run beside the incremental reads, lists every recipient changed since the mark; a
//     kept object it names that its own query did not return again is dropped;
//   - anything else (a change replication showed late, a hard deletion): a full read every FullReadEvery
//     (default daily) replaces the kept objects.
//
// The margin absorbs clock skew between Exchange's servers and replication lag: a change older than the
// mark by less than the margin is read again, which is harmless.

// DefaultSafetyMargin and DefaultFullReadEvery are the incremental defaults.
const (
	DefaultSafetyMargin  = 15 * time.Minute
	DefaultFullReadEvery = 24 * time.Hour
)

// exoStateFormat versions the saved blob; another format is read from scratch.
const exoStateFormat = 1

// queryState is what is kept of one query: the decoded objects (only the selected properties), the mark and
// when it was last read in full.
type queryState struct {
	Format int
	Query  jobs.Query
	Mark   time.Time
	FullAt time.Time
	Items  jobs.Tenant // only the slice of the query's cmdlet is set
}

// incrementalCmdlets are the recipient cmdlets whose objects carry WhenChangedUTC and an
// ExternalDirectoryObjectId. Other queries (Get-AcceptedDomain: a handful of rows) are read in full.
var incrementalCmdlets = map[string]bool{"Get-MailUser": true, "Get-Mailbox": true, "Get-MailContact": true,
	"Get-DistributionGroup": true, "Get-Recipient": true}

func stateName(q jobs.Query) string {
	h := sha256.Sum256([]byte(q.Cmdlet + "\x00" + q.Filter + "\x00" + strings.Join(q.Select, ",")))
	return "exo/" + q.Cmdlet + "/" + hex.EncodeToString(h[:8])
}

// ReadStats describe how the tenant was read: full or incremental per query, and what changed.
type ReadStats struct {
	Full, Incremental int
	Changed, Dropped  int
}

// loadTenantState is LoadTenant with incremental reads through e.State.
func (e *Executor) loadTenantState(ctx context.Context, queries []jobs.Query, onPage func(int)) (*jobs.Tenant, ReadStats, error) {
	var rs ReadStats
	now := e.now()
	margin, every := e.SafetyMargin, e.FullReadEvery
	if margin <= 0 {
		margin = DefaultSafetyMargin
	}
	if every <= 0 {
		every = DefaultFullReadEvery
	}
	states := make([]*queryState, len(queries))
	for i, q := range queries {
		if !incrementalCmdlets[q.Cmdlet] {
			continue
		}
		data, err := e.State.GetSnapshot(ctx, stateName(q))
		if err != nil {
			return nil, rs, fmt.Errorf("read the saved %s results: %w", q.Cmdlet, err)
		}
		if data == nil {
			continue
		}
		var st queryState
		if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&st); err != nil || st.Format != exoStateFormat ||
			!reflect.DeepEqual(st.Query, q) || st.Mark.IsZero() {
			e.log().Info("saved Exchange results unusable; reading in full", zap.String("cmdlet", q.Cmdlet), zap.Error(err))
			continue
		}
		if now.Sub(st.FullAt) >= every || now.Before(st.FullAt) {
			continue // the periodic full read
		}
		states[i] = &st
	}
	// The window of the recipient check: from the oldest mark of the incremental reads.
	var since time.Time
	for _, st := range states {
		if st != nil && (since.IsZero() || st.Mark.Before(since)) {
			since = st.Mark
		}
	}

	parts := make([]*jobs.Tenant, len(queries))
	marks := make([]time.Time, len(queries))
	var changedIDs map[string]bool
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for i, q := range queries {
		parts[i] = &jobs.Tenant{}
		g.Go(func() error {
			params := map[string]any{"ResultSize": "Unlimited"}
			sel := q.Select
			filter := q.Filter
			if incrementalCmdlets[q.Cmdlet] {
				sel = withFields(sel, "ExternalDirectoryObjectId", "WhenChangedUTC")
			}
			if st := states[i]; st != nil {
				gt := exo.Gt("WhenChangedUTC", st.Mark.Add(-margin)).String()
				if filter != "" {
					filter = "(" + filter + ") -and (" + gt + ")"
				} else {
					filter = gt
				}
			}
			if filter != "" {
				params["Filter"] = filter
			}
			for resp, err := range e.Client.Pages(gctx, exo.Command{Name: q.Cmdlet, Params: params, Select: sel}) {
				if err != nil {
					return fmt.Errorf("read %s: %w", q.Cmdlet, err)
				}
				n, err := parts[i].AddPage(q.Cmdlet, resp)
				if err != nil {
					return err
				}
				if onPage != nil {
					mu.Lock()
					onPage(n)
					mu.Unlock()
				}
			}
			marks[i] = newestChange(parts[i])
			return nil
		})
	}
	if !since.IsZero() {
		g.Go(func() error {
			var err error
			changedIDs, err = e.changedRecipients(gctx, since.Add(-margin))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, rs, err
	}
	t := &jobs.Tenant{}
	for i, q := range queries {
		part := parts[i]
		if st := states[i]; st != nil {
			rs.Incremental++
			changed, dropped := mergeTenant(&st.Items, part, changedIDs)
			rs.Changed += changed
			rs.Dropped += dropped
			if changed > 0 || dropped > 0 || marks[i].After(st.Mark) {
				st.Mark = laterOf(st.Mark, marks[i])
				if err := e.saveQueryState(ctx, q, st); err != nil {
					return nil, rs, err
				}
			}
			part = &st.Items
		} else if incrementalCmdlets[q.Cmdlet] {
			rs.Full++
			st := &queryState{Format: exoStateFormat, Query: q, Mark: marks[i], FullAt: now, Items: *part}
			if !st.Mark.IsZero() {
				if err := e.saveQueryState(ctx, q, st); err != nil {
					return nil, rs, err
				}
			}
		}
		appendTenant(t, part)
	}
	e.log().Info("read Exchange", zap.Int("full", rs.Full), zap.Int("incremental", rs.Incremental),
		zap.Int("changed", rs.Changed), zap.Int("dropped", rs.Dropped))
	return t, rs, nil
}

// changedRecipients lists the ids of every recipient changed since the given time, soft-deleted ones
// included: the objects an incremental read of a narrower query may have lost sight of.
func (e *Executor) changedRecipients(ctx context.Context, since time.Time) (map[string]bool, error) {
	ids := map[string]bool{}
	cmd := exo.Command{Name: "Get-Recipient", Select: []string{"ExternalDirectoryObjectId"}, Params: map[string]any{
		"ResultSize": "Unlimited", "IncludeSoftDeletedRecipients": true,
		"Filter": exo.Gt("WhenChangedUTC", since).String()}}
	for resp, err := range e.Client.Pages(ctx, cmd) {
		if err != nil {
			return nil, fmt.Errorf("read changed recipients: %w", err)
		}
		for _, raw := range resp.Values {
			r, err := exo.Decode[exo.Recipient](raw)
			if err != nil {
				return nil, fmt.Errorf("decode Get-Recipient result (request-id %s): %w", resp.RequestID, err)
			}
			if r.ExternalDirectoryObjectId != "" {
				ids[strings.ToLower(r.ExternalDirectoryObjectId)] = true
			}
		}
	}
	return ids, nil
}

func (e *Executor) saveQueryState(ctx context.Context, q jobs.Query, st *queryState) error {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(st); err != nil {
		return fmt.Errorf("encode the %s results: %w", q.Cmdlet, err)
	}
	if err := e.State.PutSnapshot(ctx, stateName(q), buf.Bytes()); err != nil {
		return fmt.Errorf("save the %s results: %w", q.Cmdlet, err)
	}
	return nil
}

func withFields(sel []string, fields ...string) []string {
	if len(sel) == 0 {
		return sel // no $select: every property comes anyway
	}
	out := slices.Clone(sel)
	for _, f := range fields {
		if !slices.ContainsFunc(out, func(s string) bool { return strings.EqualFold(s, f) }) {
			out = append(out, f)
		}
	}
	return out
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// appendTenant appends every slice of p to t.
func appendTenant(t, p *jobs.Tenant) {
	t.MailUsers = append(t.MailUsers, p.MailUsers...)
	t.Mailboxes = append(t.Mailboxes, p.Mailboxes...)
	t.MailContacts = append(t.MailContacts, p.MailContacts...)
	t.DistributionGroups = append(t.DistributionGroups, p.DistributionGroups...)
	t.Recipients = append(t.Recipients, p.Recipients...)
	t.AcceptedDomains = append(t.AcceptedDomains, p.AcceptedDomains...)
	t.RemoteDomains = append(t.RemoteDomains, p.RemoteDomains...)
}

// newestChange is the latest WhenChangedUTC among the recipients t holds.
func newestChange(t *jobs.Tenant) time.Time {
	var m time.Time
	for _, o := range t.MailUsers {
		m = laterOf(m, o.WhenChangedUTC)
	}
	for _, o := range t.Mailboxes {
		m = laterOf(m, o.WhenChangedUTC)
	}
	for _, o := range t.MailContacts {
		m = laterOf(m, o.WhenChangedUTC)
	}
	for _, o := range t.DistributionGroups {
		m = laterOf(m, o.WhenChangedUTC)
	}
	for _, o := range t.Recipients {
		m = laterOf(m, o.WhenChangedUTC)
	}
	return m
}

// mergeTenant applies an incremental read to kept objects: upserts by ExternalDirectoryObjectId, and drops kept
// objects that changed (changed names them) without being returned again. It reports how many objects were
// added or replaced, and how many dropped.
func mergeTenant(t, inc *jobs.Tenant, changed map[string]bool) (int, int) {
	var c1, d1, c2, d2, c3, d3, c4, d4, c5, d5 int
	t.MailUsers, c1, d1 = mergeByID(t.MailUsers, inc.MailUsers, changed, func(o exoMailUser) string { return o.ExternalDirectoryObjectId })
	t.Mailboxes, c2, d2 = mergeByID(t.Mailboxes, inc.Mailboxes, changed, func(o exoMailbox) string { return o.ExternalDirectoryObjectId })
	t.MailContacts, c3, d3 = mergeByID(t.MailContacts, inc.MailContacts, changed, func(o exoMailContact) string { return o.ExternalDirectoryObjectId })
	t.DistributionGroups, c4, d4 = mergeByID(t.DistributionGroups, inc.DistributionGroups, changed, func(o exoGroup) string { return o.ExternalDirectoryObjectId })
	t.Recipients, c5, d5 = mergeByID(t.Recipients, inc.Recipients, changed, func(o exoRecipient) string { return o.ExternalDirectoryObjectId })
	return c1 + c2 + c3 + c4 + c5, d1 + d2 + d3 + d4 + d5
}

type (
	exoMailUser    = exo.MailUser
	exoMailbox     = exo.Mailbox
	exoMailContact = exo.MailContact
	exoGroup       = exo.DistributionGroup
	exoRecipient   = exo.Recipient
)

// mergeByID returns kept with inc's objects replacing or joining it (in kept's order, new ones at the end)
// and without the kept objects named in changed that inc does not hold.
func mergeByID[T any](kept, inc []T, changed map[string]bool, id func(T) string) ([]T, int, int) {
	if len(inc) == 0 && len(changed) == 0 {
		return kept, 0, 0
	}
	byID := make(map[string]int, len(kept))
	for i, o := range kept {
		byID[strings.ToLower(id(o))] = i
	}
	changedN := 0
	for _, o := range inc {
		// An object read again within the safety margin is not a change.
		if i, ok := byID[strings.ToLower(id(o))]; !ok || !reflect.DeepEqual(kept[i], o) {
			changedN++
		}
	}
	fresh := make(map[string]int, len(inc))
	for i, o := range inc {
		fresh[strings.ToLower(id(o))] = i
	}
	out := make([]T, 0, len(kept)+len(inc))
	dropped := 0
	for _, o := range kept {
		k := strings.ToLower(id(o))
		if i, ok := fresh[k]; ok {
			out = append(out, inc[i])
			delete(fresh, k)
			continue
		}
		if changed[k] {
			dropped++
			continue
		}
		out = append(out, o)
	}
	for _, o := range inc {
		if _, ok := fresh[strings.ToLower(id(o))]; ok {
			out = append(out, o)
		}
	}
	return out, changedN, dropped
}
