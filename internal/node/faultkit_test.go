package node_test

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/signal"
)

var longFaults = flag.Bool("anfed.long", false, "run the long fault tests (30 s link cut)")

// linked starts A (accepting B) and B, whose leaf link to A passes through
// a proxy the test controls.
func linked(t *testing.T, editB ...func(*config.Config)) (na, nb *node.Node, proxy *natstest.Proxy) {
	t.Helper()
	return linkedEdit(t, nil, editB...)
}

// linkedEdit is linked with editA applied to op-a's config.
func linkedEdit(t *testing.T, editA func(*config.Config), editB ...func(*config.Config)) (na, nb *node.Node, proxy *natstest.Proxy) {
	t.Helper()
	return linkedWith(t, nil, editA, editB...)
}

// linkedWith is linkedEdit with options for op-a's node.
func linkedWith(t *testing.T, optsA []node.Option, editA func(*config.Config), editB ...func(*config.Config)) (na, nb *node.Node, proxy *natstest.Proxy) {
	t.Helper()
	return linkedOpts(t, optsA, nil, editA, editB...)
}

// linkedOpts is linkedWith with options for op-b's node too.
func linkedOpts(t *testing.T, optsA, optsB []node.Option, editA func(*config.Config), editB ...func(*config.Config)) (na, nb *node.Node, proxy *natstest.Proxy) {
	t.Helper()
	a := baseConfig(t, "op-a")
	// These tests stream 2,000 signals/s: more than a store that flushes
	// every write to this disk takes (see docs/durability.md). Link cuts
	// and process kills do not depend on the flush policy; power loss does.
	a.Storage.Sync = "2m"
	// A 30 s cut at 2,000/s holds ~60,000 signals: keep them all.
	a.Storage.MaxBytes = config.ByteSize(1 << 30)
	a.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	a.Peers = []config.Peer{{
		ID: "op-b", Accept: &config.Accept{User: "op-b", Password: "secret-b-123"},
		Export: config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}}, SigningKey: pub(t, "op-b"),
	}}
	if editA != nil {
		editA(a)
	}
	na = startNode(t, a, optsA...)
	proxy = natstest.StartProxy(t, na.LeafURL()[len("nats-leaf://"):])
	b := baseConfig(t, "op-b")
	b.Storage.Sync = "2m"
	b.Peers = []config.Peer{{
		ID: "op-a", Dial: &config.Dial{URL: "nats-leaf://" + proxy.Addr(), User: "op-b", Password: "secret-b-123"},
		Import: config.ImportPolicy{Classes: []string{"*"}, MaxRate: 100000}, SigningKey: pub(t, "op-a"),
	}}
	for _, e := range editB {
		e(b)
	}
	nb = startNode(t, b, optsB...)
	waitFor(t, 10*time.Second, func() error {
		if !na.LinkUp("op-b") || !nb.LinkUp("op-a") {
			return fmt.Errorf("link not up")
		}
		return nil
	})
	return na, nb, proxy
}

// ledger records, per source, what the closed loop at B received, in order.
type ledger struct {
	mu    sync.Mutex
	seen  map[string]int // source+id -> times received
	last  map[string]int // source -> last sequence received
	order []string       // order violations
	n     int
}

func newLedger() *ledger { return &ledger{seen: map[string]int{}, last: map[string]int{}} }

func (l *ledger) add(m *nats.Msg) {
	ev, err := signal.DecodeStructured(m.Data)
	if err != nil {
		return
	}
	seq, _ := strconv.Atoi(ev.Sequence)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	l.seen[ev.Key()]++
	if seq <= l.last[ev.Source] {
		l.order = append(l.order, fmt.Sprintf("%s: %d after %d", ev.Source, seq, l.last[ev.Source]))
	}
	l.last[ev.Source] = seq
}

func (l *ledger) count() int { l.mu.Lock(); defer l.mu.Unlock(); return l.n }

// stream publishes from nsrc sources at rate signals/s in total until stop,
// each source in order with its own sequence, without waiting for each
// answer, and returns the keys the node accepted.
func stream(t *testing.T, nc *nats.Conn, nsrc, rate int, stop <-chan struct{}) func() []string {
	var mu sync.Mutex
	var accepted []string
	var wg sync.WaitGroup
	answers := make(chan *nats.Msg, 1<<16)
	sub, err := nc.ChanSubscribe("probe.answer.>", answers)
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	var sent sync.WaitGroup
	var sentN, answeredN int
	for s := range nsrc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / time.Duration(rate/nsrc))
			defer tick.Stop()
			for i := 1; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				ev := congestion("op-a", fmt.Sprintf("s%d-%d", s, i))
				ev.Source = fmt.Sprintf("anfed://op-a/probe-%d", s)
				ev.Sequence = fmt.Sprintf("%020d", i)
				reply := "probe.answer." + strconv.Itoa(s) + "." + ev.ID
				if err := nc.PublishRequest("an.pub", reply, ev.Encode()); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				mu.Lock()
				sentN++
				mu.Unlock()
			}
		}()
	}
	sent.Add(1)
	go func() {
		defer sent.Done()
		for m := range answers {
			a, err := signal.ParseAnswer(m.Data)
			mu.Lock()
			answeredN++
			if err != nil || !a.OK() {
				t.Errorf("not accepted: %v %v", a, err)
			} else {
				id := m.Subject[len("probe.answer."):]
				id = id[strings.IndexByte(id, '.')+1:]
				s := strings.TrimSuffix(id[:strings.IndexByte(id, '-')], "")
				accepted = append(accepted, "anfed://op-a/probe-"+s[1:]+" "+id)
			}
			mu.Unlock()
		}
	}()
	return func() []string {
		wg.Wait()
		waitFor(t, 30*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if answeredN < sentN {
				return fmt.Errorf("%d of %d answered", answeredN, sentN)
			}
			return nil
		})
		_ = sub.Unsubscribe()
		close(answers)
		sent.Wait()
		mu.Lock()
		defer mu.Unlock()
		return accepted
	}
}
