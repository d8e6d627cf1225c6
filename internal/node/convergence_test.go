package node_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/session"
	"github.com/anfed/anfed/internal/signal"
)

var convergenceSeed = flag.Uint64("convergence-seed", 0, "seed of TestConvergence's random steps (0: from the clock)")

var convergenceRounds = flag.Int("convergence-rounds", 3, "rounds of TestConvergence (each: random steps, then quiet, refresh and a check)")

// spoke is an origin that dials the hub through a proxy and restarts
// with new export policies.
type spoke struct {
	id    string
	cfg   *config.Config
	n     *node.Node
	proxy *natstest.Proxy
	nc    *nats.Conn
}

func (s *spoke) start(t *testing.T) {
	t.Helper()
	s.n = startNode(t, s.cfg)
	var err error
	s.nc, err = s.n.Connect()
	require.NoError(t, err)
	t.Cleanup(s.nc.Close)
}

// TestConvergence is the convergence property (DESIGN.md invariant 6)
// over three real nodes: op-a and op-c originate conditions and export
// them to op-b, through proxies. Each round makes 12 random steps —
// raise, update, clear; an origin restarted with a random export policy,
// or crashed as kill -9 would and started again; an export policy
// reloaded at an origin, or op-b's import policy for an origin reloaded,
// on the running nodes; link cuts long enough for the export buffer's
// max_age to drop what waited — then goes quiet, asks each origin for a
// refresh, and checks that what op-b holds from each peer equals what
// that peer's current export policy and op-b's current import policy pass
// from the peer's current table: same conditions, same latest signal. The
// short version runs 3 rounds; -convergence-rounds=N runs more,
// -convergence-seed=S repeats a run's random steps.
func TestConvergence(t *testing.T) {
	seed := *convergenceSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	hub := baseConfig(t, "op-b")
	hub.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	ids := []string{"op-a", "op-c"}
	for _, id := range ids {
		hub.Peers = append(hub.Peers, config.Peer{
			ID: id, Accept: &config.Accept{User: id, Password: "secret-" + id + "-123"},
			Import:     config.ImportPolicy{Classes: []string{"*"}, MaxRate: 100000},
			SigningKey: pub(t, id),
		})
	}
	nb := startNode(t, hub)
	var spokes []*spoke
	for _, id := range ids {
		s := &spoke{id: id, proxy: natstest.StartProxy(t, nb.LeafURL()[len("nats-leaf://"):])}
		s.cfg = baseConfig(t, id)
		s.cfg.Peers = []config.Peer{{
			ID: "op-b", Dial: &config.Dial{URL: "nats-leaf://" + s.proxy.Addr(), User: id, Password: "secret-" + id + "-123"},
			Export: config.ExportPolicy{Classes: []string{"fault", "congestion"}, Services: []string{"*"},
				Buffer: config.Buffer{MaxAge: config.Duration(400 * time.Millisecond)}},
			SigningKey: pub(t, "op-b"),
		}}
		s.start(t)
		spokes = append(spokes, s)
	}
	classSets := [][]string{{"fault", "congestion"}, {"fault"}, {"congestion"}, {}}
	importSets := [][]string{{"*"}, {"fault"}, {"congestion"}, {"fault", "congestion"}}
	// reloadHub gives op-b's import policy for peer id the classes cls,
	// on the running node.
	reloadHub := func(id string, cls []string) {
		next := *hub
		next.Peers = slices.Clone(hub.Peers)
		for i := range next.Peers {
			if next.Peers[i].ID == id {
				next.Peers[i].Import.Classes = cls
			}
		}
		_, err := nb.Reload(context.Background(), &next)
		require.NoError(t, err)
		hub = &next
	}
	steps, divergences := 0, 0
	kinds := map[string]int{}
	var log []string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the last round's steps:\n  %s", strings.Join(log, "\n  "))
		}
	})
	for round := range *convergenceRounds {
		log = nil
		for range 12 {
			s := spokes[rng.IntN(len(spokes))]
			steps++
			switch r := rng.IntN(20); {
			case r < 10:
				kinds["publish"]++
				class := []string{"fault", "congestion"}[rng.IntN(2)]
				res := fmt.Sprintf("r%d", rng.IntN(5))
				st := []signal.State{signal.Raised, signal.Updated, signal.Cleared}[rng.IntN(3)]
				ev := faultEvent(s.id, fmt.Sprintf("%s-%d-%d", s.id, round, steps))
				if class == "congestion" {
					ev = congestion(s.id, ev.ID)
				}
				ev.Subject, ev.State = "vpn-acme/"+res, st
				a := publish(t, s.nc, ev)
				require.True(t, a.OK(), "%+v", a)
				log = append(log, fmt.Sprintf("%s %s %s %s", s.id, st, class, res))
			case r < 12:
				kinds["restart"]++
				cls := classSets[rng.IntN(len(classSets))]
				s.nc.Close()
				s.n.Stop()
				s.cfg.Peers[0].Export.Classes = cls
				s.start(t)
				log = append(log, fmt.Sprintf("%s restarts exporting %v", s.id, cls))
			case r < 13:
				// kill -9, as far as op-b and the store can tell: every
				// connection gone at once, nothing answered or drained.
				kinds["crash"]++
				s.nc.Close()
				s.n.Crash()
				s.start(t)
				log = append(log, fmt.Sprintf("%s crashes and restarts", s.id))
			case r < 15:
				kinds["export-reload"]++
				cls := classSets[rng.IntN(len(classSets))]
				next := *s.cfg
				next.Peers = slices.Clone(s.cfg.Peers)
				next.Peers[0].Export.Classes = cls
				_, err := s.n.Reload(context.Background(), &next)
				require.NoError(t, err)
				s.cfg = &next
				log = append(log, fmt.Sprintf("%s reloads exporting %v", s.id, cls))
			case r < 17:
				kinds["import-reload"]++
				cls := importSets[rng.IntN(len(importSets))]
				reloadHub(s.id, cls)
				log = append(log, fmt.Sprintf("op-b reloads importing %v from %s", cls, s.id))
			default:
				kinds["cut"]++
				s.proxy.Cut()
				d := time.Duration(300+rng.IntN(700)) * time.Millisecond
				log = append(log, fmt.Sprintf("%s cut %s", s.id, d))
				time.Sleep(d)
				s.proxy.Restore()
			}
		}
		// Quiet: every link up, every session established, a refresh
		// from each origin, then the check.
		for _, s := range spokes {
			waitFor(t, 20*time.Second, func() error {
				for _, v := range []*node.SessionView{s.n.Session("op-b"), nb.Session(s.id)} {
					if v.State != session.Established {
						return fmt.Errorf("%s: session %s", s.id, v.State)
					}
				}
				return nil
			})
			eor := nb.Session(s.id).EndOfRIBs
			require.NoError(t, nb.RefreshPeer(context.Background(), s.id, true, false))
			waitFor(t, 20*time.Second, func() error {
				if nb.Session(s.id).EndOfRIBs <= eor {
					return fmt.Errorf("%s: no End-of-RIB yet", s.id)
				}
				return nil
			})
		}
		for _, s := range spokes {
			want := reference(s, hub)
			got := held(nb, s.id)
			for end := time.Now().Add(5 * time.Second); !slices.Equal(got, want) && time.Now().Before(end); {
				time.Sleep(50 * time.Millisecond)
				got = held(nb, s.id)
			}
			if !slices.Equal(got, want) {
				divergences++
				t.Errorf("round %d: op-b holds from %s\n  %v\nwant (its export policy over its table)\n  %v\nsteps:\n  %s",
					round, s.id, got, want, strings.Join(log, "\n  "))
			}
		}
	}
	t.Logf("%d rounds, %d random steps %v, %d divergences", *convergenceRounds, steps, kinds, divergences)
}

// reference is what s's current export policy and hub's current import
// policy for s pass from s's table: class, subject and id of the latest
// signal of each active condition.
func reference(s *spoke, hub *config.Config) []string {
	var imp []string
	for _, p := range hub.Peers {
		if p.ID == s.id {
			imp = p.Import.Classes
		}
	}
	var out []string
	for _, c := range s.n.Conditions(conditions.Filter{Peer: "local"}) {
		if slices.Contains(s.cfg.Peers[0].Export.Classes, c.Class) && (slices.Contains(imp, "*") || slices.Contains(imp, c.Class)) {
			out = append(out, c.Class+" "+c.Subject+" "+c.ID)
		}
	}
	sort.Strings(out)
	return out
}

func held(n *node.Node, peer string) []string {
	var out []string
	for _, c := range n.Conditions(conditions.Filter{Peer: peer, IncludeStale: true}) {
		out = append(out, c.Class+" "+c.Subject+" "+c.ID)
	}
	sort.Strings(out)
	return out
}
