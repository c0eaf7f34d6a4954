package graph

import (
	"context"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/organization"
)

// LastSync returns when directory sync last finished a cycle (organization.onPremisesLastSyncDateTime);
// zero when the tenant never synced. It is one small request: the daemon's on-sync trigger polls it.
// It needs Organization.Read.All.
func (c *Client) LastSync(ctx context.Context) (time.Time, error) {
	r, err := c.sdk.Organization().Get(ctx, &organization.OrganizationRequestBuilderGetRequestConfiguration{
		QueryParameters: &organization.OrganizationRequestBuilderGetQueryParameters{Select: []string{"onPremisesLastSyncDateTime"}}})
	if err != nil {
		return time.Time{}, mapError("organization", err)
	}
	for _, o := range r.GetValue() {
		if t := o.GetOnPremisesLastSyncDateTime(); t != nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, nil
}
