package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/schemacheck"
)

// The topology is what the node tests build (internal/node: baseConfig,
// linked): op-a accepts op-b's leaf link on loopback and exports every
// class to it; op-b dials and imports every class. Everything listens on
// 127.0.0.1 only; clients connect in process.

const leafPassword = "bench-secret-b-1"

// env is what every topology of one run shares: a storage folder, the
// operators' signing keys, the compiled catalog and a logger.
type env struct {
	dir     string
	keys    map[string]nkeys.KeyPair
	catalog *schemacheck.Catalog
	log     zerolog.Logger
	sync    string
	n       int // storage folders made
	obs     *counter
}

// counter counts what the nodes' pipelines refuse, by node and reason,
// and the signals that crossed as duplicates: a healthy row has none.
type counter struct {
	mu      sync.Mutex
	refused map[string]int // "node/reason" -> count
	dups    int
}

func (c *counter) Accepted(observe.Acceptance) {}

func (c *counter) Crossed(x observe.Crossing) {
	if x.Duplicate {
		c.mu.Lock()
		c.dups++
		c.mu.Unlock()
	}
}

func (c *counter) Rejected(r observe.Rejection) {
	c.mu.Lock()
	c.refused[r.Node+"/"+string(r.Reason)] += int(r.Signals())
	c.mu.Unlock()
}

// take returns what was counted since the last take, as "node/reason=n"
// words, and resets.
func (c *counter) take() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var w []string
	for k, n := range c.refused {
		w = append(w, fmt.Sprintf("%s=%d", k, n))
	}
	if c.dups > 0 {
		w = append(w, fmt.Sprintf("crossed-as-duplicate=%d", c.dups))
	}
	slices.Sort(w)
	c.refused, c.dups = map[string]int{}, 0
	return strings.Join(w, " ")
}

func newEnv(syncPolicy string, log zerolog.Logger) (*env, error) {
	dir, err := os.MkdirTemp("", "anfed-bench-")
	if err != nil {
		return nil, err
	}
	cat, err := schemacheck.Load()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &env{dir: dir, keys: map[string]nkeys.KeyPair{}, catalog: cat, log: log, sync: syncPolicy, obs: &counter{refused: map[string]int{}}}, nil
}

func (e *env) close() { os.RemoveAll(e.dir) }

func (e *env) key(id string) (nkeys.KeyPair, error) {
	if kp, ok := e.keys[id]; ok {
		return kp, nil
	}
	kp, err := origin.NewSigningKey()
	if err != nil {
		return nil, err
	}
	e.keys[id] = kp
	return kp, nil
}

func (e *env) pub(id string) string {
	kp, err := e.key(id)
	if err != nil {
		return ""
	}
	p, _ := kp.PublicKey()
	return p
}

// config is a node's policy as the tests write it, with fresh storage.
func (e *env) config(id string) *config.Config {
	e.n++
	return &config.Config{
		Operator: config.Operator{ID: id},
		Storage: config.Storage{
			Dir:             filepath.Join(e.dir, id+"-"+strconv.Itoa(e.n)),
			MaxAge:          config.Duration(time.Hour),
			MaxBytes:        config.ByteSize(4 << 30),
			DuplicateWindow: config.Duration(2 * time.Minute),
			Sync:            e.sync,
		},
	}
}

// pairConfigs returns op-a (accepting op-b, plus extra peers that accept
// but never connect and whose export excludes the bench's fault signals)
// and op-b (its dial URL filled in once op-a listens).
func (e *env) pairConfigs(extraPeers int) (a, b *config.Config) {
	a = e.config("op-a")
	a.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	a.Peers = []config.Peer{{
		ID: "op-b", Accept: &config.Accept{User: "op-b", Password: leafPassword},
		Export:     config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}},
		SigningKey: e.pub("op-b"),
	}}
	for i := range extraPeers {
		id := fmt.Sprintf("px-%02d", i+1)
		a.Peers = append(a.Peers, config.Peer{
			ID: id, Accept: &config.Accept{User: id, Password: leafPassword},
			Export:     config.ExportPolicy{Classes: []string{"maintenance"}, Services: []string{"*"}},
			SigningKey: e.pub(id),
		})
	}
	b = e.config("op-b")
	b.Peers = []config.Peer{{
		ID: "op-a", Dial: &config.Dial{User: "op-b", Password: leafPassword},
		// The default import rate limit (1,000/s) is a policy bound, not
		// a capacity: lift it to measure what the path can carry.
		Import:     config.ImportPolicy{Classes: []string{"*"}, MaxRate: 1e7, MaxBurst: 1e7},
		SigningKey: e.pub("op-a"),
	}}
	return a, b
}

func (e *env) startNode(ctx context.Context, cfg *config.Config) (*node.Node, error) {
	kp, err := e.key(cfg.Operator.ID)
	if err != nil {
		return nil, err
	}
	n := node.New(cfg, node.WithLogger(e.log), node.WithSigningKey(kp), node.WithCatalog(e.catalog), node.WithObserver(e.obs))
	if err := n.Start(ctx); err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.Operator.ID, err)
	}
	return n, nil
}

// pair is two linked anfed nodes.
type pair struct{ a, b *node.Node }

func (e *env) startPair(ctx context.Context, extraPeers int) (*pair, error) {
	return e.startPairWith(ctx, extraPeers, "")
}

// startPairWith is startPair with op-a's export to op-b in delivery mode
// ("": the default, durable).
func (e *env) startPairWith(ctx context.Context, extraPeers int, delivery string) (*pair, error) {
	return e.startPairEdit(ctx, extraPeers, func(ca, _ *config.Config) { ca.Peers[0].Export.Delivery = delivery })
}

// startPairEdit is startPair with edit applied to both configs.
func (e *env) startPairEdit(ctx context.Context, extraPeers int, edit func(a, b *config.Config)) (*pair, error) {
	ca, cb := e.pairConfigs(extraPeers)
	edit(ca, cb)
	na, err := e.startNode(ctx, ca)
	if err != nil {
		return nil, err
	}
	cb.Peers[0].Dial.URL = na.LeafURL()
	nb, err := e.startNode(ctx, cb)
	if err != nil {
		na.Stop()
		return nil, err
	}
	p := &pair{a: na, b: nb}
	if err := waitUntil(ctx, 15*time.Second, func() bool { return na.LinkUp("op-b") && nb.LinkUp("op-a") }); err != nil {
		p.stop()
		return nil, fmt.Errorf("leaf link op-a <-> op-b: %w", err)
	}
	return p, nil
}

func (p *pair) stop() {
	p.b.Stop()
	p.a.Stop()
}

// solo is one node with no peers (it still signs what it accepts).
func (e *env) startSolo(ctx context.Context) (*node.Node, error) {
	return e.startNode(ctx, e.config("op-a"))
}

// bare is a NATS server running the configuration natsconf derives from a
// node's policy — the same accounts, users, permissions, JetStream and leaf
// link — with no anfed pipeline in it: the ceiling's topology. We hold its
// internal users' keys, so we can connect to a peer account as the node's
// own link sender and receiver do.
type bare struct {
	srv  *server.Server
	opts *server.Options
	sec  natsconf.Secrets
}

func startBare(cfg *config.Config) (*bare, error) { return startBareWith(cfg, nil, nil) }

// startBareWith is startBare with the derived configuration's text and then
// its parsed options changed first (nil: unchanged).
func startBareWith(cfg *config.Config, conf func(string) string, tweak func(*server.Options)) (*bare, error) {
	sec, err := natsconf.NewSecrets(cfg)
	if err != nil {
		return nil, err
	}
	text := natsconf.Generate(cfg, sec)
	if conf != nil {
		text = conf(text)
	}
	opts := &server.Options{}
	if err := opts.ProcessConfigString(text); err != nil {
		return nil, fmt.Errorf("derived NATS configuration: %w", err)
	}
	if tweak != nil {
		tweak(opts)
	}
	opts.NoSigs = true
	opts.DontListen = true
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("bare NATS server not ready after 10s")
	}
	return &bare{srv: srv, opts: opts, sec: sec}, nil
}

func (b *bare) connect(account string) (*nats.Conn, error) {
	return nats.Connect("", nats.InProcessServer(b.srv), nats.Nkey(b.sec.Public(account), b.sec[account].Sign))
}

func (b *bare) leafURL() string {
	// The server writes the port it chose back into its options.
	return fmt.Sprintf("nats-leaf://%s:%d", b.opts.LeafNode.Host, b.opts.LeafNode.Port)
}

func (b *bare) linked(peer string) bool {
	lz, err := b.srv.Leafz(&server.LeafzOptions{Account: natsconf.PeerAccount(peer)})
	return err == nil && lz.NumLeafs > 0
}

func (b *bare) stop() {
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}

// barePair is the ceiling's topology: op-a's and op-b's NATS, linked,
// with the policies they were derived from (the layer rows apply them).
type barePair struct {
	a, b   *bare
	ca, cb *config.Config
}

func (e *env) startBarePair(ctx context.Context) (*barePair, error) {
	return e.startBarePairWith(ctx, startBare)
}

// startBarePairWith is startBarePair with each server started by start.
func (e *env) startBarePairWith(ctx context.Context, start func(*config.Config) (*bare, error)) (*barePair, error) {
	ca, cb := e.pairConfigs(0)
	a, err := start(ca)
	if err != nil {
		return nil, err
	}
	cb.Peers[0].Dial.URL = a.leafURL()
	b, err := start(cb)
	if err != nil {
		a.stop()
		return nil, err
	}
	p := &barePair{a: a, b: b, ca: ca, cb: cb}
	if err := waitUntil(ctx, 15*time.Second, func() bool { return a.linked("op-b") && b.linked("op-a") }); err != nil {
		p.stop()
		return nil, fmt.Errorf("bare leaf link: %w", err)
	}
	return p, nil
}

// linkConns connects to the accounts bound to the link: op-a's for op-b
// (where op-a publishes towards op-b) and op-b's for op-a (where it
// arrives).
func (p *barePair) linkConns() (pc, sc *nats.Conn, err error) {
	if pc, err = p.a.connect(natsconf.PeerAccount("op-b")); err != nil {
		return nil, nil, err
	}
	if sc, err = p.b.connect(natsconf.PeerAccount("op-a")); err != nil {
		pc.Close()
		return nil, nil, err
	}
	return pc, sc, nil
}

func (p *barePair) stop() {
	p.b.stop()
	p.a.stop()
}

func waitUntil(ctx context.Context, d time.Duration, ok func() bool) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not after %v", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
