package graph_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/exo-worker/worker/internal/directory"
	"github.com/exo-worker/worker/internal/graph"
	"github.com/exo-worker/worker/internal/sim"
)

func licensingFixture(t *testing.T) (fixture, sim.Object, []sim.Object) {
	t.Helper()
	sc := sim.DefaultScenario()
	mix := sim.DefaultLicensing()
	sc.Licensing = &mix
	srv, err := sim.Start(sim.Options{Dir: t.TempDir(), Scenario: &sc})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cred, err := srv.Credential()
	if err != nil {
		t.Fatal(err)
	}
	c, err := graph.New(graph.Options{BaseURL: srv.URL, Credential: cred, HTTPClient: srv.HTTPClient(), PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	g, ok := srv.Tenant().LicensingGroup()
	if !ok {
		t.Fatal("no licensing group in the scenario")
	}
	return fixture{srv: srv, c: c}, g, srv.Tenant().UnlicensedMigratedMailboxes()
}

// graphWrites are the Graph requests that are not reads.
func graphWrites(srv *sim.Server) []sim.Entry {
	var out []sim.Entry
	for _, e := range srv.Log.Entries() {
		if e.Service == "graph" && e.Method != http.MethodGet && !e.Batch {
			out = append(out, e)
		}
	}
	return out
}

func TestGroupMembershipWritesThroughTheSDK(t *testing.T) {
	f, g, todo := licensingFixture(t)
	u := todo[0].ID
	cx := ctx(t)

	if in, err := f.c.IsGroupMember(cx, g.ID, u); err != nil || in {
		t.Fatalf("IsGroupMember before the add = %v, %v; want false", in, err)
	}
	reqID, err := f.c.AddGroupMember(cx, g.ID, u)
	if err != nil {
		t.Fatalf("add member: %v", err)
	}
	w := graphWrites(f.srv)
	if len(w) != 1 || w[0].Method != http.MethodPost || w[0].Path != "/v1.0/groups/"+g.ID+"/members/$ref" || w[0].Status != 204 {
		t.Fatalf("writes seen by the tenant: %+v", w)
	}
	if reqID == "" || reqID != w[0].RequestID {
		t.Fatalf("add returned request-id %q, the tenant answered %q", reqID, w[0].RequestID)
	}
	if !f.srv.Tenant().IsMember(g.ID, u) {
		t.Fatal("the tenant holds no membership after the add")
	}
	if in, err := f.c.IsGroupMember(cx, g.ID, u); err != nil || !in {
		t.Fatalf("IsGroupMember after the add = %v, %v; want true", in, err)
	}

	// The licence the group brings, as the read-back sees it.
	gl, err := f.c.GroupLicenses(cx, g.ID)
	if err != nil || len(gl) != 1 || !strings.EqualFold(gl[0].SkuID, sim.SkuExchangeStandard) {
		t.Fatalf("group licences %+v, %v", gl, err)
	}
	ul, plans, err := f.c.UserLicenses(cx, u)
	if err != nil || !slices.ContainsFunc(ul, func(l directory.AssignedLicense) bool { return strings.EqualFold(l.SkuID, sim.SkuExchangeStandard) }) {
		t.Fatalf("user licences %+v, %v", ul, err)
	}
	if !slices.ContainsFunc(plans, func(p directory.AssignedPlan) bool {
		return strings.EqualFold(p.ServicePlanID, sim.PlanExchangeStandard) && p.CapabilityStatus == "Enabled"
	}) {
		t.Fatalf("user plans %+v: no enabled Exchange Plan 1", plans)
	}

	// Twice: the service's 400, typed as already done.
	_, err = f.c.AddGroupMember(cx, g.ID, u)
	var ge *graph.Error
	if !errors.As(err, &ge) || !ge.AlreadyDone() || ge.Status != 400 || ge.RequestID == "" {
		t.Fatalf("second add: %v, want an already-done 400 with its request-id", err)
	}

	members, err := f.c.GroupMembers(cx, g.ID)
	if err != nil || !slices.Equal(members, f.srv.Tenant().Members(g.ID)) {
		t.Fatalf("GroupMembers = %v, %v; tenant holds %v", members, err, f.srv.Tenant().Members(g.ID))
	}

	if _, err := f.c.RemoveGroupMember(cx, g.ID, u); err != nil {
		t.Fatalf("remove member: %v", err)
	}
	if f.srv.Tenant().IsMember(g.ID, u) {
		t.Fatal("still a member after the removal")
	}
	// Removing a non-member is already done, in both of the service's shapes.
	for _, status := range []int{404, 400} {
		f.srv.Tenant().SetRemoveNotMemberStatus(status)
		_, err := f.c.RemoveGroupMember(cx, g.ID, u)
		if !errors.As(err, &ge) || !ge.AlreadyDone() || ge.Status != status {
			t.Fatalf("remove of a non-member (%d): %v, want already done", status, err)
		}
	}
	// A group that does not exist is a real failure, not "already done".
	_, err = f.c.RemoveGroupMember(cx, "00000000-0000-0000-0000-0000000000aa", u)
	if !errors.As(err, &ge) || ge.AlreadyDone() || ge.Status != 404 || !strings.Contains(err.Error(), "remove member") {
		t.Fatalf("remove from a missing group: %v", err)
	}
}
