package jobs

import (
	"context"
	"fmt"
	"iter"

	"golang.org/x/sync/errgroup"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/directory"
)

// MailUserScope is the OPATH filter of directory-synced plain mail users: the MEUs of a staged migration.
// Jobs that read them share it, so a suite of audits loads Get-MailUser once (two different queries of one
// cmdlet would double its objects).
var MailUserScope = exo.And(exo.Eq("IsDirSynced", true), exo.Eq("RecipientTypeDetails", "MailUser")).String()

// Tenant is the read-only snapshot a job plans over: plain structs, loaded by the executor from the
// queries the job declares in Describe().Reads.
type Tenant struct {
	MailUsers []exo.MailUser
	// The recipient views audits read (Get-Mailbox, Get-MailContact, Get-DistributionGroup, Get-Recipient,
	// Get-AcceptedDomain); each is filled only when a job declares the query.
	Mailboxes          []exo.Mailbox
	MailContacts       []exo.MailContact
	DistributionGroups []exo.DistributionGroup
	Recipients         []exo.Recipient
	AcceptedDomains    []exo.AcceptedDomain
	// RemoteDomains (Get-RemoteDomain) decide whether a recipient's own message format is effective.
	RemoteDomains []exo.RemoteDomain
	// Directory is what Graph shows; loaded only for jobs whose Description sets NeedsDirectory.
	Directory *directory.Snapshot
	// GroupMembers holds the direct member ids (lower case) of the groups a job declares in
	// Description.GroupMembers, by lower-case group id.
	GroupMembers map[string][]string
}

// DirectoryReader gives the executor Graph's view of the directory. internal/graph implements it; the
// interface lives here so that jobs never compiles msgraph-sdk-go.
type DirectoryReader interface {
	Snapshot(ctx context.Context) (*directory.Snapshot, error)
}

// Reader is what the executor needs to read the tenant: the exo client's paged InvokeCommand.
type Reader interface {
	Pages(ctx context.Context, cmd exo.Command) iter.Seq2[*exo.Response, error]
}

// LoadTenant runs the queries at once (the exo client bounds the requests in flight) and decodes each page
// into the snapshot as it arrives, so memory holds the selected properties of in-scope objects only. The
// snapshot keeps the queries' order whatever order the answers come in. onPage, if set, is told how many
// objects each page added; it may be called from several goroutines at once.
func LoadTenant(ctx context.Context, r Reader, queries []Query, onPage func(n int)) (*Tenant, error) {
	parts := make([]*Tenant, len(queries))
	g, gctx := errgroup.WithContext(ctx)
	for i, q := range queries {
		parts[i] = &Tenant{}
		g.Go(func() error {
			params := map[string]any{"ResultSize": "Unlimited"}
			if q.Filter != "" {
				params["Filter"] = q.Filter
			}
			cmd := exo.Command{Name: q.Cmdlet, Params: params, Select: q.Select}
			for resp, err := range r.Pages(gctx, cmd) {
				if err != nil {
					return fmt.Errorf("read %s: %w", q.Cmdlet, err)
				}
				n, err := parts[i].add(q.Cmdlet, resp)
				if err != nil {
					return err
				}
				if onPage != nil {
					onPage(n)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	t := &Tenant{}
	for _, p := range parts {
		t.MailUsers = append(t.MailUsers, p.MailUsers...)
		t.Mailboxes = append(t.Mailboxes, p.Mailboxes...)
		t.MailContacts = append(t.MailContacts, p.MailContacts...)
		t.DistributionGroups = append(t.DistributionGroups, p.DistributionGroups...)
		t.Recipients = append(t.Recipients, p.Recipients...)
		t.AcceptedDomains = append(t.AcceptedDomains, p.AcceptedDomains...)
		t.RemoteDomains = append(t.RemoteDomains, p.RemoteDomains...)
	}
	if len(parts) == 1 {
		t = parts[0]
	}
	return t, nil
}

// AddPage decodes one page of cmdlet output into the snapshot and returns how many objects it added. The
// executor's incremental reads use it to fill a snapshot from pages they fetched themselves.
func (t *Tenant) AddPage(cmdlet string, resp *exo.Response) (int, error) { return t.add(cmdlet, resp) }

func (t *Tenant) add(cmdlet string, resp *exo.Response) (int, error) {
	var err error
	switch cmdlet {
	case "Get-MailUser":
		t.MailUsers, err = appendDecoded(t.MailUsers, cmdlet, resp)
	case "Get-Mailbox":
		t.Mailboxes, err = appendDecoded(t.Mailboxes, cmdlet, resp)
	case "Get-MailContact":
		t.MailContacts, err = appendDecoded(t.MailContacts, cmdlet, resp)
	case "Get-DistributionGroup":
		t.DistributionGroups, err = appendDecoded(t.DistributionGroups, cmdlet, resp)
	case "Get-Recipient":
		t.Recipients, err = appendDecoded(t.Recipients, cmdlet, resp)
	case "Get-AcceptedDomain":
		t.AcceptedDomains, err = appendDecoded(t.AcceptedDomains, cmdlet, resp)
	case "Get-RemoteDomain":
		t.RemoteDomains, err = appendDecoded(t.RemoteDomains, cmdlet, resp)
	default:
		return 0, fmt.Errorf("jobs: the snapshot cannot hold %s results yet", cmdlet)
	}
	if err != nil {
		return 0, err
	}
	return len(resp.Values), nil
}

// appendDecoded decodes one page of cmdlet output into dst.
func appendDecoded[T any](dst []T, cmdlet string, resp *exo.Response) ([]T, error) {
	for _, raw := range resp.Values {
		v, err := exo.Decode[T](raw)
		if err != nil {
			return dst, fmt.Errorf("decode %s result (request-id %s): %w", cmdlet, resp.RequestID, err)
		}
		dst = append(dst, v)
	}
	return dst, nil
}
