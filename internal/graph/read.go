package graph

import (
	"context"
	"fmt"
	"time"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/contacts"
	"github.com/microsoftgraph/msgraph-sdk-go/domains"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/subscribedskus"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"go.uber.org/zap"

	"github.com/exo-worker/worker/internal/directory"
)

// advancedHeaders mark an advanced query (ConsistencyLevel: eventual, with $count=true): harmless for a plain
// list, it gives @odata.count, and it is what filters on directory objects need (research §1.6). The same
// headers go with every page: the SDK's PageIterator would drop them from page 2 on.
func advancedHeaders() *abstractions.RequestHeaders {
	h := abstractions.NewRequestHeaders()
	h.Add("ConsistencyLevel", "eventual")
	return h
}

// collectionPage is what one page of a collection gives: its items, the next page and the count.
type collectionPage[T any] struct {
	items []T
	next  string
	count *int64
}

// listAll reads a collection page by page. first sends the initial request; follow fetches a nextLink with
// the same headers, through the generated request builder so the generated error mapping applies.
func listAll[T any](ctx context.Context, c *Client, resource string,
	first func(context.Context) (collectionPage[T], error), follow func(context.Context, string) (collectionPage[T], error)) ([]T, error) {
	var out []T
	page, err := first(ctx)
	var count *int64
	for n := 1; ; n++ {
		if err != nil {
			return nil, mapError(pageName(resource, n), err)
		}
		c.pages.Add(1)
		if n == 1 {
			count = page.count
		}
		out = append(out, page.items...)
		if page.next == "" {
			break
		}
		if err := ctxErr(ctx, resource); err != nil {
			return nil, err
		}
		page, err = follow(ctx, page.next)
	}
	if count != nil && int64(len(out)) != *count {
		// Advanced queries are eventually consistent: a mismatch is worth a line, not a failure.
		c.log.Info("graph: collection size differs from @odata.count", zap.String("resource", resource),
			zap.Int("read", len(out)), zap.Int64("count", *count))
	}
	return out, nil
}

func pageName(resource string, n int) string {
	if n == 1 {
		return resource
	}
	return fmt.Sprintf("%s page %d", resource, n)
}

// Users lists every user with the properties directory.User holds.
func (c *Client) Users(ctx context.Context) ([]directory.User, error) {
	t, top := true, c.pageSize
	conv := func(r models.UserCollectionResponseable, err error) (collectionPage[directory.User], error) {
		if err != nil {
			return collectionPage[directory.User]{}, err
		}
		p := collectionPage[directory.User]{next: deref(r.GetOdataNextLink()), count: r.GetOdataCount()}
		for _, u := range r.GetValue() {
			p.items = append(p.items, toUser(u))
		}
		return p, nil
	}
	return listAll(ctx, c, "users",
		func(ctx context.Context) (collectionPage[directory.User], error) {
			return conv(c.sdk.Users().Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{Headers: advancedHeaders(),
				QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Select: userSelect, Top: &top, Count: &t}}))
		},
		func(ctx context.Context, link string) (collectionPage[directory.User], error) {
			return conv(c.sdk.Users().WithUrl(link).Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{Headers: advancedHeaders()}))
		})
}

// Groups lists every group with the properties directory.Group holds.
func (c *Client) Groups(ctx context.Context) ([]directory.Group, error) {
	t, top := true, c.pageSize
	conv := func(r models.GroupCollectionResponseable, err error) (collectionPage[directory.Group], error) {
		if err != nil {
			return collectionPage[directory.Group]{}, err
		}
		p := collectionPage[directory.Group]{next: deref(r.GetOdataNextLink()), count: r.GetOdataCount()}
		for _, g := range r.GetValue() {
			p.items = append(p.items, toGroup(g))
		}
		return p, nil
	}
	return listAll(ctx, c, "groups",
		func(ctx context.Context) (collectionPage[directory.Group], error) {
			return conv(c.sdk.Groups().Get(ctx, &groups.GroupsRequestBuilderGetRequestConfiguration{Headers: advancedHeaders(),
				QueryParameters: &groups.GroupsRequestBuilderGetQueryParameters{Select: groupSelect, Top: &top, Count: &t}}))
		},
		func(ctx context.Context, link string) (collectionPage[directory.Group], error) {
			return conv(c.sdk.Groups().WithUrl(link).Get(ctx, &groups.GroupsRequestBuilderGetRequestConfiguration{Headers: advancedHeaders()}))
		})
}

// Contacts lists every organisational contact with the properties directory.Contact holds.
func (c *Client) Contacts(ctx context.Context) ([]directory.Contact, error) {
	t, top := true, c.pageSize
	conv := func(r models.OrgContactCollectionResponseable, err error) (collectionPage[directory.Contact], error) {
		if err != nil {
			return collectionPage[directory.Contact]{}, err
		}
		p := collectionPage[directory.Contact]{next: deref(r.GetOdataNextLink()), count: r.GetOdataCount()}
		for _, oc := range r.GetValue() {
			p.items = append(p.items, toContact(oc))
		}
		return p, nil
	}
	return listAll(ctx, c, "contacts",
		func(ctx context.Context) (collectionPage[directory.Contact], error) {
			return conv(c.sdk.Contacts().Get(ctx, &contacts.ContactsRequestBuilderGetRequestConfiguration{Headers: advancedHeaders(),
				QueryParameters: &contacts.ContactsRequestBuilderGetQueryParameters{Select: contactSelect, Top: &top, Count: &t}}))
		},
		func(ctx context.Context, link string) (collectionPage[directory.Contact], error) {
			return conv(c.sdk.Contacts().WithUrl(link).Get(ctx, &contacts.ContactsRequestBuilderGetRequestConfiguration{Headers: advancedHeaders()}))
		})
}

// Domains lists the tenant's domains.
func (c *Client) Domains(ctx context.Context) ([]directory.Domain, error) {
	d, _, err := c.domainsAndSKUs(ctx, true, false)
	return d, err
}

// SubscribedSKUs lists the licence SKUs the tenant owns, with their service plans.
func (c *Client) SubscribedSKUs(ctx context.Context) ([]directory.SubscribedSKU, error) {
	_, s, err := c.domainsAndSKUs(ctx, false, true)
	return s, err
}

// domainsAndSKUs reads domains and subscribedSkus in one $batch (one round trip for two small reads).
func (c *Client) domainsAndSKUs(ctx context.Context, wantDomains, wantSKUs bool) ([]directory.Domain, []directory.SubscribedSKU, error) {
	var doms []directory.Domain
	var skus []directory.SubscribedSKU
	steps, err := c.domainSteps(ctx, wantDomains, wantSKUs, &doms, &skus)
	if err != nil {
		return nil, nil, err
	}
	if err := c.batchGet(ctx, steps); err != nil {
		return nil, nil, err
	}
	return doms, skus, nil
}

// domainSteps are the $batch steps that read domains and subscribed SKUs (following their nextLinks, if
// any, outside the batch) into doms and skus.
func (c *Client) domainSteps(ctx context.Context, wantDomains, wantSKUs bool, doms *[]directory.Domain, skus *[]directory.SubscribedSKU) ([]batchStep, error) {
	var steps []batchStep
	if wantDomains {
		ri, err := c.sdk.Domains().ToGetRequestInformation(ctx, &domains.DomainsRequestBuilderGetRequestConfiguration{
			QueryParameters: &domains.DomainsRequestBuilderGetQueryParameters{Select: domainSelect}})
		if err != nil {
			return nil, wrapf("domains", "build request: %w", err)
		}
		steps = append(steps, batchStep{resource: "domains", info: ri, ok: func(ctx context.Context, resp msgraphcore.BatchResponse, id string) error {
			r, err := msgraphcore.GetBatchResponseById[models.DomainCollectionResponseable](resp, id, models.CreateDomainCollectionResponseFromDiscriminatorValue)
			if err != nil {
				return mapError("domains", err)
			}
			*doms, err = c.moreDomains(ctx, r)
			return err
		}})
	}
	if wantSKUs {
		ri, err := c.sdk.SubscribedSkus().ToGetRequestInformation(ctx, &subscribedskus.SubscribedSkusRequestBuilderGetRequestConfiguration{
			QueryParameters: &subscribedskus.SubscribedSkusRequestBuilderGetQueryParameters{Select: skuSelect}})
		if err != nil {
			return nil, wrapf("subscribedSkus", "build request: %w", err)
		}
		steps = append(steps, batchStep{resource: "subscribedSkus", info: ri, ok: func(ctx context.Context, resp msgraphcore.BatchResponse, id string) error {
			r, err := msgraphcore.GetBatchResponseById[models.SubscribedSkuCollectionResponseable](resp, id, models.CreateSubscribedSkuCollectionResponseFromDiscriminatorValue)
			if err != nil {
				return mapError("subscribedSkus", err)
			}
			*skus, err = c.moreSKUs(ctx, r)
			return err
		}})
	}
	return steps, nil
}

// batchStep is one GET of a $batch: ok takes its 2xx answer; fail, if set, takes a failure that is not worth
// a retry and reports whether it dealt with it (a stale delta link: the caller reads from scratch instead).
type batchStep struct {
	resource string
	info     *abstractions.RequestInformation
	ok       func(ctx context.Context, resp msgraphcore.BatchResponse, id string) error
	fail     func(*Error) bool
}

// batchGet sends steps in one $batch (Graph takes up to 20). A failed item that may be retried (429, 503,
// 504) is sent again alone after its Retry-After, within the client's retry bounds.
func (c *Client) batchGet(ctx context.Context, pending []batchStep) error {
	if len(pending) == 0 {
		return nil
	}
	name := "$batch (" + pending[0].resource
	for _, st := range pending[1:] {
		name += ", " + st.resource
	}
	name += ")"
	for attempt := 0; len(pending) > 0; attempt++ {
		batch := msgraphcore.NewBatchRequest(c.adapter)
		ids := make([]string, len(pending))
		for i, st := range pending {
			item, err := batch.AddBatchRequestStep(*st.info)
			if err != nil {
				return wrapf(st.resource, "add to $batch: %w", err)
			}
			ids[i] = deref(item.GetId())
		}
		resp, err := batch.Send(ctx, c.adapter)
		if err != nil {
			return mapError(name, err)
		}
		var again []batchStep
		var wait time.Duration
		for i, st := range pending {
			item := resp.GetResponseById(ids[i])
			if item == nil || item.GetStatus() == nil {
				return wrapf(st.resource, "the $batch answer has no response for item %s", ids[i])
			}
			if status := int(*item.GetStatus()); status >= 400 {
				ge := batchItemError(st.resource, status, item.GetHeaders(), item.GetBody())
				if status == 429 {
					c.rt.throttled.Add(1)
				}
				w, ok := c.rt.policy.Wait(attempt+1, ge.RetryAfter)
				if !retryable(status) || attempt >= c.rt.maxRetries || !ok {
					if st.fail != nil && st.fail(ge) {
						continue
					}
					return ge
				}
				c.rt.retries.Add(1)
				again, wait = append(again, st), max(wait, w)
				continue
			}
			c.pages.Add(1)
			if err := st.ok(ctx, resp, ids[i]); err != nil {
				return err
			}
		}
		pending = again
		if len(pending) > 0 {
			c.log.Debug("graph: retrying $batch items", zap.Int("items", len(pending)), zap.Duration("wait", wait))
			if err := sleep(ctx, wait); err != nil {
				return ctxErr(ctx, name)
			}
		}
	}
	return nil
}

// moreDomains converts a first page of domains and follows its nextLinks.
func (c *Client) moreDomains(ctx context.Context, r models.DomainCollectionResponseable) ([]directory.Domain, error) {
	var out []directory.Domain
	for n := 2; ; n++ {
		for _, d := range r.GetValue() {
			out = append(out, toDomain(d))
		}
		next := deref(r.GetOdataNextLink())
		if next == "" {
			return out, nil
		}
		var err error
		if r, err = c.sdk.Domains().WithUrl(next).Get(ctx, nil); err != nil {
			return nil, mapError(pageName("domains", n), err)
		}
		c.pages.Add(1)
	}
}

func (c *Client) moreSKUs(ctx context.Context, r models.SubscribedSkuCollectionResponseable) ([]directory.SubscribedSKU, error) {
	var out []directory.SubscribedSKU
	for n := 2; ; n++ {
		for _, s := range r.GetValue() {
			out = append(out, toSKU(s))
		}
		next := deref(r.GetOdataNextLink())
		if next == "" {
			return out, nil
		}
		var err error
		if r, err = c.sdk.SubscribedSkus().WithUrl(next).Get(ctx, nil); err != nil {
			return nil, mapError(pageName("subscribedSkus", n), err)
		}
		c.pages.Add(1)
	}
}
