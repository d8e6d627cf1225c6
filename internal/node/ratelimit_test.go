package node_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

// TestImportRateTimeline: op-b takes at most 20 signals/s from op-a
// (import.max_rate, burst 5); op-c takes the default. 60 signals pushed
// at once reach op-c at once and op-b no sooner than the rate allows (55
// after the burst: ≥ 2.75 s; the test wants ≥ 2.5 s) — all of them, once
// each, in order, none dead-lettered: over the rate a signal is refused
// rate-limited (counted and logged at op-b, logged at op-a), and op-a's
// sender resends it. The limit delays, it never drops.
func TestImportRateTimeline(t *testing.T) {
	tb := newTally()
	logA, logB := &atkLog{}, &atkLog{}
	na, nb, nc := starWith(t, map[string]func(*config.Config){
		"op-b": func(c *config.Config) {
			peerOf(c, "op-a").Import.MaxRate, peerOf(c, "op-a").Import.MaxBurst = 20, 5
		},
	}, map[string][]node.Option{
		"op-a": {node.WithLogger(zerolog.New(logA).Level(zerolog.WarnLevel))},
		"op-b": {node.WithLogger(zerolog.New(logB).Level(zerolog.WarnLevel)), node.WithObserver(tb)},
	})
	const n = 60
	var evs []*signal.Event
	var ids []string
	for i := range n {
		ev := condEv("op-a", fmt.Sprintf("rl-%02d", i), fmt.Sprintf("r%02d", i), signal.Raised)
		evs, ids = append(evs, ev), append(ids, ev.ID)
	}
	items := []tlItem{at(0, pushAll("op-a", evs...))}
	for _, id := range ids {
		items = append(items, want("op-b", id, until(30*time.Second)), want("op-c", id, until(10*time.Second)))
	}
	items = append(items, want("op-b", ids[n-1], between(2500*time.Millisecond, 30*time.Second)))
	tl := newTimeline(t, na, nb, nc)
	fails := tl.run(t, items...)
	require.Empty(t, fails, "%s", tl.dump())
	time.Sleep(500 * time.Millisecond) // a copy would show by now
	tl.mu.Lock()
	var prev time.Duration
	for _, id := range ids {
		require.Len(t, tl.got["op-b"][id], 1, "op-b got %s once", id)
		a := tl.got["op-b"][id][0].at
		require.GreaterOrEqual(t, a, prev, "op-b got %s out of order", id)
		prev = a
	}
	lastC := tl.got["op-c"][ids[n-1]][0].at
	assert.Empty(t, tl.dlq["op-b"], "nothing dead-lettered: a rate-limited signal is resent, not refused for good")
	tl.mu.Unlock()
	limited := tb.rejections("op-a", reject.RateLimited)
	t.Logf("op-b (20/s, burst 5): last at %s, %d refusals as rate-limited; op-c: last at %s", prev.Round(time.Millisecond), limited, lastC.Round(time.Millisecond))
	assert.Positive(t, limited, "refusals counted per peer and reason")
	hasLine := func(l *atkLog, msg string) bool {
		for _, m := range l.since(0) {
			if atkStr(m, "reason") == string(reject.RateLimited) && strings.Contains(atkStr(m, "message"), msg) {
				return true
			}
		}
		return false
	}
	assert.True(t, hasLine(logB, "over the import rate limit refused"), "op-b logs the refusals")
	assert.True(t, hasLine(logA, "import rate limit"), "op-a logs why its signals wait")
}
