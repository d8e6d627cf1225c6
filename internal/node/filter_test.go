package node_test

import (
	"testing"
	"time"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/signal"
)

// severe is a congestion of origin on resource res with a severity.
func severe(origin, id, res string, st signal.State, text string, n int) *signal.Event {
	ev := condEv(origin, id, res, st)
	ev.SeverityText, ev.SeverityNumber = text, n
	return ev
}

// TestFilterTimeline: CESQL filters over three real nodes. op-b exports
// to op-c only ERROR and above on vpn-* services (export.filter), and only
// congestion (export.classes), without transit; op-a refuses INFO signals
// from op-b (import.filter, reason filtered). A filter only narrows: it
// cannot export a class the policy does not list, nor relay without
// transit. Clears pass both filters.
func TestFilterTimeline(t *testing.T) {
	const exportFilter = "severitynumber >= 17 AND subject LIKE 'vpn-%'"
	ns := hub(t, "op-b", []string{"op-a", "op-c"}, map[string]func(*config.Config){
		"op-b": func(c *config.Config) {
			x := &peerOf(c, "op-c").Export
			x.Classes, x.Filter = []string{"congestion"}, exportFilter
			// A filter that is always true does not make op-b relay.
			peerOf(c, "op-a").Export.Filter = "TRUE"
		},
		"op-a": func(c *config.Config) { peerOf(c, "op-b").Import.Filter = "severitytext <> 'INFO'" },
	})
	nb := ns[0]
	const s = time.Second
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	fault := faultEvent("op-b", "fl-3")
	tlRun(t, ns,
		at(0, push("op-b", severe("op-b", "fl-1", "r1", signal.Raised, "ERROR", 17))),
		at(ms(100), push("op-b", severe("op-b", "fl-2", "r2", signal.Raised, "WARN", 13))),
		at(ms(200), push("op-b", fault)),
		at(ms(300), push("op-a", severe("op-a", "fl-4", "r4", signal.Raised, "FATAL", 21))),
		at(ms(400), push("op-b", severe("op-b", "fl-5", "r5", signal.Raised, "INFO", 9))),
		at(ms(1500), push("op-b", severe("op-b", "fl-2c", "r2", signal.Cleared, "INFO", 9))),

		want("op-c", "fl-1", until(3*s)),
		want("op-a", "fl-1", until(3*s)),
		// Below ERROR: not to op-c; op-a has no export filter.
		wantNothing("op-c", "fl-2", until(4*s)),
		want("op-a", "fl-2", between(ms(100), 3*s)),
		// A fault is not in op-c's classes, whatever the filter says.
		wantNothing("op-c", "fl-3", until(4*s)),
		want("op-a", "fl-3", between(ms(200), 3*s)),
		// op-a's signal is not relayed: no transit, whatever the filter.
		want("op-b", "fl-4", between(ms(300), 3*s)),
		wantNothing("op-c", "fl-4", until(4*s)),
		// op-a's import filter refuses INFO.
		wantRefused("op-a", "fl-5", "filtered", between(ms(400), 3*s)),
		wantNothing("op-a", "fl-5", until(4*s)),
		// The INFO clear of fl-2's condition passes both filters.
		want("op-c", "fl-2c", between(ms(1500), 4*s)),
		want("op-a", "fl-2c", between(ms(1500), 4*s)),

		at(3*s,
			decided(nb, "fl-2", map[string]string{
				"op-c": `!export.filter "severitynumber >= 17 AND subject LIKE 'vpn-%'" is false`,
				"op-a": "export.classes and export.services allow it",
			}),
			decided(nb, "fl-3", map[string]string{"op-c": "!export.classes does not list fault"}),
			decided(nb, "fl-4", map[string]string{"op-c": "!export.transit is false"}),
		),
	)
}
