package store

import (
	"bytes"
	"testing"
)

func TestSnapshots(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		s := db.open(t, WithTenant("contoso"))
		other := forTenant(t, s, "fabrikam")
		if b, err := s.GetSnapshot(ctx, "graph/users"); err != nil || b != nil {
			t.Fatalf("fresh store: %q, %v; want nil, nil", b, err)
		}
		big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 1<<18) // binary, 1 MiB
		for _, data := range [][]byte{[]byte("first"), big, {}} {
			if err := s.PutSnapshot(ctx, "graph/users", data); err != nil {
				t.Fatal(err)
			}
			got, err := s.GetSnapshot(ctx, "graph/users")
			if err != nil || got == nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes (nil %v), %v; want %d bytes", len(got), got == nil, err, len(data))
			}
		}
		if b, err := other.GetSnapshot(ctx, "graph/users"); err != nil || b != nil {
			t.Fatalf("another tenant reads %d bytes, %v; want none", len(b), err)
		}
		if err := s.PutSnapshot(ctx, "exo/x", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSnapshot(ctx, "graph/users"); err != nil {
			t.Fatal(err)
		}
		if b, _ := s.GetSnapshot(ctx, "graph/users"); b != nil {
			t.Fatalf("deleted snapshot still there: %q", b)
		}
		if b, _ := s.GetSnapshot(ctx, "exo/x"); string(b) != "x" {
			t.Fatalf("deleting one snapshot touched another: %q", b)
		}
		if err := s.PutSnapshot(ctx, "", []byte("x")); err == nil {
			t.Error("empty name accepted")
		}
		if err := s.PutSnapshot(ctx, "n", nil); err == nil {
			t.Error("nil data accepted")
		}
	})
}
