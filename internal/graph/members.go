package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	khttp "github.com/microsoft/kiota-http-go"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/exo-worker/worker/internal/directory"
)

// This file is the Graph client's one write: group membership (group-post-members, group-delete-members),
// which group-based licensing turns into licences, and the reads that check it (user-list-memberof, the
// group's and the user's licences). It sends what it is asked; whether to send is the executor's decision.
//
// The service's answers it gives a meaning to (research: graph error texts quoted by many clients):
//   - adding a member that already is one: 400 Request_BadRequest "One or more added object references
//     already exist for the following modified properties: 'members'." → *Error with AlreadyDone() true;
//   - removing a non-member: 404 Request_ResourceNotFound naming the member, or 400 "One or more removed
//     object references do not exist for the following modified properties: 'members'." → AlreadyDone();
//   - GET /users/{id}/memberOf/{group}: 404 naming the group means "not a member".

const (
	textAddedRefExists    = "added object references already exist"
	textRemovedRefMissing = "removed object references do not exist"
)

// AlreadyDone reports an error that means the write's effect was already in place: a member added twice, a
// non-member removed. Callers (the executor) record it as "nothing changed", never as a write they made.
func (e *Error) AlreadyDone() bool { return e.alreadyDone }

// GraphRequestID is the request-id of the failed request, for callers that cannot import this package.
func (e *Error) GraphRequestID() string { return e.RequestID }

// requestIDOption asks the SDK for the response headers of one request, so a successful write is recorded
// with its request-id too.
func requestIDOption() (*khttp.HeadersInspectionOptions, []abstractions.RequestOption) {
	hi := khttp.NewHeadersInspectionOptions()
	hi.InspectResponseHeaders = true
	return hi, []abstractions.RequestOption{hi}
}

func responseRequestID(hi *khttp.HeadersInspectionOptions) string {
	if hi == nil || hi.GetResponseHeaders() == nil {
		return ""
	}
	return first(hi.GetResponseHeaders().Get("request-id"))
}

// writeError maps an SDK error of a write; op names it in messages ("add member").
func writeError(op, resource string, err error) *Error {
	var ge *Error
	if !errors.As(mapError(resource, err), &ge) {
		ge = &Error{Resource: resource, cause: err}
	}
	ge.Op = op
	return ge
}

// AddGroupMember makes member (a directory object id) a member of group: POST /groups/{group}/members/$ref
// with {"@odata.id": "<graph>/v1.0/directoryObjects/{member}"}. It returns the request-id of the write. An
// already-member is an *Error whose AlreadyDone() is true.
func (c *Client) AddGroupMember(ctx context.Context, group, member string) (string, error) {
	resource := fmt.Sprintf("groups/%s/members/$ref (%s)", group, member)
	ref := models.NewReferenceCreate()
	odataID := strings.TrimRight(c.adapter.GetBaseUrl(), "/") + "/directoryObjects/" + member
	ref.SetOdataId(&odataID)
	hi, opts := requestIDOption()
	err := c.sdk.Groups().ByGroupId(group).Members().Ref().Post(ctx, ref, &groups.ItemMembersRefRequestBuilderPostRequestConfiguration{Options: opts})
	if err != nil {
		ge := writeError("add member", resource, err)
		ge.alreadyDone = ge.Status == http.StatusBadRequest && strings.Contains(strings.ToLower(ge.Message), textAddedRefExists)
		return ge.RequestID, ge
	}
	return responseRequestID(hi), nil
}

// RemoveGroupMember takes member out of group: DELETE /groups/{group}/members/{member}/$ref. It returns the
// request-id of the write. A non-member is an *Error whose AlreadyDone() is true (the service answers 404
// naming the member, or 400 with its "removed object references do not exist" text).
func (c *Client) RemoveGroupMember(ctx context.Context, group, member string) (string, error) {
	resource := fmt.Sprintf("groups/%s/members/%s/$ref", group, member)
	hi, opts := requestIDOption()
	err := c.sdk.Groups().ByGroupId(group).Members().ByDirectoryObjectId(member).Ref().Delete(ctx,
		&groups.ItemMembersItemRefRequestBuilderDeleteRequestConfiguration{Options: opts})
	if err != nil {
		ge := writeError("remove member", resource, err)
		msg := strings.ToLower(ge.Message)
		ge.alreadyDone = ge.Status == http.StatusBadRequest && strings.Contains(msg, textRemovedRefMissing) ||
			ge.Status == http.StatusNotFound && strings.Contains(msg, strings.ToLower(member)) && !strings.Contains(msg, strings.ToLower(group))
		return ge.RequestID, ge
	}
	return responseRequestID(hi), nil
}

// IsGroupMember reads whether member is a direct member of group: GET /users/{member}/memberOf/{group}. A 404
// naming the group is "not a member"; any other failure (the user gone, throttling) is an error.
func (c *Client) IsGroupMember(ctx context.Context, group, member string) (bool, error) {
	resource := fmt.Sprintf("users/%s/memberOf/%s", member, group)
	_, err := c.sdk.Users().ByUserId(member).MemberOf().ByDirectoryObjectId(group).Get(ctx,
		&users.ItemMemberOfDirectoryObjectItemRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.ItemMemberOfDirectoryObjectItemRequestBuilderGetQueryParameters{Select: []string{"id"}}})
	if err == nil {
		return true, nil
	}
	var ge *Error
	if errors.As(mapError(resource, err), &ge) && ge.Status == http.StatusNotFound &&
		strings.Contains(strings.ToLower(ge.Message), strings.ToLower(group)) {
		return false, nil
	}
	return false, mapError(resource, err)
}

// GroupMembers lists the ids of group's direct members (GET /groups/{group}/members?$select=id, every page).
func (c *Client) GroupMembers(ctx context.Context, group string) ([]string, error) {
	top := c.pageSize
	conv := func(r models.DirectoryObjectCollectionResponseable, err error) (collectionPage[string], error) {
		if err != nil {
			return collectionPage[string]{}, err
		}
		p := collectionPage[string]{next: deref(r.GetOdataNextLink())}
		for _, o := range r.GetValue() {
			if id := deref(o.GetId()); id != "" {
				p.items = append(p.items, strings.ToLower(id))
			}
		}
		return p, nil
	}
	resource := "groups/" + group + "/members"
	return listAll(ctx, c, resource,
		func(ctx context.Context) (collectionPage[string], error) {
			return conv(c.sdk.Groups().ByGroupId(group).Members().Get(ctx, &groups.ItemMembersRequestBuilderGetRequestConfiguration{
				QueryParameters: &groups.ItemMembersRequestBuilderGetQueryParameters{Select: []string{"id"}, Top: &top}}))
		},
		func(ctx context.Context, link string) (collectionPage[string], error) {
			return conv(c.sdk.Groups().ByGroupId(group).Members().WithUrl(link).Get(ctx, nil))
		})
}

// GroupLicenses reads the licences a group assigns to its members (group-based licensing): its
// assignedLicenses.
func (c *Client) GroupLicenses(ctx context.Context, group string) ([]directory.AssignedLicense, error) {
	g, err := c.sdk.Groups().ByGroupId(group).Get(ctx, &groups.GroupItemRequestBuilderGetRequestConfiguration{
		QueryParameters: &groups.GroupItemRequestBuilderGetQueryParameters{Select: []string{"id", "assignedLicenses"}}})
	if err != nil {
		return nil, mapError("groups/"+group, err)
	}
	return licenses(g.GetAssignedLicenses()), nil
}

// UserLicenses reads a user's licences and the service plans they grant (assignedLicenses, assignedPlans).
func (c *Client) UserLicenses(ctx context.Context, user string) ([]directory.AssignedLicense, []directory.AssignedPlan, error) {
	u, err := c.sdk.Users().ByUserId(user).Get(ctx, &users.UserItemRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: []string{"id", "assignedLicenses", "assignedPlans"}}})
	if err != nil {
		return nil, nil, mapError("users/"+user, err)
	}
	du := toUser(u)
	return du.AssignedLicenses, du.AssignedPlans, nil
}

func licenses(in []models.AssignedLicenseable) []directory.AssignedLicense {
	var out []directory.AssignedLicense
	for _, l := range in {
		if l == nil {
			continue
		}
		al := directory.AssignedLicense{SkuID: uuidString(l.GetSkuId())}
		for _, d := range l.GetDisabledPlans() {
			al.DisabledPlans = append(al.DisabledPlans, d.String())
		}
		out = append(out, al)
	}
	return out
}
