package store

import (
	"path/filepath"
	"testing"
)

// BenchmarkJournalBatch10 is what the journal costs the executor per $batch
// of ten writes: one committed JournalBegin of ten and one JournalOutcomes of
// ten (two fsyncs with synchronous=FULL).
func BenchmarkJournalBatch10(b *testing.B) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "worker.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	run, err := s.CreateRun(b.Context(), Run{Job: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	cs := changes(0, 10)
	outs := make([]Outcome, 10)
	for b.Loop() {
		ids, err := s.JournalBegin(b.Context(), run.ID, cs)
		if err != nil {
			b.Fatal(err)
		}
		for i, id := range ids {
			outs[i] = Outcome{ID: id, State: ChangeStateApplied, RequestID: "r"}
		}
		if err := s.JournalOutcomes(b.Context(), outs); err != nil {
			b.Fatal(err)
		}
	}
}
