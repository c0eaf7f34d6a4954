package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

func TestLeaseLifecycle(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		clk := newClock()
		s := db.open(t, WithClock(clk.Now))
		ctx := t.Context()
		acquire := func(holder string, ttl time.Duration) bool {
			t.Helper()
			ok, err := s.AcquireLease(ctx, "job:meu-richtext", holder, ttl)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		renew := func(holder string) bool {
			t.Helper()
			ok, err := s.RenewLease(ctx, "job:meu-richtext", holder, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		steps := []struct {
			name string
			do   func() bool
			want bool
		}{
			{"A takes a free lease", func() bool { return acquire("A", time.Minute) }, true},
			{"B cannot take A's live lease", func() bool { return acquire("B", time.Hour) }, false},
			{"B cannot renew what it does not hold", func() bool { return renew("B") }, false},
			{"A re-acquires its own lease", func() bool { return acquire("A", time.Minute) }, true},
			{"59 s later A renews", func() bool { clk.Advance(59 * time.Second); return renew("A") }, true},
			{"another 59 s: renewed, so B still waits", func() bool { clk.Advance(59 * time.Second); return acquire("B", time.Minute) }, false},
			{"after expiry B takes over", func() bool { clk.Advance(2 * time.Second); return acquire("B", time.Minute) }, true},
			{"A, having lost it, cannot renew", func() bool { return renew("A") }, false},
			{"A cannot take B's lease back", func() bool { return acquire("A", time.Minute) }, false},
			{"B releases and A takes it at once", func() bool {
				if err := s.ReleaseLease(ctx, "job:meu-richtext", "B"); err != nil {
					t.Fatal(err)
				}
				return acquire("A", time.Minute)
			}, true},
			{"a release by a non-holder changes nothing", func() bool {
				if err := s.ReleaseLease(ctx, "job:meu-richtext", "B"); err != nil {
					t.Fatal(err)
				}
				return acquire("B", time.Minute)
			}, false},
			{"other names are independent", func() bool {
				ok, err := s.AcquireLease(ctx, "job:address-audit", "B", time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}, true},
		}
		for _, st := range steps {
			if got := st.do(); got != st.want {
				t.Fatalf("%s: got %v, want %v", st.name, got, st.want)
			}
		}

		for _, bad := range []struct {
			name, holder string
			ttl          time.Duration
		}{{"", "A", time.Minute}, {"n", "", time.Minute}, {"n", "A", 0}} {
			if _, err := s.AcquireLease(ctx, bad.name, bad.holder, bad.ttl); err == nil {
				t.Errorf("AcquireLease(%q, %q, %v) accepted", bad.name, bad.holder, bad.ttl)
			}
			if _, err := s.RenewLease(ctx, bad.name, bad.holder, bad.ttl); err == nil {
				t.Errorf("RenewLease(%q, %q, %v) accepted", bad.name, bad.holder, bad.ttl)
			}
		}
	})
}

// Two handles on one file (as two daemons would have) and many goroutines
// race for one lease: at no moment may two of them be inside it.
func TestLeaseExclusiveAcrossHandles(t *testing.T) {
	forEachDriver(t, testLeaseExclusiveAcrossHandles)
}

func testLeaseExclusiveAcrossHandles(t *testing.T, db testDB) {
	handles := []Store{db.open(t), db.open(t)}
	if err := createLeaseCS(t.Context(), handles[0]); err != nil {
		t.Fatal(err)
	}
	var inside atomic.Int32
	var total atomic.Int64
	g, ctx := errgroup.WithContext(ctxTimeout(t, time.Minute))
	for i := range 8 {
		s := handles[i%2]
		holder := fmt.Sprintf("holder-%d", i)
		g.Go(func() error {
			n, err := leaseRaceWith(ctx, s, holder, 60, func() error {
				if v := inside.Add(1); v != 1 {
					return fmt.Errorf("%s is inside the lease with %d others", holder, v-1)
				}
				time.Sleep(100 * time.Microsecond)
				inside.Add(-1)
				return nil
			})
			total.Add(int64(n))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if total.Load() == 0 {
		t.Fatal("nobody ever acquired the lease")
	}
	t.Logf("%d acquisitions by 8 goroutines on 2 handles", total.Load())
}

// The same across real processes, each with its own SQLite library state and
// file locks: the only thing they share is the database file.
func TestLeaseExclusiveAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	forEachDriver(t, testLeaseExclusiveAcrossProcesses)
}

func testLeaseExclusiveAcrossProcesses(t *testing.T, db testDB) {
	s := db.open(t)
	path := db.loc
	if err := createLeaseCS(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	outs := make([][]byte, 3)
	errs := make([]error, 3)
	for i := range outs {
		wg.Go(func() { outs[i], errs[i] = childCommand(t.Context(), childLeaseRace, path, 40).Output() })
	}
	// This process races too.
	mine, err := leaseRace(ctxTimeout(t, time.Minute), s, "parent", 40)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	total := mine
	for i, out := range outs {
		if errs[i] != nil {
			t.Fatalf("child %d: %v (stdout %q)", i, errs[i], out)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil {
			t.Fatalf("child %d printed %q", i, out)
		}
		total += n
	}
	if total == 0 {
		t.Fatal("nobody ever acquired the lease")
	}
	t.Logf("%d acquisitions by 4 processes", total)
}

// createLeaseCS creates the table leaseRace uses to detect two holders inside
// the lease at once: it can hold one row only.
func createLeaseCS(ctx context.Context, s Store) error {
	return execSQL(ctx, s, `CREATE TABLE IF NOT EXISTS lease_cs (id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL)`)
}

// leaseRace tries n times to take the lease "race"; whenever it gets it, it
// puts its marker row into lease_cs (which fails if another holder's row is
// there: two holders at once), waits a little, removes it and releases.
func leaseRace(ctx context.Context, s Store, holder string, n int) (int, error) {
	return leaseRaceWith(ctx, s, holder, n, func() error {
		if err := execSQL(ctx, s, `INSERT INTO lease_cs (id, holder) VALUES (1, ?)`, holder); err != nil {
			return fmt.Errorf("%s got the lease while another holder is inside it: %w", holder, err)
		}
		time.Sleep(time.Millisecond)
		return execSQL(ctx, s, `DELETE FROM lease_cs WHERE holder = ?`, holder)
	})
}

func leaseRaceWith(ctx context.Context, s Store, holder string, n int, inside func() error) (int, error) {
	got := 0
	for range n {
		ok, err := s.AcquireLease(ctx, "race", holder, 30*time.Second)
		if err != nil {
			return got, err
		}
		if !ok {
			time.Sleep(200 * time.Microsecond)
			continue
		}
		got++
		if err := inside(); err != nil {
			return got, err
		}
		if err := s.ReleaseLease(ctx, "race", holder); err != nil {
			return got, err
		}
	}
	return got, nil
}

func TestClaimTickOnceAcrossHandles(t *testing.T) {
	forEachDriver(t, testClaimTickOnceAcrossHandles)
}

func testClaimTickOnceAcrossHandles(t *testing.T, db testDB) {
	handles := []Store{db.open(t), db.open(t)}
	tick := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)

	// 16 goroutines on two handles claim the same three ticks of one job,
	// and the first tick of another job.
	type key struct {
		job  string
		tick time.Time
	}
	keys := []key{
		{"meu-richtext", tick}, {"meu-richtext", tick.Add(30 * time.Minute)}, {"meu-richtext", tick.Add(time.Hour)},
		{"address-audit", tick},
	}
	var mu sync.Mutex
	winners := map[key][]string{}
	g, ctx := errgroup.WithContext(ctxTimeout(t, time.Minute))
	for i := range 16 {
		s := handles[i%2]
		holder := fmt.Sprintf("daemon-%d", i)
		g.Go(func() error {
			for _, k := range keys {
				won, err := s.ClaimTick(ctx, k.job, k.tick, holder)
				if err != nil {
					return err
				}
				if won {
					mu.Lock()
					winners[k] = append(winners[k], holder)
					mu.Unlock()
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if len(winners[k]) != 1 {
			t.Errorf("tick %s of %s won by %v, want exactly one daemon", k.tick.Format(time.RFC3339), k.job, winners[k])
		}
	}
	// The same instant in another time zone is the same tick.
	won, err := handles[0].ClaimTick(t.Context(), "meu-richtext", tick.In(time.FixedZone("CET", 3600)), "late")
	if err != nil || won {
		t.Errorf("claim of an already claimed tick in another zone = %v, %v; want false", won, err)
	}
	if _, err := handles[0].ClaimTick(t.Context(), "", tick, "x"); err == nil {
		t.Error("ClaimTick accepted an empty job")
	}
}

func TestClaimTickPrunesOldClaims(t *testing.T) {
	forEachDriver(t, func(t *testing.T, db testDB) {
		s := db.open(t)
		ctx := t.Context()
		old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for _, tk := range []time.Time{old, old.Add(time.Hour)} {
			if won, err := s.ClaimTick(ctx, "j", tk, "d"); err != nil || !won {
				t.Fatal(won, err)
			}
		}
		if won, err := s.ClaimTick(ctx, "j", old.Add(tickRetention+30*time.Minute), "d"); err != nil || !won {
			t.Fatal(won, err)
		}
		n, err := queryInt(ctx, s, `SELECT COUNT(*) FROM schedule_ticks WHERE job = 'j'`)
		if err != nil || n != 2 {
			t.Errorf("%d claims kept (%v), want 2: the one older than the retention is pruned", n, err)
		}
	})
}
