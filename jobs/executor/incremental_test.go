package executor_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/jobs/executor"
)

// memSnapshots is an executor.SnapshotStore in memory (internal/store has the SQLite one, tested there).
type memSnapshots struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memSnapshots) GetSnapshot(_ context.Context, name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name], nil
}

func (s *memSnapshots) PutSnapshot(_ context.Context, name string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[name] = data
	return nil
}

// mailUserReads splits the Get-MailUser calls the simulator saw into full and incremental ones.
func mailUserReads(srv *sim.Server) (full, incremental int) {
	for _, e := range srv.Log.Entries() {
		if e.Cmdlet != "Get-MailUser" || e.Identity != "" {
			continue
		}
		if f, _ := e.Params["Filter"].(string); strings.Contains(f, "WhenChangedUTC") {
			incremental++
		} else {
			full++
		}
	}
	return full, incremental
}

func planned(r *executor.Run) []string {
	var ids []string
	for _, c := range r.Plan.Changes {
		ids = append(ids, strings.ToLower(c.Object.ID))
	}
	slices.Sort(ids)
	return ids
}

// TestIncrementalReadsCatchEveryKindOfChange is issue 10's incremental Exchange read: after a full read, each
// run reads only what changed, and a change, a deletion, a new MEU and an MEU that became a mailbox are all
// caught by the next incremental run; a full read comes back after FullReadEvery, and saved results that do
// not decode cost one full read.
func TestIncrementalReadsCatchEveryKindOfChange(t *testing.T) {
	srv, client := startSim(t, nil, sim.Faults{})
	state := &memSnapshots{}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ex := &executor.Executor{Client: client, State: state, Now: func() time.Time { return now }}
	full := &executor.Executor{Client: client}
	job := richText(t)
	ctx := context.Background()
	plan := func(e *executor.Executor) *executor.Run {
		t.Helper()
		r, err := e.Plan(ctx, "run-incremental", job)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	first := plan(ex)
	if f, i := mailUserReads(srv); f != 1 || i != 0 {
		t.Fatalf("first run: %d full and %d incremental reads, want 1 full", f, i)
	}
	srv.Log.Reset()
	second := plan(ex)
	if f, i := mailUserReads(srv); f != 0 || i != 1 {
		t.Fatalf("unchanged rerun: %d full and %d incremental reads, want 1 incremental", f, i)
	}
	if !slices.Equal(planned(first), planned(second)) || first.Plan.InScope != second.Plan.InScope {
		t.Fatalf("unchanged rerun plans %d changes over %d in scope, first run %d over %d",
			len(second.Plan.Changes), second.Plan.InScope, len(first.Plan.Changes), first.Plan.InScope)
	}

	tn := srv.Tenant()
	var right []sim.Object
	for _, o := range tn.InScopeMEUs() {
		if o.UseMapiRichTextFormat == sim.RichTextNever {
			right = append(right, o)
		}
	}
	if len(right) < 3 {
		t.Fatalf("scenario has %d MEUs already right, want 3", len(right))
	}
	changed, deleted, converted := right[0], right[1], right[2]
	if err := tn.SetUseMapiRichTextFormat(changed.ID, sim.RichTextAlways); err != nil {
		t.Fatal(err)
	}
	if !tn.Delete(deleted.ID) {
		t.Fatal("delete failed")
	}
	tn.Update(converted.ID, func(o *sim.Object) {
		o.RecipientType, o.RecipientTypeDetails, o.ExternalEmailAddress = "UserMailbox", sim.RTDUserMailbox, ""
	})
	added := changed
	added.ID, added.Guid, added.ExchangeObjectID = "0e0e0e0e-0000-4000-8000-000000000001", "0e0e0e0e-0000-4000-8000-000000000002", "0e0e0e0e-0000-4000-8000-000000000003"
	added.Name, added.Alias, added.DisplayName = "new.meu", "new.meu", "New MEU"
	added.PrimarySmtpAddress, added.WindowsEmailAddress = "new.meu@contoso.com", "new.meu@contoso.com"
	added.EmailAddresses, added.ProxyAddresses = []string{"SMTP:new.meu@contoso.com"}, []string{"SMTP:new.meu@contoso.com"}
	added.UserPrincipalName, added.Mail, added.MailNickname = "new.meu@contoso.com", "new.meu@contoso.com", "new.meu"
	added.UseMapiRichTextFormat = sim.RichTextUseDefault
	added.WhenCreated, added.WhenChanged = time.Now().UTC(), time.Time{}
	if err := tn.Add(added); err != nil {
		t.Fatal(err)
	}

	srv.Log.Reset()
	third := plan(ex)
	if f, i := mailUserReads(srv); f != 0 || i != 1 {
		t.Fatalf("run after the changes: %d full and %d incremental reads, want 1 incremental", f, i)
	}
	truth := plan(full)
	if got, want := planned(third), planned(truth); !slices.Equal(got, want) || third.Plan.InScope != truth.Plan.InScope {
		t.Fatalf("incremental run plans %v over %d in scope; a full read plans %v over %d", got, third.Plan.InScope, want, truth.Plan.InScope)
	}
	for _, c := range []struct {
		name string
		id   string
		want bool
	}{{"changed", changed.ID, true}, {"added", added.ID, true}, {"deleted", deleted.ID, false}, {"converted", converted.ID, false}} {
		if got := slices.Contains(planned(third), strings.ToLower(c.id)); got != c.want {
			t.Errorf("%s MEU planned = %v, want %v", c.name, got, c.want)
		}
	}
	if third.Plan.InScope != first.Plan.InScope-1 {
		t.Errorf("in scope %d, want %d (one deleted, one converted, one added)", third.Plan.InScope, first.Plan.InScope-1)
	}

	// The periodic full read.
	now = now.Add(executor.DefaultFullReadEvery)
	srv.Log.Reset()
	plan(ex)
	if f, i := mailUserReads(srv); f != 1 || i != 0 {
		t.Fatalf("a day later: %d full and %d incremental reads, want the full read", f, i)
	}

	// Saved results that do not decode: one full read, then incremental again.
	for _, k := range slices.Collect(maps.Keys(state.m)) {
		state.m[k] = []byte("garbage")
	}
	srv.Log.Reset()
	plan(ex)
	if f, i := mailUserReads(srv); f != 1 || i != 0 {
		t.Fatalf("after corrupt state: %d full and %d incremental reads, want 1 full", f, i)
	}
	srv.Log.Reset()
	plan(ex)
	if f, i := mailUserReads(srv); f != 0 || i != 1 {
		t.Fatalf("after the full read: %d full and %d incremental reads, want 1 incremental", f, i)
	}
}
