package node_test

// `anfed policy explain` must say what nodes do. TestExplainAgreesWithNodes
// runs the three-operator example of docs/policy.md (examples/policy/) as
// three real nodes on real leaf links, publishes a few hundred signals of
// every origin, class, service, severity and state the policies tell apart,
// and checks that the operators that really hold each signal are exactly
// those that explain's verdicts reach — the sender's export verdict, then
// the receiver's import verdict, hop after hop — and that a copy explain
// says is redacted arrives without the field.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/explain"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/schemacheck"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
	"github.com/anfed/anfed/schemas"
)

const examplePolicyDir = "../../examples/policy"

// exampleFederation loads examples/policy/op-{a,b,c}.yaml as they are,
// apart from where each node listens and stores (free ports, temporary
// directories).
func exampleFederation(t *testing.T) (ids []string, cfgs map[string]*config.Config) {
	t.Helper()
	ids = []string{"op-a", "op-b", "op-c"}
	cfgs = map[string]*config.Config{}
	for _, id := range ids {
		c, err := config.Load(filepath.Join(examplePolicyDir, id+".yaml"))
		require.NoError(t, err)
		c.Storage.Dir = t.TempDir()
		c.NATS.Client.Listen = ""
		c.HTTP.Listen = ""
		if c.NATS.LeafNodes != nil {
			c.NATS.LeafNodes.Listen = "127.0.0.1:0"
		}
		cfgs[id] = c
	}
	return ids, cfgs
}

// startExample starts the nodes in order, each dialling those before it.
func startExample(t *testing.T, ids []string, cfgs map[string]*config.Config, cat *schemacheck.Catalog) map[string]*node.Node {
	t.Helper()
	nodes := map[string]*node.Node{}
	for _, id := range ids {
		c := cfgs[id]
		for i := range c.Peers {
			if d := c.Peers[i].Dial; d != nil {
				d.URL = nodes[c.Peers[i].ID].LeafURL()
			}
		}
		kp, err := origin.LoadSigningKey(c.Operator.SigningKeyFile)
		require.NoError(t, err)
		nodes[id] = startNode(t, c, node.WithSigningKey(kp), node.WithCatalog(cat))
	}
	waitFor(t, 20*time.Second, func() error {
		for _, id := range ids {
			for _, p := range cfgs[id].Peers {
				if !nodes[id].LinkUp(p.ID) {
					return fmt.Errorf("link %s–%s not up", id, p.ID)
				}
			}
		}
		return nil
	})
	return nodes
}

// tagSets are the producers' tags the policies tell apart: none, the
// well-known ones, and the tag op-b's import from op-a denies.
var tagSets = [][]string{nil, {"no-export"}, nil, {"op-a:lab"}, {"no-advertise"}}

// exampleSignals are the example signal files and, for each origin, class
// the policies name, service, severity and state, one signal. Each has a
// condition key of its own, so that no condition flaps (flap dampening)
// and no peer nears its import.max_conditions: both depend on the
// conditions' history, which explain names but cannot know.
func exampleSignals(t *testing.T, ids []string) []*signal.Event {
	t.Helper()
	var evs []*signal.Event
	files, err := filepath.Glob(filepath.Join(examplePolicyDir, "signals", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		ev, err := signal.DecodeStructured(b)
		require.NoError(t, err)
		evs = append(evs, ev)
	}
	data := loadExampleData(t)
	// The example's congestion data names the interconnect's partner,
	// which op-a redacts for op-b.
	data["congestion"] = json.RawMessage(`{"link":{"id":"ic-paris-1","kind":"interconnect","peer":"op-d"},"direction":"egress","utilisationPercent":97.5,"packetLossPercent":0.8,"queueDelayMs":14.2,"trafficClasses":["AF41","BE"]}`)
	now := time.Now().UTC().Truncate(time.Second)
	n := 0
	for _, o := range ids {
		for _, class := range []string{"congestion", "fault", "maintenance", "mitigation", "sla-risk"} {
			for _, svc := range []string{"vpn-acme", "core"} {
				for _, sev := range []int{0, 9, 13, 17} {
					for _, st := range []signal.State{signal.Raised, signal.Cleared} {
						n++
						ev := &signal.Event{
							ID: fmt.Sprintf("agree-%04d", n), Source: "anfed://" + o + "/explain-test",
							Type: schemas.Type(class), Subject: fmt.Sprintf("%s/%s-%d", svc, []string{"r", "r", "pe"}[n%3], n), Time: now,
							DataContentType: signal.ContentType, Origin: o, State: st,
							SeverityNumber: sev, Data: data[class],
							Tags: tagSets[n%len(tagSets)],
						}
						evs = append(evs, ev)
					}
				}
			}
		}
	}
	return evs
}

// predict walks explain's verdicts from the origin: a node that holds the
// signal sends it to each peer its export verdict names, and that peer
// holds it when its own import verdict accepts it. It returns the holders
// and, for each peer that gets a copy straight from the origin, the
// fields explain says are redacted from it.
func predict(t *testing.T, ex map[string]*explain.Explainer, ev *signal.Event, class string, rules map[string]int) (map[string][]string, map[string][]string) {
	t.Helper()
	held := map[string][]string{} // holder -> the tags it holds the signal with
	redacted := map[string][]string{}
	type visit struct {
		node, from string
		ev         *signal.Event
	}
	queue := []visit{{node: ev.Origin, ev: ev}}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		if _, ok := held[v.node]; ok {
			continue
		}
		r, err := ex[v.node].Explain(v.ev, class, v.from)
		require.NoError(t, err)
		if r.Import != nil && !r.Import.Accept {
			rules["import refused: "+r.Import.Reason]++
			continue
		}
		held[v.node] = r.Signal.Tags
		at := *v.ev
		at.Tags = r.Signal.Tags
		at.Path = r.Signal.Path
		for _, p := range r.Peers {
			rules[ruleKind(p.Rule)]++
			if !p.Receive {
				continue
			}
			if v.node == ev.Origin {
				redacted[p.Peer] = p.Redacted
			}
			queue = append(queue, visit{node: p.Peer, from: v.node, ev: &at})
		}
	}
	return held, redacted
}

// ruleKind names a rule without the signal's particulars, for the tally.
func ruleKind(rule string) string {
	k, _, _ := strings.Cut(rule, " is ")
	k, _, _ = strings.Cut(k, " does not ")
	k, _, _ = strings.Cut(k, " matches ")
	k, _, _ = strings.Cut(k, ":")
	k, _, _ = strings.Cut(k, " (")
	k, _, _ = strings.Cut(k, ";")
	return k
}

func TestExplainAgreesWithNodes(t *testing.T) {
	cat, err := schemacheck.Load()
	require.NoError(t, err)
	peer := func(c *config.Config, id string) *config.Peer {
		p, ok := c.Peer(id)
		require.True(t, ok, id)
		return p
	}
	variants := []struct {
		name string
		edit func(cfgs map[string]*config.Config)
	}{
		{"as in docs/policy.md", func(map[string]*config.Config) {}},
		{"no transit accepted", func(cfgs map[string]*config.Config) {
			// op-a's leaf user for op-b may then send only op-b's own
			// signals (NATS), op-c's import policy refuses relayed ones.
			peer(cfgs["op-a"], "op-b").Import.Transit = false
			peer(cfgs["op-c"], "op-b").Import.Transit = false
		}},
		{"op-c a peer of op-b, not a customer", func(cfgs map[string]*config.Config) {
			// Valley-free (RFC 9234): op-b relays what it learned from
			// its peer op-a to customers only.
			peer(cfgs["op-b"], "op-c").Role = config.RolePeer
		}},
		{"wide export, narrow import", func(cfgs map[string]*config.Config) {
			x := peer(cfgs["op-b"], "op-c")
			x.Export.Classes, x.Export.Services, x.Export.Transit, x.Export.MinSeverity = []string{"*"}, []string{"*"}, false, 0
			peer(cfgs["op-c"], "op-b").Import.Classes = []string{"congestion", "sla-risk"}
			peer(cfgs["op-a"], "op-b").Export.Services = []string{"core"}
		}},
		{"may_originate", func(cfgs map[string]*config.Config) {
			// Origin authorisation: op-a lets its peer op-b originate
			// only congestion (not the mitigations it sends), and op-c
			// lets the distant op-a (relayed by op-b) originate only
			// faults.
			peer(cfgs["op-a"], "op-b").MayOriginate = &config.MayOriginate{Classes: []string{"congestion"}, Services: []string{"*"}}
			for i := range cfgs["op-c"].Origins {
				if o := &cfgs["op-c"].Origins[i]; o.ID == "op-a" {
					o.MayOriginate = &config.MayOriginate{Classes: []string{"fault"}, Services: []string{"vpn-*"}}
				}
			}
		}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			ids, cfgs := exampleFederation(t)
			v.edit(cfgs)
			rules := agree(t, cat, ids, cfgs)
			if v.name == "may_originate" {
				assert.Positive(t, rules["import refused: "+string(reject.NotAuthorized)], "explain refuses some signals as not-authorized: %v", rules)
			}
		})
	}
}

// agree predicts with explain where each example signal goes, runs the
// federation, and checks the nodes did just that. It returns explain's
// verdicts by kind.
func agree(t *testing.T, cat *schemacheck.Catalog, ids []string, cfgs map[string]*config.Config) map[string]int {
	var err error
	ex := map[string]*explain.Explainer{}
	for _, id := range ids {
		var opts []explain.Option
		for _, p := range cfgs[id].Peers {
			opts = append(opts, explain.WithPeerConfig(cfgs[p.ID]))
		}
		ex[id], err = explain.New(cfgs[id], cat, opts...)
		require.NoError(t, err)
	}
	evs := exampleSignals(t, ids)
	type want struct {
		holders  map[string][]string
		redacted map[string][]string
	}
	wants := map[string]want{}
	rules := map[string]int{}
	for _, ev := range evs {
		class, _, ok := schemas.ClassOf(ev.Type)
		require.True(t, ok)
		h, r := predict(t, ex, ev, class, rules)
		wants[ev.ID] = want{h, r}
	}
	t.Logf("explain's verdicts over %d signals: %v", len(evs), rules)

	nodes := startExample(t, ids, cfgs, cat)
	subs := map[string]*propSub{}
	for _, id := range ids {
		nc, err := nodes[id].Connect()
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		s := &propSub{nc: nc, got: &collector{}}
		s.sub, err = nc.Subscribe(subject.Signals, s.got.add)
		require.NoError(t, err)
		require.NoError(t, s.sub.SetPendingLimits(-1, -1))
		require.NoError(t, nc.Flush())
		subs[id] = s
	}
	for _, ev := range evs {
		require.NoError(t, propPublish(subs[ev.Origin].nc, ev), ev.ID)
	}
	settleExample(t, ids, cfgs, nodes)
	for _, id := range ids {
		waitFor(t, 10*time.Second, subs[id].drained)
	}

	actual := map[string]map[string]*signal.Event{} // id -> node -> copy
	for _, id := range ids {
		subs[id].got.mu.Lock()
		msgs := slices.Clone(subs[id].got.msgs)
		subs[id].got.mu.Unlock()
		for _, m := range msgs {
			ev, err := signal.DecodeStructured(m.Data)
			require.NoError(t, err)
			if actual[ev.ID] == nil {
				actual[ev.ID] = map[string]*signal.Event{}
			}
			assert.Nil(t, actual[ev.ID][id], "%s saw %s twice", id, ev.ID)
			actual[ev.ID][id] = ev
		}
	}
	mismatch, crossings, redactions, tagged := 0, 0, 0, 0
	for _, ev := range evs {
		w := wants[ev.ID]
		got := map[string]bool{}
		for id := range actual[ev.ID] {
			got[id] = true
		}
		wantHolders := map[string]bool{}
		for id := range w.holders {
			wantHolders[id] = true
		}
		crossings += len(got) - 1
		if !maps.Equal(got, wantHolders) {
			mismatch++
			t.Errorf("%s (origin %s, %s, %s, severity %d, %s): explain says holders %v, the nodes hold it at %v",
				ev.ID, ev.Origin, ev.Type, ev.Subject, ev.SeverityNumber, ev.State, slices.Sorted(maps.Keys(w.holders)), slices.Sorted(maps.Keys(got)))
			continue
		}
		for id, c := range actual[ev.ID] {
			if !assert.Equal(t, nonEmpty(w.holders[id]), nonEmpty(c.Tags), "%s at %s: the tags explain says it is held with", ev.ID, id) {
				mismatch++
			}
			if len(c.Tags) > 0 && id != ev.Origin {
				tagged++
			}
		}
		for peer, ptrs := range w.redacted {
			c := actual[ev.ID][peer]
			if c == nil || len(c.Path) != 1 {
				continue // came another way
			}
			hasPeer := strings.Contains(string(c.Data), `"peer"`)
			if slices.Contains(ptrs, "/data/link/peer") {
				redactions++
				assert.False(t, hasPeer, "%s at %s: explain says /data/link/peer is redacted: %s", ev.ID, peer, c.Data)
			} else if strings.Contains(string(ev.Data), `"peer"`) {
				assert.True(t, hasPeer, "%s at %s: explain says nothing is redacted: %s", ev.ID, peer, c.Data)
			}
		}
	}
	t.Logf("%d signals, %d copies crossed a boundary, %d redacted copies and %d tagged copies checked, %d disagreements", len(evs), crossings, redactions, tagged, mismatch)
	return rules
}

// settleExample waits until every node has decided every stored signal
// for every peer: all backlogs zero in five consecutive polls (a relay
// chain here is two hops).
func settleExample(t *testing.T, ids []string, cfgs map[string]*config.Config, nodes map[string]*node.Node) {
	t.Helper()
	zeros := 0
	waitFor(t, 90*time.Second, func() error {
		for _, id := range ids {
			for _, p := range cfgs[id].Peers {
				k, err := nodes[id].Backlog(context.Background(), p.ID)
				if err != nil {
					return err
				}
				if k > 0 {
					zeros = 0
					return fmt.Errorf("backlog %s->%s: %d", id, p.ID, k)
				}
			}
		}
		if zeros++; zeros < 5 {
			return fmt.Errorf("settling")
		}
		return nil
	})
}

func nonEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// TestExplainAgreesWithReference draws random federations as
// TestPropertyPropagation does (four operators, a triangle and a tail,
// random classes, services and transit per directed link) and checks that
// the operators explain's verdicts reach are exactly those of the
// property test's reference evaluator. That test shows the reference
// equals what real nodes do, over the same draws; this one covers many
// more federations than it can start.
func TestExplainAgreesWithReference(t *testing.T) {
	cat, err := schemacheck.Load()
	require.NoError(t, err)
	data := loadExampleData(t)
	seeds, n := 40, 200
	if testing.Short() {
		seeds = 10
	}
	addr := map[string]string{}
	for i, id := range propIDs {
		addr[id] = fmt.Sprintf("127.0.0.1:%d", 17420+i) // never listened on: explain starts nothing
	}
	pairs, hist := 0, map[int]int{}
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		rng := rand.New(rand.NewPCG(seed, 0x616e666564))
		f := newPropFederation(seed, rng)
		cfgs := map[string]*config.Config{}
		for _, id := range propIDs {
			cfgs[id] = f.config(t, id, addr)
		}
		ex := map[string]*explain.Explainer{}
		for _, id := range propIDs {
			var opts []explain.Option
			for _, p := range cfgs[id].Peers {
				opts = append(opts, explain.WithPeerConfig(cfgs[p.ID]))
			}
			ex[id], err = explain.New(cfgs[id], cat, opts...)
			require.NoError(t, err)
		}
		rules := map[string]int{}
		for i := range n {
			origin := propIDs[rng.IntN(len(propIDs))]
			class := schemas.Classes[rng.IntN(len(schemas.Classes))]
			svc := propServices[rng.IntN(len(propServices))]
			ev := &signal.Event{ID: fmt.Sprintf("ref-%d-%d", seed, i), Source: "anfed://" + origin + "/property",
				Type: schemas.Type(class), Subject: svc + "/r-1", Time: time.Now().UTC(), DataContentType: signal.ContentType,
				Origin: origin, State: signal.Raised, Data: data[class]}
			got, _ := predict(t, ex, ev, class, rules)
			want := f.reference(origin, class, svc)
			gotSet := map[string]bool{}
			for id := range got {
				gotSet[id] = true
			}
			if !maps.Equal(gotSet, want) {
				t.Errorf("seed %d, %s %s %s: explain reaches %v, the reference %v\n%s", seed, origin, class, svc,
					slices.Sorted(maps.Keys(gotSet)), propSet(want), f.describe())
			}
			hist[len(want)]++
			pairs++
		}
	}
	t.Logf("%d federations × %d signals = %d signals; by number of holders %v", seeds, n, pairs, hist)
}
