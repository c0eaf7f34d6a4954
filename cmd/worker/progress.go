package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// lineProgress draws one self-overwriting status line on a terminal ("applying 340/2000 (17%) 12.3/s").
// It redraws at most every 100 ms so that a fast run does not spend its time printing.
type lineProgress struct {
	w     io.Writer
	mu    sync.Mutex
	phase string
	total int
	done  int
	start time.Time
	last  time.Time
}

func newLineProgress(w io.Writer) *lineProgress { return &lineProgress{w: w} }

func (p *lineProgress) Phase(name string, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase, p.total, p.done, p.start = name, total, 0, time.Now()
	p.drawLocked(true)
}

func (p *lineProgress) Add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.drawLocked(false)
}

func (p *lineProgress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drawLocked(true)
	fmt.Fprint(p.w, "\r\033[K")
}

func (p *lineProgress) drawLocked(force bool) {
	now := time.Now()
	if !force && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	rate := 0.0
	if el := now.Sub(p.start).Seconds(); el > 0 {
		rate = float64(p.done) / el
	}
	if p.total >= 0 {
		pct := 0.0
		if p.total > 0 {
			pct = 100 * float64(p.done) / float64(p.total)
		}
		fmt.Fprintf(p.w, "\r\033[K%s %d/%d (%.0f%%) %.1f/s", p.phase, p.done, p.total, pct, rate)
		return
	}
	fmt.Fprintf(p.w, "\r\033[K%s %d objects %.1f/s", p.phase, p.done, rate)
}
