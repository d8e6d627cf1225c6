package node_test

// Attacks on the resources a peer holds in node A, with op-b's real
// credentials on A's real mutual-TLS leaf listener (the topology of
// attack_test.go): subscriptions past the peer's limit, a message past
// its payload limit, a second connection beside the live link, and a
// certificate from A's CA that does not name op-b. nats-server refuses
// each from the limits natsconf derives from op-b's policy entry
// (peers[].limits, accept.cert_name); op-c's link and traffic are
// unaffected. docs/security.md records what they showed.

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/subject"
)

// heapInUse is the process's live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestAttackSubscriptionFlood: a raw leaf with op-b's credentials opens
// 100,000 subscriptions, each a literal subject op-b may receive (so no
// permission violation cuts it short). A holds at most op-b's
// max_subscriptions (the default, 1,000) on the connection and refuses the
// rest with -ERR; A's heap grows by a bounded amount; the connection and
// op-c's link stay up.
func TestAttackSubscriptionFlood(t *testing.T) {
	const flood = 100_000
	e := newAtkEnv(t, nil)
	cID := e.leafConns(t, natsconf.PeerAccount("op-c"))[0].ID
	raw := dialRawLeaf(t, e.addrA, e.ca.ClientTLS(t, e.bCert, e.bKey), "op-b", atkPassB, "raw-op-b", false)
	raw.sync(t)
	acc, err := e.a.Server().LookupAccount(natsconf.PeerAccount("op-b"))
	require.NoError(t, err)
	subsBefore, heapBefore := acc.TotalSubs(), heapInUse()
	mark := e.log.mark()

	start := time.Now()
	const batch = 1000
	for i := 0; i < flood; i += batch {
		lines := make([]string, 0, batch)
		for j := i; j < i+batch; j++ {
			lines = append(lines, fmt.Sprintf("LS+ an.ack.op-b.flood.%d", j))
		}
		raw.write(t, lines...)
	}
	raw.syncWithin(t, time.Minute) // 100,000 refusals take a while under -race

	took := time.Since(start)
	raw.mu.Lock()
	raw.lines = nil // what follows is read fresh
	raw.mu.Unlock()
	subsAfter, heapAfter := acc.TotalSubs(), heapInUse()
	grown := int64(heapAfter) - int64(heapBefore)
	raw.mu.Lock()
	errs := raw.errs
	raw.mu.Unlock()
	t.Logf("%d LS+ in %v: op-b's account holds %d subscriptions (before: %d), A answered %d -ERR, heap in use %+.1f MB",
		flood, took.Round(time.Millisecond), subsAfter, subsBefore, errs, float64(grown)/(1<<20))

	l := e.leafConn(t, "raw-op-b")
	require.NotNil(t, l, "A keeps the connection: it refuses subscriptions, not the link")
	assert.LessOrEqual(t, int(l.NumSubs), config.DefaultMaxSubscriptions, "op-b's connection holds at most max_subscriptions")
	assert.LessOrEqual(t, subsAfter-subsBefore, config.DefaultMaxSubscriptions, "op-b's account grew by at most max_subscriptions")
	assert.GreaterOrEqual(t, errs, flood-config.DefaultMaxSubscriptions, "every refused subscription is answered -ERR")
	assert.NotZero(t, e.a.LimitRefusals()["op-b"][node.LimitSubscriptions], "counted for op-b")
	// 100,000 subscriptions held cost ~50 MB (300,000 took a node from
	// 157 to 300 MB); 1,000 cost well under 1 MB. 16 MB leaves room for
	// the rest of the node's garbage between the two measurements.
	assert.Less(t, grown, int64(16<<20), "A's heap grew by %d bytes", grown)
	e.requireNATSLogged(t, mark, "maximum subscriptions exceeded", true)

	// The connection still works, within its limit, and op-c is unaffected.
	raw.lmsg(t, subject.Probe("op-b"), "an.ack.op-b.flood.1", nil)
	waitFor(t, 5*time.Second, func() error {
		if !slices.Contains(raw.delivered(), "an.ack.op-b.flood.1") {
			return fmt.Errorf("no answer to a probe on a subscription held before the limit")
		}
		return nil
	})
	assert.Equal(t, cID, e.leafConns(t, natsconf.PeerAccount("op-c"))[0].ID, "op-c's leaf connection is the same one")
	e.opCFlows(t)
}

// TestAttackOversizedPayload: a raw leaf with op-b's credentials sends
// one 512 KiB message on its own link subject, over op-b's max_payload
// (the default, 128 KiB) and under NATS's own 1 MiB. A's server closes
// the connection before A's receiver reads a byte of it; op-c is
// unaffected, and a message within the limit still gets an answer on a
// new connection.
func TestAttackOversizedPayload(t *testing.T) {
	e := newAtkEnv(t, nil)
	cID := e.leafConns(t, natsconf.PeerAccount("op-c"))[0].ID
	bTLS := e.ca.ClientTLS(t, e.bCert, e.bKey)
	raw := dialRawLeaf(t, e.addrA, bTLS, "op-b", atkPassB, "raw-op-b", false)
	raw.write(t, "LS+ an.ack.op-b.>")
	raw.sync(t)
	mark, before := e.log.mark(), atkRejections(e.obs)

	body := make([]byte, 512<<10)
	for i := range body {
		body[i] = 'x'
	}
	_ = raw.tryWrite(fmt.Sprintf("LMSG an.link.op-b.op-b.fault.vpn-acme.r1 + an.ack.op-b.big anfed %d", len(body)), string(body))
	require.True(t, raw.isClosed(5*time.Second), "A keeps a connection that sent %d bytes: %q", len(body), raw.snapshot())
	errLine := raw.waitLine(t, time.Second, func(l string) bool { return strings.HasPrefix(l, "-ERR") })
	t.Logf("A answered %s and closed the connection", errLine)
	assert.Contains(t, errLine, "Maximum Payload")
	e.requireNATSLogged(t, mark, "maximum payload exceeded", true)
	assert.Equal(t, uint64(1), e.a.LimitRefusals()["op-b"][node.LimitPayload], "counted for op-b")
	assert.Equal(t, before, atkRejections(e.obs), "A's receiver never saw the message")
	assert.Zero(t, e.dlq.count("oversized"), "nothing of it was dead-lettered")
	assert.Equal(t, cID, e.leafConns(t, natsconf.PeerAccount("op-c"))[0].ID, "op-c's leaf connection is the same one")
	e.opCFlows(t)

	// Within the limit: the receiver answers (here: oversized for the
	// signal bound, 64 KiB), on a new connection.
	again := dialRawLeaf(t, e.addrA, bTLS, "op-b", atkPassB, "raw-op-b", false)
	again.write(t, "LS+ an.ack.op-b.>")
	again.sync(t)
	mid := make([]byte, 96<<10)
	for i := range mid {
		mid[i] = 'x'
	}
	again.lmsg(t, "an.link.op-b.op-b.fault.vpn-acme.r1", "an.ack.op-b.mid", mid)
	waitFor(t, 5*time.Second, func() error {
		if !slices.Contains(again.delivered(), "an.ack.op-b.mid") {
			return fmt.Errorf("no answer to a 96 KiB message: %q", again.snapshot())
		}
		return nil
	})
	assert.False(t, again.isClosed(0))
}

// TestAttackSecondConnection: op-b's link is up (a rogue leaf with op-b's
// real credentials and certificate, receiving A's exports). A second leaf
// with the same credentials and certificate dials A: A refuses it, the
// established link stays the same connection and keeps receiving, and the
// newcomer gets nothing of op-b's stream.
func TestAttackSecondConnection(t *testing.T) {
	e := newAtkEnv(t, nil)
	first := e.startRogueB(t)
	conn := e.leafConn(t, "rogue-op-b")
	require.NotNil(t, conn)
	bTLS := e.ca.ClientTLS(t, e.bCert, e.bKey)

	t.Run("a second nats-server leaf with op-b's credentials", func(t *testing.T) {
		mark := e.log.mark()
		second := natstest.DialRogueLeaf(t, e.leafURL(), "op-b", atkPassB, bTLS)
		got := newAtkArrivals()
		_, err := second.Conn.Subscribe("an.link.op-a.>", got.add)
		require.NoError(t, err)
		require.NoError(t, second.Conn.Flush())
		// Traffic for op-b while the newcomer tries: the first receives
		// it, the second nothing.
		fid := e.stir(t)
		waitFor(t, 10*time.Second, func() error {
			if !first.has(fid) {
				return fmt.Errorf("the established link has not received A's fault %s", fid)
			}
			return nil
		})
		second.RequireStaysDown(t, second.Server, 1500*time.Millisecond)
		assert.Zero(t, got.count(fid), "the second connection received op-b's stream")
		after := e.leafConn(t, "rogue-op-b")
		require.NotNil(t, after, "the established link stays up")
		assert.Equal(t, conn.ID, after.ID, "the established connection is kept")
		assert.Len(t, e.leafConns(t, natsconf.PeerAccount("op-b")), 1)
		for _, l := range second.Log() {
			if strings.Contains(l, "rror") || strings.Contains(l, "closed") {
				t.Logf("the newcomer's server logged: %s", l)
				break
			}
		}
		e.requireNATSLogged(t, mark, "maximum account active connections exceeded", true)
		assert.NotZero(t, e.a.LimitRefusals()["op-b"][node.LimitConnections], "counted for op-b")
		e.opCFlows(t)
	})

	t.Run("a raw leaf with op-b's credentials", func(t *testing.T) {
		raw := startRawLeaf(t, e.addrA, bTLS, "op-b", atkPassB, "raw-op-b", false)
		raw.write(t, "LS+ an.link.op-a.>", "PING")
		up := raw.pongOrClose(3 * time.Second)
		fid := e.stir(t)
		waitFor(t, 10*time.Second, func() error {
			if !first.has(fid) {
				return fmt.Errorf("the established link has not received A's fault %s", fid)
			}
			return nil
		})
		time.Sleep(atkQuiet)
		assert.False(t, up, "A answered the second connection's CONNECT: %q", raw.snapshot())
		assert.True(t, raw.isClosed(time.Second), "A keeps a second connection of op-b")
		assert.Empty(t, raw.delivered(), "the second connection received op-b's stream")
		after := e.leafConn(t, "rogue-op-b")
		require.NotNil(t, after)
		assert.Equal(t, conn.ID, after.ID)
		e.opCFlows(t)
	})

	t.Run("the link comes back once the established one is gone", func(t *testing.T) {
		first.Server.Shutdown()
		r := natstest.StartRogueLeafTLS(t, e.leafURL(), "op-b", atkPassB, bTLS)
		assert.True(t, e.a.LinkUp("op-b"))
		r.Server.Shutdown()
	})
}

// TestAttackCertificateNotBound: a client certificate signed by A's own
// CA that names another peer (op-c), or nobody A knows, with op-b's real
// password: refused. The one naming op-b links up.
func TestAttackCertificateNotBound(t *testing.T) {
	e := newAtkEnv(t, nil)
	refused := []struct{ name, cn string }{
		{"names another peer, op-c", "op-c"},
		{"names nobody A knows", "intruder"},
	}
	for _, at := range refused {
		t.Run("refused: certificate from A's CA "+at.name, func(t *testing.T) {
			cert, key := e.ca.Issue(t, at.cn)
			mark := e.log.mark()
			r := natstest.DialRogueLeaf(t, e.leafURL(), "op-b", atkPassB, e.ca.ClientTLS(t, cert, key))
			e.requireBStaysDown(t, r, 1500*time.Millisecond)
			e.requireNATSLogged(t, mark, "authentication error", false)
			e.opCFlows(t)
		})
	}
	t.Run("control: the certificate naming op-b links up", func(t *testing.T) {
		r := natstest.StartRogueLeafTLS(t, e.leafURL(), "op-b", atkPassB, e.ca.ClientTLS(t, e.bCert, e.bKey))
		assert.True(t, e.a.LinkUp("op-b"))
		r.Server.Shutdown()
	})
}

// TestAttackConnectionBurst: 16 raw leaves with op-b's credentials and
// certificate connect at once, five times, while op-b has no link: A
// never holds more than one of them (nats-server checks the account's
// count and adds the connection without a window between them).
func TestAttackConnectionBurst(t *testing.T) {
	e := newAtkEnv(t, nil)
	bTLS := e.ca.ClientTLS(t, e.bCert, e.bKey)
	most := 0
	for range 5 {
		var wg sync.WaitGroup
		raws := make([]*atkRawLeaf, 16)
		for i := range raws {
			wg.Add(1)
			go func() {
				defer wg.Done()
				raws[i] = startRawLeaf(t, e.addrA, bTLS, "op-b", atkPassB, "raw-op-b", false)
			}()
		}
		wg.Wait()
		for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			most = max(most, len(e.leafConns(t, natsconf.PeerAccount("op-b"))))
		}
		// Every refused one is closed by A; one stays open.
		open := func() int {
			n := 0
			for _, r := range raws {
				if !r.closedNow() {
					n++
				}
			}
			return n
		}
		waitFor(t, 10*time.Second, func() error {
			if n := open(); n != 1 {
				return fmt.Errorf("%d of op-b's connections open", n)
			}
			return nil
		})
		time.Sleep(atkQuiet)
		assert.Equal(t, 1, open(), "connections A kept open")
		for _, r := range raws {
			r.conn.Close()
		}
		e.waitBGone(t)
	}
	t.Logf("most op-b connections A held at once: %d", most)
	assert.Equal(t, 1, most)
	e.opCFlows(t)
}
