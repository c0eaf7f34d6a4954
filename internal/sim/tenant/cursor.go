package tenant

import (
	"sort"
	"strings"
)

// Paging cursors and soft-deleted recipients.
//
// Every paged read (EXO pages, Graph list pages and initial delta rounds) continues after the Guid of the
// last object it returned. The objects are kept sorted by Guid, so a page starts with a binary search
// instead of a walk from the first object: a page costs O(log n + page), and the simulator stays far
// cheaper than the client it measures.
//
// A deleted object leaves a soft-deleted copy behind, stamped with the deletion time as WhenChanged, which
// only Get-Recipient -IncludeSoftDeletedRecipients shows (Exchange keeps a removed recipient soft-deleted
// for a while, and the switch is how a client learns of removals since a point in time).

// afterLocked returns the objects of list whose Guid sorts after after; list is sorted by Guid.
func afterLocked(list []*Object, after string) []*Object {
	if after == "" {
		return list
	}
	i := sort.Search(len(list), func(i int) bool { return list[i].Guid > after })
	return list[i:]
}

// OrderAfterLocked is OrderLocked from the first object whose Guid sorts after after; the caller holds a
// lock.
func (t *Tenant) OrderAfterLocked(after string) []*Object { return afterLocked(t.order, after) }

// SoftDeletedAfterLocked is the soft-deleted copies, in Guid order, after after; the caller holds a lock.
func (t *Tenant) SoftDeletedAfterLocked(after string) []*Object {
	return afterLocked(t.softDeleted, after)
}

// SelectAfter returns copies of at most limit objects whose Guid sorts after after and for which keep
// returns true, in Guid order. keep must not call Tenant methods.
func (t *Tenant) SelectAfter(after string, limit int, keep func(*Object) bool) []Object {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []Object
	for _, o := range afterLocked(t.order, after) {
		if len(out) >= limit {
			break
		}
		if keep(o) {
			out = append(out, o.Clone())
		}
	}
	return out
}

// softDeleteLocked keeps a copy of a removed recipient for Get-Recipient -IncludeSoftDeletedRecipients.
func (t *Tenant) softDeleteLocked(o *Object) {
	if o.RecipientType == "" {
		return
	}
	c := o.Clone()
	c.WhenChanged = t.now().UTC()
	i := sort.Search(len(t.softDeleted), func(i int) bool { return t.softDeleted[i].Guid >= c.Guid })
	if i < len(t.softDeleted) && strings.EqualFold(t.softDeleted[i].ID, c.ID) {
		t.softDeleted[i] = &c
		return
	}
	t.softDeleted = append(t.softDeleted, nil)
	copy(t.softDeleted[i+1:], t.softDeleted[i:])
	t.softDeleted[i] = &c
}

// Count is how many objects keep returns true for (no copies made). keep must not call Tenant methods.
func (t *Tenant) Count(keep func(*Object) bool) int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := 0
	for _, o := range t.order {
		if keep(o) {
			n++
		}
	}
	return n
}
