package tenant

import "time"

// The end of the last directory sync cycle, as Graph shows it (organization.onPremisesLastSyncDateTime).
// Entra Connect stamps it when a cycle finishes; the simulator stamps it whenever its scenario adds or
// removes a synced object, and when a scenario that changed synced objects through Update says a cycle
// ended (SyncCycle). Writes through the EXO admin API are not sync, so they never stamp it.

// LastSync is when the last sync cycle finished (zero: the tenant never synced).
func (t *Tenant) LastSync() time.Time {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.lastSync
}

// SyncCycle records that a sync cycle finished now.
func (t *Tenant) SyncCycle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastSync = t.now().UTC()
}

// syncedLocked stamps the sync time when o is a synced object; the caller holds the write lock.
func (t *Tenant) syncedLocked(o *Object) {
	if o.OnPremisesSyncEnabled || o.IsDirSynced {
		t.lastSync = t.now().UTC()
	}
}
