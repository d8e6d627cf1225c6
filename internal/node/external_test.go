package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/outbound"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
)

// externalConfig is op-a beside a NATS cluster, with R3 streams.
func externalConfig(t *testing.T) *config.Config {
	a := baseConfig(t, "op-a")
	a.NATS.Client.Listen = ""
	a.Storage.Dir = ""
	a.Storage.Replicas = 3
	a.NATS.External = &config.External{CredentialsDir: filepath.Join(t.TempDir(), "creds")}
	a.NATS.Users = []config.User{{Name: "loop", Password: "loop-pass-123"}}
	return a
}

// producer publishes signals of nsrc sources to a node, each source in
// order, one at a time: a signal that is not answered, or answered
// "unavailable", is sent again (same id) until the node answers accepted
// or duplicate; then the next. So per-source order holds by construction,
// and every key it returns was stored.
type producer struct {
	mu       sync.Mutex
	accepted map[string]time.Time // source+" "+id -> when the node answered
	retries  int
}

// retried is how many requests the producer sent again.
func (p *producer) retried() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.retries
}

func produce(t *testing.T, nc *nats.Conn, origin string, nsrc int, every time.Duration, stop <-chan struct{}) (p *producer, wait func()) {
	p = &producer{accepted: map[string]time.Time{}}
	var wg sync.WaitGroup
	for s := range nsrc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(every):
				}
				ev := congestion(origin, fmt.Sprintf("%s-s%d-%d", origin, s, i))
				ev.Source = fmt.Sprintf("anfed://%s/probe-%d", origin, s)
				ev.Sequence = fmt.Sprintf("%020d", i)
				body := ev.Encode()
				for try := 0; ; try++ {
					m, err := nc.Request("an.pub", body, time.Second)
					if err == nil {
						a, perr := signal.ParseAnswer(m.Data)
						if perr == nil && a.OK() {
							p.mu.Lock()
							p.accepted[ev.Key()] = time.Now()
							p.mu.Unlock()
							break
						}
						if a.Reason != "unavailable" {
							t.Errorf("%s refused: %+v %v", ev.Key(), a, perr)
							return
						}
					}
					p.mu.Lock()
					p.retries++
					p.mu.Unlock()
					if try > 200 {
						t.Errorf("%s: not accepted after %d tries: %v", ev.Key(), try, err)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	return p, wg.Wait
}

func (p *producer) keys() map[string]time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]time.Time, len(p.accepted))
	for k, v := range p.accepted {
		out[k] = v
	}
	return out
}

// rate is how many signals a second were accepted over the last d.
func (p *producer) rate(d time.Duration) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	from, n := time.Now().Add(-d), 0
	for _, at := range p.accepted {
		if at.After(from) {
			n++
		}
	}
	return float64(n) / d.Seconds()
}

// timedLedger is a ledger that also notes when each signal arrived.
type timedLedger struct {
	*ledger
	mu sync.Mutex
	at []time.Time
}

func newTimedLedger() *timedLedger { return &timedLedger{ledger: newLedger()} }

// follow subscribes a new ledger to subj on nc, ready once it returns.
func follow(t *testing.T, nc *nats.Conn, subj string) *timedLedger {
	t.Helper()
	l := newTimedLedger()
	_, err := nc.Subscribe(subj, func(m *nats.Msg) { l.add(m.Data) })
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return l
}

// allArrived is nil once each loop's ledger holds every signal the other
// side had accepted: op-b's loop (atB) op-a's (accA), op-a's (atA) op-b's.
func allArrived(atA, atB *timedLedger, accA, accB map[string]time.Time) error {
	if m := atB.missing(accA); len(m) > 0 {
		return fmt.Errorf("%d of op-a's %d signals not at op-b's loop", len(m), len(accA))
	}
	if m := atA.missing(accB); len(m) > 0 {
		return fmt.Errorf("%d of op-b's %d signals not at op-a's loop", len(m), len(accB))
	}
	return nil
}

func (l *timedLedger) add(data []byte) {
	l.ledger.add(&nats.Msg{Data: data})
	l.mu.Lock()
	l.at = append(l.at, time.Now())
	l.mu.Unlock()
}

// rate is how many signals a second arrived over the last d.
func (l *timedLedger) rate(d time.Duration) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	from := time.Now().Add(-d)
	i, _ := slices.BinarySearchFunc(l.at, from, time.Time.Compare)
	return float64(len(l.at)-i) / d.Seconds()
}

// gapAround is the longest time without a delivery around t: how long the
// flow stopped.
func (l *timedLedger) gapAround(t time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var gap time.Duration
	for i := 1; i < len(l.at); i++ {
		if l.at[i].After(t) && l.at[i-1].Before(t.Add(30*time.Second)) {
			if d := l.at[i].Sub(l.at[i-1]); d > gap && !l.at[i-1].Before(t.Add(-time.Second)) {
				gap = d
			}
		}
	}
	return gap
}

// missing lists the accepted keys the ledger has not seen.
func (l *timedLedger) missing(accepted map[string]time.Time) []string {
	l.ledger.mu.Lock()
	defer l.ledger.mu.Unlock()
	var out []string
	for k := range accepted {
		if l.seen[k] == 0 {
			out = append(out, k)
		}
	}
	return out
}

func (l *timedLedger) duplicates() []string {
	l.ledger.mu.Lock()
	defer l.ledger.mu.Unlock()
	var out []string
	for k, n := range l.seen {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s x%d", k, n))
		}
	}
	return out
}

func (l *timedLedger) violations() []string {
	l.ledger.mu.Lock()
	defer l.ledger.mu.Unlock()
	return append([]string(nil), l.order...)
}

// streamLeader is the server that leads stream name, and the cluster's
// meta leader.
func streamLeader(t *testing.T, js jetstream.JetStream, name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil || st.CachedInfo().Cluster == nil {
		return ""
	}
	return st.CachedInfo().Cluster.Leader
}

// clusterAndPeer starts op-b, an embedded node that accepts op-a, and
// returns it with op-a's policy beside a cluster (externalConfig) whose
// every server dials op-b; everything exported and imported both ways.
func clusterAndPeer(t *testing.T) (*node.Node, *config.Config) {
	b := baseConfig(t, "op-b")
	b.Storage.Sync = "2m"
	b.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	b.Peers = []config.Peer{{
		ID: "op-a", Accept: &config.Accept{User: "op-a", Password: "secret-a-123"},
		Export: config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}},
		Import: config.ImportPolicy{Classes: []string{"*"}, MaxRate: 100000}, SigningKey: pub(t, "op-a"),
		// Each of op-a's three servers dials us.
		Limits: config.Limits{MaxConnections: 3},
	}}
	nb := startNode(t, b)
	a := externalConfig(t)
	a.Peers = []config.Peer{{
		ID: "op-b", Dial: &config.Dial{URL: nb.LeafURL(), User: "op-a", Password: "secret-a-123"},
		Export: config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}},
		Import: config.ImportPolicy{Classes: []string{"*"}, MaxRate: 100000}, SigningKey: pub(t, "op-b"),
	}}
	return nb, a
}

// TestExternalCluster runs op-a's node against a real three-server NATS
// cluster (routes, JetStream R3, configured from `anfed natsconf`'s
// output), linked over a real leaf link to op-b's embedded-mode node.
// Signals stream both ways — op-a's producer to op-b's closed loop, op-b's
// producer to op-a's closed loop — while the server that all op-a's
// connections use, and that leads op-a's signal stream, is shut down. Each
// closed loop must get every accepted signal once, in per-source order,
// and the link must carry new signals again.
func TestExternalCluster(t *testing.T) {
	testLogLevel = zerolog.WarnLevel
	defer func() { testLogLevel = zerolog.ErrorLevel }()
	nb, a := clusterAndPeer(t)
	cl := nodetest.StartCluster(t, a, nil)
	start := time.Now()
	// Every connection of the node goes to the first server: the one the
	// test shuts down.
	na := startNode(t, a, node.WithNATSOptions(nats.DontRandomize()))
	t.Logf("op-a started against the cluster in %v", time.Since(start).Round(time.Millisecond))
	waitFor(t, 20*time.Second, func() error {
		if !na.LinkUp("op-b") || !nb.LinkUp("op-a") {
			return fmt.Errorf("link not up")
		}
		return nil
	})
	require.NoError(t, na.Readiness())

	loop, err := nats.Connect(strings.Join(a.NATS.External.URLs, ","), nats.UserInfo("loop", "loop-pass-123"), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond), nats.DontRandomize())
	require.NoError(t, err)
	defer loop.Close()
	js, err := jetstream.New(loop)
	require.NoError(t, err)

	// R3, and led by the first server.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	st, err := js.Stream(ctx, store.SignalStream)
	cancel()
	require.NoError(t, err)
	assert.Equal(t, 3, st.CachedInfo().Config.Replicas)
	victim := cl.Names[0]
	for range 20 {
		if streamLeader(t, js, store.SignalStream) == victim {
			break
		}
		_, _ = loop.Request("$JS.API.STREAM.LEADER.STEPDOWN."+store.SignalStream, nil, 5*time.Second)
		time.Sleep(500 * time.Millisecond)
	}
	leader := streamLeader(t, js, store.SignalStream)
	meta := ""
	for _, s := range cl.Servers() {
		if s.JetStreamIsLeader() {
			meta = s.Name()
		}
	}
	t.Logf("victim %s; %s leader %s; meta leader %s; node on %s", victim, store.SignalStream, leader, meta, na.ClientURL())

	// Closed loops: op-b's on its embedded server, op-a's an ordered
	// JetStream consumer on the cluster.
	atB, atA := newTimedLedger(), newTimedLedger()
	bc, err := nb.Connect()
	require.NoError(t, err)
	defer bc.Close()
	sub, err := bc.Subscribe("an.sig.op-a.>", func(m *nats.Msg) { atB.add(m.Data) })
	require.NoError(t, err)
	require.NoError(t, sub.SetPendingLimits(-1, -1))
	require.NoError(t, bc.Flush())
	cctx, ccancel := context.WithCancel(context.Background())
	defer ccancel()
	oc, err := js.OrderedConsumer(cctx, store.SignalStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"an.sig.op-b.>"}})
	require.NoError(t, err)
	cc, err := oc.Consume(func(m jetstream.Msg) { atA.add(m.Data()) }, jetstream.PullExpiry(2*time.Second))
	require.NoError(t, err)
	defer cc.Stop()

	stop := make(chan struct{})
	pa, waitA := produce(t, loop, "op-a", 4, 20*time.Millisecond, stop)
	pbConn, err := nb.Connect()
	require.NoError(t, err)
	defer pbConn.Close()
	pb, waitB := produce(t, pbConn, "op-b", 4, 20*time.Millisecond, stop)

	waitFor(t, 20*time.Second, func() error {
		if atB.count() < 100 || atA.count() < 100 {
			bl, err := na.Backlog(context.Background(), "op-b")
			return fmt.Errorf("flowing: %d at op-b (op-a accepted %d, %d retries; backlog %d %v), %d at op-a (op-b accepted %d)",
				atB.count(), len(pa.keys()), pa.retried(), bl, err, atA.count(), len(pb.keys()))
		}
		return nil
	})
	killed := time.Now()
	cl.ByName(victim).Shutdown()
	t.Logf("shut down %s with %d signals at op-b's loop and %d at op-a's", victim, atB.count(), atA.count())

	// Recovery: a signal accepted after the shutdown reaches each loop.
	firstAfter := func(p *producer, l *timedLedger) func() error {
		return func() error {
			for k, at := range p.keys() {
				if at.After(killed) && l.missing(map[string]time.Time{k: at}) == nil {
					return nil
				}
			}
			return fmt.Errorf("no signal accepted after the shutdown has crossed yet")
		}
	}
	waitFor(t, 30*time.Second, firstAfter(pa, atB))
	recoverAB := time.Since(killed)
	func() {
		defer func() {
			if t.Failed() {
				in := streamKeys(t, js, "an.sig.op-b.>")
				n := 0
				for k, at := range pb.keys() {
					if at.After(killed) && in[k] > 0 {
						n++
					}
				}
				t.Logf("op-a's stream holds %d of op-b's signals, %d of them accepted after the shutdown; op-a's loop has %d", len(in), n, atA.count())
			}
		}()
		waitFor(t, 30*time.Second, firstAfter(pb, atA))
	}()
	recoverBA := time.Since(killed)
	// Keep streaming on the two servers left.
	waitFor(t, 30*time.Second, func() error {
		for _, p := range []*producer{pa, pb} {
			after := 0
			for _, at := range p.keys() {
				if at.After(killed) {
					after++
				}
			}
			if after < 200 {
				return fmt.Errorf("%d signals accepted after the shutdown", after)
			}
		}
		return nil
	})
	close(stop)
	waitA()
	waitB()

	accA, accB := pa.keys(), pb.keys()
	defer func() {
		if !t.Failed() {
			return
		}
		jb, err := jetstream.New(bc)
		require.NoError(t, err)
		ictx, icancel := context.WithTimeout(context.Background(), 5*time.Second)
		if c, err := js.Consumer(ictx, store.SignalStream, outbound.ConsumerName("op-b")); err == nil {
			ci := c.CachedInfo()
			t.Logf("export consumer: pending %d, ack pending %d, waiting %d, delivered %d, ack floor %d, leader %v",
				ci.NumPending, ci.NumAckPending, ci.NumWaiting, ci.Delivered.Stream, ci.AckFloor.Stream, ci.Cluster)
		} else {
			t.Logf("export consumer: %v", err)
		}
		icancel()
		t.Logf("links up: %v %v", na.LinkUp("op-b"), nb.LinkUp("op-a"))
		inA, inB := streamKeys(t, js, "an.sig.op-a.>"), streamKeys(t, jb, "an.sig.op-a.>")
		for _, k := range atB.missing(accA) {
			t.Logf("missing at op-b's loop: %s accepted at %v (shutdown %v); in op-a's stream %d times, in op-b's %d",
				k, accA[k].Format("15:04:05.000"), killed.Format("15:04:05.000"), inA[k], inB[k])
		}
	}()
	waitFor(t, 40*time.Second, func() error { return allArrived(atA, atB, accA, accB) })
	drained := time.Since(killed)
	assert.Empty(t, atB.duplicates(), "delivered twice to op-b's loop")
	assert.Empty(t, atA.duplicates(), "delivered twice to op-a's loop")
	assert.Empty(t, atB.violations(), "order at op-b's loop")
	assert.Empty(t, atA.violations(), "order at op-a's loop")
	waitFor(t, 20*time.Second, func() error {
		if !na.LinkUp("op-b") || !nb.LinkUp("op-a") {
			return fmt.Errorf("link not up")
		}
		return nil
	})
	require.NoError(t, na.Readiness())
	// An acknowledgement lost with the server leaves its signal pending
	// until the consumer's AckWait redelivers it (the peer then answers
	// duplicate): the backlog is that, not signals waiting.
	bl, err := na.Backlog(context.Background(), "op-b")
	require.NoError(t, err)
	t.Logf("op-a's backlog for op-b after the drain: %d", bl)
	t.Logf("op-a -> op-b: %d signals (%d retries by the producer), flow stopped %v, first post-shutdown signal across after %v",
		len(accA), pa.retries, atB.gapAround(killed).Round(time.Millisecond), recoverAB.Round(time.Millisecond))
	t.Logf("op-b -> op-a: %d signals (%d retries by the producer), flow stopped %v, first post-shutdown signal across after %v",
		len(accB), pb.retries, atA.gapAround(killed).Round(time.Millisecond), recoverBA.Round(time.Millisecond))
	t.Logf("everything delivered %v after the shutdown; node now on %s", drained.Round(time.Millisecond), na.ClientURL())
}

// streamKeys counts the signals under filter in the signal stream, by key.
func streamKeys(t *testing.T, js jetstream.JetStream, filter string) map[string]int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := map[string]int{}
	c, err := js.OrderedConsumer(ctx, store.SignalStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Logf("stream keys: %v", err)
		return out
	}
	for {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return out
		}
		got := 0
		for m := range batch.Messages() {
			got++
			if ev, err := signal.DecodeStructured(m.Data()); err == nil {
				out[ev.Key()]++
			}
		}
		if got == 0 {
			return out
		}
	}
}

// startOne starts one server from conf (its own file, beside anfed.conf,
// the derived configuration of cfg) and points cfg at it.
func startOne(t *testing.T, cfg *config.Config, conf string) {
	t.Helper()
	dir := nodetest.NATSConfDir(t, cfg)
	conf = strings.ReplaceAll(conf, "$DIR", filepath.ToSlash(dir))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "n.conf"), []byte(conf), 0o600))
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "n.conf"))
	require.NoError(t, err)
	srv := natstest.StartServer(t, opts)
	cfg.NATS.External.URLs = []string{srv.ClientURL()}
}

// A node refuses a cluster that lacks what it needs, and says what to fix.
func TestExternalClusterRefuses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		conf     string
		replicas int
		want     string
	}{
		{
			name: "configuration not loaded",
			conf: "listen: 127.0.0.1:-1\njetstream { store_dir: \"$DIR/js\" }\n",
			want: "the cluster refused the node's user of account SYS",
		},
		{
			name: "JetStream off",
			conf: "listen: 127.0.0.1:-1\ninclude \"anfed.conf\"\n",
			want: "JetStream is off on the cluster",
		},
		{
			name:     "fewer servers than replicas",
			conf:     "listen: 127.0.0.1:-1\ninclude \"anfed.conf\"\njetstream { store_dir: \"$DIR/js\" }\n",
			replicas: 3,
			want:     "storage.replicas 3",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := externalConfig(t)
			cfg.Storage.Replicas = tc.replicas
			startOne(t, cfg, tc.conf)
			n := node.New(cfg, node.WithSigningKey(operatorKey(t, "op-a")))
			ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
			defer cancel()
			err := n.Start(ctx)
			n.Stop()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			t.Log(err)
		})
	}

	for name, tc := range map[string]struct{ opsAccount, opsPerms, want string }{
		"user in another account": {"APP", "", `is in account "APP" on the cluster`},
		"permissions not derived": {"OPS", `, permissions: {publish: {deny: ["an.sig.>"]}}`, "has permissions"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := externalConfig(t)
			_, err := natsconf.EnsureSecrets(cfg)
			require.NoError(t, err)
			sec, err := natsconf.LoadSecrets(cfg)
			require.NoError(t, err)
			// Hand-written, not derived.
			conf := fmt.Sprintf("listen: 127.0.0.1:-1\njetstream { store_dir: \"$DIR/js\" }\nsystem_account: SYS\naccounts {\n"+
				"SYS { users: [{nkey: %q, permissions: {publish: {allow: [\"$SYS.REQ.SERVER.PING.LEAFZ\", \"$SYS.REQ.SERVER.*.KICK\", \"$SYS.REQ.USER.INFO\"]}, subscribe: {allow: [\"_INBOX.>\"]}}}] }\n"+
				"%s { jetstream: enabled, users: [{nkey: %q%s}] }\n}\n", sec.Public(natsconf.SysAccount), tc.opsAccount, sec.Public(natsconf.OpsAccount), tc.opsPerms)
			startOne(t, cfg, conf)
			n := node.New(cfg, node.WithSigningKey(operatorKey(t, "op-a")))
			err = n.Start(context.Background())
			n.Stop()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "anfed natsconf --config")
			t.Log(err)
		})
	}
}

// A peer that dials the cluster's leaf listener (derived from
// nats.leafnodes and the peer's accept) is linked, bound to its account
// with its permissions, and signals cross both ways.
func TestExternalClusterAcceptsPeer(t *testing.T) {
	a := externalConfig(t)
	leaf := natstest.FreeAddr(t)
	a.NATS.LeafNodes = &config.Listener{Listen: leaf}
	a.Peers = []config.Peer{{
		ID: "op-b", Accept: &config.Accept{User: "op-b", Password: "secret-b-123"},
		Export: config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}},
		Import: config.ImportPolicy{Classes: []string{"*"}}, SigningKey: pub(t, "op-b"),
	}}
	nodetest.StartCluster(t, a, func(i int, o *server.Options) {
		if i > 0 {
			o.LeafNode.Port = -1 // one host: the others listen elsewhere; op-b dials the first
		}
	})
	na := startNode(t, a)

	b := baseConfig(t, "op-b")
	b.Peers = []config.Peer{{
		ID: "op-a", Dial: &config.Dial{URL: "nats-leaf://" + leaf, User: "op-b", Password: "secret-b-123"},
		Export: config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}},
		Import: config.ImportPolicy{Classes: []string{"*"}}, SigningKey: pub(t, "op-a"),
	}}
	nb := startNode(t, b)
	waitFor(t, 20*time.Second, func() error {
		if !na.LinkUp("op-b") || !nb.LinkUp("op-a") {
			return fmt.Errorf("link not up")
		}
		return nil
	})

	ac, err := na.Connect()
	require.NoError(t, err)
	defer ac.Close()
	atA := follow(t, ac, "an.sig.op-b.>")
	bc, err := nb.Connect()
	require.NoError(t, err)
	defer bc.Close()
	atB := follow(t, bc, "an.sig.op-a.>")

	for i := 1; i <= 20; i++ {
		for _, side := range []struct {
			nc     *nats.Conn
			origin string
		}{{ac, "op-a"}, {bc, "op-b"}} {
			ev := congestion(side.origin, fmt.Sprintf("%s-%d", side.origin, i))
			ev.Sequence = fmt.Sprintf("%020d", i)
			m, err := side.nc.Request("an.pub", ev.Encode(), 10*time.Second)
			require.NoError(t, err)
			ans, err := signal.ParseAnswer(m.Data)
			require.NoError(t, err)
			require.True(t, ans.OK(), "%+v", ans)
		}
	}
	waitFor(t, 20*time.Second, func() error {
		if atA.count() < 20 || atB.count() < 20 {
			return fmt.Errorf("%d at op-a, %d at op-b", atA.count(), atB.count())
		}
		return nil
	})
	assert.Empty(t, atA.duplicates())
	assert.Empty(t, atB.duplicates())
	assert.Empty(t, atA.violations())
	assert.Empty(t, atB.violations())
}
