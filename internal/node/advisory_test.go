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
	"github.com/anfed/anfed/internal/inbound"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// TestMaxConditionsAdvisoryTimeline: op-b takes at most 3 active
// conditions from op-a (warning at 2). When the count reaches 2, and when
// the limit refuses a signal, op-b tells op-a with an advisory over their
// link; op-a logs it, counts it and shows the last one in its peers view.
// Further refusals within the minute send nothing more (one advisory per
// state change and per minute). op-c, not limited, hears nothing.
func TestMaxConditionsAdvisoryTimeline(t *testing.T) {
	logA := &atkLog{}
	na, nb, nc := starWith(t, map[string]func(*config.Config){
		"op-b": func(c *config.Config) {
			peerOf(c, "op-a").Import.MaxConditions = &config.MaxConditions{Limit: 3, WarnAt: "2"}
		},
	}, map[string][]node.Option{"op-a": {node.WithLogger(zerolog.New(logA).Level(zerolog.InfoLevel))}})
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var (
		warnSeen, limitSeen time.Duration
		tl                  *timeline
	)
	advisory := func(kind string) *inbound.Advisory {
		if a := peerState(t, na, "op-b").Advisory; a != nil && a.Kind == kind {
			return a
		}
		return nil
	}
	items := []tlItem{
		at(0, push("op-a", condEv("op-a", "ad-1", "r1", signal.Raised))),
		at(ms(100), push("op-a", condEv("op-a", "ad-2", "r2", signal.Raised))), // warn_at: 2
		at(ms(200), push("op-a", condEv("op-a", "ad-3", "r3", signal.Raised))),
		at(ms(1200), push("op-a", condEv("op-a", "ad-4", "r4", signal.Raised))), // over the limit
		at(ms(1400), push("op-a", condEv("op-a", "ad-5", "r5", signal.Raised))), // over again, within the minute
		want("op-b", "ad-3", until(2*time.Second)),
		wantRefused("op-b", "ad-4", string(reject.TooManyConditions), between(ms(1200), 3*time.Second)),
		wantRefused("op-b", "ad-5", string(reject.TooManyConditions), between(ms(1400), 3*time.Second)),
		want("op-c", "ad-5", between(ms(1400), 3*time.Second)),
		at(ms(1000), do("op-a sees the warning", func(t *testing.T, tl *timeline) {
			waitFor(t, 5*time.Second, func() error {
				if advisory(inbound.AdvisoryMaxConditionsWarning) == nil {
					return fmt.Errorf("op-a's view of op-b: %+v", peerState(t, na, "op-b").Advisory)
				}
				return nil
			})
			warnSeen = time.Since(tl.start)
		})),
		at(ms(1300), do("op-a sees the limit", func(t *testing.T, tl *timeline) {
			waitFor(t, 5*time.Second, func() error {
				if advisory(inbound.AdvisoryMaxConditionsLimit) == nil {
					return fmt.Errorf("op-a's view of op-b: %+v", peerState(t, na, "op-b").Advisory)
				}
				return nil
			})
			limitSeen = time.Since(tl.start)
		})),
	}
	tl = newTimeline(t, na, nb, nc)
	fails := tl.run(t, items...)
	require.Empty(t, fails, "%s", tl.dump())
	time.Sleep(500 * time.Millisecond) // a third advisory would have come by now
	ps := peerState(t, na, "op-b")
	require.NotNil(t, ps.Advisory)
	t.Logf("op-a saw the warning by %s and the limit by %s: %s", warnSeen.Round(time.Millisecond), limitSeen.Round(time.Millisecond), ps.Advisory)
	assert.Equal(t, uint64(2), ps.Advisories, "the warning and the limit; the second refusal within the minute adds none")
	assert.Equal(t, "op-b", ps.Advisory.From)
	assert.Equal(t, 3, ps.Advisory.Limit)
	assert.True(t, strings.HasPrefix(ps.Advisory.String(), "op-b says: max-conditions limit 3 reached: op-b refuses new conditions from op-a"), ps.Advisory.String())
	assert.Equal(t, uint64(2), peerState(t, nb, "op-a").AdvisoriesSent)
	assert.Equal(t, uint64(0), peerState(t, na, "op-c").Advisories)
	// op-a's log says it, once per advisory.
	var kinds []string
	for _, l := range logA.since(0) {
		if atkStr(l, "peer") == "op-b" && strings.HasPrefix(atkStr(l, "message"), "link: advisory from the peer") {
			kinds = append(kinds, atkStr(l, "kind"))
		}
	}
	assert.Equal(t, []string{inbound.AdvisoryMaxConditionsWarning, inbound.AdvisoryMaxConditionsLimit}, kinds)
	// The advisory is not a signal: op-a's export watch and counters do
	// not take it for one, and op-b's table holds 3.
	assert.Equal(t, 3, nb.Table().Len("op-a"))
}

// TestAttackAdvisories: a rogue op-b floods A with advisories — junk,
// oversized, with control characters and a long text — on its own link
// space. A stays up, counts every one, keeps the last readable one with
// its text made printable and bounded, logs a few lines, not hundreds,
// and op-c's signals keep flowing.
func TestAttackAdvisories(t *testing.T) {
	e := newAtkEnv(t, nil)
	rogue := e.startRogueB(t)
	subj := subject.Advisory("op-b")
	mark := e.log.mark()
	junk := [][]byte{nil, []byte("{"), []byte(`{"type":"net.anfed.advisory.v1"}`), []byte(strings.Repeat("x", 8000)),
		[]byte(`{"type":"net.anfed.other.v1","subject":"max-conditions-limit"}`)}
	const rounds = 400
	for i := range rounds {
		require.NoError(t, rogue.Conn.Publish(subj, junk[i%len(junk)]))
	}
	evil := `{"specversion":"1.0","type":"net.anfed.advisory.v1","source":"anfed://op-b/node","id":"x","time":"2026-11-26T12:00:00Z",` +
		`"subject":"max-conditions-limit","data":{"text":"limit\u001b[31m reached\n` + strings.Repeat("é", 1500) + `","limit":5}}`
	require.NoError(t, rogue.Conn.Publish(subj, []byte(evil)))
	require.NoError(t, rogue.Conn.Flush())
	waitFor(t, 10*time.Second, func() error {
		if ps := peerState(t, e.a, "op-b"); ps.Advisories != rounds+1 || ps.Advisory == nil {
			return fmt.Errorf("A counted %d advisories, last %+v", ps.Advisories, ps.Advisory)
		}
		return nil
	})
	a := peerState(t, e.a, "op-b").Advisory
	assert.Equal(t, "max-conditions-limit", a.Kind)
	assert.True(t, strings.HasPrefix(a.Text, "limit [31m reached "), a.Text)
	assert.LessOrEqual(t, len([]rune(a.Text)), 513)
	assert.True(t, e.a.Server().Running())
	e.opCFlows(t)
	lines := 0
	for _, l := range e.log.since(mark) {
		if strings.Contains(atkStr(l, "message"), "advisory") {
			lines++
		}
	}
	assert.LessOrEqual(t, lines, 30, "a flood of advisories does not flood the log")
	t.Logf("%d advisories, %d log lines", rounds+1, lines)
}
