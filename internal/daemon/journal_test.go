package daemon

import (
	"encoding/json"
	"testing"

	"github.com/exo-worker/worker/internal/store"
	"github.com/exo-worker/worker/jobs"
)

// TestJournalKeepsChangesFaithfully: what storeChange journals, entryChange reads back as the same change —
// typed values, several parameters of one object, a Graph membership — and rows written before values were
// typed (one parameter, JSON strings) still read.
func TestJournalKeepsChangesFaithfully(t *testing.T) {
	obj := jobs.ObjectRef{ID: "u1", DisplayName: "Jane"}
	changes := []jobs.Change{
		jobs.Set(obj, "Set-MailUser", jobs.Param{Name: "UseMapiRichTextFormat", From: jobs.Text("Always"), To: jobs.Text("Never")}),
		jobs.Set(obj, "Set-MailUser",
			jobs.Param{Name: "UseMapiRichTextFormat", From: jobs.Text("UseDefaultSettings"), To: jobs.Text("Never")},
			jobs.Param{Name: "UsePreferMessageFormat", From: jobs.Bool(false), To: jobs.Bool(true)}),
		jobs.Set(obj, "Set-MailUser", jobs.Param{Name: "EmailAddresses", From: jobs.List("SMTP:a@x"), To: jobs.List("SMTP:a@x", "smtp:b@x")}),
		jobs.AddToGroup(obj, jobs.ObjectRef{ID: "g1"}),
	}
	for _, c := range changes {
		sc := storeChange(c)
		got, ok := entryChange(store.JournalEntry{Change: sc})
		if !ok {
			t.Errorf("%s: journalled as %s %s %s → %s, not read back", c, sc.Cmdlet, sc.Param, sc.Old, sc.New)
			continue
		}
		if got.Cmdlet != c.Cmdlet || got.Graph != c.Graph || got.Group.ID != c.Group.ID || len(got.Params) != len(c.Params) {
			t.Errorf("%s read back as %s", c, got)
			continue
		}
		for i, p := range c.Params {
			g := got.Params[i]
			if g.Name != p.Name || g.From.Type() != p.From.Type() || !g.From.Equal(p.From) || g.To.Type() != p.To.Type() || !g.To.Equal(p.To) {
				t.Errorf("%s: parameter %d read back as %s %s → %s", c, i, g.Name, g.From, g.To)
			}
		}
	}
	// A boolean is journalled as JSON true, not "True".
	if sc := storeChange(changes[1]); string(sc.New) != `{"UseMapiRichTextFormat":"Never","UsePreferMessageFormat":true}` {
		t.Errorf("two parameters journalled as %s", sc.New)
	}
	// A row written before typed values: one parameter, JSON strings.
	old := store.JournalEntry{Change: store.Change{ObjectID: "u2", Cmdlet: "Set-MailUser", Param: "UseMapiRichTextFormat",
		Old: json.RawMessage(`"Always"`), New: json.RawMessage(`"Never"`)}}
	c, ok := entryChange(old)
	if !ok || len(c.Params) != 1 || c.Params[0].From.AsText() != "Always" || c.Params[0].To.AsText() != "Never" {
		t.Errorf("an old journal row reads as %s (ok %v)", c, ok)
	}
	// Never read (null): a revert must not guess.
	if _, ok := entryChange(store.JournalEntry{Change: store.Change{ObjectID: "u3", Cmdlet: "Set-MailUser", Param: "X", Old: json.RawMessage(`null`), New: json.RawMessage(`"a"`)}}); ok {
		t.Error("a null old value was accepted")
	}
}
