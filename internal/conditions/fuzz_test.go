package conditions

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/anfed/anfed/internal/signal"
)

// FuzzApply runs random sequences of Apply, Tick, LinkDown and LinkUp, each
// op three bytes, and checks the table's invariants after every op.
func FuzzApply(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 1, 2, 0, 2})
	f.Add([]byte{0, 1, 0x10, 0, 1, 0x21, 6, 1, 5, 5, 40, 0, 5, 200, 0, 7, 1, 0})
	f.Add([]byte{0x10, 2, 0, 0x18, 10, 1, 5, 20, 0, 0, 2, 0x42, 0, 2, 2})
	f.Fuzz(func(t *testing.T, ops []byte) {
		clk := newClock()
		tbl := New(WithClock(clk.Now), WithMaxPerPeer(6), WithTombstoneTTL(90*time.Second))
		ch, cancel := tbl.Subscribe(256) // drained after every op
		defer cancel()
		view := make(map[Key]Condition) // a consumer's replay of the stream
		count := make(map[Key]int)      // signal-driven changes per key, as Changes must say
		var elapsed time.Duration
		var seq uint64
		peers := []string{"p0", "p1", "local"}

		for len(ops) >= 3 {
			b0, b1, b2 := ops[0], ops[1], ops[2]
			ops = ops[3:]
			peer := peers[int(b1)%len(peers)]
			switch b0 % 8 {
			case 5:
				elapsed += time.Duration(b1) * time.Second
				clk.Set(elapsed)
				tbl.Tick(clk.Now())
			case 6:
				tbl.LinkDown(peer, clk.Now(), time.Duration(b2%4)*10*time.Second, time.Duration(b2/4%4)*10*time.Second)
			case 7:
				tbl.LinkUp(peer)
			default:
				origin := []string{"a", "b"}[b1>>2%2]
				ev := sig(origin, fmt.Sprintf("svc/r%d", b1>>3%4), fmt.Sprintf("i%d", b2>>2%4), []signal.State{signal.Raised, signal.Updated, signal.Cleared, signal.Raised}[b2%4])
				ev.SeverityNumber = int(b0 >> 5)
				switch b0 >> 3 % 4 {
				case 1:
					ev.ExpiryTime = clk.Now().Add(-time.Second)
				case 2:
					ev.ExpiryTime = clk.Now().Add(10 * time.Second)
				case 3:
					ev.ExpiryTime = clk.Now().Add(30 * time.Second)
				}
				seq++
				s := seq - min(seq, uint64(b2>>4%4)) // sometimes late, sometimes a repeat
				if b2>>6 == 3 {
					s = 0
				}
				c, err := tbl.Apply(peer, "fault", ev, s)
				if err != nil && c != (Change{}) {
					t.Fatalf("error %v with change %+v", err, c)
				}
				if c.Kind != "" {
					count[c.Condition.Key]++
				}
			}

			for n := len(ch); n > 0; n-- {
				c := <-ch
				if c.Kind == Withdraw {
					delete(count, c.Condition.Key)
				}
				replay(view, c)
			}
			checkInvariants(t, tbl, view, count)
		}
		if tbl.Dropped() != 0 {
			t.Fatal("subscriber dropped")
		}
	})
}

func checkInvariants(t *testing.T, tbl *Table, view map[Key]Condition, count map[Key]int) {
	t.Helper()
	snap := tbl.Snapshot(Filter{IncludeStale: true})
	if tbl.Len("") != len(snap) {
		t.Fatalf("Len %d, Snapshot %d", tbl.Len(""), len(snap))
	}
	if !slices.IsSortedFunc(snap, func(a, b Condition) int { return compareKeys(a.Key, b.Key) }) {
		t.Fatal("snapshot not sorted")
	}
	got := make(map[Key]Condition)
	for i, c := range snap {
		if i > 0 && compareKeys(snap[i-1].Key, c.Key) == 0 {
			t.Fatalf("key twice in snapshot: %v", c.Key)
		}
		if c.Status != StatusActive && c.Status != StatusStale {
			t.Fatalf("snapshot holds %s condition %v", c.Status, c.Key)
		}
		if c.State == signal.Cleared {
			t.Fatalf("condition %v both %s and cleared", c.Key, c.Status)
		}
		got[c.Key] = c
	}
	if len(got) != len(view) {
		t.Fatalf("stream replay has %d conditions, table %d", len(view), len(got))
	}
	for k, c := range got {
		if view[k] != c {
			t.Fatalf("stream replay differs for %v:\n got %+v\nwant %+v", k, view[k], c)
		}
	}

	tbl.mu.Lock()
	defer tbl.mu.Unlock()
	live := 0
	for name, p := range tbl.peers {
		if name != p.name {
			t.Fatalf("peer %q filed under %q", p.name, name)
		}
		if len(p.m) == 0 && !p.down {
			t.Fatalf("empty peer %q kept", name)
		}
		var nLive, nStale, nTombs int
		for k, e := range p.m {
			if e.k != k || e.peer != p {
				t.Fatalf("entry %v filed under %v", e.key(), k)
			}
			switch e.status {
			case stActive:
				nLive++
			case stStale:
				nLive++
				nStale++
			case stCleared, stExpired:
				nTombs++
				if e.heapIdx < 0 {
					t.Fatalf("tombstone %v never forgotten", e.key())
				}
			default:
				t.Fatalf("entry %v has status %d", e.key(), e.status)
			}
			if e.isLive() && e.expiry != 0 && e.heapIdx < 0 {
				t.Fatalf("condition %v with expiry not scheduled", e.key())
			}
			if want := count[e.key()]; int(e.changes) != want {
				t.Fatalf("condition %v: Changes %d, %d changes applied", e.key(), e.changes, want)
			}
		}
		if nLive != p.live || nStale != p.stale || nTombs != p.tombs {
			t.Fatalf("peer %q counts live %d stale %d tombs %d, entries say %d %d %d", name, p.live, p.stale, p.tombs, nLive, nStale, nTombs)
		}
		if tbl.maxPerPeer > 0 && (p.live > tbl.maxPerPeer || p.tombs > tbl.maxPerPeer) {
			t.Fatalf("peer %q over its limit: live %d tombs %d", name, p.live, p.tombs)
		}
		live += nLive
	}
	if live != tbl.live {
		t.Fatalf("table counts %d live, entries say %d", tbl.live, live)
	}
	for i, e := range tbl.due {
		if int(e.heapIdx) != i {
			t.Fatalf("heap index %d holds entry with index %d", i, e.heapIdx)
		}
		if i > 0 && tbl.due[(i-1)/2].due > e.due {
			t.Fatal("heap order broken")
		}
		if p := tbl.peers[e.peer.name]; p == nil || p.m[e.k] != e {
			t.Fatalf("scheduled entry %v not in the table", e.key())
		}
	}
	// Keys the table forgot start their count afresh.
	for k := range count {
		p := tbl.peers[k.Peer]
		if p == nil {
			delete(count, k)
			continue
		}
		found := false
		for _, e := range p.m {
			if e.key() == k {
				found = true
				break
			}
		}
		if !found {
			delete(count, k)
		}
	}
}
