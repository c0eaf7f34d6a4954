package exo_test

import (
	"context"
	"strings"
	"testing"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/sim"
)

// TestNextLinkOnPort446IsFollowed: the service is seen to put :446 in @odata.nextLink. The client treats
// 443/446 as the default port and follows the link on the endpoint it was configured with; a link to
// another (non-default) port is still refused.
func TestNextLinkOnPort446IsFollowed(t *testing.T) {
	e := start(t, sim.Options{Scenario: scenario(25)}, func(o *exo.Options) { o.PageSize = 10 })
	e.srv.SetNextLinkPort("446")
	n, pages := 0, 0
	for resp, err := range e.client.Pages(context.Background(), exo.Command{Name: "Get-MailUser", Params: map[string]any{"ResultSize": "Unlimited"}}) {
		if err != nil {
			t.Fatalf("page %d: %v", pages+1, err)
		}
		if resp.NextLink != "" && !strings.Contains(resp.NextLink, ":446/") {
			t.Fatalf("the simulator should emit a :446 nextLink, sent %q", resp.NextLink)
		}
		n += len(resp.Values)
		pages++
	}
	if want := len(e.srv.Tenant().Select(func(o *sim.Object) bool { return o.IsMailUser() })); n != want || pages < 3 {
		t.Fatalf("read %d mail users in %d pages, want %d in 3 or more", n, pages, want)
	}

	e.srv.SetNextLinkPort("8443")
	for _, err := range e.client.Pages(context.Background(), exo.Command{Name: "Get-MailUser", Params: map[string]any{"ResultSize": "Unlimited"}}) {
		if err != nil {
			if !strings.Contains(err.Error(), "points outside") {
				t.Fatalf("a link to another port: %v", err)
			}
			return
		}
	}
	t.Fatal("a nextLink on a non-default port was followed")
}
