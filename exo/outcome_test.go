package exo_test

import (
	"context"
	"errors"
	"testing"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/internal/sim"
)

// A write whose request went out and got no complete answer has an unknown outcome: the client says so with
// KindOutcomeUnknown (never "failed"), re-sends it only when the command is idempotent, and a read with an
// incomplete answer is merely transient.

func TestResetAfterSendIsOutcomeUnknownAndSetIsResent(t *testing.T) {
	e := start(t, sim.Options{Scenario: scenario(3), Faults: sim.Faults{ResetRate: 1}}, func(o *exo.Options) { o.MaxRetries = 2 })
	o := e.srv.Tenant().InScopeMEUs()[0]
	target := "Never"
	if o.UseMapiRichTextFormat == target {
		target = "Always"
	}
	_, err := e.client.Invoke(ctxT(t), exo.Command{Name: "Set-MailUser", Params: map[string]any{"Identity": o.ID, "UseMapiRichTextFormat": target}})
	if !errors.Is(err, exo.KindOutcomeUnknown) {
		t.Fatalf("err = %v, want KindOutcomeUnknown", err)
	}
	if n := len(invokeCalls(e.srv, "Set-MailUser")); n != 3 {
		t.Errorf("Set-MailUser sent %d times, want 3: it is idempotent, so it is re-sent within the retry budget", n)
	}
	if got, _ := e.srv.Tenant().Object(o.ID); got.UseMapiRichTextFormat != target {
		t.Errorf("the write did not land (%s): the test would prove nothing", got.UseMapiRichTextFormat)
	}
}

func TestUnknownOutcomeOfANonIdempotentCommandIsNotResent(t *testing.T) {
	e := start(t, sim.Options{Scenario: scenario(1), Faults: sim.Faults{ResetRate: 1}}, func(o *exo.Options) { o.MaxRetries = 3 })
	_, err := e.client.Invoke(ctxT(t), exo.Command{Name: "New-MailContact", Params: map[string]any{"Name": "x", "ExternalEmailAddress": "x@example.com"}})
	if !errors.Is(err, exo.KindOutcomeUnknown) {
		t.Fatalf("err = %v, want KindOutcomeUnknown", err)
	}
	if n := len(invokeCalls(e.srv, "New-MailContact")); n != 1 {
		t.Errorf("New-MailContact sent %d times after a reset, want 1: it may have run, and running it twice is not the same", n)
	}
}

func TestBatchWritesWithIncompleteAnswersAreOutcomeUnknown(t *testing.T) {
	for _, f := range []sim.Faults{{ResetRate: 1}, {TruncateRate: 1}} {
		e := start(t, sim.Options{Scenario: scenario(4), Faults: f}, func(o *exo.Options) { o.MaxRetries = 1 })
		var cmds []exo.Command
		for _, o := range e.srv.Tenant().InScopeMEUs() {
			cmds = append(cmds, exo.Command{Name: "Set-MailUser", Params: map[string]any{"Identity": o.ID, "UseMapiRichTextFormat": "Never"}})
		}
		for i, r := range e.client.Batch(ctxT(t), cmds) {
			if !errors.Is(r.Err, exo.KindOutcomeUnknown) {
				t.Errorf("%+v: command %d: err = %v, want KindOutcomeUnknown", f, i, r.Err)
			}
		}
		for _, o := range e.srv.Tenant().InScopeMEUs() {
			if o.UseMapiRichTextFormat != "Never" {
				t.Errorf("%+v: %s holds %s: the writes did not land, the test would prove nothing", f, o.ID, o.UseMapiRichTextFormat)
			}
		}
	}
}

func TestReadsWithIncompleteAnswersAreTransient(t *testing.T) {
	e := start(t, sim.Options{Scenario: scenario(2), Faults: sim.Faults{ResetRate: 1}}, func(o *exo.Options) { o.MaxRetries = 1 })
	_, err := e.client.Invoke(ctxT(t), exo.Command{Name: "Get-MailUser", Params: map[string]any{"ResultSize": "Unlimited"}})
	if !errors.Is(err, exo.KindTransient) {
		t.Fatalf("err = %v, want KindTransient: a read changes nothing, its outcome is never unknown", err)
	}
	res := e.client.Batch(ctxT(t), []exo.Command{{Name: "Get-MailUser", Params: map[string]any{"Identity": e.srv.Tenant().InScopeMEUs()[0].ID}}})
	if !errors.Is(res[0].Err, exo.KindTransient) {
		t.Fatalf("batched read: err = %v, want KindTransient", res[0].Err)
	}
}

func TestCancelAfterSendIsOutcomeUnknown(t *testing.T) {
	e := start(t, sim.Options{Scenario: scenario(1), Faults: sim.Faults{ResetRate: 1}}, func(o *exo.Options) { o.MaxRetries = 5 })
	ctx, cancel := context.WithCancel(ctxT(t))
	o := e.srv.Tenant().InScopeMEUs()[0]
	done := make(chan error, 1)
	go func() {
		_, err := e.client.Invoke(ctx, exo.Command{Name: "Set-MailUser", Params: map[string]any{"Identity": o.ID, "UseMapiRichTextFormat": "Never"}})
		done <- err
	}()
	for len(invokeCalls(e.srv, "Set-MailUser")) == 0 {
	}
	cancel()
	err := <-done
	if !errors.Is(err, exo.KindOutcomeUnknown) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want KindOutcomeUnknown wrapping context.Canceled: the request had gone out", err)
	}
}

func TestIdempotentCommands(t *testing.T) {
	for name, want := range map[string]bool{"Set-MailUser": true, "Get-MailUser": true, "Test-X": true,
		"New-MailContact": false, "Add-DistributionGroupMember": false, "Remove-MailUser": false, "": false} {
		if exo.Idempotent(name) != want {
			t.Errorf("Idempotent(%q) = %v, want %v", name, !want, want)
		}
	}
}
