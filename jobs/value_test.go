package jobs_test

import (
	"encoding/json"
	"testing"

	"github.com/exo-worker/worker/jobs"
)

// TestValueJSONIsFaithful: each value type goes to JSON as itself and comes back equal, so what the journal
// holds is what was sent (a boolean stays a boolean, never the string "True").
func TestValueJSONIsFaithful(t *testing.T) {
	tests := []struct {
		v    jobs.Value
		json string
		text string
	}{
		{jobs.Text("Never"), `"Never"`, "Never"},
		{jobs.Bool(true), `true`, "$true"},
		{jobs.Bool(false), `false`, "$false"},
		{jobs.List("smtp:a@contoso.com", "SMTP:b@contoso.com"), `["smtp:a@contoso.com","SMTP:b@contoso.com"]`, "{smtp:a@contoso.com, SMTP:b@contoso.com}"},
		{jobs.Null, `null`, "$null"},
	}
	for _, tc := range tests {
		b, err := json.Marshal(tc.v)
		if err != nil || string(b) != tc.json {
			t.Errorf("marshal %s = %s, %v; want %s", tc.text, b, err, tc.json)
		}
		var back jobs.Value
		if err := json.Unmarshal(b, &back); err != nil || back.Type() != tc.v.Type() || !back.Equal(tc.v) {
			t.Errorf("round trip of %s gave %s (type %d), %v", tc.json, back, back.Type(), err)
		}
		if tc.v.String() != tc.text {
			t.Errorf("%s prints as %q, want %q", tc.json, tc.v.String(), tc.text)
		}
	}
	var v jobs.Value
	if err := json.Unmarshal([]byte(`{"a":1}`), &v); err == nil {
		t.Error("a JSON object decoded as a parameter value")
	}
}

// TestValueEqualComparesAsExchangeDoes: enum text case-insensitively, lists as sets, and the text "True"
// that some cmdlet output carries equals the boolean.
func TestValueEqualComparesAsExchangeDoes(t *testing.T) {
	eq := []struct{ a, b jobs.Value }{
		{jobs.Text("never"), jobs.Text("Never")},
		{jobs.List("a", "B"), jobs.List("b", "A")},
		{jobs.Bool(true), jobs.Text("True")},
		{jobs.Null, jobs.Null},
	}
	for _, c := range eq {
		if !c.a.Equal(c.b) || !c.b.Equal(c.a) {
			t.Errorf("%s and %s should be equal", c.a, c.b)
		}
	}
	ne := []struct{ a, b jobs.Value }{
		{jobs.Text("Never"), jobs.Text("Always")},
		{jobs.Bool(true), jobs.Bool(false)},
		{jobs.Bool(true), jobs.Text("Never")},
		{jobs.List("a"), jobs.List("a", "b")},
		{jobs.Null, jobs.Text("")},
	}
	for _, c := range ne {
		if c.a.Equal(c.b) {
			t.Errorf("%s and %s should differ", c.a, c.b)
		}
	}
}

// TestDeclarationChecks: registration refuses what the executor could not safely run.
func TestDeclarationChecks(t *testing.T) {
	owned := func(cmdlet, param string) (string, bool) {
		return "synchronized from AD", param == "ExternalEmailAddress"
	}
	ok := jobs.Description{Kind: jobs.KindRemediate, Permissions: []jobs.Permission{jobs.ExchangeManageAsApp},
		Writes: []jobs.Write{{Cmdlet: "Set-MailUser", Params: []string{"UseMapiRichTextFormat"}}}}
	if err := ok.Validate(owned); err != nil {
		t.Fatalf("a plain declaration is refused: %v", err)
	}
	bad := map[string]jobs.Description{
		"audit with writes":         {Kind: jobs.KindAudit, Writes: ok.Writes, Permissions: ok.Permissions},
		"sync-owned parameter":      {Kind: jobs.KindRemediate, Permissions: ok.Permissions, Writes: []jobs.Write{{Cmdlet: "Set-MailUser", Params: []string{"ExternalEmailAddress"}}}},
		"no read-back":              {Kind: jobs.KindRemediate, Permissions: ok.Permissions, Writes: []jobs.Write{{Cmdlet: "Enable-Mailbox", Params: []string{"Archive"}}}},
		"graph without role":        {Kind: jobs.KindRemediate, Writes: []jobs.Write{{Graph: jobs.GraphGroupMember}}},
		"exchange without app role": {Kind: jobs.KindRemediate, Writes: ok.Writes},
	}
	for name, d := range bad {
		if err := d.Validate(owned); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	cloud := jobs.Description{Kind: jobs.KindRemediate, Permissions: ok.Permissions,
		Writes: []jobs.Write{{Cmdlet: "Set-MailUser", Params: []string{"ExternalEmailAddress"}, CloudOnly: true}}}
	if err := cloud.Validate(owned); err != nil {
		t.Errorf("a cloud-only write of a parameter sync owns elsewhere is refused: %v", err)
	}
	graph := jobs.Description{Kind: jobs.KindRemediate, Permissions: jobs.GraphPermissions("GroupMember.ReadWrite.All"),
		Writes: []jobs.Write{{Graph: jobs.GraphGroupMember, Group: "g1"}}}
	if err := graph.Validate(owned); err != nil {
		t.Errorf("graph write: %v", err)
	}
	user, g1, g2 := jobs.ObjectRef{ID: "u1"}, jobs.ObjectRef{ID: "g1"}, jobs.ObjectRef{ID: "g2"}
	if err := graph.Allows(jobs.AddToGroup(user, g1)); err != nil {
		t.Errorf("adding to the declared group: %v", err)
	}
	if err := graph.Allows(jobs.AddToGroup(user, g1).Reverse()); err != nil {
		t.Errorf("the revert of an add (a remove) of the declared group: %v", err)
	}
	if err := graph.Allows(jobs.AddToGroup(user, g2)); err == nil {
		t.Error("adding to another group than the declared one is allowed")
	}
}
