package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestLineProgressRedrawsOneLine(t *testing.T) {
	var b bytes.Buffer
	p := newLineProgress(&b)
	p.Phase("applying", 200)
	p.Add(50) // within 100 ms of the phase start: not redrawn
	if strings.Contains(b.String(), "50/200") {
		t.Errorf("redrawn within 100 ms: %q", b.String())
	}
	p.Add(50)
	p.Done() // forces a last draw, then clears the line
	out := b.String()
	for _, want := range []string{"\r\033[Kapplying 0/200 (0%)", "applying 100/200 (50%)"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress output %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "\n") {
		t.Errorf("progress wrote a newline (it must stay on one line): %q", out)
	}
	if !strings.HasSuffix(out, "\r\033[K") {
		t.Errorf("Done does not clear the line: %q", out)
	}
	b.Reset()
	p.Phase("reading tenant", -1)
	if !strings.Contains(b.String(), "reading tenant 0 objects") {
		t.Errorf("unknown total: %q", b.String())
	}
}
