package graph

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/contacts"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/exo-worker/worker/internal/directory"
)

// DeltaStore keeps the deltaLink of each resource ("users", "groups", "contacts") between rounds.
// internal/store implements it. The directory itself lives in the client's memory, so a new process always
// starts with a full round; the store records where each resource stands and lets an operator force a full
// round by deleting a link (an empty stored link makes the next Snapshot read that resource from scratch).
type DeltaStore interface {
	GetDeltaLink(ctx context.Context, resource string) (string, error)
	SetDeltaLink(ctx context.Context, resource, link string) error
}

// SyncStats describe one Snapshot: the round trips it cost and what changed.
type SyncStats struct {
	Requests  int64 // HTTP round trips, retries and the $batch for domains and SKUs included
	Retries   int64
	Throttled int64
	Pages     int64
	// FullRounds counts resources read from scratch (first Snapshot, forced, or after an expired token);
	// IncrementalRounds those read from their deltaLink; Resyncs the full rounds an expired token caused.
	FullRounds        int
	IncrementalRounds int
	Resyncs           int
	// Changed and Removed count the objects the incremental rounds added or changed, and removed.
	Changed  int
	Removed  int
	Duration time.Duration
}

// userItem and friends name the directory types the delta state holds.
type (
	userItem    = directory.User
	groupItem   = directory.Group
	contactItem = directory.Contact
)

// deltaState is the in-memory copy of one resource and the link its next round starts from.
type deltaState[T any] struct {
	resource string
	items    map[string]T
	link     string
	loaded   bool
}

func newDeltaState[T any](resource string) *deltaState[T] {
	return &deltaState[T]{resource: resource, items: map[string]T{}}
}

// deltaPage is one delta page, converted: objects added or changed, ids removed, and where to go next.
type deltaPage[T any] struct {
	upserts []T
	removed []string
	next    string
	delta   string
}

// deltaSource reads one resource's delta pages through the SDK.
type deltaSource[T any] struct {
	first  func(ctx context.Context) (deltaPage[T], error)              // the initial query, with $select
	follow func(ctx context.Context, link string) (deltaPage[T], error) // a nextLink or deltaLink, verbatim
	id     func(T) string
}

func (c *Client) userSource() deltaSource[userItem] {
	conv := func(r users.DeltaGetResponseable, err error) (deltaPage[userItem], error) {
		if err != nil {
			return deltaPage[userItem]{}, err
		}
		p := deltaPage[userItem]{next: deref(r.GetOdataNextLink()), delta: deref(r.GetOdataDeltaLink())}
		for _, u := range r.GetValue() {
			if removed(u.GetAdditionalData()) {
				p.removed = append(p.removed, strings.ToLower(deref(u.GetId())))
				continue
			}
			p.upserts = append(p.upserts, toUser(u))
		}
		return p, nil
	}
	return deltaSource[userItem]{
		first: func(ctx context.Context) (deltaPage[userItem], error) {
			// No $top: delta does not support it (research gotcha 10).
			return conv(c.sdk.Users().Delta().GetAsDeltaGetResponse(ctx, &users.DeltaRequestBuilderGetRequestConfiguration{
				QueryParameters: &users.DeltaRequestBuilderGetQueryParameters{Select: userSelect}}))
		},
		follow: func(ctx context.Context, link string) (deltaPage[userItem], error) {
			return conv(c.sdk.Users().Delta().WithUrl(link).GetAsDeltaGetResponse(ctx, nil))
		},
		id: func(u userItem) string { return u.ID },
	}
}

func (c *Client) groupSource() deltaSource[groupItem] {
	conv := func(r groups.DeltaGetResponseable, err error) (deltaPage[groupItem], error) {
		if err != nil {
			return deltaPage[groupItem]{}, err
		}
		p := deltaPage[groupItem]{next: deref(r.GetOdataNextLink()), delta: deref(r.GetOdataDeltaLink())}
		for _, g := range r.GetValue() {
			if removed(g.GetAdditionalData()) {
				p.removed = append(p.removed, strings.ToLower(deref(g.GetId())))
				continue
			}
			p.upserts = append(p.upserts, toGroup(g))
		}
		return p, nil
	}
	return deltaSource[groupItem]{
		first: func(ctx context.Context) (deltaPage[groupItem], error) {
			return conv(c.sdk.Groups().Delta().GetAsDeltaGetResponse(ctx, &groups.DeltaRequestBuilderGetRequestConfiguration{
				QueryParameters: &groups.DeltaRequestBuilderGetQueryParameters{Select: groupSelect}}))
		},
		follow: func(ctx context.Context, link string) (deltaPage[groupItem], error) {
			return conv(c.sdk.Groups().Delta().WithUrl(link).GetAsDeltaGetResponse(ctx, nil))
		},
		id: func(g groupItem) string { return g.ID },
	}
}

func (c *Client) contactSource() deltaSource[contactItem] {
	conv := func(r contacts.DeltaGetResponseable, err error) (deltaPage[contactItem], error) {
		if err != nil {
			return deltaPage[contactItem]{}, err
		}
		p := deltaPage[contactItem]{next: deref(r.GetOdataNextLink()), delta: deref(r.GetOdataDeltaLink())}
		for _, oc := range r.GetValue() {
			if removed(oc.GetAdditionalData()) {
				p.removed = append(p.removed, strings.ToLower(deref(oc.GetId())))
				continue
			}
			p.upserts = append(p.upserts, toContact(oc))
		}
		return p, nil
	}
	return deltaSource[contactItem]{
		first: func(ctx context.Context) (deltaPage[contactItem], error) {
			return conv(c.sdk.Contacts().Delta().GetAsDeltaGetResponse(ctx, &contacts.DeltaRequestBuilderGetRequestConfiguration{
				QueryParameters: &contacts.DeltaRequestBuilderGetQueryParameters{Select: contactSelect}}))
		},
		follow: func(ctx context.Context, link string) (deltaPage[contactItem], error) {
			return conv(c.sdk.Contacts().Delta().WithUrl(link).GetAsDeltaGetResponse(ctx, nil))
		},
		id: func(oc contactItem) string { return oc.ID },
	}
}

// roundStats counts one resource's work; Snapshot sums them.
type roundStats struct {
	full, incremental, resyncs, changed, removed int
}

// round follows one delta round from link ("" = the initial query) to its deltaLink, handing each page to
// onPage. Errors name the resource and the page.
func round[T any](ctx context.Context, c *Client, resource string, src deltaSource[T], link string, onPage func(deltaPage[T])) (string, error) {
	var p deltaPage[T]
	var err error
	if link == "" {
		p, err = src.first(ctx)
	} else {
		p, err = src.follow(ctx, link)
	}
	prev := link
	for n := 1; ; n++ {
		name := fmt.Sprintf("%s delta page %d", resource, n)
		if err != nil {
			return "", mapError(name, err)
		}
		c.pages.Add(1)
		onPage(p)
		switch {
		case p.next != "":
			if p.next == prev {
				return "", wrapf(name, "Graph answered with a nextLink to the same page; stopping instead of looping")
			}
			if err := ctxErr(ctx, resource); err != nil {
				return "", err
			}
			prev = p.next
			p, err = src.follow(ctx, p.next)
		case p.delta != "":
			return p.delta, nil
		default:
			return "", wrapf(name, "the page has neither @odata.nextLink nor @odata.deltaLink; the round cannot finish")
		}
	}
}

// syncResource brings one resource's state up to date: an incremental round from the stored link, or a full
// round when there is none, the store's link was deleted, or Graph says the token expired (one full resync,
// not a failure).
func syncResource[T any](ctx context.Context, c *Client, st *deltaState[T], src deltaSource[T]) (roundStats, error) {
	var rs roundStats
	link := ""
	if st.loaded {
		link = st.link
		if c.store != nil && link != "" {
			stored, err := c.store.GetDeltaLink(ctx, st.resource)
			if err != nil {
				return rs, fmt.Errorf("graph: read the saved delta link of %s: %w", st.resource, err)
			}
			if stored == "" {
				c.log.Info("graph: saved delta link gone, reading from scratch", zap.String("resource", st.resource))
				link = ""
			}
		}
	}
	if link != "" {
		upserts := map[string]T{}
		removals := map[string]bool{}
		next, err := round(ctx, c, st.resource, src, link, func(p deltaPage[T]) {
			// Later entries win: the same object may appear more than once in a round.
			for _, it := range p.upserts {
				id := src.id(it)
				upserts[id] = it
				delete(removals, id)
			}
			for _, id := range p.removed {
				removals[id] = true
				delete(upserts, id)
			}
		})
		switch {
		case err == nil:
			maps.Copy(st.items, upserts)
			for id := range removals {
				delete(st.items, id)
			}
			rs.incremental, rs.changed, rs.removed = 1, len(upserts), len(removals)
			return rs, saveLink(ctx, c, st, next)
		case deltaExpired(err):
			c.log.Warn("graph: delta token expired, reading the resource from scratch", zap.String("resource", st.resource), zap.Error(err))
			rs.resyncs = 1
		default:
			return rs, err
		}
	}
	items := map[string]T{}
	next, err := round(ctx, c, st.resource, src, "", func(p deltaPage[T]) {
		for _, it := range p.upserts {
			items[src.id(it)] = it
		}
		for _, id := range p.removed { // the initial round may carry removals too
			delete(items, id)
		}
	})
	if err != nil {
		return rs, err
	}
	st.items, st.loaded = items, true
	rs.full = 1
	return rs, saveLink(ctx, c, st, next)
}

// saveLink keeps the link for the next round, in memory and in the store. The store is written only after the
// whole round was applied, so a crash mid-round repeats the round instead of skipping changes.
func saveLink[T any](ctx context.Context, c *Client, st *deltaState[T], link string) error {
	st.link = link
	if c.store == nil {
		return nil
	}
	if err := c.store.SetDeltaLink(ctx, st.resource, link); err != nil {
		return fmt.Errorf("graph: save the delta link of %s: %w", st.resource, err)
	}
	return nil
}

// Snapshot returns Graph's view of the directory; it implements jobs.DirectoryReader. The first call reads
// users, groups and contacts with initial delta rounds; later calls apply only what changed since (an unchanged
// tenant costs one round trip per resource). Domains and SKUs are small and read on every call.
func (c *Client) Snapshot(ctx context.Context) (*directory.Snapshot, error) {
	s, _, err := c.SyncSnapshot(ctx)
	return s, err
}

// SyncSnapshot is Snapshot that also reports what the sync cost.
func (c *Client) SyncSnapshot(ctx context.Context) (*directory.Snapshot, SyncStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start, before := time.Now(), c.Stats()
	var (
		mu        sync.Mutex
		total     roundStats
		doms      []directory.Domain
		skus      []directory.SubscribedSKU
		g, gctx   = errgroup.WithContext(ctx)
		addRounds = func(rs roundStats) {
			mu.Lock()
			defer mu.Unlock()
			total.full += rs.full
			total.incremental += rs.incremental
			total.resyncs += rs.resyncs
			total.changed += rs.changed
			total.removed += rs.removed
		}
	)
	// Four independent reads; each resource's state is touched by its own goroutine only.
	g.SetLimit(4)
	g.Go(func() error {
		rs, err := syncResource(gctx, c, c.users, c.userSource())
		addRounds(rs)
		return err
	})
	g.Go(func() error {
		rs, err := syncResource(gctx, c, c.groups, c.groupSource())
		addRounds(rs)
		return err
	})
	g.Go(func() error {
		rs, err := syncResource(gctx, c, c.contacts, c.contactSource())
		addRounds(rs)
		return err
	})
	g.Go(func() error {
		var err error
		doms, skus, err = c.domainsAndSKUs(gctx, true, true)
		return err
	})
	err := g.Wait()
	d := c.Stats().sub(before)
	stats := SyncStats{Requests: d.Requests, Retries: d.Retries, Throttled: d.Throttled, Pages: d.Pages,
		FullRounds: total.full, IncrementalRounds: total.incremental, Resyncs: total.resyncs,
		Changed: total.changed, Removed: total.removed, Duration: time.Since(start)}
	if err != nil {
		return nil, stats, err
	}
	snap := &directory.Snapshot{Domains: doms, SKUs: skus,
		Users:    sortedCopy(c.users.items, cloneUser),
		Groups:   sortedCopy(c.groups.items, cloneGroup),
		Contacts: sortedCopy(c.contacts.items, cloneContact)}
	c.log.Info("graph: directory read", zap.Int("users", len(snap.Users)), zap.Int("groups", len(snap.Groups)),
		zap.Int("contacts", len(snap.Contacts)), zap.Int("full_rounds", stats.FullRounds),
		zap.Int("incremental_rounds", stats.IncrementalRounds), zap.Int("resyncs", stats.Resyncs),
		zap.Int("changed", stats.Changed), zap.Int("removed", stats.Removed), zap.Int64("requests", stats.Requests),
		zap.Duration("took", stats.Duration))
	return snap, stats, nil
}

// sortedCopy returns deep copies of the items ordered by id, so a snapshot is stable and owned by the caller.
func sortedCopy[T any](items map[string]T, clone func(T) T) []T {
	ids := slices.Sorted(maps.Keys(items))
	out := make([]T, len(ids))
	for i, id := range ids {
		out[i] = clone(items[id])
	}
	return out
}
