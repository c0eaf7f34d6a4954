package graph

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/contacts"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/exo-worker/worker/internal/directory"
)

// The request plan of a Snapshot, cheapest first:
//
//   - No State configured (nothing is kept between calls): users, groups and contacts are read through list
//     pages of 999 (Options.PageSize), about 100 objects per round trip fewer than a delta round's pages;
//     domains and SKUs ride in one $batch.
//   - State configured, nothing saved yet (first run, or the saved state was refused): "sync from now"
//     ($deltatoken=latest, one request that returns only a deltaLink), then the same list pages of 999; the
//     objects and the link are saved. The link is taken before the list, so a change made while listing is
//     replayed by the next delta round rather than lost (replaying a change is harmless: delta items carry
//     every selected property).
//   - State saved: one delta round per resource from the saved link. The first page of each rides in the
//     same $batch as domains and SKUs, so an unchanged tenant costs one Graph request in all.
//
// A saved link Graph refuses (expired: 410 or a resync code; corrupt: 400) or a saved state that does not
// decode costs one full read of that resource, never an error.

// SyncStats describe one Snapshot: the round trips it cost and what changed.
type SyncStats struct {
	Requests  int64 // HTTP round trips, retries and the $batch for domains and SKUs included
	Retries   int64
	Throttled int64
	Pages     int64
	// FullRounds counts resources read from scratch (list pages, or an initial delta round), IncrementalRounds
	// those read from their deltaLink; Resyncs the full rounds a refused link or saved state caused.
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

// deltaState is one resource as of its link: the objects sorted by id, and where the next round starts.
// items is shared, read-only, with every snapshot handed out (one copy of the directory, not two): a round
// that changes something builds a new slice instead of editing this one.
type deltaState[T any] struct {
	resource string
	items    []T
	link     string
	loaded   bool // items and link are current
	tried    bool // the saved state was consulted (once per process)
}

func newDeltaState[T any](resource string) *deltaState[T] {
	return &deltaState[T]{resource: resource}
}

// deltaPage is one delta page, converted: objects added or changed, ids removed, and where to go next.
type deltaPage[T any] struct {
	upserts []T
	removed []string
	next    string
	delta   string
}

// deltaSource reads one resource through the SDK.
type deltaSource[T any] struct {
	set    string                                                       // the entity set: users, groups, contacts
	sel    []string                                                     // the $select of every read
	first  func(ctx context.Context) (deltaPage[T], error)              // the initial delta query, with $select
	follow func(ctx context.Context, link string) (deltaPage[T], error) // a nextLink or deltaLink, verbatim
	// batched converts the answer to a deltaLink sent inside a $batch.
	batched func(resp msgraphcore.BatchResponse, id string) (deltaPage[T], error)
	list    func(ctx context.Context) ([]T, error) // list pages of PageSize
	id      func(T) string
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
		set: "users", sel: userSelect,
		first: func(ctx context.Context) (deltaPage[userItem], error) {
			// No $top: delta does not support it (research gotcha 10).
			return conv(c.sdk.Users().Delta().GetAsDeltaGetResponse(ctx, &users.DeltaRequestBuilderGetRequestConfiguration{
				QueryParameters: &users.DeltaRequestBuilderGetQueryParameters{Select: userSelect}}))
		},
		follow: func(ctx context.Context, link string) (deltaPage[userItem], error) {
			return conv(c.sdk.Users().Delta().WithUrl(link).GetAsDeltaGetResponse(ctx, nil))
		},
		batched: func(resp msgraphcore.BatchResponse, id string) (deltaPage[userItem], error) {
			return conv(msgraphcore.GetBatchResponseById[users.DeltaGetResponseable](resp, id, users.CreateDeltaGetResponseFromDiscriminatorValue))
		},
		list: c.Users,
		id:   func(u userItem) string { return u.ID },
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
		set: "groups", sel: groupSelect,
		first: func(ctx context.Context) (deltaPage[groupItem], error) {
			return conv(c.sdk.Groups().Delta().GetAsDeltaGetResponse(ctx, &groups.DeltaRequestBuilderGetRequestConfiguration{
				QueryParameters: &groups.DeltaRequestBuilderGetQueryParameters{Select: groupSelect}}))
		},
		follow: func(ctx context.Context, link string) (deltaPage[groupItem], error) {
			return conv(c.sdk.Groups().Delta().WithUrl(link).GetAsDeltaGetResponse(ctx, nil))
		},
		batched: func(resp msgraphcore.BatchResponse, id string) (deltaPage[groupItem], error) {
			return conv(msgraphcore.GetBatchResponseById[groups.DeltaGetResponseable](resp, id, groups.CreateDeltaGetResponseFromDiscriminatorValue))
		},
		list: c.Groups,
		id:   func(g groupItem) string { return g.ID },
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
		set: "contacts", sel: contactSelect,
		first: func(ctx context.Context) (deltaPage[contactItem], error) {
			return conv(c.sdk.Contacts().Delta().GetAsDeltaGetResponse(ctx, &contacts.DeltaRequestBuilderGetRequestConfiguration{
				QueryParameters: &contacts.DeltaRequestBuilderGetQueryParameters{Select: contactSelect}}))
		},
		follow: func(ctx context.Context, link string) (deltaPage[contactItem], error) {
			return conv(c.sdk.Contacts().Delta().WithUrl(link).GetAsDeltaGetResponse(ctx, nil))
		},
		batched: func(resp msgraphcore.BatchResponse, id string) (deltaPage[contactItem], error) {
			return conv(msgraphcore.GetBatchResponseById[contacts.DeltaGetResponseable](resp, id, contacts.CreateDeltaGetResponseFromDiscriminatorValue))
		},
		list: c.Contacts,
		id:   func(oc contactItem) string { return oc.ID },
	}
}

// roundStats counts one resource's work; Snapshot sums them.
type roundStats struct {
	full, incremental, resyncs, changed, removed int
}

// firstPage is a delta round's first page when it came in the shared $batch.
type firstPage[T any] struct {
	page deltaPage[T]
	err  error
}

// round follows one delta round from its first page (p, or perr) to its deltaLink, handing each page to
// onPage. prev is the link the first page was read from. Errors name the resource and the page.
func round[T any](ctx context.Context, c *Client, resource string, src deltaSource[T], prev string, p deltaPage[T], err error, onPage func(deltaPage[T])) (string, error) {
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

// staleLink reports whether Graph refused a saved deltaLink in a way a full read fixes: expired (410, a
// resync code) or not understood (400, 404: a corrupt or foreign token).
func staleLink(err error) bool {
	if deltaExpired(err) {
		return true
	}
	ge, ok := asError(err)
	return ok && (ge.Status == http.StatusBadRequest || ge.Status == http.StatusNotFound)
}

// syncResource brings one resource up to date. Without a state store it lists the resource and keeps
// nothing; with one it runs a delta round from the saved link, or a full read when there is none, the store's
// link was deleted, or Graph refused the link (one full read, not a failure). first, when set, is the round's
// first page, already read in the shared $batch.
func syncResource[T any](ctx context.Context, c *Client, st *deltaState[T], src deltaSource[T], first *firstPage[T]) ([]T, roundStats, error) {
	var rs roundStats
	if c.state == nil {
		items, err := src.list(ctx)
		if err != nil {
			return nil, rs, err
		}
		sortByID(items, src.id)
		rs.full = 1
		return items, rs, nil
	}
	if st.loaded {
		stored, err := c.state.GetDeltaLink(ctx, st.resource)
		if err != nil {
			return nil, rs, fmt.Errorf("graph: read the saved delta link of %s: %w", st.resource, err)
		}
		if stored == "" {
			c.log.Info("graph: saved delta link gone, reading from scratch", zap.String("resource", st.resource))
			st.loaded, first = false, nil
		} else if stored != st.link {
			// Another process sharing the store moved on; its link is at least as new as ours.
			st.link, first = stored, nil
		}
	}
	if st.loaded {
		upserts := map[string]T{}
		removals := map[string]bool{}
		var p deltaPage[T]
		var err error
		if first != nil {
			p, err = first.page, first.err
		} else {
			p, err = src.follow(ctx, st.link)
		}
		next, err := round(ctx, c, st.resource, src, st.link, p, err, func(p deltaPage[T]) {
			// Later entries win: the same object may appear more than once in a round.
			for _, it := range p.upserts {
				id := strings.ToLower(src.id(it))
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
			changed := len(upserts) > 0 || len(removals) > 0
			if changed {
				st.items = merge(st.items, upserts, removals, src.id)
			}
			rs.incremental, rs.changed, rs.removed = 1, len(upserts), len(removals)
			return st.items, rs, saveState(ctx, c, st, next, changed)
		case staleLink(err):
			c.log.Warn("graph: the saved delta link was refused, reading the resource from scratch", zap.String("resource", st.resource), zap.Error(err))
			rs.resyncs = 1
			st.loaded = false
		default:
			return nil, rs, err
		}
	}
	items, link, err := fullRead(ctx, c, st.resource, src)
	if err != nil {
		return nil, rs, err
	}
	st.items, st.loaded = items, true
	rs.full = 1
	return st.items, rs, saveState(ctx, c, st, link, true)
}

// fullRead reads a resource from scratch and returns its objects and the link of the next delta round:
// the latest link first, then list pages; if Graph refuses "latest" for this resource, an initial delta round.
func fullRead[T any](ctx context.Context, c *Client, resource string, src deltaSource[T]) ([]T, string, error) {
	latest := strings.TrimRight(c.adapter.GetBaseUrl(), "/") + "/" + src.set + "/delta()?$deltatoken=latest&$select=" + strings.Join(src.sel, ",")
	p, err := src.follow(ctx, latest)
	if err == nil && p.delta != "" && p.next == "" {
		c.pages.Add(1)
		items, err := src.list(ctx)
		if err != nil {
			return nil, "", err
		}
		sortByID(items, src.id)
		return items, p.delta, nil
	}
	if err != nil {
		if ge, ok := asError(mapError(resource, err)); !ok || ge.Status < 400 || ge.Status >= 500 || ge.Status == 401 || ge.Status == 403 {
			return nil, "", mapError(resource+" delta (latest)", err)
		}
	}
	c.log.Info("graph: Graph does not sync this resource from now; reading it with an initial delta round",
		zap.String("resource", resource), zap.Error(err))
	byID := map[string]T{}
	p, err = src.first(ctx)
	link, err := round(ctx, c, resource, src, "", p, err, func(p deltaPage[T]) {
		for _, it := range p.upserts {
			byID[strings.ToLower(src.id(it))] = it
		}
		for _, id := range p.removed { // the initial round may carry removals too
			delete(byID, id)
		}
	})
	if err != nil {
		return nil, "", err
	}
	items := make([]T, 0, len(byID))
	for _, it := range byID {
		items = append(items, it)
	}
	sortByID(items, src.id)
	return items, link, nil
}

func sortByID[T any](items []T, id func(T) string) {
	slices.SortFunc(items, func(a, b T) int { return strings.Compare(strings.ToLower(id(a)), strings.ToLower(id(b))) })
}

// merge returns a new sorted slice: old minus removals, with upserts replacing or adding objects. old is
// left as it was (snapshots handed out earlier still hold it).
func merge[T any](old []T, upserts map[string]T, removals map[string]bool, id func(T) string) []T {
	out := make([]T, 0, len(old)+len(upserts))
	for _, it := range old {
		k := strings.ToLower(id(it))
		if removals[k] {
			continue
		}
		if _, ok := upserts[k]; ok {
			continue
		}
		out = append(out, it)
	}
	for _, it := range upserts {
		out = append(out, it)
	}
	sortByID(out, id)
	return out
}

// Snapshot returns Graph's view of the directory; it implements jobs.DirectoryReader. See the request plan
// at the top of this file. Snapshots share their objects with the client and with each other: treat them as
// read-only (a later sync never changes a snapshot already handed out).
func (c *Client) Snapshot(ctx context.Context) (*directory.Snapshot, error) {
	s, _, err := c.SyncSnapshot(ctx)
	return s, err
}

// SyncSnapshot is Snapshot that also reports what the sync cost.
func (c *Client) SyncSnapshot(ctx context.Context) (*directory.Snapshot, SyncStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start, before := time.Now(), c.Stats()
	stats := func(total roundStats) SyncStats {
		d := c.Stats().sub(before)
		return SyncStats{Requests: d.Requests, Retries: d.Retries, Throttled: d.Throttled, Pages: d.Pages,
			FullRounds: total.full, IncrementalRounds: total.incremental, Resyncs: total.resyncs,
			Changed: total.changed, Removed: total.removed, Duration: time.Since(start)}
	}
	var (
		doms []directory.Domain
		skus []directory.SubscribedSKU
	)
	if c.state != nil {
		if err := loadState(ctx, c, c.users); err != nil {
			return nil, stats(roundStats{}), err
		}
		if err := loadState(ctx, c, c.groups); err != nil {
			return nil, stats(roundStats{}), err
		}
		if err := loadState(ctx, c, c.contacts); err != nil {
			return nil, stats(roundStats{}), err
		}
	}
	steps, err := c.domainSteps(ctx, true, true, &doms, &skus)
	if err != nil {
		return nil, stats(roundStats{}), err
	}
	// The first page of each resource that resumes from a link rides in the same $batch.
	uFirst, uStep := batchedFirst(ctx, c, c.users, c.userSource())
	gFirst, gStep := batchedFirst(ctx, c, c.groups, c.groupSource())
	cFirst, cStep := batchedFirst(ctx, c, c.contacts, c.contactSource())
	var deltaSteps []batchStep
	for _, s := range []*batchStep{uStep, gStep, cStep} {
		if s != nil {
			deltaSteps = append(deltaSteps, *s)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	if len(deltaSteps) > 0 {
		// The delta rounds continue from their first pages, so the batch goes first.
		if err := c.batchGet(ctx, append(steps, deltaSteps...)); err != nil {
			return nil, stats(roundStats{}), err
		}
	} else {
		g.Go(func() error { return c.batchGet(gctx, steps) })
	}
	var (
		mu    sync.Mutex
		total roundStats
		us    []userItem
		gs    []groupItem
		cs    []contactItem
		add   = func(rs roundStats) {
			mu.Lock()
			defer mu.Unlock()
			total.full += rs.full
			total.incremental += rs.incremental
			total.resyncs += rs.resyncs
			total.changed += rs.changed
			total.removed += rs.removed
		}
	)
	// Each resource's state is touched by its own goroutine only.
	g.Go(func() error {
		items, rs, err := syncResource(gctx, c, c.users, c.userSource(), uFirst)
		us = items
		add(rs)
		return err
	})
	g.Go(func() error {
		items, rs, err := syncResource(gctx, c, c.groups, c.groupSource(), gFirst)
		gs = items
		add(rs)
		return err
	})
	g.Go(func() error {
		items, rs, err := syncResource(gctx, c, c.contacts, c.contactSource(), cFirst)
		cs = items
		add(rs)
		return err
	})
	err = g.Wait()
	st := stats(total)
	if err != nil {
		return nil, st, err
	}
	snap := &directory.Snapshot{Domains: doms, SKUs: skus, Users: us, Groups: gs, Contacts: cs}
	c.log.Info("graph: directory read", zap.Int("users", len(snap.Users)), zap.Int("groups", len(snap.Groups)),
		zap.Int("contacts", len(snap.Contacts)), zap.Int("full_rounds", st.FullRounds),
		zap.Int("incremental_rounds", st.IncrementalRounds), zap.Int("resyncs", st.Resyncs),
		zap.Int("changed", st.Changed), zap.Int("removed", st.Removed), zap.Int64("requests", st.Requests),
		zap.Duration("took", st.Duration))
	return snap, st, nil
}

// batchedFirst prepares the $batch step that reads the first page of st's next delta round, when st resumes
// from a link on the Graph host ($batch items are relative to it). The page, or the error, lands in the
// returned firstPage.
func batchedFirst[T any](ctx context.Context, c *Client, st *deltaState[T], src deltaSource[T]) (*firstPage[T], *batchStep) {
	if c.state == nil || !st.loaded || !strings.HasPrefix(st.link, strings.TrimRight(c.adapter.GetBaseUrl(), "/")+"/") {
		return nil, nil
	}
	ri, err := c.sdk.Users().Delta().WithUrl(st.link).ToGetRequestInformation(ctx, nil)
	if err != nil {
		return nil, nil
	}
	fp := &firstPage[T]{}
	return fp, &batchStep{resource: st.resource + " delta", info: ri,
		ok: func(_ context.Context, resp msgraphcore.BatchResponse, id string) error {
			fp.page, fp.err = src.batched(resp, id)
			return nil
		},
		fail: func(ge *Error) bool {
			fp.err = ge
			return true
		}}
}
