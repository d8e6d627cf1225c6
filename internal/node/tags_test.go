package node_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/signal"
)

// tagged is a congestion of origin on resource res with tags, as its
// producer publishes it.
func tagged(origin, id, res string, st signal.State, tags ...string) *signal.Event {
	ev := condEv(origin, id, res, st)
	ev.Tags = tags
	return ev
}

// tagsAre checks the tags a signal arrived with.
func tagsAre(want ...string) tlCheck {
	return where(fmt.Sprintf("tags are %v", want), func(ev *signal.Event) error {
		if !slices.Equal(ev.Tags, want) {
			return fmt.Errorf("tags %v", ev.Tags)
		}
		return nil
	})
}

// TestTagsTimeline: tags, like BGP communities, over four real nodes. op-b
// relays everything between op-a, op-c and op-d (export.transit from every
// role), and:
//   - op-a sets no-export on what it sends op-b (export.tags.add): op-b's
//     closed loops get it, op-b relays it to no one;
//   - op-d's producer sets no-advertise: the signal never leaves op-d;
//     no-export: op-b gets it and passes it on to no one;
//   - op-b tags what it takes from op-d (import.tags.add from-d), sends
//     op-a only op-d's gold signals (export.tags.match) and marks what it
//     sends op-c (export.tags.add op-b:transit);
//   - op-c refuses op-d's lab signals (import.tags.deny: filtered);
//   - clears pass the tag filters, so no peer misses the end of a
//     condition it was told about.
func TestTagsTimeline(t *testing.T) {
	leaves := []string{"op-a", "op-c", "op-d"}
	relay := relayAll(t, "op-b", leaves...)
	ns := hub(t, "op-b", leaves, map[string]func(*config.Config){
		"op-b": func(c *config.Config) {
			for i := range c.Peers {
				c.Peers[i].Export.Transit = true
				c.Peers[i].Export.TransitFrom = config.Roles
			}
			peerOf(c, "op-d").Import.Tags.Add = []string{"from-d"}
			peerOf(c, "op-a").Export.Tags.Match = []string{"op-d:gold"}
			peerOf(c, "op-c").Export.Tags.Add = []string{"op-b:transit"}
		},
		"op-a": func(c *config.Config) {
			relay("op-a")(c)
			peerOf(c, "op-b").Export.Tags.Add = []string{signal.TagNoExport}
		},
		"op-c": func(c *config.Config) {
			relay("op-c")(c)
			peerOf(c, "op-b").Import.Tags.Deny = []string{"op-d:lab"}
		},
		"op-d": relay("op-d"),
	})
	const s = time.Second
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	tlRun(t, ns,
		at(0, push("op-a", tagged("op-a", "tg-1", "r1", signal.Raised))),
		at(ms(100), push("op-d", tagged("op-d", "tg-2", "r2", signal.Raised))),
		at(ms(200), push("op-d", tagged("op-d", "tg-3", "r3", signal.Raised, signal.TagNoAdvertise))),
		at(ms(300), push("op-d", tagged("op-d", "tg-4", "r4", signal.Raised, signal.TagNoExport))),
		at(ms(400), push("op-d", tagged("op-d", "tg-5", "r5", signal.Raised, "op-d:lab"))),
		at(ms(500), push("op-d", tagged("op-d", "tg-6", "r6", signal.Raised, "op-d:gold"))),
		// Clears without the tags the raises carried.
		at(ms(1500), push("op-d", tagged("op-d", "tg-2c", "r2", signal.Cleared))),
		at(ms(1600), push("op-d", tagged("op-d", "tg-5c", "r5", signal.Cleared, "op-d:lab"))),

		// no-export set by op-a towards op-b: op-b keeps and uses it, and
		// relays it to nobody.
		want("op-a", "tg-1", until(s), tagsAre()),
		want("op-b", "tg-1", until(3*s), pathIs("op-a"), tagsAre(signal.TagNoExport)),
		wantNothing("op-c", "tg-1", until(5*s)),
		wantNothing("op-d", "tg-1", until(5*s)),

		// An untagged signal of op-d: tagged from-d at op-b (its store
		// and consumers), op-b:transit added towards op-c; not gold, so
		// not to op-a.
		want("op-b", "tg-2", between(ms(100), 3*s), tagsAre("from-d")),
		want("op-c", "tg-2", between(ms(100), 3*s), pathIs("op-d", "op-b"), tagsAre("from-d", "op-b:transit"), signedBy(t, "op-d")),
		wantNothing("op-a", "tg-2", until(5*s)),

		// no-advertise from a producer: never leaves op-d.
		want("op-d", "tg-3", between(ms(200), 2*s), tagsAre(signal.TagNoAdvertise)),
		wantNothing("op-b", "tg-3", until(5*s)),
		wantNothing("op-c", "tg-3", until(5*s)),
		wantNothing("op-a", "tg-3", until(5*s)),

		// no-export from a producer: its direct peer only.
		want("op-b", "tg-4", between(ms(300), 3*s), tagsAre(signal.TagNoExport, "from-d")),
		wantNothing("op-c", "tg-4", until(5*s)),
		wantNothing("op-a", "tg-4", until(5*s)),

		// Import match: op-c denies op-d:lab.
		want("op-b", "tg-5", between(ms(400), 3*s)),
		wantRefused("op-c", "tg-5", "filtered", between(ms(400), 3*s)),
		wantNothing("op-c", "tg-5", until(5*s)),

		// Export match: op-a gets op-d's gold signal, through op-b.
		want("op-a", "tg-6", between(ms(500), 3*s), pathIs("op-d", "op-b"), tagsAre("op-d:gold", "from-d"), signedBy(t, "op-d")),
		want("op-c", "tg-6", between(ms(500), 3*s), tagsAre("op-d:gold", "from-d", "op-b:transit")),

		// Clears pass the filters: op-a hears the end of tg-2's condition
		// (it never saw the raise: its table records it as cleared), op-c
		// the end of tg-5's, although it carries a denied tag.
		want("op-a", "tg-2c", between(ms(1500), 4*s)),
		want("op-c", "tg-2c", between(ms(1500), 4*s)),
		want("op-c", "tg-5c", between(ms(1600), 4*s), tagsAre("op-d:lab", "from-d", "op-b:transit")),
	)
}
