package tenant

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"weak"
)

// This file models group membership and group-based licensing, as far as the mailbox-license job and its
// read-back need them. A group holds licences in its own Object.AssignedLicenses (Graph's group
// assignedLicenses); every member of such a group gets each of those SKUs in assignedLicenses and the SKU's
// service plans in assignedPlans, as Entra's licensing service does. The service applies a membership change
// to licences asynchronously: SetLicensingLag delays it by a number of Graph requests (deterministic, so a test
// can show a read-back that sees the membership before the licence without a clock). Removing the membership
// takes the group's licences away again, unless another group (or a direct assignment that was there before)
// still grants them; their plans stay in assignedPlans with capabilityStatus Deleted, as Graph shows them.

// Membership errors the Graph front end maps onto the service's answers.
var (
	// ErrAlreadyMember: POST members/$ref of an object that is already a member (Graph: 400, "One or more
	// added object references already exist for the following modified properties: 'members'.").
	ErrAlreadyMember = errors.New("already a member")
	// ErrNotMember: DELETE members/{id}/$ref of an object that is not a member.
	ErrNotMember = errors.New("not a member")
	// ErrNoGroup and ErrNoMember: an id that names no group, or no directory object.
	ErrNoGroup  = errors.New("no such group")
	ErrNoMember = errors.New("no such directory object")
)

// membershipSide is the tenant's membership state, in a weakly keyed side table like GraphSide.
type membershipSide struct {
	mu      sync.Mutex
	members map[string]map[string]bool // group id → member ids (lower case)
	// granted records, per user and group, the SKUs that group's licensing gave the user (and that the user
	// did not already hold), so removing the membership takes back exactly those.
	granted map[string]map[string][]string
	lag     int
	pending []licensingJob
	// removeMissing is the HTTP status a DELETE of a non-member gets: 404 (Request_ResourceNotFound) or 400
	// (Request_BadRequest, "One or more removed object references do not exist ..."); the service answers
	// both ways.
	removeMissing int
}

// licensingJob is a membership change the licensing service has not applied to licences yet.
type licensingJob struct {
	user, group string
	add         bool
	due         int // Graph requests left before it applies
}

var membershipSides sync.Map // weak.Pointer[Tenant] → *membershipSide

func membershipOf(t *Tenant) *membershipSide {
	k := weak.Make(t)
	if v, ok := membershipSides.Load(k); ok {
		return v.(*membershipSide)
	}
	v, loaded := membershipSides.LoadOrStore(k, &membershipSide{members: map[string]map[string]bool{},
		granted: map[string]map[string][]string{}, removeMissing: 404})
	if !loaded {
		runtime.AddCleanup(t, func(k weak.Pointer[Tenant]) { membershipSides.Delete(k) }, k)
	}
	return v.(*membershipSide)
}

// SetLicensingLag makes group-based licensing apply a membership change only after n further Graph requests
// (0, the default: at once).
func (t *Tenant) SetLicensingLag(n int) {
	ms := membershipOf(t)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.lag = max(n, 0)
}

// SetRemoveNotMemberStatus chooses how a DELETE of a non-member is answered: 404 or 400 (both occur).
func (t *Tenant) SetRemoveNotMemberStatus(status int) {
	ms := membershipOf(t)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if status == 400 || status == 404 {
		ms.removeMissing = status
	}
}

// RemoveNotMemberStatus is the status SetRemoveNotMemberStatus chose (404 by default).
func (t *Tenant) RemoveNotMemberStatus() int {
	ms := membershipOf(t)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.removeMissing
}

// SetGroupLicenses gives a group licences for group-based licensing (Graph group assignedLicenses). Members
// already in the group get them through the licensing service like new members do.
func (t *Tenant) SetGroupLicenses(groupID string, licenses ...License) error {
	o, ok := t.Object(groupID)
	if !ok || o.Kind != KindGroup {
		return fmt.Errorf("sim: set group licences: %w: %s", ErrNoGroup, groupID)
	}
	for _, l := range licenses {
		if t.sku(l.SkuID) == nil {
			return fmt.Errorf("sim: set group licences of %s: the tenant has no SKU %s", groupID, l.SkuID)
		}
	}
	t.Update(groupID, func(g *Object) { g.AssignedLicenses = slices.Clone(licenses) })
	ms := membershipOf(t)
	ms.mu.Lock()
	for m := range ms.members[strings.ToLower(groupID)] {
		ms.pending = append(ms.pending, licensingJob{user: m, group: strings.ToLower(groupID), add: true, due: ms.lag})
	}
	ms.mu.Unlock()
	t.LicensingTick(0)
	return nil
}

func (t *Tenant) sku(id string) *SubscribedSKU {
	for _, s := range t.SubscribedSKUs() {
		if strings.EqualFold(s.SkuID, id) {
			return &s
		}
	}
	return nil
}

// AddMember makes member a member of group (Graph POST /groups/{id}/members/$ref). ErrAlreadyMember when it
// is one; ErrNoGroup / ErrNoMember for unknown ids.
func (t *Tenant) AddMember(groupID, memberID string) error {
	g, m := strings.ToLower(groupID), strings.ToLower(memberID)
	if o, ok := t.Object(g); !ok || o.Kind != KindGroup {
		return fmt.Errorf("%w: %s", ErrNoGroup, groupID)
	}
	if _, ok := t.Object(m); !ok {
		return fmt.Errorf("%w: %s", ErrNoMember, memberID)
	}
	ms := membershipOf(t)
	ms.mu.Lock()
	if ms.members[g][m] {
		ms.mu.Unlock()
		return ErrAlreadyMember
	}
	if ms.members[g] == nil {
		ms.members[g] = map[string]bool{}
	}
	ms.members[g][m] = true
	ms.pending = append(ms.pending, licensingJob{user: m, group: g, add: true, due: ms.lag})
	ms.mu.Unlock()
	t.LicensingTick(0)
	return nil
}

// RemoveMember takes member out of group (Graph DELETE /groups/{id}/members/{id}/$ref). ErrNotMember when it
// is not one.
func (t *Tenant) RemoveMember(groupID, memberID string) error {
	g, m := strings.ToLower(groupID), strings.ToLower(memberID)
	if o, ok := t.Object(g); !ok || o.Kind != KindGroup {
		return fmt.Errorf("%w: %s", ErrNoGroup, groupID)
	}
	ms := membershipOf(t)
	ms.mu.Lock()
	if !ms.members[g][m] {
		ms.mu.Unlock()
		return ErrNotMember
	}
	delete(ms.members[g], m)
	ms.pending = append(ms.pending, licensingJob{user: m, group: g, add: false, due: ms.lag})
	ms.mu.Unlock()
	t.LicensingTick(0)
	return nil
}

// IsMember reports whether member is a direct member of group.
func (t *Tenant) IsMember(groupID, memberID string) bool {
	ms := membershipOf(t)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.members[strings.ToLower(groupID)][strings.ToLower(memberID)]
}

// Members lists the direct members of group, sorted.
func (t *Tenant) Members(groupID string) []string {
	ms := membershipOf(t)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	out := make([]string, 0, len(ms.members[strings.ToLower(groupID)]))
	for m := range ms.members[strings.ToLower(groupID)] {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// MemberOf lists the groups member is a direct member of, sorted.
func (t *Tenant) MemberOf(memberID string) []string {
	ms := membershipOf(t)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	var out []string
	for g, set := range ms.members {
		if set[strings.ToLower(memberID)] {
			out = append(out, g)
		}
	}
	sort.Strings(out)
	return out
}

// LicensingPending reports how many membership changes the licensing service has not applied yet.
func (t *Tenant) LicensingPending() int {
	ms := membershipOf(t)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return len(ms.pending)
}

// LicensingTick advances the licensing service by n Graph requests and applies the membership changes that
// are due. The Graph front end calls it with 1 for every request it serves.
func (t *Tenant) LicensingTick(n int) {
	ms := membershipOf(t)
	ms.mu.Lock()
	var due []licensingJob
	keep := ms.pending[:0]
	for _, j := range ms.pending {
		j.due -= n
		if j.due <= 0 {
			due = append(due, j)
		} else {
			keep = append(keep, j)
		}
	}
	ms.pending = keep
	ms.mu.Unlock()
	for _, j := range due {
		if j.add {
			t.grantGroupLicenses(j.user, j.group)
		} else {
			t.revokeGroupLicenses(j.user, j.group)
		}
	}
}

// grantGroupLicenses gives user the licences of group it does not hold yet, with their plans.
func (t *Tenant) grantGroupLicenses(user, group string) {
	if !t.IsMember(group, user) {
		return // removed again before licensing ran
	}
	g, ok := t.Object(group)
	if !ok {
		return
	}
	skus := map[string]*SubscribedSKU{}
	for _, l := range g.AssignedLicenses {
		skus[strings.ToLower(l.SkuID)] = t.sku(l.SkuID)
	}
	now := t.now().UTC().Truncate(time.Second)
	var given []string
	t.Update(user, func(o *Object) {
		if o.Kind != KindUser {
			return // licences apply to users only
		}
		for _, l := range g.AssignedLicenses {
			sku := skus[strings.ToLower(l.SkuID)]
			if sku == nil || slices.ContainsFunc(o.AssignedLicenses, func(h License) bool { return strings.EqualFold(h.SkuID, l.SkuID) }) {
				continue
			}
			o.AssignedLicenses = append(o.AssignedLicenses, License{SkuID: sku.SkuID, DisabledPlans: slices.Clone(l.DisabledPlans)})
			given = append(given, strings.ToLower(sku.SkuID))
			for _, p := range sku.ServicePlans {
				if slices.Contains(l.DisabledPlans, p.ServicePlanID) {
					continue
				}
				if i := slices.IndexFunc(o.AssignedPlans, func(a Plan) bool { return strings.EqualFold(a.ServicePlanID, p.ServicePlanID) }); i >= 0 {
					o.AssignedPlans[i].CapabilityStatus, o.AssignedPlans[i].AssignedDateTime = "Enabled", now
					continue
				}
				o.AssignedPlans = append(o.AssignedPlans, Plan{AssignedDateTime: now, CapabilityStatus: "Enabled",
					Service: p.Service, ServicePlanID: p.ServicePlanID})
			}
		}
	})
	if len(given) == 0 {
		return
	}
	ms := membershipOf(t)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.granted[user] == nil {
		ms.granted[user] = map[string][]string{}
	}
	ms.granted[user][group] = append(ms.granted[user][group], given...)
}

// revokeGroupLicenses takes back the licences group gave user, unless another of its groups gave the same.
func (t *Tenant) revokeGroupLicenses(user, group string) {
	if t.IsMember(group, user) {
		return // added back before licensing ran
	}
	ms := membershipOf(t)
	ms.mu.Lock()
	skus := ms.granted[user][group]
	delete(ms.granted[user], group)
	var drop []string
	for _, s := range skus {
		still := false
		for og, gs := range ms.granted[user] {
			if og != group && slices.Contains(gs, s) {
				still = true
			}
		}
		if !still {
			drop = append(drop, s)
		}
	}
	ms.mu.Unlock()
	if len(drop) == 0 {
		return
	}
	plans := map[string]bool{}
	for _, s := range drop {
		if sku := t.sku(s); sku != nil {
			for _, p := range sku.ServicePlans {
				plans[strings.ToLower(p.ServicePlanID)] = true
			}
		}
	}
	kept := map[string]bool{} // plans a licence the user keeps still grants
	for _, l := range func() []License { o, _ := t.Object(user); return o.AssignedLicenses }() {
		if slices.Contains(drop, strings.ToLower(l.SkuID)) {
			continue
		}
		if sku := t.sku(l.SkuID); sku != nil {
			for _, p := range sku.ServicePlans {
				kept[strings.ToLower(p.ServicePlanID)] = true
			}
		}
	}
	t.Update(user, func(o *Object) {
		o.AssignedLicenses = slices.DeleteFunc(o.AssignedLicenses, func(l License) bool { return slices.Contains(drop, strings.ToLower(l.SkuID)) })
		for i := range o.AssignedPlans {
			if id := strings.ToLower(o.AssignedPlans[i].ServicePlanID); plans[id] && !kept[id] {
				o.AssignedPlans[i].CapabilityStatus = "Deleted"
			}
		}
	})
}
