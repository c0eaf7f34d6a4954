package jobs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Write is one kind of write a job declares it makes: an Exchange cmdlet with the parameters it may set,
// or a Graph operation. The executor refuses a run whose plan holds a change no declared write covers;
// `worker jobs`, `worker setup` and `worker doctor` read the declarations to show them and to build and
// check a least-privileged identity.
type Write struct {
	// Cmdlet and Params: an Exchange Online Set-* cmdlet and the parameters the job may set with it. The
	// cmdlet must have a read-back cmdlet in the library's table (ReadCmdlet).
	Cmdlet string
	Params []string
	// Graph: a Graph operation (GraphGroupMember). Group, when set, is the only group it may change.
	Graph GraphOp
	Group string
	// CloudOnly says the write only ever touches cloud-only objects. Otherwise the objects may be
	// directory-synced, and registration refuses parameters directory sync owns: Exchange refuses such
	// writes one by one, and a fix belongs in on-premises AD.
	CloudOnly bool
}

// Covers reports whether the write allows change c.
func (w Write) Covers(c Change) bool {
	if c.IsGraph() || w.Graph != "" {
		return c.Graph == w.Graph && w.Graph != "" && (w.Group == "" || strings.EqualFold(w.Group, c.Group.ID))
	}
	if !strings.EqualFold(w.Cmdlet, c.Cmdlet) {
		return false
	}
	for _, p := range c.Params {
		if !slices.ContainsFunc(w.Params, func(d string) bool { return strings.EqualFold(d, p.Name) }) {
			return false
		}
	}
	return true
}

// String names the write: "Set-MailUser -UseMapiRichTextFormat -UsePreferMessageFormat", "Graph group-member".
func (w Write) String() string {
	if w.Graph != "" {
		s := "Graph " + string(w.Graph)
		if w.Group != "" {
			s += " (group " + w.Group + ")"
		}
		return s
	}
	var b strings.Builder
	b.WriteString(w.Cmdlet)
	for _, p := range w.Params {
		b.WriteString(" -" + p)
	}
	return b.String()
}

// API is a service a permission is granted on.
type API string

// The APIs jobs use.
const (
	APIExchange API = "exchange" // Office 365 Exchange Online (the admin API)
	APIGraph    API = "graph"    // Microsoft Graph
)

// Permission is an application permission (an app role) the job's identity needs, by value:
// {APIGraph, "GroupMember.ReadWrite.All"}, {APIExchange, "Exchange.ManageAsApp"}. The Exchange RBAC
// cmdlets and parameters a job needs are not listed here: they follow from its Reads and Writes.
type Permission struct {
	API  API
	Role string
}

func (p Permission) String() string {
	switch p.API {
	case APIGraph:
		return "Microsoft Graph " + p.Role
	case APIExchange:
		return "Office 365 Exchange Online " + p.Role
	}
	return string(p.API) + " " + p.Role
}

// ExchangeManageAsApp is the Exchange application permission every app-only caller of the admin API needs.
var ExchangeManageAsApp = Permission{API: APIExchange, Role: "Exchange.ManageAsApp"}

// GraphPermissions is a shorthand for several Graph application permissions.
func GraphPermissions(roles ...string) []Permission {
	out := make([]Permission, len(roles))
	for i, r := range roles {
		out[i] = Permission{API: APIGraph, Role: r}
	}
	return out
}

// readCmdlets is the declared table from each Exchange write cmdlet the library may use to the cmdlet that
// reads back what it wrote. Read-back, revert and crash reconciliation read through it; a write cmdlet
// missing here cannot be registered, so no read is ever guessed from a cmdlet's name.
var readCmdlets = map[string]string{
	"Set-MailUser":          "Get-MailUser",
	"Set-Mailbox":           "Get-Mailbox",
	"Set-MailContact":       "Get-MailContact",
	"Set-DistributionGroup": "Get-DistributionGroup",
	"Set-User":              "Get-User",
	"Set-Recipient":         "Get-Recipient",
}

// ReadCmdlet returns the cmdlet that reads back what the Exchange write cmdlet set.
func ReadCmdlet(write string) (string, bool) {
	for w, r := range readCmdlets {
		if strings.EqualFold(w, write) {
			return r, true
		}
	}
	return "", false
}

// SyncOwnedFunc reports whether directory sync owns an Exchange parameter of a dir-synced object, and
// why (exo.SyncOwned is the sourced table).
type SyncOwnedFunc func(cmdlet, param string) (reason string, owned bool)

// Validate checks a job's declarations when it is registered: an audit declares no write; every write is
// whole (a known read-back cmdlet and at least one parameter, or a known Graph operation); a write that may
// touch directory-synced objects sets no parameter sync owns (syncOwned nil: not checked); a Graph write
// declares the permission it needs. Each problem is named; the job cannot be registered until they are fixed.
func (d Description) Validate(syncOwned SyncOwnedFunc) error {
	var problems []string
	add := func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) }
	switch d.Kind {
	case KindAudit:
		if len(d.Writes) > 0 {
			add("an audit declares writes (%s); audits only report — make it a remediation job", d.Writes[0])
		}
	case KindRemediate:
	default:
		add("kind %q is neither %s nor %s", d.Kind, KindRemediate, KindAudit)
	}
	for _, w := range d.Writes {
		switch {
		case w.Graph != "" && w.Cmdlet != "":
			add("write %s names both a cmdlet and a Graph operation; declare two writes", w)
		case w.Graph != "":
			role, ok := graphOps[w.Graph]
			if !ok {
				add("write %s: the executor knows no Graph operation %q", w, w.Graph)
			} else if !slices.Contains(d.Permissions, Permission{API: APIGraph, Role: role}) {
				add("write %s needs the Graph application permission %s; declare it in Permissions", w, role)
			}
		default:
			if _, ok := ReadCmdlet(w.Cmdlet); !ok {
				add("write %s: %q has no read-back cmdlet in the library's table (jobs.ReadCmdlet); writes the executor cannot read back are not allowed", w, w.Cmdlet)
			}
			if len(w.Params) == 0 {
				add("write %s names no parameter", w)
			}
			for _, p := range w.Params {
				if strings.EqualFold(p, "Identity") {
					add("write %s: Identity addresses the object and is not a parameter to write", w)
					continue
				}
				if syncOwned == nil || w.CloudOnly {
					continue
				}
				if why, owned := syncOwned(w.Cmdlet, p); owned {
					add("write %s -%s: directory sync owns %s on dir-synced objects (%s); fix it in on-premises AD, or declare the write CloudOnly if the job only touches cloud-only objects", w.Cmdlet, p, p, why)
				}
			}
		}
	}
	if (len(d.Reads) > 0 || hasExchangeWrite(d.Writes)) && !slices.Contains(d.Permissions, ExchangeManageAsApp) {
		add("the job calls the Exchange admin API; declare %s in Permissions", ExchangeManageAsApp.Role)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func hasExchangeWrite(ws []Write) bool {
	return slices.ContainsFunc(ws, func(w Write) bool { return w.Cmdlet != "" })
}

// Allows checks one planned change against the declaration: its shape, and a declared write covering it.
// The executor calls it for every change of a plan before anything is sent.
func (d Description) Allows(c Change) error {
	if err := c.check(); err != nil {
		return err
	}
	if d.Kind == KindAudit {
		return errors.New("the job is an audit, and audits cannot write")
	}
	for _, w := range d.Writes {
		if w.Covers(c) {
			return nil
		}
	}
	if len(d.Writes) == 0 {
		return errors.New("the job declares no writes")
	}
	ws := make([]string, len(d.Writes))
	for i, w := range d.Writes {
		ws[i] = w.String()
	}
	return fmt.Errorf("no declared write covers it (the job declares: %s)", strings.Join(ws, "; "))
}
