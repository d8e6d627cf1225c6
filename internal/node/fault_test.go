package node_test

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
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
	a := baseConfig(t, "op-a")
	a.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	a.Peers = []config.Peer{{
		ID: "op-b", Accept: &config.Accept{User: "op-b", Password: "secret-b-123"},
		Export: config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}}, SigningKey: pub(t, "op-b"),
	}}
	na = startNode(t, a)
	proxy = natstest.StartProxy(t, na.LeafURL()[len("nats-leaf://"):])
	b := baseConfig(t, "op-b")
	b.Peers = []config.Peer{{
		ID: "op-a", Dial: &config.Dial{URL: "nats-leaf://" + proxy.Addr(), User: "op-b", Password: "secret-b-123"},
		Import: config.ImportPolicy{Classes: []string{"*"}, MaxRate: 100000}, SigningKey: pub(t, "op-a"),
	}}
	for _, e := range editB {
		e(b)
	}
	nb = startNode(t, b)
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

func runLinkCut(t *testing.T, cut time.Duration) {
	na, nb, proxy := linked(t)
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	cb, err := nb.Connect()
	require.NoError(t, err)
	defer cb.Close()
	led := newLedger()
	sub, err := cb.Subscribe("an.sig.op-a.>", led.add)
	require.NoError(t, err)
	require.NoError(t, sub.SetPendingLimits(-1, -1))
	require.NoError(t, cb.Flush())

	const rate = 2000
	stop := make(chan struct{})
	done := stream(t, pa, 4, rate, stop)
	time.Sleep(time.Second) // a second of steady stream before the cut
	proxy.Cut()
	waitFor(t, 5*time.Second, func() error {
		if nb.LinkUp("op-a") {
			return fmt.Errorf("link still up")
		}
		return nil
	})
	for i := 0; i < int(cut/(500*time.Millisecond)); i++ {
		time.Sleep(500 * time.Millisecond)
		bl, _ := na.Backlog(context.Background(), "op-b")
		t.Logf("during cut: received %d, backlog %d, link a=%v b=%v", led.count(), bl, na.LinkUp("op-b"), nb.LinkUp("op-a"))
	}
	backlog, err := na.Backlog(context.Background(), "op-b")
	require.NoError(t, err)
	receivedAtRestore := led.count()
	proxy.Restore()
	restored := time.Now()
	// Drained: B has everything that waited at A when the link came back.
	waitFor(t, 30*time.Second, func() error {
		if led.count() < receivedAtRestore+int(backlog) {
			return fmt.Errorf("received %d of %d", led.count(), receivedAtRestore+int(backlog))
		}
		return nil
	})
	drain := time.Since(restored)
	time.Sleep(time.Second) // the stream goes on after the drain
	close(stop)
	accepted := done()
	waitFor(t, 30*time.Second, func() error {
		if led.count() < len(accepted) {
			return fmt.Errorf("received %d of %d", led.count(), len(accepted))
		}
		return nil
	})
	led.mu.Lock()
	defer led.mu.Unlock()
	lost, dups := 0, 0
	for _, k := range accepted {
		switch led.seen[k] {
		case 0:
			lost++
		case 1:
		default:
			dups++
		}
	}
	t.Logf("cut %v at %d signals/s: sent %d, received %d, lost %d, duplicates %d, order violations %d; backlog at restore %d drained in %v",
		cut, rate, len(accepted), led.n, lost, dups, len(led.order), backlog, drain.Round(time.Millisecond))
	assert.Zero(t, lost)
	assert.Zero(t, dups)
	assert.Empty(t, led.order)
	assert.Equal(t, len(accepted), led.n, "nothing delivered that was not accepted")
	assert.Positive(t, backlog, "the cut held signals back")
	// The target is 2 s on an idle machine; CI shares two cores
	// with the race detector, so the bound here is looser, and the
	// measured drain time is logged above.
	assert.Less(t, drain, 10*time.Second, "backlog drained soon after restore")
}

func TestLinkCut3s(t *testing.T) { runLinkCut(t, 3*time.Second) }

func TestLinkCut30s(t *testing.T) {
	if !*longFaults {
		t.Skip("long: go test ./internal/node -run LinkCut30s -anfed.long (task fault)")
	}
	runLinkCut(t, 30*time.Second)
}
