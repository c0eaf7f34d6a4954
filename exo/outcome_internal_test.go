package exo

import (
	"errors"
	"io"
	"testing"
)

func TestUnknownOutcomeKeepsARefusalAndMarksTheRest(t *testing.T) {
	nf := &Error{Kind: KindNotFound, Cmdlet: "Set-MailUser", Message: "not found"}
	if got := unknownOutcome(nf, "Set-MailUser", "x"); got != error(nf) {
		t.Errorf("a refusal became %v", got)
	}
	for _, err := range []error{&Error{Kind: KindTransient, Message: "503"}, &Error{Kind: KindUnauthorized}, io.ErrUnexpectedEOF} {
		got := unknownOutcome(err, "Set-MailUser", "x")
		if !IsKind(got, KindOutcomeUnknown) || !errors.Is(got, err) {
			t.Errorf("%v became %v, want KindOutcomeUnknown wrapping it", err, got)
		}
	}
}
