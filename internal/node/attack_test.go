package node_test

// The attack suite: invariants 1 (sovereignty), 2 (origin) and 5 (bad input
// gets a clear answer) attacked by a peer that holds op-b's REAL
// credentials — its leaf user and password, a client certificate from A's
// CA and op-b's real signing key — and speaks raw NATS on the REAL mutual-
// TLS leaf listener of node A, through natstest's rogue leaf (a bare
// nats-server dialling A as op-b, with a nats.go client on it) or through a
// raw leaf-protocol speaker written below.
//
// Topology: A (op-a) accepts op-b (the attacker) and op-c (a real,
// well-behaved anfed node dialling A over TLS). A exports only class fault
// on service vpn-acme to op-b and congestion to op-c; A has a local
// producer and a local consumer. For every attack the tests check that
// nothing leaked, that the attempt was refused with a reason (the node's
// answer and the observer's count, or the NATS-level error), that it was
// logged, and that op-c's traffic kept flowing. docs/security.md tells
// what happened to each attack and where in the code.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

const (
	atkPassB = "secret-b-123"
	atkPassC = "secret-c-123"
	// atkQuiet is how long a subscription must stay silent, after its
	// positive control arrived, for "nothing leaked" to hold.
	atkQuiet = 400 * time.Millisecond
)

// ---------------------------------------------------------------------------
// The topology.

// atkEnv is node A with its two peers: op-c, a real node, and op-b, whose
// credentials the attacker holds.
type atkEnv struct {
	ca           *natstest.CA
	addrA        string
	cfgA         *config.Config
	a, c         *node.Node
	obs          *tally
	log          *atkLog
	bCert, bKey  string
	signerB      *origin.Signer
	local        *nats.Conn // A's local producer and consumer
	fromC, fromB *atkArrivals
	dlq          *atkArrivals // A's dead letters from op-b, by reason
	pubC         *nats.Conn   // op-c's local producer
	n            atomic.Int64
}

// newAtkEnv starts A (edited by edit) and op-c, and waits for their link.
func newAtkEnv(t *testing.T, edit func(*config.Config)) *atkEnv {
	t.Helper()
	e := &atkEnv{ca: natstest.NewCA(t), addrA: natstest.FreeAddr(t), obs: newTally(), log: &atkLog{}}
	srvCert, srvKey := e.ca.Issue(t, "leaf.op-a", net.ParseIP("127.0.0.1"))
	e.bCert, e.bKey = e.ca.Issue(t, "op-b")
	cCert, cKey := e.ca.Issue(t, "op-c")
	var err error
	e.signerB, err = origin.NewSigner(operatorKey(t, "op-b"))
	require.NoError(t, err)

	a := baseConfig(t, "op-a")
	a.NATS.LeafNodes = &config.Listener{Listen: e.addrA, TLS: &config.TLS{Cert: srvCert, Key: srvKey, CA: e.ca.File}}
	a.Peers = []config.Peer{
		{
			ID: "op-b", Accept: &config.Accept{User: "op-b", Password: atkPassB},
			Export:     config.ExportPolicy{Classes: []string{"fault"}, Services: []string{"vpn-acme"}},
			Import:     config.ImportPolicy{Classes: []string{"*"}},
			SigningKey: pub(t, "op-b"),
		},
		{
			ID: "op-c", Accept: &config.Accept{User: "op-c", Password: atkPassC},
			Export:     config.ExportPolicy{Classes: []string{"congestion"}, Services: []string{"*"}},
			Import:     config.ImportPolicy{Classes: []string{"*"}},
			SigningKey: pub(t, "op-c"),
		},
	}
	if edit != nil {
		edit(a)
	}
	e.startA(t, a)

	c := baseConfig(t, "op-c")
	c.Peers = []config.Peer{{
		ID: "op-a",
		Dial: &config.Dial{URL: "tls://" + e.addrA, User: "op-c", Password: atkPassC,
			TLS: &config.TLS{Cert: cCert, Key: cKey, CA: e.ca.File}},
		Export:     config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}},
		Import:     config.ImportPolicy{Classes: []string{"congestion"}},
		SigningKey: pub(t, "op-a"),
	}}
	e.c = startNode(t, c)
	e.pubC, err = e.c.Connect()
	require.NoError(t, err)
	t.Cleanup(e.pubC.Close)
	e.waitOpC(t)
	// op-c's own signals and A's other signals are in A's store.
	e.opCFlows(t)
	for _, ev := range []*signal.Event{congestion("op-a", "a-c-0"), faultEvent("op-a", "a-f-0"), atkOtherService(faultEvent("op-a", "a-fo-0"))} {
		require.True(t, publish(t, e.local, ev).OK())
	}
	return e
}

// startA starts node A from cfg, logging at info level into e.log.
func (e *atkEnv) startA(t *testing.T, cfg *config.Config) {
	t.Helper()
	e.cfgA = cfg
	e.a = startNode(t, cfg, node.WithLogger(zerolog.New(e.log).Level(zerolog.InfoLevel)), node.WithObserver(e.obs))
	var err error
	e.local, err = e.a.Connect()
	require.NoError(t, err)
	t.Cleanup(e.local.Close)
	e.fromC, e.fromB, e.dlq = newAtkArrivals(), newAtkArrivals(), newAtkArrivals()
	for subj, h := range map[string]nats.MsgHandler{"an.sig.op-c.>": e.fromC.add, "an.sig.op-b.>": e.fromB.add, "an.dlq.op-b.>": e.dlq.addDLQ} {
		_, err := e.local.Subscribe(subj, h)
		require.NoError(t, err)
	}
	require.NoError(t, e.local.Flush())
}

// restartA stops A and starts it again from cfg, on the same address and
// store.
func (e *atkEnv) restartA(t *testing.T, cfg *config.Config) {
	t.Helper()
	e.local.Close()
	e.a.Stop()
	e.startA(t, cfg)
	e.waitOpC(t)
}

func (e *atkEnv) waitOpC(t *testing.T) {
	t.Helper()
	waitFor(t, 15*time.Second, func() error {
		if !e.a.LinkUp("op-c") || !e.c.LinkUp("op-a") {
			return fmt.Errorf("link A–op-c not up")
		}
		return nil
	})
}

func (e *atkEnv) leafURL() string { return "tls://" + e.addrA }

// opCFlows is requirement 4: op-c publishes a signal and A's local
// consumer receives it within a bounded time. It returns the latency.
func (e *atkEnv) opCFlows(t *testing.T) time.Duration {
	t.Helper()
	id := fmt.Sprintf("c-%d", e.n.Add(1))
	start := time.Now()
	ans := publish(t, e.pubC, congestion("op-c", id))
	require.True(t, ans.OK(), "op-c's intake: %+v", ans)
	waitFor(t, 10*time.Second, func() error {
		if e.fromC.count(id) == 0 {
			return fmt.Errorf("op-c's signal %s has not reached A's local consumer", id)
		}
		return nil
	})
	return time.Since(start)
}

// leafConns lists A's leaf connections in account acc, with their
// subscriptions.
func (e *atkEnv) leafConns(t *testing.T, acc string) []*server.LeafInfo {
	t.Helper()
	lz, err := e.a.Server().Leafz(&server.LeafzOptions{Subscriptions: true, Account: acc})
	require.NoError(t, err)
	return lz.Leafs
}

// waitBGone waits until A holds no leaf connection of op-b: a connection
// an earlier step closed may still be open at A for a moment, and op-b may
// hold one at a time (limits.max_connections).
func (e *atkEnv) waitBGone(t *testing.T) {
	t.Helper()
	waitFor(t, 5*time.Second, func() error {
		if n := len(e.leafConns(t, natsconf.PeerAccount("op-b"))); n > 0 {
			return fmt.Errorf("A still holds %d leaf connection(s) of op-b", n)
		}
		return nil
	})
}

// leafConn is A's leaf connection named name (the dialling server's name),
// or nil.
func (e *atkEnv) leafConn(t *testing.T, name string) *server.LeafInfo {
	t.Helper()
	for _, l := range e.leafConns(t, natsconf.PeerAccount("op-b")) {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// stir makes traffic everywhere in A that an attacker would like to see:
// A's own signals of every kind (one exported to op-b), a local refusal
// (an.dlq), an API request (an.api, _INBOX), a condition change (an.cond),
// JetStream key-value and object stores ($JS.API, $KV, $O), client
// connections ($SYS events) and op-c's traffic (an.link.op-c in PEER_op-c,
// and A's exports to op-c on an.link.op-a in PEER_op-c). It returns the id
// of the fault op-b must receive.
func (e *atkEnv) stir(t *testing.T) string {
	t.Helper()
	n := e.n.Add(1)
	fid := fmt.Sprintf("a-f-%d", n)
	for _, ev := range []*signal.Event{
		congestion("op-a", fmt.Sprintf("a-c-%d", n)),
		atkOtherService(faultEvent("op-a", fmt.Sprintf("a-fo-%d", n))),
		faultEvent("op-a", fid),
	} {
		require.True(t, publish(t, e.local, ev).OK())
	}
	m, err := e.local.Request(subject.IntakePrefix, []byte(`{"specversion":`), 5*time.Second)
	require.NoError(t, err)
	ans, err := signal.ParseAnswer(m.Data)
	require.NoError(t, err)
	require.Equal(t, string(reject.Malformed), ans.Reason)
	_, err = e.local.Request(subject.APIConditions, []byte(`{}`), 5*time.Second)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(e.local)
	require.NoError(t, err)
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "attack"})
	require.NoError(t, err)
	_, err = kv.Put(ctx, "k", []byte(fid))
	require.NoError(t, err)
	obj, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "attack"})
	require.NoError(t, err)
	_, err = obj.PutBytes(ctx, "o", []byte(fid))
	require.NoError(t, err)
	extra, err := e.a.Connect() // connect and disconnect events in $SYS
	require.NoError(t, err)
	extra.Close()

	e.opCFlows(t)
	return fid
}

// atkOtherService moves a signal to a service A does not export to op-b.
func atkOtherService(ev *signal.Event) *signal.Event {
	ev.Subject = "vpn-other/ic-lyon-2"
	return ev
}

// ---------------------------------------------------------------------------
// What A reports: its log and the signals its local consumer receives.

// atkLog keeps A's zerolog JSON lines.
type atkLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *atkLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l.lines = append(l.lines, s)
	}
	return len(p), nil
}

func (l *atkLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// since returns the lines logged since mark, parsed.
func (l *atkLog) since(mark int) []map[string]any {
	l.mu.Lock()
	raw := slices.Clone(l.lines[mark:])
	l.mu.Unlock()
	var out []map[string]any
	for _, s := range raw {
		var m map[string]any
		if json.Unmarshal([]byte(s), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// wait waits up to d for lines since mark that match f, and returns them.
func (l *atkLog) wait(d time.Duration, mark int, f func(map[string]any) bool) []map[string]any {
	deadline := time.Now().Add(d)
	for {
		var got []map[string]any
		for _, m := range l.since(mark) {
			if f(m) {
				got = append(got, m)
			}
		}
		if len(got) > 0 || time.Now().After(deadline) {
			return got
		}
		time.Sleep(15 * time.Millisecond)
	}
}

func atkStr(m map[string]any, k string) string { s, _ := m[k].(string); return s }

// requireRefusalLogged is requirement 3 for a refusal by the receiver: a
// line with peer=op-b and the reason.
func (e *atkEnv) requireRefusalLogged(t *testing.T, mark int, reason reject.Reason) {
	t.Helper()
	got := e.log.wait(3*time.Second, mark, func(m map[string]any) bool {
		return atkStr(m, "peer") == "op-b" && atkStr(m, "reason") == string(reason)
	})
	if len(got) == 0 {
		t.Errorf("FINDING: A's log has no line with peer=op-b and reason=%s for this refusal (it is counted and answered, but not logged)", reason)
	}
}

// requireNATSLogged is requirements 2 and 3 for a refusal by NATS: A's log
// holds the server's line containing text (the reason) and, since op-b is
// known to A (its leaf user or the account the connection is bound to),
// names the peer: peer=op-b.
func (e *atkEnv) requireNATSLogged(t *testing.T, mark int, text string, attributable bool) {
	t.Helper()
	got := e.log.wait(5*time.Second, mark, func(m map[string]any) bool {
		return strings.Contains(atkStr(m, "message"), text)
	})
	require.NotEmpty(t, got, "A's log has no line containing %q; since the attack: %v", text, e.log.since(mark))
	t.Logf("A logged: %s", atkStr(got[0], "message"))
	if !attributable {
		return // no identity was established: the peer is unknown
	}
	for _, m := range got {
		if atkStr(m, "peer") == "op-b" {
			return
		}
	}
	t.Errorf("FINDING: A logs this NATS-level refusal of op-b without peer=op-b: %q (level %s)", atkStr(got[0], "message"), atkStr(got[0], "level"))
}

// requireNoNATSLine fails if A logged a line containing text since mark.
func (e *atkEnv) requireNoNATSLine(t *testing.T, mark int, text string) {
	t.Helper()
	for _, m := range e.log.since(mark) {
		if strings.Contains(atkStr(m, "message"), text) {
			t.Errorf("A logged %q", atkStr(m, "message"))
		}
	}
}

// atkArrivals records signals (or dead letters) a subscription received,
// by id (or by reason).
type atkArrivals struct {
	mu sync.Mutex
	at map[string]time.Time
	n  map[string]int
}

func newAtkArrivals() *atkArrivals {
	return &atkArrivals{at: map[string]time.Time{}, n: map[string]int{}}
}

func (a *atkArrivals) add(m *nats.Msg) {
	ev, err := signal.DecodeStructured(m.Data)
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.at[ev.ID]; !ok {
		a.at[ev.ID] = time.Now()
	}
	a.n[ev.ID]++
}

func (a *atkArrivals) addDLQ(m *nats.Msg) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	a.n[r]++
}

func (a *atkArrivals) count(k string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n[k]
}

func (a *atkArrivals) arrived(k string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.at[k]
	return at, ok
}

// ---------------------------------------------------------------------------
// The attacker: a rogue leaf with op-b's real credentials.

type atkRogue struct {
	*natstest.RogueLeaf
	mu      sync.Mutex
	link    []*nats.Msg // what A's sender put on op-b's link
	lastSeq uint64
	answers int // answers sent to A's sender: messages that cross the link
}

// startRogueB links a rogue leaf to A as op-b, answers A's sender like a
// peer would, and waits until A's receiver answers its probes.
func (e *atkEnv) startRogueB(t *testing.T) *atkRogue {
	t.Helper()
	r := natstest.StartRogueLeafTLS(t, e.leafURL(), "op-b", atkPassB, e.ca.ClientTLS(t, e.bCert, e.bKey),
		nats.CustomInboxPrefix("an.ack.op-b"), nats.NoEcho())
	x := &atkRogue{RogueLeaf: r}
	sub, err := r.Conn.Subscribe("an.link.op-a.>", x.answer)
	require.NoError(t, err)
	require.NoError(t, sub.SetPendingLimits(-1, -1))
	require.NoError(t, r.Conn.Flush())
	waitFor(t, 10*time.Second, func() error {
		m, err := r.Conn.Request(subject.Probe("op-b"), nil, time.Second)
		if err != nil {
			return err
		}
		a, err := signal.ParseAnswer(m.Data)
		if err != nil {
			return err
		}
		if a.Status != signal.StatusAlive {
			return fmt.Errorf("probe answered %+v", a)
		}
		return nil
	})
	return x
}

// answer answers A's sender as an anfed node would: every signal accepted.
func (x *atkRogue) answer(m *nats.Msg) {
	ans := signal.Answer{Status: signal.StatusAccepted}
	x.mu.Lock()
	if strings.HasSuffix(m.Subject, ".probe") {
		ans = signal.Answer{Status: signal.StatusAlive, Last: x.lastSeq}
	} else {
		x.link = append(x.link, m)
		var seq uint64
		if _, err := fmt.Sscan(m.Header.Get(link.HeaderSeq), &seq); err == nil && seq > x.lastSeq {
			x.lastSeq = seq
		}
	}
	if m.Reply != "" {
		x.answers++
	}
	x.mu.Unlock()
	if m.Reply == "" {
		return
	}
	a := nats.NewMsg(m.Reply)
	a.Header.Set(signal.HeaderStatus, ans.Status)
	a.Data = ans.Encode()
	_ = m.RespondMsg(a)
}

// crossed is how many messages of the rogue's crossed the link to A, as A
// counts them, less the answers the rogue sent A's sender. It waits until
// the count is stable.
func (x *atkRogue) crossed(t *testing.T, e *atkEnv) int64 {
	t.Helper()
	var last int64 = -1
	for range 100 {
		c := e.leafConn(t, "rogue-op-b")
		require.NotNil(t, c, "the rogue's link is up")
		x.mu.Lock()
		n := c.InMsgs - int64(x.answers)
		x.mu.Unlock()
		if n == last {
			return n
		}
		last = n
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the rogue's traffic to A does not settle")
	return 0
}

// received returns the signals A sent op-b on the link.
func (x *atkRogue) received() []*signal.Event {
	x.mu.Lock()
	defer x.mu.Unlock()
	var evs []*signal.Event
	for _, m := range x.link {
		if ev, err := signal.DecodeStructured(m.Data); err == nil {
			evs = append(evs, ev)
		}
	}
	return evs
}

func (x *atkRogue) has(id string) bool {
	for _, ev := range x.received() {
		if ev.ID == id {
			return true
		}
	}
	return false
}

// send sends a link message as op-b and returns A's answer.
func (x *atkRogue) send(t *testing.T, subj string, body []byte) signal.Answer {
	t.Helper()
	m, err := x.Conn.RequestMsg(&nats.Msg{Subject: subj, Data: body}, 10*time.Second)
	require.NoError(t, err, "no answer from A's receiver on %s", subj)
	ans, err := signal.ParseAnswer(m.Data)
	require.NoError(t, err)
	return ans
}

// atkAllowedForB reports whether A may deliver a message on subj to op-b:
// A's fault signals on vpn-acme (the export policy), the sender's probes,
// A's session messages to op-b, and answers to op-b's own requests.
func atkAllowedForB(subj string) bool {
	return strings.HasPrefix(subj, "an.link.op-a.op-a.fault.vpn-acme.") ||
		subj == subject.Probe("op-a") || subj == subject.Session("op-a") ||
		strings.HasPrefix(subj, "an.ack.op-b.")
}

// atkLinkSubject is the link subject op-b would send ev on, as class.
func atkLinkSubject(from string, ev *signal.Event, class string) string {
	return mustLink(from, subject.Key{Origin: ev.Origin, Class: class, Service: ev.Service(), Resource: ev.Resource()})
}

// mustLink is subject.Link for a key within the bounds.
func mustLink(from string, k subject.Key) string {
	s, err := subject.Link(from, k)
	if err != nil {
		panic(err)
	}
	return s
}

// ---------------------------------------------------------------------------
// A raw leaf-protocol speaker: what a hostile peer that does not run a real
// nats-server can send.

type atkRawLeaf struct {
	conn   net.Conn
	wmu    sync.Mutex
	mu     sync.Mutex
	lines  []string // the first atkRawLines lines A sent
	errs   int      // -ERR lines A sent, all of them
	pongs  int      // PONG lines A sent, all of them
	closed chan struct{}
}

// atkRawLines bounds the lines a raw leaf keeps: a flood of refusals
// must not grow the test's own memory, which the flood tests measure.
const atkRawLines = 10000

// startRawLeaf dials A's leaf listener, does the TLS handshake (tlsCfg nil:
// none), and sends a leaf CONNECT as user/password (declaring itself a hub
// if hub) and a PING.
func startRawLeaf(t *testing.T, addr string, tlsCfg *tls.Config, user, password, name string, hub bool) *atkRawLeaf {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	br := bufio.NewReader(c)
	info, err := br.ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(info, "INFO "), info)
	conn := net.Conn(c)
	if tlsCfg != nil {
		cfg := tlsCfg.Clone()
		cfg.ServerName = "127.0.0.1"
		tc := tls.Client(c, cfg)
		require.NoError(t, tc.Handshake())
		conn, br = tc, bufio.NewReader(tc)
	}
	require.NoError(t, c.SetDeadline(time.Time{}))
	connect, err := json.Marshal(map[string]any{
		"user": user, "pass": password, "name": name, "tls_required": tlsCfg != nil,
		"headers": true, "protocol": 1, "is_hub": hub,
	})
	require.NoError(t, err)
	r := &atkRawLeaf{conn: conn, closed: make(chan struct{})}
	go r.read(br)
	t.Cleanup(func() { conn.Close(); <-r.closed })
	r.write(t, "CONNECT "+string(connect))
	r.write(t, "PING")
	return r
}

// dialRawLeaf is startRawLeaf, then waits for A's PONG.
func dialRawLeaf(t *testing.T, addr string, tlsCfg *tls.Config, user, password, name string, hub bool) *atkRawLeaf {
	t.Helper()
	r := startRawLeaf(t, addr, tlsCfg, user, password, name, hub)
	r.waitLine(t, 5*time.Second, func(l string) bool { return l == "PONG" })
	return r
}

// pongOrClose waits up to d for A's PONG to the CONNECT: true, or for A to
// close the connection: false.
func (r *atkRawLeaf) pongOrClose(d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); {
		if slices.Contains(r.snapshot(), "PONG") {
			return true
		}
		if r.isClosed(10 * time.Millisecond) {
			return false
		}
	}
	return false
}

// tryWrite is write for a connection A may have closed.
func (r *atkRawLeaf) tryWrite(lines ...string) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_, err := r.conn.Write([]byte(strings.Join(lines, "\r\n") + "\r\n"))
	return err
}

func (r *atkRawLeaf) read(br *bufio.Reader) {
	defer close(r.closed)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		l = strings.TrimRight(l, "\r\n")
		r.mu.Lock()
		if len(r.lines) < atkRawLines {
			r.lines = append(r.lines, l)
		}
		switch {
		case strings.HasPrefix(l, "-ERR"):
			r.errs++
		case l == "PONG":
			r.pongs++
		}
		r.mu.Unlock()
		if l == "PING" {
			r.wmu.Lock()
			_, _ = r.conn.Write([]byte("PONG\r\n"))
			r.wmu.Unlock()
		}
	}
}

func (r *atkRawLeaf) write(t *testing.T, lines ...string) {
	t.Helper()
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_, err := r.conn.Write([]byte(strings.Join(lines, "\r\n") + "\r\n"))
	require.NoError(t, err)
}

// lmsg sends a leaf message on subj with body, and reply if not "". It
// names the queue group of A's link receivers ("anfed"), as a spoke that
// saw A's LS+ would: a leaf message without queue names reaches no queue
// subscriber.
func (r *atkRawLeaf) lmsg(t *testing.T, subj, reply string, body []byte) {
	t.Helper()
	args := subj + " | anfed"
	if reply != "" {
		args = subj + " + " + reply + " anfed"
	}
	r.write(t, fmt.Sprintf("LMSG %s %d", args, len(body)), string(body))
}

func (r *atkRawLeaf) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

func (r *atkRawLeaf) waitLine(t *testing.T, d time.Duration, f func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, l := range r.snapshot() {
			if f(l) {
				return l
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("raw leaf: no such line within %v; got %q", d, r.snapshot())
	return ""
}

// closedNow reports whether A has closed the connection.
func (r *atkRawLeaf) closedNow() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}

// isClosed reports whether A closed the connection within d.
func (r *atkRawLeaf) isClosed(d time.Duration) bool {
	select {
	case <-r.closed:
		return true
	case <-time.After(d):
		return false
	}
}

// delivered returns the subjects of the messages A delivered.
func (r *atkRawLeaf) delivered() []string {
	var subjs []string
	for _, l := range r.snapshot() {
		// A hub writes deliveries to a leaf as MSG/HMSG, a spoke as LMSG/HLMSG.
		if f := strings.Fields(l); len(f) > 1 && slices.Contains([]string{"MSG", "HMSG", "LMSG", "HLMSG"}, f[0]) {
			subjs = append(subjs, f[1])
		}
	}
	return subjs
}

// sync makes sure A has processed everything sent before: PING, PONG.
func (r *atkRawLeaf) sync(t *testing.T) {
	t.Helper()
	r.syncWithin(t, 5*time.Second)
}

// syncWithin is sync, waiting up to d for the PONG.
func (r *atkRawLeaf) syncWithin(t *testing.T, d time.Duration) {
	t.Helper()
	pongs := func() int { r.mu.Lock(); defer r.mu.Unlock(); return r.pongs }
	before := pongs()
	r.write(t, "PING")
	r.waitLine(t, d, func(string) bool { return pongs() > before })
}

// ---------------------------------------------------------------------------
// Attacks: subscriptions.

// The subjects an attacker with op-b's leaf would like to read.
var atkSubjects = []struct{ subj, what string }{
	{">", "everything"},
	{"an.link.>", "every link subject"},
	{"an.link.op-c.>", "op-c's space (A's PEER_op-c account)"},
	{"an.link.op-b.>", "op-b's own sending space"},
	{"an.ack.>", "every answer"},
	{"an.sig.>", "A's accepted signals (OPS)"},
	{"an.pub.>", "A's intake (OPS)"},
	{"an.store.>", "A's store writes (OPS)"},
	{"an.dlq.>", "A's dead letters (OPS)"},
	{"an.api.>", "A's API (OPS)"},
	{"an.cond.>", "A's condition changes (OPS)"},
	{"$JS.API.>", "JetStream API"},
	{"$JS.>", "all of JetStream"},
	{"$SYS.>", "the system account"},
	{"$KV.>", "key-value stores"},
	{"$O.>", "object stores"},
	{"_INBOX.>", "replies to A's local requests"},
}

// TestAttackSubscribe: op-b's leaf subscribes to everything it should not
// see, through a real nats-server (the rogue leaf) and through a raw leaf
// speaker, while A has traffic everywhere. Only what A's export policy
// placed in op-b's space arrives.
func TestAttackSubscribe(t *testing.T) {
	// The rogue leaf and the raw speaker are two of op-b's connections
	// side by side: this policy allows two (one is the default, and what
	// TestAttackSecondConnection attacks).
	e := newAtkEnv(t, func(c *config.Config) { c.Peers[0].Limits.MaxConnections = 2 })
	rogue := e.startRogueB(t)

	// Every subscription, on the rogue leaf's client and as raw LS+ on a
	// second leaf connection of op-b.
	got := map[string]*atkSubjectCount{}
	for _, s := range atkSubjects {
		c := &atkSubjectCount{}
		got[s.subj] = c
		sub, err := rogue.Conn.Subscribe(s.subj, c.add)
		require.NoError(t, err, "the rogue's own server takes any subscription")
		require.NoError(t, sub.SetPendingLimits(-1, -1))
	}
	require.NoError(t, rogue.Conn.Flush())
	raw := dialRawLeaf(t, e.addrA, e.ca.ClientTLS(t, e.bCert, e.bKey), "op-b", atkPassB, "raw-op-b", false)
	for _, s := range atkSubjects {
		raw.write(t, "LS+ "+s.subj)
	}
	raw.sync(t)

	// Where did the interest go? The hub's view of op-b's leaf connections.
	hubSubs := map[string][]string{}
	waitFor(t, 5*time.Second, func() error {
		for _, name := range []string{"rogue-op-b", "raw-op-b"} {
			l := e.leafConn(t, name)
			if l == nil {
				return fmt.Errorf("no leaf connection %s at A", name)
			}
			hubSubs[name] = l.Subs
		}
		if !slices.Contains(hubSubs["rogue-op-b"], ">") {
			return fmt.Errorf("rogue's interest not at A yet: %v", hubSubs["rogue-op-b"])
		}
		return nil
	})

	fid := e.stir(t)
	// The positive control: A's fault on vpn-acme is exported to op-b, and
	// both leaves see it.
	waitFor(t, 10*time.Second, func() error {
		if !rogue.has(fid) || got[">"].allowed() == 0 || got["an.link.>"].allowed() == 0 {
			return fmt.Errorf("op-b has not received A's exported fault %s", fid)
		}
		if !slices.ContainsFunc(raw.delivered(), func(s string) bool { return strings.HasPrefix(s, "an.link.op-a.op-a.fault.vpn-acme.") }) {
			return fmt.Errorf("the raw leaf has not received A's exported fault: %q", raw.snapshot())
		}
		return nil
	})
	time.Sleep(atkQuiet)

	t.Run("export policy is all op-b gets", func(t *testing.T) {
		for _, ev := range rogue.received() {
			k, _ := signal.SourceOrigin(ev.Source)
			assert.Equal(t, "op-a", k)
			assert.Equal(t, "net.anfed.fault.v1", ev.Type, "id %s", ev.ID)
			assert.Equal(t, "vpn-acme", ev.Service(), "id %s", ev.ID)
		}
	})
	for _, s := range atkSubjects {
		t.Run("subscribe "+s.subj, func(t *testing.T) {
			c := got[s.subj]
			assert.Empty(t, c.leaked(), "%s (%s) leaked to op-b's rogue leaf", s.subj, s.what)
			var rawLeaks []string
			for _, subj := range raw.delivered() {
				if !atkAllowedForB(subj) {
					rawLeaks = append(rawLeaks, subj)
				}
			}
			assert.Empty(t, rawLeaks, "leaked to op-b's raw leaf")
			// Which way was it refused? A real nats-server spoke applies the
			// permissions A sent in INFO and forwards an LS+ only for a
			// subject that can match what it may receive (canSubscribe, with
			// ReverseMatch for wildcards); A registers any wildcard LS+ and
			// filters each message at delivery (deliverMsg → pubAllowed on
			// the swapped permissions).
			atHub := slices.Contains(hubSubs["rogue-op-b"], s.subj)
			wantAtHub := slices.Contains([]string{">", "an.link.>", "an.ack.>"}, s.subj)
			assert.Equal(t, wantAtHub, atHub, "rogue's interest in %s registered at A", s.subj)
			if atHub {
				t.Logf("%s: forwarded by the rogue's server; A filters at delivery: %d message(s), all in op-b's space", s.subj, c.allowed())
			} else {
				t.Logf("%s: never left the rogue's server (INFO permissions); nothing delivered", s.subj)
			}
			assert.Contains(t, hubSubs["raw-op-b"], s.subj, "a raw wildcard LS+ is registered at A and filtered at delivery")
			e.opCFlows(t)
		})
	}
	t.Run("raw leaf with wildcard interest stays connected", func(t *testing.T) {
		assert.False(t, raw.isClosed(0))
		assert.NotContains(t, strings.Join(raw.snapshot(), "\n"), "-ERR")
	})
}

// atkSubjectCount counts what one subscription received.
type atkSubjectCount struct {
	mu   sync.Mutex
	ok   int
	leak []string
}

func (c *atkSubjectCount) add(m *nats.Msg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if atkAllowedForB(m.Subject) {
		c.ok++
		return
	}
	c.leak = append(c.leak, m.Subject)
}

func (c *atkSubjectCount) allowed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok
}

func (c *atkSubjectCount) leaked() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.leak)
}

// ---------------------------------------------------------------------------
// Attacks: signals on the link, and publishing outside op-b's space.

// TestAttackSignals: op-b sends bad signals on its own link space — each is
// refused by A's receiver with a reason, answered, counted, dead-lettered,
// logged — and publishes outside its space, which NATS refuses; then it
// replays and floods.
func TestAttackSignals(t *testing.T) {
	// The import rate is set so that, under -race on 2 cores, the limiter
	// binds before the CPU does: A checks a few hundred signals a second
	// there (the default, 1000/s, is for production builds).
	const rate = 100
	e := newAtkEnv(t, func(c *config.Config) {
		c.Peers[0].Import.MaxRate, c.Peers[0].Import.MaxBurst = rate, rate
	})
	rogue := e.startRogueB(t)
	fid := e.stir(t)
	waitFor(t, 10*time.Second, func() error {
		if !rogue.has(fid) {
			return fmt.Errorf("op-b has not received A's exported fault %s", fid)
		}
		return nil
	})

	bSignal, signB, signed := e.bSignal, e.signB, e.signedB
	attacks := e.badSignals(t, rogue)
	for i, at := range attacks {
		t.Run(at.name, func(t *testing.T) {
			id := fmt.Sprintf("b-bad-%d", i)
			subj, body := at.build(t, id)
			mark, before, dl := e.log.mark(), e.obs.rejections("op-b", at.reason), e.dlq.count(string(at.reason))
			held := streamMsgs(t, e.a, store.KeyHeldStream, store.KeyHeldPrefix+".op-b")
			ans := rogue.send(t, subj, body)
			// 2. refused with a reason: the answer, the count per peer and
			// reason, and the dead letter with the reason.
			assert.Equal(t, signal.StatusRejected, ans.Status)
			assert.Equal(t, string(at.reason), ans.Reason, "error: %s", ans.Error)
			assert.NotEmpty(t, ans.Error, "the answer says what was wrong")
			t.Logf("answer: %s: %s", ans.Reason, ans.Error)
			waitFor(t, 5*time.Second, func() error {
				if n := e.obs.rejections("op-b", at.reason); n != before+1 {
					return fmt.Errorf("op-b/%s counted %d times, want %d", at.reason, n, before+1)
				}
				if at.reason == reject.KeyHeld {
					// Held in place of a dead letter.
					if n := streamMsgs(t, e.a, store.KeyHeldStream, store.KeyHeldPrefix+".op-b"); n != held+1 {
						return fmt.Errorf("%d signals of op-b held for want of a key, want %d", n, held+1)
					}
					return nil
				}
				if e.dlq.count(string(at.reason)) != dl+1 {
					return fmt.Errorf("no dead letter on an.dlq.op-b.%s", at.reason)
				}
				return nil
			})
			// 3. logged with peer=op-b and the reason.
			e.requireRefusalLogged(t, mark, at.reason)
			// 4. op-c's traffic flows; 1. nothing of it reached A's consumers.
			e.opCFlows(t)
			assert.Zero(t, e.fromB.count(id))
			assert.Zero(t, e.fromC.count(id))
		})
	}

	// Publishing outside op-b's space: the rogue's own server applies the
	// publish permissions A sent in INFO, so nothing crosses the link
	// (A's counters of the connection do not move) and A has nothing to
	// answer, refuse or log. TestAttackPermissionViolation sends the same
	// through a raw leaf, which A itself refuses.
	genuineC := congestion("op-c", "c-stolen-1")
	signAs(t, "op-c", genuineC)
	genuineC.Path = []string{"op-c", "op-b"}
	pubAttacks := []struct{ name, subj string }{
		{"a genuine op-c signal on an.link.op-b.op-c (another origin, transit off)", atkLinkSubject("op-b", genuineC, "congestion")},
		{"op-c's own link subject an.link.op-c.op-c", atkLinkSubject("op-c", genuineC, "congestion")},
		{"A's intake an.pub", subject.IntakePrefix},
		{"A's signal subject an.sig", "an.sig.op-b.congestion.vpn-acme.ic-paris-1"},
		{"A's store subject an.store", "an.store.op-b.congestion.vpn-acme.ic-paris-1"},
		{"the JetStream API", "$JS.API.STREAM.INFO.ANFED_SIGNALS"},
		{"a key-value bucket", "$KV.attack.k"},
	}
	for _, at := range pubAttacks {
		t.Run("publish to "+at.name, func(t *testing.T) {
			mark := e.log.mark()
			conn := e.leafConn(t, "rogue-op-b")
			require.NotNil(t, conn)
			crossed := rogue.crossed(t, e)
			before := atkRejections(e.obs)
			_, err := rogue.Conn.Request(at.subj, genuineC.Encode(), 500*time.Millisecond)
			require.Error(t, err, "nobody may answer op-b on %s", at.subj)
			assert.True(t, errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout), "%v", err)
			t.Logf("%s: %v", at.subj, err)
			after := e.leafConn(t, "rogue-op-b")
			require.NotNil(t, after, "the rogue's link stays up")
			assert.Equal(t, conn.ID, after.ID, "same connection: not cut")
			assert.Equal(t, crossed, rogue.crossed(t, e), "the message never crossed the link")
			assert.Equal(t, before, atkRejections(e.obs), "A's receiver saw nothing")
			e.requireNoNATSLine(t, mark, "Violation")
			e.opCFlows(t)
			assert.Zero(t, e.fromC.count(genuineC.ID))
		})
	}

	t.Run("replay: the same accepted signal again", func(t *testing.T) {
		subj, body := signed(t, bSignal("b-replay-1"))
		ans := rogue.send(t, subj, body)
		require.Equal(t, signal.StatusAccepted, ans.Status, "%+v", ans)
		mark, before := e.log.mark(), e.obs.rejections("op-b", reject.Duplicate)
		for range 3 {
			ans = rogue.send(t, subj, body)
			assert.Equal(t, signal.StatusDuplicate, ans.Status, "%+v", ans)
		}
		waitFor(t, 5*time.Second, func() error {
			if n := e.obs.rejections("op-b", reject.Duplicate); n != before+3 {
				return fmt.Errorf("op-b/duplicate counted %d, want %d", n, before+3)
			}
			return nil
		})
		e.opCFlows(t)
		assert.Equal(t, 1, e.fromB.count("b-replay-1"), "delivered once")
		e.requireRefusalLogged(t, mark, reject.Duplicate)
	})

	t.Run("flood: 20,000 signals as fast as possible", func(t *testing.T) {
		const total, pool = 20000, 500
		bodies := make([][]byte, pool)
		for i := range bodies {
			bodies[i] = signB(t, bSignal(fmt.Sprintf("b-flood-%d", i))).Encode()
		}
		subj := atkLinkSubject("op-b", bSignal("x"), "congestion")
		mark, limited0 := e.log.mark(), e.obs.rejections("op-b", reject.RateLimited)

		answers := &atkAnswers{byReason: map[string]int{}}
		sub, err := rogue.Conn.Subscribe("an.ack.op-b.flood.*", answers.add)
		require.NoError(t, err)
		require.NoError(t, sub.SetPendingLimits(-1, -1))
		require.NoError(t, rogue.Conn.Flush())

		// op-c keeps publishing during the flood; its latency is measured
		// from its producer's publish to A's local consumer.
		stop := make(chan struct{})
		var (
			lmu  sync.Mutex
			sent = map[string]time.Time{}
			wg   sync.WaitGroup
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(25 * time.Millisecond):
				}
				id := fmt.Sprintf("c-during-flood-%d", i)
				at := time.Now()
				m, err := e.pubC.Request(subject.IntakePrefix, congestion("op-c", id).Encode(), 5*time.Second)
				if err != nil {
					continue
				}
				if a, err := signal.ParseAnswer(m.Data); err == nil && a.OK() {
					lmu.Lock()
					sent[id] = at
					lmu.Unlock()
				}
			}
		}()

		start := time.Now()
		for i := range total {
			m := &nats.Msg{Subject: subj, Reply: fmt.Sprintf("an.ack.op-b.flood.%d", i), Data: bodies[i%pool]}
			require.NoError(t, rogue.Conn.PublishMsg(m))
		}
		require.NoError(t, rogue.Conn.Flush())
		sentIn := time.Since(start)
		waitFor(t, 60*time.Second, func() error {
			if n := answers.total(); n < total {
				return fmt.Errorf("A answered %d of %d flood signals", n, total)
			}
			return nil
		})
		took := time.Since(start)
		// Keep op-c going a little past the flood, then stop.
		time.Sleep(200 * time.Millisecond)
		close(stop)
		wg.Wait()

		// A stayed up and its link with op-c too.
		assert.True(t, e.a.Server().Running())
		assert.True(t, e.a.LinkUp("op-c"))
		assert.True(t, publish(t, e.local, faultEvent("op-a", "a-after-flood")).OK(), "A's intake still answers")

		byReason := answers.snapshot()
		limited := byReason["rejected/"+string(reject.RateLimited)]
		admitted := byReason[signal.StatusAccepted] + byReason[signal.StatusDuplicate]
		t.Logf("flood: %d signals sent in %v, all answered in %v: %v", total, sentIn, took, byReason)
		assert.Equal(t, total, limited+admitted, "only accepted, duplicate or rate-limited: %v", byReason)
		assert.Greater(t, limited, total/2, "most of the flood is refused as rate-limited")
		assert.LessOrEqual(t, admitted, rate+int(float64(rate)*took.Seconds())+rate, "admitted within the import rate")
		waitFor(t, 5*time.Second, func() error {
			if n := e.obs.rejections("op-b", reject.RateLimited) - limited0; n != limited {
				return fmt.Errorf("op-b/rate-limited counted %d, answered %d", n, limited)
			}
			return nil
		})
		e.requireRefusalLogged(t, mark, reject.RateLimited)

		// op-c's latency during the flood.
		var lats []time.Duration
		waitFor(t, 10*time.Second, func() error {
			lats = lats[:0]
			lmu.Lock()
			defer lmu.Unlock()
			for id, at := range sent {
				got, ok := e.fromC.arrived(id)
				if !ok {
					return fmt.Errorf("op-c's %s sent during the flood has not arrived", id)
				}
				lats = append(lats, got.Sub(at))
			}
			return nil
		})
		require.NotEmpty(t, lats)
		p50, p99 := atkPercentile(lats, 0.50), atkPercentile(lats, 0.99)
		t.Logf("op-c during the flood: %d signals, latency p50=%v p99=%v max=%v", len(lats), p50, p99, atkPercentile(lats, 1))
		assert.Less(t, p99, 3*time.Second, "op-c's latency stays bounded during op-b's flood")
		e.opCFlows(t)
	})
}

// atkBadSignal is a signal op-b crafts to be refused with reason.
type atkBadSignal struct {
	name   string
	reason reject.Reason
	build  func(t *testing.T, id string) (subj string, body []byte)
}

// bSignal is a congestion signal of op-b's, sent by op-b, unsigned.
func (e *atkEnv) bSignal(id string) *signal.Event {
	ev := congestion("op-b", id)
	ev.Path = []string{"op-b"}
	return ev
}

// signB signs ev with op-b's real key.
func (e *atkEnv) signB(t *testing.T, ev *signal.Event) *signal.Event {
	require.NoError(t, e.signerB.Sign(ev))
	return ev
}

// signedB signs ev as op-b and returns its link subject and body.
func (e *atkEnv) signedB(t *testing.T, ev *signal.Event) (string, []byte) {
	e.signB(t, ev)
	return atkLinkSubject("op-b", ev, "congestion"), ev.Encode()
}

// badSignals are the signals op-b crafts to be refused, each with the
// reason A gives, durable (TestAttackSignals) or telemetry
// (TestAttackTelemetryRefusedAsSignals). rogue supplies A's own signals.
func (e *atkEnv) badSignals(t *testing.T, rogue *atkRogue) []atkBadSignal {
	bSignal, signB, signed := e.bSignal, e.signB, e.signedB
	otherKey, err := origin.NewSigningKey()
	require.NoError(t, err)
	forger, err := origin.NewSigner(otherKey)
	require.NoError(t, err)

	return []atkBadSignal{
		// Signed by a key pinned for no one: it may be op-b's next key,
		// so it is held (ANFED_KEYHELD) rather than dead-lettered, and
		// checked again when the pins change
		// (TestKeyChangeHeldThenReleasedInOrder).
		{"forged signature: a key that is not op-b's pinned key", reject.KeyHeld, func(t *testing.T, id string) (string, []byte) {
			ev := bSignal(id)
			require.NoError(t, forger.Sign(ev))
			return atkLinkSubject("op-b", ev, "congestion"), ev.Encode()
		}},
		{"forged signature claiming op-b's key id", reject.BadSignature, func(t *testing.T, id string) (string, []byte) {
			ev := bSignal(id)
			require.NoError(t, forger.Sign(ev))
			atkSetKeyID(t, ev, pub(t, "op-b"))
			return atkLinkSubject("op-b", ev, "congestion"), ev.Encode()
		}},
		{"signature lifted from A's own signal", reject.BadSignature, func(t *testing.T, id string) (string, []byte) {
			evs := rogue.received()
			require.NotEmpty(t, evs)
			ev := evs[0] // signed by op-a
			ev.ID, ev.Origin, ev.Source, ev.Path = id, "op-b", "anfed://op-b/assurance", []string{"op-b"}
			return atkLinkSubject("op-b", ev, "fault"), ev.Encode()
		}},
		{"missing signature", reject.BadSignature, func(t *testing.T, id string) (string, []byte) {
			ev := signB(t, bSignal(id))
			ev.DSSEMaterial, ev.SignedExtAttrs = "", ""
			return atkLinkSubject("op-b", ev, "congestion"), ev.Encode()
		}},
		{"stale signature: a signed attribute changed after signing", reject.BadSignature, func(t *testing.T, id string) (string, []byte) {
			ev := signB(t, bSignal(id))
			ev.State = signal.Cleared
			return atkLinkSubject("op-b", ev, "congestion"), ev.Encode()
		}},
		{"stale signature: data changed after signing", reject.BadSignature, func(t *testing.T, id string) (string, []byte) {
			ev := signB(t, bSignal(id))
			ev.Data = json.RawMessage(strings.Replace(string(ev.Data), "97.5", "12.5", 1))
			return atkLinkSubject("op-b", ev, "congestion"), ev.Encode()
		}},
		{"stale signature: a signed attribute taken out of signedextattrs", reject.BadSignature, func(t *testing.T, id string) (string, []byte) {
			ev := signB(t, bSignal(id))
			ev.SignedExtAttrs = strings.Replace(ev.SignedExtAttrs, "anfedstate,", "", 1)
			return atkLinkSubject("op-b", ev, "congestion"), ev.Encode()
		}},
		{"expired condition: expirytime in the past", reject.Expired, func(t *testing.T, id string) (string, []byte) {
			ev := bSignal(id)
			ev.ExpiryTime = time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
			return signed(t, ev)
		}},
		{"origin op-c in the event, on op-b's own subject, signed by op-b", reject.BadSignature, func(t *testing.T, id string) (string, []byte) {
			ev := congestion("op-c", id)
			ev.Path = []string{"op-c", "op-b"}
			signB(t, ev)
			return atkLinkSubject("op-b", &signal.Event{Origin: "op-b", Subject: ev.Subject}, "congestion"), ev.Encode()
		}},
		{"origin op-a (A itself) in the event, on op-b's own subject, signed by op-b", reject.BadSignature, func(t *testing.T, id string) (string, []byte) {
			ev := congestion("op-a", id)
			ev.Path = []string{"op-b"}
			signB(t, ev)
			return atkLinkSubject("op-b", &signal.Event{Origin: "op-b", Subject: ev.Subject}, "congestion"), ev.Encode()
		}},
		{"invalid UTF-8 in the id", reject.Malformed, func(t *testing.T, id string) (string, []byte) {
			subj, body := signed(t, bSignal(id))
			return subj, bytes.Replace(body, []byte(`"`+id+`"`), []byte(`"`+id+"\xff\xfe"+`"`), 1)
		}},
		{"invalid UTF-8 in the signed data", reject.Malformed, func(t *testing.T, id string) (string, []byte) {
			ev := bSignal(id)
			ev.Data = json.RawMessage(strings.Replace(string(ev.Data), "ic-paris-1", "ic-paris-1\xff", 1))
			return signed(t, ev)
		}},
		{"a genuine op-c signal relayed on op-b's own subject (subject mismatch)", reject.BadAttribute, func(t *testing.T, id string) (string, []byte) {
			ev := congestion("op-c", id)
			signAs(t, "op-c", ev) // op-b got it from its own peering with op-c
			ev.Path = []string{"op-c", "op-b"}
			return atkLinkSubject("op-b", &signal.Event{Origin: "op-b", Subject: ev.Subject}, "congestion"), ev.Encode()
		}},
		{"source names op-c (dedup key of op-c's signals)", reject.WrongOrigin, func(t *testing.T, id string) (string, []byte) {
			ev := bSignal(id)
			ev.Source = "anfed://op-c/assurance"
			return signed(t, ev)
		}},
		{"oversized payload (> 64 KiB)", reject.Oversized, func(t *testing.T, id string) (string, []byte) {
			ev := bSignal(id)
			ev.Extensions = map[string]any{"padding": strings.Repeat("x", 65<<10)}
			return signed(t, ev)
		}},
		{"malformed JSON", reject.Malformed, func(t *testing.T, id string) (string, []byte) {
			return atkLinkSubject("op-b", bSignal(id), "congestion"), []byte(`{"specversion":"1.0","id":"` + id + `",`)
		}},
		{"schema-invalid data", reject.SchemaInvalid, func(t *testing.T, id string) (string, []byte) {
			ev := bSignal(id)
			ev.Data = json.RawMessage(`{"link":{"id":"ic-paris-1"},"utilisationPercent":"very high"}`)
			return signed(t, ev)
		}},
		{"unknown type", reject.UnknownType, func(t *testing.T, id string) (string, []byte) {
			ev := bSignal(id)
			ev.Type = "net.anfed.bogus.v1"
			signB(t, ev)
			return atkLinkSubject("op-b", ev, "bogus"), ev.Encode()
		}},
		{"looping path: op-a on the path", reject.Loop, func(t *testing.T, id string) (string, []byte) {
			ev := bSignal(id)
			ev.Path = []string{"op-a", "op-b"}
			return signed(t, ev)
		}},
		{"A's own signal sent back on op-b's subject, op-a stripped from the unsigned path", reject.BadAttribute, func(t *testing.T, id string) (string, []byte) {
			evs := rogue.received()
			require.NotEmpty(t, evs)
			ev := evs[0] // genuine, signed by op-a; its truthful subject an.link.op-b.op-a.… is outside op-b's permissions
			ev.Path = []string{"op-b"}
			return atkLinkSubject("op-b", &signal.Event{Origin: "op-b", Subject: ev.Subject}, "fault"), ev.Encode()
		}},
	}
}

// atkAnswers counts the answers to the flood.
type atkAnswers struct {
	mu       sync.Mutex
	n        int
	byReason map[string]int
}

func (a *atkAnswers) add(m *nats.Msg) {
	ans, err := signal.ParseAnswer(m.Data)
	k := "unparsable"
	if err == nil {
		k = ans.Status
		if ans.Reason != "" {
			k += "/" + ans.Reason
		}
	}
	a.mu.Lock()
	a.n++
	a.byReason[k]++
	a.mu.Unlock()
}

func (a *atkAnswers) total() int { a.mu.Lock(); defer a.mu.Unlock(); return a.n }

func (a *atkAnswers) snapshot() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := map[string]int{}
	for k, v := range a.byReason {
		m[k] = v
	}
	return m
}

// atkRejections is a copy of the tally's rejections.
func atkRejections(t *tally) map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := map[string]int{}
	for k, v := range t.rejected {
		m[k] = v
	}
	return m
}

func atkPercentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(i, 0)]
}

// atkSetKeyID rewrites the key id of ev's DSSE signature.
func atkSetKeyID(t *testing.T, ev *signal.Event, keyID string) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(ev.DSSEMaterial)
	require.NoError(t, err)
	var env map[string]any
	require.NoError(t, json.Unmarshal(raw, &env))
	sigs, _ := env["signatures"].([]any)
	require.NotEmpty(t, sigs)
	sigs[0].(map[string]any)["keyid"] = keyID
	b, err := json.Marshal(env)
	require.NoError(t, err)
	ev.DSSEMaterial = base64.StdEncoding.EncodeToString(b)
}

// ---------------------------------------------------------------------------
// Attacks: getting a link at all.

// TestAttackConnect: op-b's credentials without TLS, with a wrong password,
// with a certificate from another CA or none, after the peering expired,
// after op-b was removed from the policy. None gets a link; op-c's does.
func TestAttackConnect(t *testing.T) {
	e := newAtkEnv(t, nil)
	other := natstest.NewCA(t)
	otherCert, otherKey := other.Issue(t, "op-b")

	t.Run("control: op-b's real credentials and certificate link up", func(t *testing.T) {
		r := natstest.StartRogueLeafTLS(t, e.leafURL(), "op-b", atkPassB, e.ca.ClientTLS(t, e.bCert, e.bKey))
		assert.True(t, e.a.LinkUp("op-b"))
		r.Server.Shutdown()
		waitFor(t, 10*time.Second, func() error {
			if e.a.LinkUp("op-b") {
				return fmt.Errorf("op-b still linked")
			}
			return nil
		})
	})

	refused := []struct {
		name, url, password string
		tls                 *tls.Config
		log                 string // what A's log says
		attributable        bool   // A knows the peer is op-b
	}{
		// A nats-server dialler without TLS is forced into TLS by A's INFO
		// (tls_required), then refuses A's certificate: it has no CA.
		{"no TLS: a nats-server leaf without TLS configured", "nats-leaf://" + e.addrA, atkPassB, nil, "remote error: tls: bad certificate", false},
		{"wrong password", e.leafURL(), "guessed-password", e.ca.ClientTLS(t, e.bCert, e.bKey), "authentication error", true},
		{"client certificate from another CA", e.leafURL(), atkPassB, e.ca.ClientTLS(t, otherCert, otherKey), "certificate signed by unknown authority", false},
		{"no client certificate", e.leafURL(), atkPassB, e.ca.ClientTLS(t, "", ""), "didn't provide a certificate", false},
	}
	// Not in parallel with the others: A's line for it is generic.
	t.Run("no TLS: the leaf protocol in clear text", func(t *testing.T) {
		mark := e.log.mark()
		ans := natstest.PlainLeafConnect(t, e.addrA, "op-b", atkPassB, 2*time.Second)
		assert.Contains(t, ans.Info, `"tls_required":true`)
		assert.True(t, ans.Closed, "A hangs up")
		assert.NotContains(t, string(ans.Rest), "PONG")
		assert.False(t, e.a.LinkUp("op-b"))
		e.requireNATSLogged(t, mark, "TLS Handshake Failure", false)
		e.opCFlows(t)
	})
	t.Run("refused", func(t *testing.T) {
		for _, at := range refused {
			t.Run(at.name, func(t *testing.T) {
				t.Parallel()
				mark := e.log.mark()
				r := natstest.DialRogueLeaf(t, at.url, "op-b", at.password, at.tls)
				e.requireBStaysDown(t, r, 1500*time.Millisecond)
				for _, l := range r.Log() {
					if strings.Contains(l, "closed") || strings.Contains(l, "rror") {
						t.Logf("the rogue's server logged: %s", l)
						break
					}
				}
				e.requireNATSLogged(t, mark, at.log, at.attributable)
				e.opCFlows(t)
			})
		}
	})

	// A rogue with everything right keeps dialling through the restarts.
	rogue := natstest.StartRogueLeafTLS(t, e.leafURL(), "op-b", atkPassB, e.ca.ClientTLS(t, e.bCert, e.bKey))
	require.True(t, e.a.LinkUp("op-b"))

	t.Run("revoked: op-b removed from the policy, A restarted", func(t *testing.T) {
		cfg := *e.cfgA
		cfg.Peers = slices.DeleteFunc(slices.Clone(cfg.Peers), func(p config.Peer) bool { return p.ID == "op-b" })
		mark := e.log.mark()
		e.restartA(t, &cfg)
		e.requireBStaysDown(t, rogue, 1500*time.Millisecond)
		// A no longer knows op-b: its log names the refused user, which is
		// all it can say.
		e.requireNATSLogged(t, mark, "authentication error", false)
		e.opCFlows(t)
	})
	t.Run("expired peering: op-b's entry expired a minute ago", func(t *testing.T) {
		cfg := *e.cfgA
		cfg.Peers = append([]config.Peer{{
			ID: "op-b", Accept: &config.Accept{User: "op-b", Password: atkPassB},
			Export:     config.ExportPolicy{Classes: []string{"fault"}, Services: []string{"vpn-acme"}},
			Import:     config.ImportPolicy{Classes: []string{"*"}},
			SigningKey: pub(t, "op-b"),
			Expires:    new(time.Now().Add(-time.Minute)),
		}}, e.cfgA.Peers...)
		mark := e.log.mark()
		e.restartA(t, &cfg)
		e.requireBStaysDown(t, rogue, 1500*time.Millisecond)
		// A no longer knows op-b: its log names the refused user, which is
		// all it can say.
		e.requireNATSLogged(t, mark, "authentication error", false)
		e.opCFlows(t)
	})
}

// requireBStaysDown requires that r never links (and was refused: its
// server saw a connection closed) and that A never has op-b up, for d.
func (e *atkEnv) requireBStaysDown(t *testing.T, r *natstest.RogueLeaf, d time.Duration) {
	t.Helper()
	var up atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(15 * time.Millisecond) {
			if e.a.LinkUp("op-b") {
				up.Store(true)
			}
		}
	}()
	// The target is the rogue's own server: A has op-c's leaf.
	r.RequireStaysDown(t, r.Server, d)
	<-done
	assert.False(t, up.Load(), "op-b's link came up at A")
}

// ---------------------------------------------------------------------------
// The permission-violation hazard.

// TestAttackPermissionViolation: a raw leaf-protocol speaker with op-b's
// real credentials and certificate publishes and subscribes outside its
// permissions. A closes THAT connection (NATS's leaf permission violation),
// op-c's link and traffic are unaffected, and nothing crosses. A real
// nats-server spoke — what an anfed node runs — never triggers it.
func TestAttackPermissionViolation(t *testing.T) {
	e := newAtkEnv(t, nil)
	bTLS := e.ca.ClientTLS(t, e.bCert, e.bKey)
	genuineC := congestion("op-c", "c-stolen-2")
	signAs(t, "op-c", genuineC)
	genuineC.Path = []string{"op-c", "op-b"}

	// op-c's leaf connection must survive every violation of op-b's.
	cConn := func() uint64 {
		ls := e.leafConns(t, natsconf.PeerAccount("op-c"))
		require.Len(t, ls, 1)
		return ls[0].ID
	}
	cID := cConn()

	t.Run("control: the raw leaf works inside its permissions", func(t *testing.T) {
		raw := dialRawLeaf(t, e.addrA, bTLS, "op-b", atkPassB, "raw-op-b", false)
		raw.write(t, "LS+ an.ack.op-b.>")
		raw.sync(t)
		waitFor(t, 5*time.Second, func() error {
			raw.lmsg(t, subject.Probe("op-b"), "an.ack.op-b.raw.1", nil)
			raw.sync(t)
			if !slices.Contains(raw.delivered(), "an.ack.op-b.raw.1") {
				s := raw.snapshot()
				return fmt.Errorf("no answer to the raw probe: %q", s[1:])
			}
			return nil
		})
	})

	violations := []struct {
		name, proto, subj string
		body              []byte
		log               string
	}{
		{"publish a genuine op-c signal on an.link.op-b.op-c", "LMSG", atkLinkSubject("op-b", genuineC, "congestion"), genuineC.Encode(), "Publish Violation"},
		{"publish on op-c's link subject an.link.op-c.op-c", "LMSG", atkLinkSubject("op-c", genuineC, "congestion"), genuineC.Encode(), "Publish Violation"},
		{"publish to A's intake an.pub", "LMSG", subject.IntakePrefix, genuineC.Encode(), "Publish Violation"},
		{"publish to the JetStream API", "LMSG", "$JS.API.INFO", nil, "Publish Violation"},
		{"publish to the system account's user info", "LMSG", "$SYS.REQ.USER.INFO", nil, "Publish Violation"},
		{"subscribe to a literal JetStream API subject", "LS+", "$JS.API.INFO", nil, "Subscription Violation"},
		{"subscribe to a literal signal subject of A", "LS+", "an.sig.op-a.fault.vpn-acme.ic-paris-1", nil, "Subscription Violation"},
		{"subscribe to a literal subject of op-c's sending space", "LS+", "an.link.op-c.op-c.congestion.vpn-acme.ic-paris-1", nil, "Subscription Violation"},
	}
	for _, at := range violations {
		t.Run(at.name, func(t *testing.T) {
			e.waitBGone(t) // op-b may hold one connection at a time
			raw := dialRawLeaf(t, e.addrA, bTLS, "op-b", atkPassB, "raw-op-b", false)
			mark, before := e.log.mark(), atkRejections(e.obs)
			if at.proto == "LMSG" {
				raw.lmsg(t, at.subj, "an.ack.op-b.raw.2", at.body)
			} else {
				raw.write(t, "LS+ "+at.subj)
			}
			// A closes THIS connection, telling it why.
			require.True(t, raw.isClosed(5*time.Second), "A keeps a leaf that violated its permissions: %q", raw.snapshot())
			errLine := raw.waitLine(t, time.Second, func(l string) bool { return strings.HasPrefix(l, "-ERR") })
			assert.Contains(t, errLine, "Permissions Violation")
			assert.Contains(t, errLine, at.subj)
			e.requireNATSLogged(t, mark, at.log, true)
			// Nothing crossed, op-c is unaffected.
			assert.Equal(t, before, atkRejections(e.obs), "A's receiver saw nothing")
			assert.Equal(t, cID, cConn(), "op-c's leaf connection is the same one")
			e.opCFlows(t)
			assert.Zero(t, e.fromC.count(genuineC.ID))
			// No lockout at A: the violation is detected on A's accepting
			// side, where nats-server sets no reconnect delay (the 30 s of
			// leafNodeReconnectAfterPermViolation applies only on a side
			// that solicits). The violator may come straight back.
			e.waitBGone(t)
			again := dialRawLeaf(t, e.addrA, bTLS, "op-b", atkPassB, "raw-op-b", false)
			again.sync(t)
		})
	}

	t.Run("raw leaf declaring itself a hub (is_hub)", func(t *testing.T) {
		e.waitBGone(t)
		mark, before := e.log.mark(), atkRejections(e.obs)
		raw := startRawLeaf(t, e.addrA, bTLS, "op-b", atkPassB, "raw-hub-op-b", true)
		if raw.pongOrClose(5 * time.Second) {
			if conn := e.leafConn(t, "raw-hub-op-b"); conn != nil {
				// A believed the dialler: it took the spoke role on this
				// connection (LeafInfo.IsSpoke).
				t.Logf("A is the spoke on this connection: %v", conn.IsSpoke)
			}
			_ = raw.tryWrite("LS+ an.ack.op-b.>", "LS+ $JS.API.INFO", "LS+ an.sig.>",
				fmt.Sprintf("LMSG %s + an.ack.op-b.raw.3 anfed %d", atkLinkSubject("op-b", genuineC, "congestion"), len(genuineC.Encode())),
				string(genuineC.Encode()), "LMSG $JS.API.INFO + an.ack.op-b.raw.4 0", "", "PING")
			time.Sleep(atkQuiet)
		}
		t.Logf("A closed the connection: %v; the connection read %q", raw.isClosed(0), raw.snapshot()[1:])
		// Nothing crossed, nothing leaked, op-c is unaffected.
		assert.Equal(t, before, atkRejections(e.obs), "A's receiver saw nothing")
		assert.Zero(t, e.fromC.count(genuineC.ID))
		if conn := e.leafConn(t, "raw-hub-op-b"); conn != nil {
			assert.NotContains(t, conn.Subs, "$JS.API.INFO", "the literal subscription is not registered")
		}
		for _, subj := range raw.delivered() {
			assert.True(t, atkAllowedForB(subj), "leaked: %s", subj)
		}
		e.opCFlows(t)
		assert.Equal(t, cID, cConn())
		// On a connection where A is the spoke, the server drops these
		// violations silently (leafPermViolation is a no-op for spokes);
		// the node sees the flipped role within its 250 ms watch, logs it
		// with the peer and disconnects the rogue.
		got := e.log.wait(2*time.Second, mark, func(m map[string]any) bool {
			for _, v := range m {
				if s, ok := v.(string); ok && (strings.Contains(s, "Violation") || strings.Contains(s, "an.link.op-b.op-c.") || strings.Contains(s, "$JS.API.INFO") || strings.Contains(s, "hub")) {
					return true
				}
			}
			return false
		})
		if len(got) == 0 {
			t.Errorf("FINDING: a raw leaf of op-b that declares itself a hub (CONNECT is_hub:true) makes A the spoke on that connection: " +
				"A drops its permission violations without -ERR, without closing the connection and without any log line")
		}
	})

	t.Run("a real nats-server spoke never triggers it", func(t *testing.T) {
		e.waitBGone(t)
		rogue := e.startRogueB(t)
		conn := e.leafConn(t, "rogue-op-b")
		require.NotNil(t, conn)
		crossed := rogue.crossed(t, e)
		mark, before := e.log.mark(), atkRejections(e.obs)
		for range 100 {
			require.NoError(t, rogue.Conn.Publish(atkLinkSubject("op-b", genuineC, "congestion"), genuineC.Encode()))
			require.NoError(t, rogue.Conn.Publish("$JS.API.INFO", nil))
		}
		require.NoError(t, rogue.Conn.Flush())
		time.Sleep(atkQuiet)
		after := e.leafConn(t, "rogue-op-b")
		require.NotNil(t, after, "the link stays up")
		assert.Equal(t, conn.ID, after.ID, "same connection")
		assert.Equal(t, crossed, rogue.crossed(t, e), "the spoke filtered everything with the permissions A sent in INFO")
		assert.Equal(t, before, atkRejections(e.obs))
		e.requireNoNATSLine(t, mark, "Violation")
		e.opCFlows(t)
	})
}
