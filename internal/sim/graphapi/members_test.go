package graphapi_test

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"slices"
	"testing"

	"github.com/exo-worker/worker/internal/sim"
	"github.com/exo-worker/worker/internal/sim/simtest"
	"github.com/exo-worker/worker/internal/sim/tenant"
)

func licensingSim(t *testing.T) (*sim.Server, tenant.Object, []tenant.Object) {
	t.Helper()
	sc := sim.DefaultScenario()
	mix := tenant.DefaultLicensing()
	sc.Licensing = &mix
	s := simtest.NewSim(t, sim.Options{Scenario: &sc})
	g, ok := s.Tenant().LicensingGroup()
	if !ok {
		t.Fatal("the licensing scenario has no licensing group")
	}
	todo := s.Tenant().UnlicensedMigratedMailboxes()
	if len(todo) != mix.Unlicensed+mix.FoundationOnly {
		t.Fatalf("%d unlicensed migrated mailboxes, want %d (unlicensed + foundation-only)", len(todo), mix.Unlicensed+mix.FoundationOnly)
	}
	return s, g, todo
}

func refBody(id string) []byte {
	return []byte(`{"@odata.id":"https://graph.microsoft.com/v1.0/directoryObjects/` + id + `"}`)
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func TestGraphGroupMembershipWritesAndLicences(t *testing.T) {
	s, g, todo := licensingSim(t)
	c := newGraphCaller(t, s)
	u := todo[0]

	// Not a member yet: memberOf/{group} is 404.
	wantGraphError(t, c.get("/v1.0/users/"+u.ID+"/memberOf/"+g.ID), 404, "Request_ResourceNotFound")

	// Add (gzip body, as the SDK sends it): 204, no body; the group's licence brings Exchange Plan 1.
	r := c.send(http.MethodPost, s.URL+"/v1.0/groups/"+g.ID+"/members/$ref", gz(refBody(u.ID)),
		"Content-Type", "application/json", "Content-Encoding", "gzip")
	if r.status != 204 || len(r.raw) != 0 {
		t.Fatalf("add member: %d %s, want 204 without a body", r.status, r.raw)
	}
	if !s.Tenant().IsMember(g.ID, u.ID) {
		t.Fatal("the tenant does not hold the membership")
	}
	if o, _ := s.Tenant().Object(u.ID); !o.HasMailboxPlan() {
		t.Fatalf("member of the licensing group holds no mailbox plan: %+v", o.AssignedPlans)
	}
	got := c.get("/v1.0/users/" + u.ID + "/memberOf/" + g.ID + "?$select=id")
	if got.status != 200 || got.body["id"] != g.ID || got.body["@odata.type"] != "#microsoft.graph.group" {
		t.Fatalf("memberOf/{group} after add: %d %s", got.status, got.raw)
	}

	// Adding again is the service's 400 with its exact message.
	r = c.send(http.MethodPost, s.URL+"/v1.0/groups/"+g.ID+"/members/$ref", refBody(u.ID), "Content-Type", "application/json")
	wantGraphError(t, r, 400, "Request_BadRequest")
	if msg := r.body["error"].(map[string]any)["message"]; msg != "One or more added object references already exist for the following modified properties: 'members'." {
		t.Fatalf("duplicate add message %q", msg)
	}

	// Unknown member and unknown group are 404.
	wantGraphError(t, c.send(http.MethodPost, s.URL+"/v1.0/groups/"+g.ID+"/members/$ref", refBody("00000000-0000-0000-0000-000000000001")), 404, "Request_ResourceNotFound")
	wantGraphError(t, c.send(http.MethodPost, s.URL+"/v1.0/groups/00000000-0000-0000-0000-000000000002/members/$ref", refBody(u.ID)), 404, "Request_ResourceNotFound")

	// Members list pages with $top and shows the new member.
	var ids []string
	next := "/v1.0/groups/" + g.ID + "/members?$select=id,displayName&$top=2"
	for next != "" {
		page := c.get(next)
		if page.status != 200 {
			t.Fatalf("members page: %d %s", page.status, page.raw)
		}
		for _, v := range values(t, page) {
			ids = append(ids, v["id"].(string))
		}
		next, _ = page.body["@odata.nextLink"].(string)
	}
	if want := s.Tenant().Members(g.ID); !slices.Equal(ids, want) || !slices.Contains(ids, u.ID) {
		t.Fatalf("members listed %v, want %v", ids, want)
	}

	// Remove: 204, the licence goes, its plans stay as Deleted.
	r = c.send(http.MethodDelete, s.URL+"/v1.0/groups/"+g.ID+"/members/"+u.ID+"/$ref", nil)
	if r.status != 204 {
		t.Fatalf("remove member: %d %s", r.status, r.raw)
	}
	o, _ := s.Tenant().Object(u.ID)
	if o.HasMailboxPlan() || len(o.AssignedLicenses) != 0 {
		t.Fatalf("after removal the user still holds %+v / %+v", o.AssignedLicenses, o.AssignedPlans)
	}
	if len(o.AssignedPlans) == 0 || o.AssignedPlans[0].CapabilityStatus != "Deleted" {
		t.Fatalf("removed plans %+v, want them kept as Deleted", o.AssignedPlans)
	}

	// Removing a non-member: 404 by default, 400 with the service's text when chosen.
	wantGraphError(t, c.send(http.MethodDelete, s.URL+"/v1.0/groups/"+g.ID+"/members/"+u.ID+"/$ref", nil), 404, "Request_ResourceNotFound")
	s.Tenant().SetRemoveNotMemberStatus(400)
	r = c.send(http.MethodDelete, s.URL+"/v1.0/groups/"+g.ID+"/members/"+u.ID+"/$ref", nil)
	wantGraphError(t, r, 400, "Request_BadRequest")
	if msg := r.body["error"].(map[string]any)["message"]; msg != "One or more removed object references do not exist for the following modified properties: 'members'." {
		t.Fatalf("remove non-member message %q", msg)
	}
}

func TestGraphGroupLicensingLag(t *testing.T) {
	s, g, todo := licensingSim(t)
	c := newGraphCaller(t, s)
	u := todo[0]
	s.Tenant().SetLicensingLag(3)
	if r := c.send(http.MethodPost, s.URL+"/v1.0/groups/"+g.ID+"/members/$ref", refBody(u.ID)); r.status != 204 {
		t.Fatalf("add member: %d %s", r.status, r.raw)
	}
	hasPlan := func() bool { o, _ := s.Tenant().Object(u.ID); return o.HasMailboxPlan() }
	reads := 0
	for !hasPlan() {
		if reads++; reads > 3 {
			t.Fatal("the group's licence never reached the member")
		}
		// The membership shows at once; the licence only once the lag has passed.
		if r := c.get("/v1.0/users/" + u.ID + "/memberOf/" + g.ID); r.status != 200 {
			t.Fatalf("membership read %d: %d", reads, r.status)
		}
	}
	if reads != 3 {
		t.Fatalf("the licence landed after %d Graph requests, want 3 (the lag)", reads)
	}
	// The licensing group's licence is visible on the group ($select only) and is not consumed by the group.
	r := c.get("/v1.0/groups/" + g.ID + "?$select=id,assignedLicenses")
	lic, _ := r.body["assignedLicenses"].([]any)
	if len(lic) != 1 || lic[0].(map[string]any)["skuId"] != tenant.SkuExchangeStandard {
		t.Fatalf("group assignedLicenses %s", r.raw)
	}
}

func TestGraphMembershipWriteNeedsItsPermission(t *testing.T) {
	s, g, todo := licensingSim(t)
	c := newGraphCaller(t, s)
	// An app other than the simulated worker, holding the read roles only (what an app setup made without
	// the mailbox-license job would hold).
	c.token = s.Authority().IssueToken(graphAudience, "0f0f0f0f-1111-2222-3333-444444444444", 0)
	wantGraphError(t, c.send(http.MethodPost, s.URL+"/v1.0/groups/"+g.ID+"/members/$ref", refBody(todo[0].ID)), 403, "Authorization_RequestDenied")
	if s.Tenant().IsMember(g.ID, todo[0].ID) {
		t.Fatal("a refused write changed the membership")
	}
	if r := c.get("/v1.0/users/" + todo[0].ID + "/memberOf/" + g.ID); r.status != 404 {
		t.Fatalf("reading the membership with read roles: %d %s", r.status, r.raw)
	}
}
