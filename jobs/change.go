package jobs

import (
	"errors"
	"fmt"
	"strings"
)

// Change is one write to one object: one Exchange cmdlet call that sets one or more parameters of the
// object, or one Microsoft Graph operation on it. The executor journals, sends, reads back and reverts a
// change as a whole, so parameters that only make sense together (UseMapiRichTextFormat with
// UsePreferMessageFormat) belong in one change.
//
// Every change must be covered by one of the job's declared writes (Description.Writes); the executor
// refuses the whole run before any write otherwise.
type Change struct {
	Object ObjectRef
	// Cmdlet is the Exchange Online Set-* cmdlet of an Exchange change (Set-MailUser); empty for Graph.
	Cmdlet string
	// Graph is the Graph operation of a Graph change; empty for Exchange.
	Graph GraphOp `json:",omitempty"`
	// Group is the group of a GraphGroupMember change.
	Group ObjectRef `json:",omitzero"`
	// Params are the values the change writes, each with the value it replaces, in the order sent.
	Params []Param
}

// Param is one parameter of a change: the value the object held when the job planned, and the value to
// write.
type Param struct {
	Name string
	From Value
	To   Value
}

// GraphOp is a Microsoft Graph write. The table of operations is closed: the executor knows how to send,
// read back and revert each one.
type GraphOp string

// Graph operations.
const (
	// GraphGroupMember makes Change.Object a member of Change.Group (its MemberParam goes false → true:
	// POST /groups/{group}/members/$ref) or takes it out (true → false: DELETE
	// /groups/{group}/members/{object}/$ref). Group-based licensing assigns licences this way.
	GraphGroupMember GraphOp = "group-member"
)

// MemberParam is the one parameter of a GraphGroupMember change: whether Object is a member of Group.
const MemberParam = "member"

// graphOps is the closed table of Graph operations with the application permission each needs.
var graphOps = map[GraphOp]string{
	GraphGroupMember: "GroupMember.ReadWrite.All",
}

// Set is an Exchange change of obj: cmdlet sets each of params.
func Set(obj ObjectRef, cmdlet string, params ...Param) Change {
	return Change{Object: obj, Cmdlet: cmdlet, Params: params}
}

// AddToGroup is the Graph change that makes obj a member of group.
func AddToGroup(obj, group ObjectRef) Change {
	return Change{Object: obj, Graph: GraphGroupMember, Group: group,
		Params: []Param{{Name: MemberParam, From: Bool(false), To: Bool(true)}}}
}

// IsGraph reports a Graph change.
func (c Change) IsGraph() bool { return c.Graph != "" }

// Reverse is the change that puts back what c replaced: every From and To swapped (a group membership
// added is removed).
func (c Change) Reverse() Change {
	r := c
	r.Params = make([]Param, len(c.Params))
	for i, p := range c.Params {
		r.Params[i] = Param{Name: p.Name, From: p.To, To: p.From}
	}
	return r
}

// ParamNames lists the parameters the change writes.
func (c Change) ParamNames() []string {
	out := make([]string, len(c.Params))
	for i, p := range c.Params {
		out[i] = p.Name
	}
	return out
}

// Param returns the named parameter of the change (case-insensitive, as PowerShell names are).
func (c Change) Param(name string) (Param, bool) {
	for _, p := range c.Params {
		if strings.EqualFold(p.Name, name) {
			return p, true
		}
	}
	return Param{}, false
}

// Operation names the write a person would recognise: "Set-MailUser" or "Graph group-member".
func (c Change) Operation() string {
	if c.IsGraph() {
		return "Graph " + string(c.Graph)
	}
	return c.Cmdlet
}

// Values says what the change writes, for people: "UseMapiRichTextFormat: Always → Never", several
// parameters joined by "; ", a group membership as "member of Sales: $false → $true".
func (c Change) Values() string {
	parts := make([]string, len(c.Params))
	for i, p := range c.Params {
		name := p.Name
		if c.Graph == GraphGroupMember && p.Name == MemberParam {
			name = "member of " + c.Group.String()
		}
		parts[i] = fmt.Sprintf("%s: %s → %s", name, p.From, p.To)
	}
	return strings.Join(parts, "; ")
}

// String names the change for messages: the object, the operation and the values.
func (c Change) String() string {
	return fmt.Sprintf("%s on %s (%s)", c.Operation(), c.Object.String(), c.Values())
}

// check is the change's own shape: an object, one kind of write, at least one parameter, each once.
func (c Change) check() error {
	switch {
	case strings.TrimSpace(c.Object.ID) == "":
		return errors.New("the change names no object id")
	case c.Cmdlet != "" && c.Graph != "":
		return errors.New("the change is both an Exchange cmdlet and a Graph operation")
	case c.Cmdlet == "" && c.Graph == "":
		return errors.New("the change names neither an Exchange cmdlet nor a Graph operation")
	case len(c.Params) == 0:
		return errors.New("the change sets no parameter")
	}
	if c.Graph != "" {
		if _, ok := graphOps[c.Graph]; !ok {
			return fmt.Errorf("%q is not a Graph operation the executor knows", c.Graph)
		}
		if c.Graph == GraphGroupMember && (strings.TrimSpace(c.Group.ID) == "" || len(c.Params) != 1 || c.Params[0].Name != MemberParam ||
			c.Params[0].To.Type() != TypeBool) {
			return errors.New("a group-member change names its group and sets only member, to $true or $false")
		}
	}
	seen := map[string]bool{}
	for _, p := range c.Params {
		k := strings.ToLower(p.Name)
		if k == "" || strings.EqualFold(p.Name, "Identity") {
			return fmt.Errorf("parameter %q cannot be written", p.Name)
		}
		if seen[k] {
			return fmt.Errorf("parameter %s is set twice", p.Name)
		}
		seen[k] = true
	}
	return nil
}
