//go:build unix

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/session"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/schemas"
)

// The long version keeps the rate the closed loops take on a loaded
// 2-core machine (each handles every operator's signals one at a time:
// at 300/s per operator they fell behind, not the nodes) and gives each
// change 30 s of traffic.
var dayLong = flag.Bool("anfed.day-long", false, "TestDayInTheLife: 100 signals/s per operator and 30 s of traffic between the changes (default: 60/s, 3 s)")

// A day in the life of a federation (issue 17, item 6): three operators
// as `anfed serve` processes, each producing mixed signals into its node
// and running a closed loop of everything its node stores, while the
// operators change, in order: a peer added (reload), an export filter
// tightened and loosened (reload), a signing key rotated (anfed keys
// rotate), the leaf listener's certificate rotated (reload), a peer
// disabled and enabled (anfed peer disable|enable), a planned restart
// (SIGTERM with --restart-within, start again), a peer removed (reload).
//
// op-a accepts op-b and op-c on a TLS leaf listener; op-b has a plain one
// on which it accepts op-c once that peering is added. The checker:
// every acknowledged signal a peering carried while nothing held it back
// reached the peer's closed loop once (0 lost), no closed loop handled a
// signal twice, each kept its sources' order, the condition tables
// converged to the origins', and the links a change does not touch never
// flapped (the session flaps of /v1/peers at both ends: 0). It logs, per
// change, those flaps, the signals lost and refused, and the time until
// the change took effect (docs/operations.md has the table).
func TestDayInTheLife(t *testing.T) {
	if testing.Short() {
		t.Skip("builds anfed and runs three nodes as processes for ~1 min")
	}
	rate, dwell := 60, 3*time.Second
	if *dayLong {
		rate, dwell = 100, 30*time.Second
	}
	d := newDay(t, buildAnfed(t))
	d.dwell = dwell
	for _, id := range soakOps {
		d.f.start(id)
	}
	d.waitSessions([2]string{"op-a", "op-b"}, [2]string{"op-a", "op-c"})
	for _, id := range soakOps {
		d.loops[id] = startHelperLoopAs(t, d.f.clientURL[id], loopUser, loopPass, "an.sig.>")
	}
	for _, id := range soakOps {
		d.prods[id] = startProducerAs(t, d.f.clientURL[id], id, producerUser, producerPass, soakSignal, 2, rate)
	}
	d.began = time.Now()
	time.Sleep(dwell)

	// 1. A peer added: op-b accepts op-c, op-c dials op-b.
	d.step("add a peer (op-b<->op-c)", []string{"a-b", "a-c"}, func() {
		d.link("op-b", "op-c", true)
		d.reload("op-b")
		d.reload("op-c")
		d.waitSessions([2]string{"op-b", "op-c"})
		d.waitFor("op-b holds op-c's conditions and op-c op-b's", func() error {
			if len(d.held("op-b", "op-c", "")) == 0 || len(d.held("op-c", "op-b", "")) == 0 {
				return fmt.Errorf("not yet")
			}
			return nil
		})
	})
	d.open("b-c", time.Now(), time.Time{})
	time.Sleep(dwell)

	// 2. op-a's export filter towards op-b tightened (no faults), then
	// loosened.
	const noFaults = "type <> 'net.anfed.fault.v1'"
	d.hold("a->b fault", func() {
		d.step("tighten a filter (op-a -> op-b)", []string{"a-c", "b-c"}, func() {
			d.peer("op-a", "op-b").filter = noFaults
			d.reload("op-a")
			d.waitFor("op-b withdrew op-a's fault", func() error {
				if n := len(d.held("op-b", "op-a", "fault")); n != 0 {
					return fmt.Errorf("op-b holds %d of op-a's faults", n)
				}
				return nil
			})
		})
		time.Sleep(dwell)
		assert.Empty(t, d.held("op-b", "op-a", "fault"), "op-b got op-a's faults through the tightened filter")
		d.step("loosen it again", []string{"a-c", "b-c"}, func() {
			d.peer("op-a", "op-b").filter = ""
			d.reload("op-a")
			d.waitFor("op-b holds op-a's fault again", func() error {
				if len(d.held("op-b", "op-a", "fault")) == 0 {
					return fmt.Errorf("not yet")
				}
				return nil
			})
		})
	})
	d.allZero() // a filter is no reason to drop a link
	time.Sleep(dwell)

	// 3. op-b rotates its signing key.
	d.step("rotate a signing key (op-b)", []string{"a-c"}, func() {
		out := d.cmd("keys", "rotate", "--config", d.f.configs["op-b"], "--overlap", "1m", "--wait", "60s")
		require.Contains(t, out, "switched at", out)
		// The runbook's next step: the policy names the new key file.
		_, file, ok := strings.Cut(out, "Set operator.signing_key_file: ")
		require.True(t, ok, out)
		d.keyFile["op-b"] = strings.TrimSpace(file)
	})
	d.allZero()
	time.Sleep(dwell)

	// 4. op-a's leaf listener gets a new certificate.
	before := d.ca.ServedSerial(t, d.leaf["op-a"])
	d.step("rotate a leaf certificate (op-a)", []string{"a-b", "a-c", "b-c"}, func() {
		d.cert, d.key = d.ca.Issue(t, "leaf-op-a-2", net.ParseIP("127.0.0.1"))
		d.reload("op-a")
		require.NotEqual(t, before, d.ca.ServedSerial(t, d.leaf["op-a"]), "new handshakes get the new certificate")
	})
	d.allZero() // nor a certificate
	time.Sleep(dwell)

	// 5. op-a disables op-c, then enables it.
	d.hold("a<->c", func() {
		const why = "maintenance of ic-paris-1, CHG-4711"
		d.step("disable a peer (op-a: op-c)", []string{"a-b", "b-c"}, func() {
			d.cmd("peer", "disable", "--config", d.f.configs["op-a"], "op-c", "--reason", why)
			d.peer("op-a", "op-c").disabled = why
			d.waitFor("op-c told and both ends withdrawn", func() error {
				s := d.session("op-c", "op-a")
				if s == nil || !strings.Contains(s.LastDown, why) {
					return fmt.Errorf("op-c's session with op-a: %+v", s)
				}
				if n := len(d.held("op-c", "op-a", "")) + len(d.held("op-a", "op-c", "")); n != 0 {
					return fmt.Errorf("%d conditions still held across", n)
				}
				return nil
			})
		})
		time.Sleep(dwell)
		d.step("enable it", []string{"a-b", "b-c"}, func() {
			d.cmd("peer", "enable", "--config", d.f.configs["op-a"], "op-c")
			d.peer("op-a", "op-c").disabled = ""
			d.waitSessions([2]string{"op-a", "op-c"})
			d.waitFor("both ends hold each other's conditions", func() error {
				if len(d.held("op-c", "op-a", "")) == 0 || len(d.held("op-a", "op-c", "")) == 0 {
					return fmt.Errorf("not yet")
				}
				return nil
			})
		})
	})
	time.Sleep(dwell)

	// 6. op-c restarts, announced: its peers keep its conditions.
	d.step("planned restart (op-c)", []string{"a-b"}, func() {
		heldA, heldB := len(d.held("op-a", "op-c", "")), len(d.held("op-b", "op-c", ""))
		d.f.procs["op-c"].term(t)
		kept := len(d.held("op-a", "op-c", "")) + len(d.held("op-b", "op-c", ""))
		assert.Equal(t, heldA+heldB, kept, "op-a and op-b keep op-c's conditions while it restarts")
		for _, id := range []string{"op-a", "op-b"} {
			s := d.session(id, "op-c")
			require.NotNil(t, s)
			assert.True(t, s.PlannedDown(time.Now()), "%s: op-c is planned-down: %+v", id, s)
		}
		d.f.start("op-c")
		d.waitSessions([2]string{"op-a", "op-c"}, [2]string{"op-b", "op-c"})
	})
	time.Sleep(dwell)

	// 7. The op-b<->op-c peering removed at both ends.
	removed := time.Now()
	d.open("b-c", time.Time{}, removed)
	d.step("remove a peer (op-b<->op-c)", []string{"a-b", "a-c"}, func() {
		d.link("op-b", "op-c", false)
		d.reload("op-b")
		d.reload("op-c")
		d.waitFor("the link is down and both ends withdrew", func() error {
			if len(d.held("op-b", "op-c", "")) != 0 || len(d.held("op-c", "op-b", "")) != 0 {
				return fmt.Errorf("conditions still held across")
			}
			return nil
		})
	})
	time.Sleep(dwell)
	d.check()
}

// day is the federation of TestDayInTheLife and what its checker needs.
type day struct {
	t     *testing.T
	f     *federation
	ca    *natstest.CA
	leaf  map[string]string // id -> leaf listener address
	token string            // the admin token file every node uses
	keys  map[string]string // id -> public signing key at the start
	// keyFile: id -> operator.signing_key_file, when not keys/signing.nk.
	keyFile map[string]string
	// cert and key are op-a's leaf listener's files.
	cert, key string
	peers     map[string][]*dayPeer // id -> its peerings, in policy order

	loops map[string]*helperLoop
	prods map[string]*producer
	began time.Time
	dwell time.Duration // traffic between two changes

	// opened: per link ("b-c"), when it carries every signal (from, to;
	// zero: the whole run). held: per directed class ("a->b fault") or
	// link ("a<->c"), when a change held its signals back.
	opened   map[string][2]time.Time
	heldBack map[string][2]time.Time
	steps    []dayStep
}

// dayPeer is one peering in a node's policy.
type dayPeer struct {
	id, pass string
	dial     string // the peer's leaf URL we dial; "": it dials us
	tls      bool
	filter   string // export.filter
	disabled string // disabled.reason
}

// dayStep is one change and what it did.
type dayStep struct {
	name         string
	untouched    []string
	start, end   time.Time
	took         time.Duration
	flaps        map[string]int     // link -> session flaps at both ends during the step
	refusedPeers map[string]float64 // signals refused by the nodes from peers during the step, by node and reason
	refusedLocal int                // producers' signals answered other than accepted
}

var dayLinks = []string{"a-b", "a-c", "b-c"}

func newDay(t *testing.T, bin string) *day {
	d := &day{t: t, ca: natstest.NewCA(t), leaf: map[string]string{}, keys: map[string]string{}, keyFile: map[string]string{}, peers: map[string][]*dayPeer{},
		loops: map[string]*helperLoop{}, prods: map[string]*producer{}, opened: map[string][2]time.Time{}, heldBack: map[string][2]time.Time{}}
	d.f = &federation{t: t, bin: bin, dir: t.TempDir(), configs: map[string]string{}, clientURL: map[string]string{},
		procs: map[string]*proc{}, starts: map[string]int{}, httpAddr: map[string]string{},
		serveArgs: map[string][]string{"op-c": {"--restart-within", "1m"}}}
	t.Cleanup(d.f.cleanup)
	d.token = filepath.Join(d.f.dir, "admin.token")
	require.NoError(t, os.WriteFile(d.token, []byte("day-in-the-life-admin-token\n"), 0o600))
	for _, id := range soakOps {
		d.keys[id] = d.f.initKeys(id)
		d.f.clientURL[id] = "nats://" + natstest.FreeRestartAddr(t)
		d.f.httpAddr[id] = natstest.FreeRestartAddr(t)
		d.leaf[id] = natstest.FreeRestartAddr(t)
		d.f.configs[id] = filepath.Join(d.f.dir, id, id+".yaml")
	}
	d.cert, d.key = d.ca.Issue(t, "leaf-op-a-1", net.ParseIP("127.0.0.1"))
	d.link("op-a", "op-b", true)
	d.link("op-a", "op-c", true)
	d.opened["b-c"] = [2]time.Time{} // not peered yet
	for _, id := range soakOps {
		d.write(id)
	}
	code, stdout, stderr := anfedCmd(t, bin, append([]string{"validate"}, d.f.configs["op-a"], d.f.configs["op-b"], d.f.configs["op-c"])...)
	require.Equal(t, 0, code, "validate: %s%s", stdout, stderr)
	return d
}

// link adds (or removes) the peering of acceptor and dialler at both.
func (d *day) link(acceptor, dialler string, add bool) {
	pass := "issued-by-" + acceptor + "-to-" + dialler
	if !add {
		d.peers[acceptor] = slices.DeleteFunc(d.peers[acceptor], func(p *dayPeer) bool { return p.id == dialler })
		d.peers[dialler] = slices.DeleteFunc(d.peers[dialler], func(p *dayPeer) bool { return p.id == acceptor })
		return
	}
	tls := acceptor == "op-a"
	scheme := "nats-leaf://"
	if tls {
		scheme = "tls://"
	}
	d.peers[acceptor] = append(d.peers[acceptor], &dayPeer{id: dialler, pass: pass})
	d.peers[dialler] = append(d.peers[dialler], &dayPeer{id: acceptor, pass: pass, dial: scheme + d.leaf[acceptor], tls: tls})
}

func (d *day) peer(id, peer string) *dayPeer {
	for _, p := range d.peers[id] {
		if p.id == peer {
			return p
		}
	}
	d.t.Fatalf("%s has no peering with %s", id, peer)
	return nil
}

// write renders id's policy file.
func (d *day) write(id string) {
	var b strings.Builder
	keyFile := cmp.Or(d.keyFile[id], "keys/signing.nk")
	fmt.Fprintf(&b, "operator:\n  id: %s\n  signing_key_file: %s\nnats:\n  client:\n    listen: %s\n",
		id, keyFile, strings.TrimPrefix(d.f.clientURL[id], "nats://"))
	if id != "op-c" {
		fmt.Fprintf(&b, "  leafnodes:\n    listen: %s\n", d.leaf[id])
		if id == "op-a" {
			fmt.Fprintf(&b, "    tls: {cert: %s, key: %s}\n", d.cert, d.key)
		}
	}
	fmt.Fprintf(&b, "  users:\n    - {name: %s, password: %s}\n    - {name: %s, password: %s}\n", producerUser, producerPass, loopUser, loopPass)
	fmt.Fprintf(&b, "storage:\n  dir: ./data\n  sync: 2m\nhttp:\n  listen: %s\n  admin_token_file: %s\npeers:\n", d.f.httpAddr[id], d.token)
	for _, p := range d.peers[id] {
		fmt.Fprintf(&b, "  - id: %s\n", p.id)
		if p.dial == "" {
			fmt.Fprintf(&b, "    accept: {user: %s, password: %s}\n", p.id, p.pass)
		} else {
			fmt.Fprintf(&b, "    dial: {url: %q, user: %s, password: %s", p.dial, id, p.pass)
			if p.tls {
				fmt.Fprintf(&b, ", tls: {ca: %s}", d.ca.File)
			}
			b.WriteString("}\n")
		}
		fmt.Fprintf(&b, "    export: {classes: [\"*\"], services: [\"*\"]")
		if p.filter != "" {
			fmt.Fprintf(&b, ", filter: %q", p.filter)
		}
		fmt.Fprintf(&b, "}\n    import: {classes: [\"*\"]}\n    signing_key: %s\n", d.keys[p.id])
		if p.disabled != "" {
			fmt.Fprintf(&b, "    disabled: {reason: %q}\n", p.disabled)
		}
	}
	require.NoError(d.t, os.MkdirAll(filepath.Dir(d.f.configs[id]), 0o700))
	require.NoError(d.t, os.WriteFile(d.f.configs[id], []byte(b.String()), 0o600))
}

// reload writes id's policy and runs `anfed reload` on it.
func (d *day) reload(id string) {
	d.t.Helper()
	d.write(id)
	d.cmd("reload", "--config", d.f.configs[id])
}

// cmd runs an anfed command to success and returns its output.
func (d *day) cmd(args ...string) string {
	d.t.Helper()
	code, stdout, stderr := anfedCmd(d.t, d.f.bin, args...)
	require.Equal(d.t, 0, code, "anfed %s: %s%s", strings.Join(args, " "), stdout, stderr)
	return stdout
}

func (d *day) waitFor(what string, cond func() error) {
	d.t.Helper()
	natstest.WaitFor(d.t, 60*time.Second, func() error {
		if err := cond(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

// peerStates is id's GET /v1/peers (nil while it does not answer).
func (d *day) peerStates(id string) []node.PeerState {
	body, err := httpGet("http://" + d.f.httpAddr[id] + "/v1/peers")
	if err != nil {
		return nil
	}
	var ps []node.PeerState
	if json.Unmarshal([]byte(body), &ps) != nil {
		return nil
	}
	return ps
}

// session is id's session with peer as /v1/peers shows it.
func (d *day) session(id, peer string) *node.SessionView {
	for _, p := range d.peerStates(id) {
		if p.ID == peer {
			return p.Session
		}
	}
	return nil
}

// waitSessions waits until each pair holds its session established at
// both ends.
func (d *day) waitSessions(pairs ...[2]string) {
	d.t.Helper()
	for _, p := range pairs {
		d.waitFor(fmt.Sprintf("session %s<->%s", p[0], p[1]), func() error {
			for _, end := range [][2]string{p, {p[1], p[0]}} {
				if s := d.session(end[0], end[1]); s == nil || s.State != session.Established {
					return fmt.Errorf("at %s: %+v", end[0], s)
				}
			}
			return nil
		})
	}
}

// flaps are the session flaps at each end of each link, by "op-a>op-b"
// (absent: the node did not answer).
func (d *day) flaps() map[string]int {
	out := map[string]int{}
	for _, id := range soakOps {
		for _, p := range d.peerStates(id) {
			if p.Session != nil {
				out[id+">"+p.ID] = p.Session.Flaps
			}
		}
	}
	return out
}

// flapsBetween sums, per link, the flaps at its ends from f0 to f1; a node
// that restarted in between counts from 0 again.
func flapsBetween(f0, f1 map[string]int) map[string]int {
	out := map[string]int{}
	for _, l := range dayLinks {
		out[l] = 0
	}
	for end, n := range f1 {
		if n >= f0[end] {
			n -= f0[end]
		}
		x, y, _ := strings.Cut(end, ">")
		out[linkName(x, y)] += n
	}
	return out
}

func linkName(x, y string) string {
	ends := []string{x[3:], y[3:]}
	sort.Strings(ends)
	return ends[0] + "-" + ends[1]
}

// held is what id holds from peer (of class, "" for every class).
func (d *day) held(id, peer, class string) []conditions.Condition {
	return d.conditions(id, "peer="+peer+"&class="+class)
}

func (d *day) conditions(id, query string) []conditions.Condition {
	d.t.Helper()
	body, err := httpGet("http://" + d.f.httpAddr[id] + "/v1/conditions?" + query)
	require.NoError(d.t, err)
	var cs []conditions.Condition
	require.NoError(d.t, json.Unmarshal([]byte(body), &cs))
	return cs
}

// refusedFromPeers sums the nodes' anfed_peer_rejected_total of peers by
// reason, duplicates aside (a resend answered "had it already").
func (d *day) refusedFromPeers() map[string]float64 {
	out := map[string]float64{}
	for _, id := range soakOps {
		for k, v := range nodetest.Scrape(d.t, "http://"+d.f.httpAddr[id]) {
			if !strings.HasPrefix(k, "anfed_peer_rejected_total{") || strings.Contains(k, `peer="local"`) {
				continue
			}
			_, reason, _ := strings.Cut(k, `reason="`)
			reason, _, _ = strings.Cut(reason, `"`)
			if reason != "duplicate" {
				out[id+" "+reason] += v
			}
		}
	}
	return out
}

func (d *day) refusedLocal() int {
	n := 0
	for _, p := range d.prods {
		p.mu.Lock()
		for why, c := range p.other {
			if why != "no-responders" { // the node restarting: no answer, not a refusal
				n += c
			}
		}
		p.mu.Unlock()
	}
	return n
}

// step makes one change: do returns once it took effect. The links in
// untouched must not flap.
func (d *day) step(name string, untouched []string, do func()) {
	d.t.Helper()
	s := dayStep{name: name, untouched: untouched, start: time.Now()}
	f0, rp0, rl0 := d.flaps(), d.refusedFromPeers(), d.refusedLocal()
	do()
	s.took = time.Since(s.start)
	s.flaps = flapsBetween(f0, d.flaps())
	// A node restarted counts from 0 again.
	s.refusedPeers = map[string]float64{}
	for k, v := range d.refusedFromPeers() {
		if v > rp0[k] {
			s.refusedPeers[k] = v - rp0[k]
		} else if v < rp0[k] {
			s.refusedPeers[k] = v // the node restarted: counted from 0
		}
	}
	s.refusedLocal = d.refusedLocal() - rl0
	s.end = time.Now()
	for _, l := range untouched {
		assert.Zero(d.t, s.flaps[l], "%s: the untouched link %s flapped", name, l)
	}
	d.t.Logf("%s: took effect in %v; flaps %v; refused by the nodes from peers %v", name, s.took.Round(time.Millisecond), s.flaps, s.refusedPeers)
	d.steps = append(d.steps, s)
}

// allZero requires that the last step flapped no link at all.
func (d *day) allZero() {
	s := d.steps[len(d.steps)-1]
	for _, l := range dayLinks {
		assert.Zero(d.t, s.flaps[l], "%s: the link %s flapped", s.name, l)
	}
}

// open says when link carries every signal (zero: unchanged).
func (d *day) open(link string, from, to time.Time) {
	w := d.opened[link]
	if !from.IsZero() {
		w[0] = from
	}
	if !to.IsZero() {
		w[1] = to
	}
	d.opened[link] = w
}

// hold runs the changes in do, which hold back what: a directed class
// ("a->b fault") or a link ("a<->c").
func (d *day) hold(what string, do func()) {
	start := time.Now()
	do()
	d.heldBack[what] = [2]time.Time{start, time.Now()}
}

// dayMargin: a signal acknowledged this close to a change that holds its
// peering back may be on either side of it.
const dayMargin = 2 * time.Second

// expected tells whether the signal key of origin, acknowledged at, must
// reach to's closed loop: every signal a peering carried while no change
// held it back.
func (d *day) expected(origin, to, key string, at time.Time) bool {
	if origin == to {
		return true
	}
	o, t := origin[3:], to[3:]
	if w, ok := d.opened[linkName(origin, to)]; ok {
		if w[0].IsZero() || at.Before(w[0].Add(dayMargin)) || (!w[1].IsZero() && at.After(w[1].Add(-dayMargin))) {
			return false
		}
	}
	within := func(what string) bool {
		w, ok := d.heldBack[what]
		return ok && at.After(w[0].Add(-dayMargin)) && at.Before(w[1].Add(dayMargin))
	}
	return !within(o+"<->"+t) && !within(t+"<->"+o) && !(within(o+"->"+t+" fault") && classOf(key) == "fault")
}

// classOf is the class of a soakSignal's key ("anfed://op-a/probe-0 s0-7").
func classOf(key string) string {
	s, i := sourceSeq(key)
	return schemas.Classes[(s+i)%len(schemas.Classes)]
}

// sourceSeq is the source number and sequence of a producer's key.
func sourceSeq(key string) (s, i int) {
	_, id, _ := strings.Cut(key, " ")
	fmt.Sscanf(id, "s%d-%d", &s, &i)
	return s, i
}

// check stops the traffic and runs the checker.
func (d *day) check() {
	t := d.t
	type ack struct {
		key string
		at  time.Time
	}
	acks := map[string][]ack{}
	total := 0
	for _, id := range soakOps {
		p := d.prods[id]
		p.finish()
		p.mu.Lock()
		for i, k := range p.acked {
			acks[id] = append(acks[id], ack{k, p.ackedAt[i]})
		}
		p.mu.Unlock()
		total += len(acks[id])
	}
	// What each closed loop must get.
	want := map[string][]string{}
	wantAt := map[string]time.Time{}
	notExpected := 0
	for _, to := range soakOps {
		for _, from := range soakOps {
			for _, a := range acks[from] {
				wantAt[a.key] = a.at
				if d.expected(from, to, a.key, a.at) {
					want[to] = append(want[to], a.key)
				} else {
					notExpected++
				}
			}
		}
	}
	stopped := time.Now()
	for deadline := time.Now().Add(90*time.Second + 3*d.dwell); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		missing := 0
		for _, id := range soakOps {
			missing += d.loops[id].missing(want[id])
		}
		if missing == 0 {
			break
		}
	}
	drained := time.Since(stopped)
	// The tables: what each holds from a peer is what the peer holds of
	// its own.
	type row struct{ ID, State string }
	table := func(cs []conditions.Condition) map[string]row {
		m := map[string]row{}
		for _, c := range cs {
			m[c.Origin+" "+c.Class+" "+c.Subject] = row{c.ID, string(c.State)}
		}
		return m
	}
	natstest.WaitFor(t, 60*time.Second, func() error {
		for _, p := range [][2]string{{"op-a", "op-b"}, {"op-b", "op-a"}, {"op-a", "op-c"}, {"op-c", "op-a"}} {
			own, got := table(d.conditions(p[1], "peer=local")), table(d.conditions(p[0], "peer="+p[1]))
			if fmt.Sprint(own) != fmt.Sprint(got) {
				return fmt.Errorf("%s holds of %s %v, %s holds %v", p[0], p[1], got, p[1], own)
			}
		}
		for _, p := range [][2]string{{"op-b", "op-c"}, {"op-c", "op-b"}} {
			if n := len(d.held(p[0], p[1], "")); n != 0 {
				return fmt.Errorf("%s still holds %d of the removed %s's", p[0], n, p[1])
			}
		}
		return nil
	})
	for _, id := range soakOps {
		d.loops[id].stop()
	}

	// Per step: the expected signals acknowledged during it that were lost.
	lostIn := make([]int, len(d.steps))
	lost, twice, order := 0, 0, 0
	for _, id := range soakOps {
		l := d.loops[id]
		lostBefore := lost
		l.mu.Lock()
		for _, k := range want[id] {
			if l.calls[k] > 0 {
				continue
			}
			lost++
			if lost <= 5 {
				// Stored at the node (the loop missed it), or never arrived?
				t.Logf("%s's closed loop never got %s (acknowledged %v into the run); in %s's store: %s", id, k,
					wantAt[k].Sub(d.began).Round(time.Millisecond), id, storedWhere(l, originOfKey(k), k))
			}
			for i, s := range d.steps {
				if !wantAt[k].Before(s.start.Add(-dayMargin)) && !wantAt[k].After(s.end.Add(dayMargin)) {
					lostIn[i]++
				}
			}
		}
		for _, n := range l.calls {
			if n > 1 {
				twice++
			}
		}
		// Order per source among the signals the loop must get: a
		// refresh may bring an older signal that a filter or a disable
		// held back, which is no reordering of the stream.
		must := map[string]bool{}
		for _, k := range want[id] {
			must[k] = true
		}
		last := map[string]int{}
		for _, k := range l.first {
			if !must[k] {
				continue
			}
			src, _, _ := strings.Cut(k, " ")
			if _, i := sourceSeq(k); i <= last[src] {
				order++
				if order <= 5 {
					t.Logf("%s's closed loop: %s after %d", id, k, last[src])
				}
			} else {
				last[src] = i
			}
		}
		t.Logf("%s: closed loop handled %d distinct signals, %d it had to get", id, len(l.calls), len(want[id]))
		l.mu.Unlock()
		if lost > lostBefore {
			l.explain(t)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "day in the life: %d signals acknowledged by the three producers (%d deliveries not owed: held back by a filter, a disable or a missing peering), all owed ones in the closed loops %v after the traffic stopped\n",
		total, notExpected, drained.Round(time.Millisecond))
	fmt.Fprintf(&b, "| change | took effect in | flaps of untouched links | flaps of all links (a-b, a-c, b-c) | lost | refused by peers | refused to producers |\n|---|---|---|---|---|---|---|\n")
	for i, s := range d.steps {
		un := 0
		for _, l := range s.untouched {
			un += s.flaps[l]
		}
		refused := 0.0
		for _, v := range s.refusedPeers {
			refused += v
		}
		fmt.Fprintf(&b, "| %s | %v | %d (%s) | %d, %d, %d | %d | %.0f | %d |\n", s.name, s.took.Round(10*time.Millisecond), un, strings.Join(s.untouched, ", "),
			s.flaps["a-b"], s.flaps["a-c"], s.flaps["b-c"], lostIn[i], refused, s.refusedLocal)
	}
	t.Log(b.String())
	for _, s := range d.steps {
		assert.Empty(t, s.refusedPeers, "%s: signals the nodes refused from their peers", s.name)
		assert.Zero(t, s.refusedLocal, "%s: signals refused to the producers", s.name)
	}
	assert.Zero(t, lost, "signals lost")
	assert.Zero(t, twice, "signals a closed loop handled twice")
	assert.Zero(t, order, "per-source order")
	assert.NotZero(t, total, "the traffic ran")
	for _, id := range soakOps {
		d.f.procs[id].term(t)
	}
}

// storedWhere says whether the store behind loop l holds the signal key
// of origin (its class's signals read from the start), and at which
// stream sequence.
func storedWhere(l *helperLoop, origin, key string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, err := jetstream.New(l.nc)
	if err != nil {
		return err.Error()
	}
	c, err := js.OrderedConsumer(ctx, "ANFED_SIGNALS", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"an.sig." + origin + "." + classOf(key) + ".>"}})
	if err != nil {
		return err.Error()
	}
	for {
		b, err := c.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err.Error()
		}
		n := 0
		for m := range b.Messages() {
			n++
			ev, err := signal.DecodeStructured(m.Data())
			if err == nil && ev.Key() == key {
				meta, _ := m.Metadata()
				return fmt.Sprintf("stored at sequence %d (%s): the loop missed it", meta.Sequence.Stream, meta.Timestamp.Format(time.RFC3339Nano))
			}
		}
		if n == 0 {
			return "not stored: it never arrived"
		}
	}
}
