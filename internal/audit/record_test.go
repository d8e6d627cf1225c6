package audit

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// chain makes n chained records of chain c, stored from sequence seq.
func chain(c string, n int, seq uint64) []Stored {
	var out []Stored
	prev := ""
	for i := 1; i <= n; i++ {
		r := Record{Chain: c, N: uint64(i), Prev: prev, Time: time.Date(2026, 12, 7, 8, 0, i, 0, time.UTC), Node: "op-a", Kind: KindSent,
			Peer: "op-b", Signal: fmt.Sprintf("s-%d", i), Digest: Digest([]byte{byte(i)}), Redacted: []string{"/data/x"}, Rule: "export.classes"}
		r.Hash = r.Sum()
		prev = r.Hash
		out = append(out, Stored{Record: r, Seq: seq + uint64(i)})
	}
	return out
}

func TestVerify(t *testing.T) {
	for _, tc := range []struct {
		name      string
		recs      func() []Stored
		heads     map[string]uint64
		problems  []string // "chain n: part of what"
		truncated int
	}{
		{name: "two whole chains, interleaved", recs: func() []Stored {
			a, b := chain("A", 5, 0), chain("B", 3, 100)
			return append(append(a[:2:2], b...), a[2:]...)
		}, heads: map[string]uint64{"A": 5}},
		{name: "altered content", recs: func() []Stored {
			rs := chain("A", 5, 0)
			rs[2].Redacted = nil
			return rs
		}, problems: []string{"A 3: its content does not match its hash"}},
		{name: "altered and hashed again", recs: func() []Stored {
			rs := chain("A", 5, 0)
			rs[2].Peer = "op-z"
			rs[2].Hash = rs[2].Sum()
			return rs
		}, problems: []string{"A 4: it names previous hash"}},
		{name: "one removed from the middle", recs: func() []Stored {
			rs := chain("A", 5, 0)
			return append(rs[:2:2], rs[3:]...)
		}, problems: []string{"A 4: records 3 to 3 before it are missing"}},
		{name: "removed from the end, the writer's head says so", recs: func() []Stored {
			return chain("A", 5, 0)[:3]
		}, heads: map[string]uint64{"A": 5}, problems: []string{"A 4: records 4 to 5, which this chain's writer wrote, are missing"}},
		{name: "the start expired", recs: func() []Stored { return chain("A", 5, 0)[2:] }, truncated: 1},
		{name: "a record written twice", recs: func() []Stored {
			rs := chain("A", 3, 0)
			dup := rs[1]
			dup.Seq = 50
			return append(rs, dup)
		}, problems: []string{"A 2: a second record with this number"}},
		{name: "a first record that names a previous one", recs: func() []Stored {
			rs := chain("A", 2, 0)
			rs[0].Prev = "abc"
			rs[0].Hash = rs[0].Sum()
			rs[1].Prev = rs[0].Hash
			rs[1].Hash = rs[1].Sum()
			return rs
		}, problems: []string{"A 1: the first record of its chain names a previous hash"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := Verify(tc.recs(), tc.heads)
			assert.Len(t, rep.Problems, len(tc.problems), rep.Text())
			for i, want := range tc.problems {
				if i >= len(rep.Problems) {
					break
				}
				p := rep.Problems[i]
				assert.Contains(t, fmt.Sprintf("%s %d: %s", p.Chain, p.N, p.What), want)
			}
			assert.Len(t, rep.Truncated, tc.truncated)
			assert.Equal(t, len(tc.problems) == 0, rep.OK())
		})
	}
}

// The hash covers every field but itself.
func TestSumCoversEveryField(t *testing.T) {
	r := chain("A", 1, 0)[0].Record
	base := r.Sum()
	for name, edit := range map[string]func(*Record){
		"chain": func(r *Record) { r.Chain = "B" }, "n": func(r *Record) { r.N = 2 }, "prev": func(r *Record) { r.Prev = "x" },
		"time": func(r *Record) { r.Time = r.Time.Add(time.Nanosecond) }, "node": func(r *Record) { r.Node = "op-x" },
		"kind": func(r *Record) { r.Kind = KindAction }, "peer": func(r *Record) { r.Peer = "op-c" }, "signal": func(r *Record) { r.Signal = "s-9" },
		"source": func(r *Record) { r.Source = "x" }, "type": func(r *Record) { r.Type = "x" }, "subject": func(r *Record) { r.Subject = "x" },
		"digest": func(r *Record) { r.Digest = "x" }, "size": func(r *Record) { r.Size = 9 }, "redacted": func(r *Record) { r.Redacted = nil },
		"rule": func(r *Record) { r.Rule = "x" }, "action": func(r *Record) { r.Action = "x" }, "phase": func(r *Record) { r.Phase = "x" },
		"decided_by": func(r *Record) { r.DecidedBy = "x" }, "reason": func(r *Record) { r.Reason = "x" },
	} {
		c := r
		edit(&c)
		assert.NotEqual(t, base, c.Sum(), name)
	}
	c := r
	c.Hash = "anything"
	assert.Equal(t, base, c.Sum(), "the hash field itself is left out")
}
