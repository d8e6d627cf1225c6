package node_test

// Timelines of the per-peer limits: maximum active conditions (import),
// export pacing, and redaction.

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

// condEv is a congestion of origin on resource res, in state st.
func condEv(origin, id, res string, st signal.State) *signal.Event {
	ev := congestion(origin, id)
	ev.Subject = "vpn-acme/" + res
	ev.State = st
	return ev
}

// TestMaxConditionsTimeline: op-b holds at most 3 active conditions from
// op-a. The fourth new condition is refused (dead-lettered as
// too-many-conditions) while an update and a clear of held ones pass; once
// a clear made room, a new condition is accepted again, and the next one
// over the limit is refused again. op-a itself keeps everything.
func TestMaxConditionsTimeline(t *testing.T) {
	logB := &atkLog{}
	na, nb := pairWith(t, []string{"*"}, []string{"*"}, func(c *config.Config) {
		if c.Operator.ID == "op-b" {
			c.Peers[0].Import.MaxConditions = &config.MaxConditions{Limit: 3, WarnAt: "2"}
		}
	}, node.WithLogger(zerolog.New(logB).Level(zerolog.WarnLevel)))
	const s = time.Second
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	tl := newTimeline(t, na, nb)
	fails := tl.run(t,
		at(0, push("op-a", condEv("op-a", "mc-1", "r1", signal.Raised))),
		at(ms(100), push("op-a", condEv("op-a", "mc-2", "r2", signal.Raised))),
		at(ms(200), push("op-a", condEv("op-a", "mc-3", "r3", signal.Raised))),
		at(ms(600), push("op-a", condEv("op-a", "mc-4", "r4", signal.Raised))),  // over the limit
		at(ms(800), push("op-a", condEv("op-a", "mc-5", "r1", signal.Updated))), // held: passes
		at(ms(900), push("op-a", condEv("op-a", "mc-6", "r2", signal.Raised))),  // held, raised again: passes
		at(ms(1000), push("op-a", condEv("op-a", "mc-7", "r3", signal.Cleared))),
		at(ms(1500), push("op-a", condEv("op-a", "mc-8", "r5", signal.Raised))), // room again
		at(ms(1700), push("op-a", condEv("op-a", "mc-9", "r6", signal.Raised))), // over again
		want("op-b", "mc-1", until(s)),
		want("op-b", "mc-2", until(s)),
		want("op-b", "mc-3", until(s)),
		wantNothing("op-b", "mc-4", until(3*s)),
		wantRefused("op-b", "mc-4", string(reject.TooManyConditions), between(ms(600), 2*s)),
		want("op-a", "mc-4", between(ms(600), s)),
		want("op-b", "mc-5", between(ms(800), 2*s)),
		want("op-b", "mc-6", between(ms(900), 2*s)),
		want("op-b", "mc-7", between(ms(1000), 2*s)),
		want("op-b", "mc-8", between(ms(1500), 3*s)),
		wantNothing("op-b", "mc-9", until(3*s)),
		wantRefused("op-b", "mc-9", string(reject.TooManyConditions), between(ms(1700), 3*s)),
	)
	require.Empty(t, fails, "%s", tl.dump())
	// The refusal says the limit and how to fix it; the sender got the
	// same text in its answer.
	tl.mu.Lock()
	detail := tl.dlq["op-b"]["mc-4"][0].detail
	tl.mu.Unlock()
	t.Logf("refusal: %s", detail)
	require.Contains(t, detail, "holds 3 active conditions from op-a")
	require.Contains(t, detail, "peers[op-a].import.max_conditions.limit")
	// warn_at: logged once when the count reached it, not again while it
	// stays at or above it.
	warned := 0
	for _, l := range logB.since(0) {
		if atkStr(l, "reason") == "max-conditions-warning" {
			warned++
			require.Equal(t, 2.0, l["active"])
		}
	}
	require.Equal(t, 1, warned)
	waitFor(t, 5*time.Second, func() error {
		if n := nb.Table().Len("op-a"); n != 3 {
			return fmt.Errorf("op-b holds %d conditions from op-a, want 3", n)
		}
		return nil
	})
	got := map[string]bool{}
	for _, c := range nb.Conditions(conditions.Filter{Peer: "op-a"}) {
		got[c.Subject] = true
	}
	require.Equal(t, map[string]bool{"vpn-acme/r1": true, "vpn-acme/r2": true, "vpn-acme/r5": true}, got)
}

// TestMaxConditionsBurst: 20 new conditions pushed back to back, faster
// than the condition table is fed from the store, still leave exactly the
// limit held; the others are refused.
func TestMaxConditionsBurst(t *testing.T) {
	na, nb := pairWith(t, []string{"*"}, []string{"*"}, func(c *config.Config) {
		if c.Operator.ID == "op-b" {
			c.Peers[0].Import.MaxConditions = &config.MaxConditions{Limit: 5}
		}
	})
	var evs []*signal.Event
	for i := range 20 {
		evs = append(evs, condEv("op-a", fmt.Sprintf("mb-%02d", i), fmt.Sprintf("r%02d", i), signal.Raised))
	}
	items := []tlItem{at(0, pushAll("op-a", evs...))}
	for i := range 20 {
		id := fmt.Sprintf("mb-%02d", i)
		if i < 5 {
			items = append(items, want("op-b", id, until(3*time.Second)))
		} else {
			items = append(items, wantRefused("op-b", id, string(reject.TooManyConditions), until(3*time.Second)),
				wantNothing("op-b", id, until(3*time.Second)))
		}
	}
	tlRun(t, []*node.Node{na, nb}, items...)
	require.Equal(t, 5, nb.Table().Len("op-a"))
}

// TestExportPaceTimeline: op-a paces what it sends op-b to 50 signals/s
// (burst 10) and does not pace op-c. 200 signals pushed at once reach
// op-b no sooner than the pace allows (190 after the burst: ≥ 3.8 s; the
// test wants ≥ 3.5 s), all of them, once each and in order: pacing
// delays, it never drops. op-c gets them all too.
func TestExportPaceTimeline(t *testing.T) {
	na, nb, nc := star(t, map[string]func(*config.Config){
		"op-a": func(c *config.Config) {
			peerOf(c, "op-b").Export.MaxRate = 50
			peerOf(c, "op-b").Export.MaxBurst = 10
		},
	})
	const n = 200
	var evs []*signal.Event
	var ids []string
	for i := range n {
		ev := condEv("op-a", fmt.Sprintf("xp-%03d", i), fmt.Sprintf("r%03d", i), signal.Raised)
		ev.Sequence = fmt.Sprintf("%020d", i+1)
		evs, ids = append(evs, ev), append(ids, ev.ID)
	}
	items := []tlItem{at(0, pushAll("op-a", evs...))}
	for _, id := range ids {
		items = append(items, want("op-b", id, until(60*time.Second)), want("op-c", id, until(60*time.Second)))
	}
	items = append(items, want("op-b", ids[n-1], between(3500*time.Millisecond, 60*time.Second)))
	tl := newTimeline(t, na, nb, nc)
	fails := tl.run(t, items...)
	require.Empty(t, fails, "%s", tl.dump())
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var prev time.Duration
	for _, id := range ids {
		as := tl.got["op-b"][id]
		require.Len(t, as, 1, "op-b got %s %d times", id, len(as))
		require.GreaterOrEqual(t, as[0].at, prev, "op-b got %s out of order", id)
		prev = as[0].at
		require.Len(t, tl.got["op-c"][id], 1, "op-c got %s %d times", id, len(tl.got["op-c"][id]))
	}
	t.Logf("op-b (paced 50/s): first at %s, last at %s; op-c (not paced): last at %s",
		tl.got["op-b"][ids[0]][0].at.Round(time.Millisecond), prev.Round(time.Millisecond),
		tl.got["op-c"][ids[n-1]][0].at.Round(time.Millisecond))
}

// TestRedactTimeline: op-a redacts /data/link/peer from what it sends op-b
// and not from what it sends op-c. op-b receives the signal without the
// field, with a signature of op-a (signed again after redaction) that
// verifies; op-c and op-a's own consumers get the field and op-a's
// original signature. A signal without the field crosses unchanged.
func TestRedactTimeline(t *testing.T) {
	na, nb, nc := star(t, map[string]func(*config.Config){
		"op-a": func(c *config.Config) {
			peerOf(c, "op-b").Export.Redact = []string{"/data/link/peer", "/data/trafficClasses/1"}
		},
	})
	v, err := origin.NewVerifier(map[string]string{"op-a": pub(t, "op-a")})
	require.NoError(t, err)
	verified := where("op-a's signature verifies", func(ev *signal.Event) error { return v.Verify(ev) })
	field := func(has bool) tlCheck {
		return where(fmt.Sprintf("data has link.peer: %v", has), func(ev *signal.Event) error {
			var d struct {
				Link struct {
					ID   string  `json:"id"`
					Peer *string `json:"peer"`
				} `json:"link"`
				Util    float64  `json:"utilisationPercent"`
				Classes []string `json:"trafficClasses"`
			}
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				return err
			}
			if (d.Link.Peer != nil) != has {
				return fmt.Errorf("data %s", ev.Data)
			}
			wantClasses := []string{"AF41", "BE"}
			if !has {
				wantClasses = []string{"AF41"}
			}
			if d.Link.ID != "ic-paris-1" || d.Util != 97.5 || fmt.Sprint(d.Classes) != fmt.Sprint(wantClasses) {
				return fmt.Errorf("other data changed: %s", ev.Data)
			}
			return nil
		})
	}
	plain := condEv("op-a", "rd-2", "r2", signal.Raised)
	plain.Data = []byte(`{"link":{"id":"ic-paris-1","kind":"interconnect"},"direction":"egress","utilisationPercent":97.5,"packetLossPercent":0.8,"queueDelayMs":14.2,"trafficClasses":["AF41"]}`)
	tlRun(t, []*node.Node{na, nb, nc},
		at(0, push("op-a", condEv("op-a", "rd-1", "r1", signal.Raised))),
		at(100*time.Millisecond, push("op-a", plain)),
		want("op-b", "rd-1", until(3*time.Second), verified, field(false)),
		want("op-c", "rd-1", until(3*time.Second), verified, field(true)),
		want("op-a", "rd-1", until(time.Second), verified, field(true)),
		want("op-b", "rd-2", until(3*time.Second), verified, where("unchanged", func(ev *signal.Event) error {
			if string(ev.Data) != string(plain.Data) {
				return fmt.Errorf("data %s", ev.Data)
			}
			return nil
		})),
	)
}

// TestMaxConditionsIdleTimeline: with import.max_conditions.idle, the
// refusal at the limit also idles the link for the hold time: what op-a
// sends meanwhile (a clear, then a new condition that the clear makes room
// for) waits at op-a and crosses once the hold time is over, in order,
// once each.
func TestMaxConditionsIdleTimeline(t *testing.T) {
	const hold = 2 * time.Second
	na, nb := pairWith(t, []string{"*"}, []string{"*"}, func(c *config.Config) {
		if c.Operator.ID == "op-b" {
			c.Peers[0].Import.MaxConditions = &config.MaxConditions{Limit: 2, Idle: config.Duration(hold)}
		}
	})
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	tl := newTimeline(t, na, nb)
	fails := tl.run(t,
		at(0, push("op-a", condEv("op-a", "mi-1", "r1", signal.Raised))),
		at(ms(100), push("op-a", condEv("op-a", "mi-2", "r2", signal.Raised))),
		at(ms(300), push("op-a", condEv("op-a", "mi-3", "r3", signal.Raised))), // over: refused, the link idles
		at(ms(600), push("op-a", condEv("op-a", "mi-4", "r1", signal.Cleared))),
		at(ms(700), push("op-a", condEv("op-a", "mi-5", "r4", signal.Raised))),
		want("op-b", "mi-1", until(time.Second)),
		want("op-b", "mi-2", until(time.Second)),
		wantRefused("op-b", "mi-3", string(reject.TooManyConditions), between(ms(300), 2*time.Second)),
		wantNothing("op-b", "mi-4", until(ms(300)+hold)),
		want("op-b", "mi-4", between(ms(300)+hold, 15*time.Second)),
		want("op-b", "mi-5", between(ms(300)+hold, 15*time.Second)),
		want("op-a", "mi-5", between(ms(700), 2*time.Second)),
	)
	require.Empty(t, fails, "%s", tl.dump())
	tl.mu.Lock()
	c4, c5 := tl.got["op-b"]["mi-4"], tl.got["op-b"]["mi-5"]
	detail := tl.dlq["op-b"]["mi-3"][0].detail
	tl.mu.Unlock()
	require.Len(t, c4, 1)
	require.Len(t, c5, 1)
	require.LessOrEqual(t, c4[0].at, c5[0].at, "order kept")
	require.Contains(t, detail, "the link idles for 2s")
	t.Logf("after the hold time: the clear at %s, the new condition at %s", c4[0].at.Round(time.Millisecond), c5[0].at.Round(time.Millisecond))
	waitFor(t, 5*time.Second, func() error {
		got := map[string]bool{}
		for _, c := range nb.Conditions(conditions.Filter{Peer: "op-a"}) {
			got[c.Subject] = true
		}
		if fmt.Sprint(got) != fmt.Sprint(map[string]bool{"vpn-acme/r2": true, "vpn-acme/r4": true}) {
			return fmt.Errorf("op-b holds %v", got)
		}
		return nil
	})
}

// TestMinSeverityTimeline: op-a exports to op-b only signals of severity
// WARN (13) and above; op-c gets everything. A minor raise stays home, a
// major one crosses, and its clear (severity INFO) crosses too, so op-b
// never keeps a condition whose end it was not told.
func TestMinSeverityTimeline(t *testing.T) {
	na, nb, nc := star(t, map[string]func(*config.Config){
		"op-a": func(c *config.Config) { peerOf(c, "op-b").Export.MinSeverity = 13 },
	})
	sev := func(ev *signal.Event, text string, n int) *signal.Event {
		ev.SeverityText, ev.SeverityNumber = text, n
		return ev
	}
	tlRun(t, []*node.Node{na, nb, nc},
		at(0, push("op-a", sev(condEv("op-a", "ms-minor", "m1", signal.Raised), "INFO", 9))),
		at(50*time.Millisecond, push("op-a", sev(condEv("op-a", "ms-major", "m2", signal.Raised), "ERROR", 17))),
		at(500*time.Millisecond, push("op-a", sev(condEv("op-a", "ms-clear", "m2", signal.Cleared), "INFO", 9))),
		wantNothing("op-b", "ms-minor", until(3*time.Second)),
		want("op-b", "ms-major", until(3*time.Second)),
		want("op-b", "ms-clear", between(500*time.Millisecond, 3*time.Second)),
		want("op-c", "ms-minor", until(3*time.Second)),
		want("op-c", "ms-major", until(3*time.Second)),
		want("op-a", "ms-minor", until(time.Second)),
	)
}
