package exo

// Paging: a cmdlet's output page by page, following @odata.nextLink by re-POSTing the body (research §1.3),
// and only ever on the host the client talks to.

import (
	"context"
	"fmt"
	"iter"
	"net/url"

	"github.com/google/uuid"
)

// Pages runs a command and yields its output page by page, following @odata.nextLink by POSTing the same
// body again (what the module does, research §1.3). Iteration stops at the first error, which is yielded.
// Nothing is read ahead: a caller that stops early sends no further request.
func (c *Client) Pages(ctx context.Context, cmd Command) iter.Seq2[*Response, error] {
	return func(yield func(*Response, error) bool) {
		body, err := cmd.body()
		if err != nil {
			yield(nil, err)
			return
		}
		u, err := c.commandURL(cmd.Select)
		if err != nil {
			yield(nil, &Error{Kind: KindBadRequest, Cmdlet: cmd.Name, Identity: cmd.identity(), Message: err.Error()})
			return
		}
		crid := uuid.NewString()
		seen := map[string]bool{}
		for page := 1; ; page++ {
			resp, err := c.invokeOnce(ctx, cmd, u, body, crid)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(resp, nil) || resp.NextLink == "" {
				return
			}
			next, err := c.checkNextLink(resp.NextLink)
			if err == nil && seen[next] {
				err = fmt.Errorf("the service returned the same next page link twice (%s)", next)
			}
			if err != nil {
				yield(nil, &Error{Kind: KindServer, Cmdlet: cmd.Name, Identity: cmd.identity(), RequestID: resp.RequestID,
					Message: fmt.Sprintf("cannot follow to page %d: %v", page+1, err)})
				return
			}
			seen[next] = true
			u = next
		}
	}
}

// Values runs a command and yields each output object decoded as T, across all pages. A decoding failure is
// yielded for that object and iteration goes on if the caller continues; a call failure ends it.
func Values[T any](ctx context.Context, c *Client, cmd Command) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for page, err := range c.Pages(ctx, cmd) {
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, raw := range page.Values {
				v, err := Decode[T](raw)
				if err != nil {
					err = fmt.Errorf("%s: %w", cmd.Name, err)
				}
				if !yield(v, err) {
					return
				}
			}
		}
	}
}

// checkNextLink accepts a next page link only on the host the client talks to, so that the bearer token is
// never sent elsewhere. A relative link is resolved against the base URL.
func (c *Client) checkNextLink(link string) (string, error) {
	u, err := url.Parse(link)
	if err != nil {
		return "", fmt.Errorf("next page link %q: %w", link, err)
	}
	if !u.IsAbs() {
		u = c.base.ResolveReference(u)
	}
	if !sameOrSubHost(u, c.base) {
		return "", fmt.Errorf("next page link %q points outside %s", link, c.base.Host)
	}
	return onBasePort(u, c.base).String(), nil
}
