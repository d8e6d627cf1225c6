package node_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
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
	nb := ns[0]
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

		// The rules that decided, as op-b's export policy names them.
		at(4*s,
			decided(nb, "tg-1", map[string]string{
				"op-c": "!tag no-export: the operator that sent it to us asked that it go no further",
				"op-d": "!tag no-export",
			}),
			decided(nb, "tg-2", map[string]string{
				"op-c": "export.transit relays it",
				"op-a": "!export.tags.match [op-d:gold]: the signal carries none of them (its tags: [from-d])",
			}),
			decided(nb, "tg-4", map[string]string{"op-c": "!tag no-export"}),
		),
		// A producer's bad tags are refused at intake, with the reason.
		at(ms(100), do("bad tags refused at intake", func(t *testing.T, tl *timeline) {
			for _, tags := range [][]string{{"Gold"}, {"a b"}, {"-x"}, {"x", "x"}, manyTags(33)} {
				a := publish(t, tl.conns["op-d"], tagged("op-d", "tg-bad", "rb", signal.Raised, tags...))
				assert.Equal(t, string(reject.BadAttribute), a.Reason, "%v: %+v", tags, a)
				assert.Contains(t, a.Error, signal.AttrTags, "%v", tags)
			}
		})),
	)
}

func manyTags(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("t%d", i)
	}
	return out
}

// TestBadTagsFromPeerRefused: a peer speaking raw NATS on the real link
// sends signals whose tags are malformed: each is refused as
// bad-attribute, with the answer saying why, and a good one right behind
// them is accepted with its tags.
func TestBadTagsFromPeerRefused(t *testing.T) {
	a := baseConfig(t, "op-a")
	a.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	a.Peers = []config.Peer{{
		ID:         "op-b",
		Accept:     &config.Accept{User: "op-b", Password: "secret-b-123"},
		Import:     config.ImportPolicy{Classes: []string{"*"}, Tags: config.ImportTags{Deny: []string{"op-b:test"}}},
		SigningKey: pub(t, "op-b"),
	}}
	na := startNode(t, a)
	rogue := natstest.StartRogueLeaf(t, na.LeafURL(), "op-b", "secret-b-123", nats.CustomInboxPrefix("an.ack.op-b"))
	send := func(ev *signal.Event) signal.Answer {
		k := subject.Key{Origin: ev.Origin, Class: "congestion", Service: ev.Service(), Resource: ev.Resource()}
		var ans signal.Answer
		waitFor(t, 5*time.Second, func() error {
			m, err := rogue.Conn.Request(mustLink("op-b", k), ev.Encode(), time.Second)
			if err != nil {
				return err
			}
			ans, err = signal.ParseAnswer(m.Data)
			return err
		})
		return ans
	}
	for i, tags := range [][]string{{"Gold"}, {"x y"}, {"x", "x"}, manyTags(40), {strings.Repeat("a", 65)}} {
		ev := tagged("op-b", fmt.Sprintf("bt-%d", i), "r", signal.Raised, tags...)
		signAs(t, "op-b", ev)
		ev.Path = []string{"op-b"}
		ans := send(ev)
		assert.Equal(t, string(reject.BadAttribute), ans.Reason, "%v: %+v", tags, ans)
		assert.Contains(t, ans.Error, signal.AttrTags)
	}
	// Tags are not signed: the peer may set them after signing.
	ev := tagged("op-b", "bt-deny", "r", signal.Raised)
	signAs(t, "op-b", ev)
	ev.Path, ev.Tags = []string{"op-b"}, []string{"op-b:test"}
	ans := send(ev)
	assert.Equal(t, string(reject.Filtered), ans.Reason, "%+v", ans)
	assert.Contains(t, ans.Error, "import.tags.deny for op-b lists op-b:test")
	ev = tagged("op-b", "bt-ok", "r", signal.Raised)
	signAs(t, "op-b", ev)
	ev.Path, ev.Tags = []string{"op-b"}, []string{"op-b:gold"}
	require.True(t, send(ev).OK())
}
