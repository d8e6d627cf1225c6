// Package node is one anfed node: an embedded NATS server configured from
// the policy file, plus the pipelines that move signals through it —
// intake, store, export to each peer over its leaf link, and import from it.
// A node follows one lifecycle: New, Start, Stop.
package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/audit"
	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/coordination"
	"github.com/anfed/anfed/internal/expiry"
	"github.com/anfed/anfed/internal/inbound"
	"github.com/anfed/anfed/internal/inbound/replay"
	"github.com/anfed/anfed/internal/inspect"
	"github.com/anfed/anfed/internal/intake"
	"github.com/anfed/anfed/internal/lease"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/otlp"
	"github.com/anfed/anfed/internal/outbound"
	"github.com/anfed/anfed/internal/outbound/exportpolicy"
	"github.com/anfed/anfed/internal/schemacheck"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// Option configures a Node.
type Option func(*Node)

// WithLogger sets the node's logger.
func WithLogger(l zerolog.Logger) Option { return func(n *Node) { n.log = l } }

// WithObserver adds an observer of the node's pipelines.
func WithObserver(o observe.Observer) Option {
	return func(n *Node) { n.obs = append(n.obs, o) }
}

// WithSigningKey sets the operator's signing key, in place of the policy's
// operator.signing_key_file.
func WithSigningKey(kp nkeys.KeyPair) Option { return func(n *Node) { n.signingKey = kp } }

// WithCatalog shares a compiled signal catalog between nodes.
func WithCatalog(c *schemacheck.Catalog) Option { return func(n *Node) { n.catalog = c } }

// WithIntents gives the senders the intents we accepted, which
// export.intent_classes reads (internal/intent keeps them).
func WithIntents(v exportpolicy.Intents) Option { return func(n *Node) { n.intents = v } }

// Node is one operator's anfed node.
type Node struct {
	// cfg is the policy in force: Reload replaces it (never edits it).
	cfg     atomic.Pointer[config.Config]
	id      string
	log     zerolog.Logger
	obs     observe.Multi
	catalog *schemacheck.Catalog
	intents exportpolicy.Intents // nil: export.intent_classes sends nothing

	intake     *intake.Intake
	table      *conditions.Table
	signingKey nkeys.KeyPair
	signer     *origin.Signer
	keys       keyRing                      // key rotations: ours and our peers' (rotation.go)
	expiry     atomic.Pointer[expiry.Watch] // replaced by a reload
	deps       inbound.ReceiverDeps

	sec  natsconf.Secrets
	lock *store.DirLock // storage.dir, held from before the server opens it
	srv  *server.Server
	opts *server.Options
	// natsPeers names and counts what the embedded server logs about
	// peers' leaf connections (LimitRefusals).
	natsPeers *leafPeers
	// With nats.external: the options of the connections to the cluster,
	// the system-account connection, and the leaf links it last saw.
	natsOpts []nats.Option
	sys      *nats.Conn
	leafs    clusterLeafs
	ops      *nats.Conn
	// storeConn writes to JetStream; condConn feeds the condition table
	// and announces its changes; extra are the export consumers'.
	storeConn, condConn *nats.Conn
	// feed feeds the condition table from the node's own writes, in
	// process (nil with nats.external).
	feed *condFeed
	// opsAcc tells whether anyone listens to a condition change, or to
	// telemetry, before it is published (in process only).
	opsAcc *server.Account
	// tel hands checked telemetry to the stream senders in process
	// (handTelemetry); nil with nats.external, where they subscribe.
	tel   *outbound.TelemetryFeed
	coord *coordination.Coordinator
	// audit writes this process's chain of the audit trail (nil:
	// audit.off); auditJS reads the trail.
	audit   *audit.Writer
	auditJS jetstream.JetStream
	// otlp exports spans (telemetry.otlp; nil: off). Made at the first
	// Start and closed at Stop.
	otlp *otlp.Exporter
	// extra are the node's other connections (coordination's).
	extra []*nats.Conn
	// mu guards links (Reload adds, rebuilds and removes them) and sec.
	mu sync.RWMutex
	// links are the peers' links by peer id: the link's connection and
	// session, which live as long as the peering, and its pipelines
	// (receiver, export), which a reload that changes the peer's policy
	// rebuilds.
	links map[string]*peerLink
	// stopped keeps the links Stop took down, for the API's counts.
	stopped map[string]*peerLink
	// With nats.external: the links' leases (links.go), this process's
	// name among the operator's, and whether it announces our own
	// conditions' changes.
	leases      *lease.Bucket
	leaseTTL    time.Duration
	leaseEvents func(lease.Event)
	instance    string
	announcer   atomic.Bool
	epoch       string
	store       *store.Store
	reloads     reloadState
	// liveDial: dialled peers whose new credentials wait for their live
	// link's next connection, with the dial the server still has.
	liveDial map[string]*config.Dial
	subs     []*nats.Subscription
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	stopping atomic.Bool
	stopMu   sync.Mutex
	stopStep atomic.Value // string: what Stop is doing
	health   connHealth
	// storeFault is why the store cannot write (nil: it can); storeKick
	// tells watchStore at once.
	storeFault atomic.Pointer[error]
	storeKick  chan struct{}
	probe      struct {
		sync.Mutex
		store, intake probeResult
	}
}

// New returns a node for cfg; Start runs it.
func New(cfg *config.Config, opts ...Option) *Node {
	n := &Node{id: cfg.Operator.ID, log: zerolog.Nop(), links: map[string]*peerLink{},
		health: connHealth{failed: make(chan struct{})}, storeKick: make(chan struct{}, 1)}
	n.cfg.Store(cfg)
	n.stopStep.Store("starting the stop")
	for _, o := range opts {
		o(n)
	}
	if n.instance == "" {
		n.instance = defaultInstance()
	}
	n.log = n.log.With().Str("node", cfg.Operator.ID).Logger()
	return n
}

// ID is the node's operator id.
func (n *Node) ID() string { return n.id }

// Config returns the node's policy in force (Reload replaces it; it is
// never edited in place).
func (n *Node) Config() *config.Config { return n.cfg.Load() }

func (n *Node) config() *config.Config { return n.cfg.Load() }

// Server returns the embedded NATS server (nil before Start).
func (n *Node) Server() *server.Server { return n.srv }

// Start brings the node up: the NATS server, its storage, and the
// pipelines. On error everything started so far is stopped.
func (n *Node) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			n.Stop()
		}
	}()
	if n.catalog == nil {
		if n.catalog, err = schemacheck.Load(); err != nil {
			return fmt.Errorf("load signal catalog: %w", err)
		}
	}
	if err := n.loadKeys(); err != nil {
		return err
	}
	n.expiry.Store(n.watchExpiry())
	n.tickExpiry(time.Now())
	if n.external() {
		if err := n.startExternal(); err != nil {
			return err
		}
	} else {
		if n.config().Storage.Dir != "" {
			if n.lock, err = store.LockDir(n.config().Storage.Dir); err != nil {
				return err
			}
		}
		if err := n.startServer(); err != nil {
			return err
		}
	}
	// Each heavy flow gets its own in-process connection: one
	// connection's lock and pipe shared by intake, the store, the export
	// consumers and the condition table would serialise them all.
	if n.ops, err = n.connectOwn("intake", natsconf.OpsAccount, "anfed-node-ops"); err != nil {
		return err
	}
	// No reconnect buffer on the store's connection: a write made while it
	// is away fails at once (intake answers unavailable; the receiver goes
	// back to it) instead of waiting in the client and landing after the
	// writes lost with the old connection, out of link order.
	if n.storeConn, err = n.connectOwn("store", natsconf.OpsAccount, "anfed-node-store", nats.ReconnectBufSize(-1)); err != nil {
		return err
	}
	if n.condConn, err = n.connectOwn("conditions", natsconf.OpsAccount, "anfed-node-conditions"); err != nil {
		return err
	}
	if n.external() {
		if err := n.checkCluster(ctx); err != nil {
			return err
		}
	} else if acc, err := n.srv.LookupAccount(natsconf.OpsAccount); err == nil {
		n.opsAcc = acc
		n.tel = &outbound.TelemetryFeed{}
	}
	if n.store, err = n.openStore(ctx); err != nil {
		return err
	}
	if !n.external() {
		// Before any write: what is written before startConditions
		// rebuilds the table is held, then applied in order.
		n.feed = newCondFeed(n)
		n.store.SetFeed(n.feed)
	}
	if err := n.restoreKeys(ctx); err != nil {
		return err
	}
	if err := n.startAudit(ctx); err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.watchStore(rctx)
	}()
	if n.external() {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.watchLeafs(rctx)
		}()
	}
	if ep := n.config().Telemetry.OTLPEndpoint(); ep != "" && n.otlp == nil {
		// An observer like the others: the pipelines report, never wait.
		n.otlp = otlp.New(ep, n.ID(), n.log)
		n.obs = append(n.obs, n.otlp)
	}
	insp := inspect.New(n.catalog, 0)
	in := intake.New(intake.Deps{Self: n.ID(), Conn: n.ops, Inspector: insp, Signer: n.signer, Store: n.store, Observer: n.obs, Log: n.log,
		Telemetry: n.handTelemetry})
	in.Start()
	n.intake = in
	n.deps.Inspector, n.deps.Store, n.deps.Observer, n.deps.Held, n.deps.KeyHeld, n.deps.RibInStore = insp, n.store, n.obs, n.store, n.store, n.store
	for _, s := range []string{subject.IntakePrefix, subject.Intake} {
		if err := n.subscribe(n.ops, s, in.Handle); err != nil {
			return err
		}
	}
	// Telemetry (export.delivery: stream): intake's checks, then core
	// NATS to local subscribers and, in process, straight to the stream
	// senders (handTelemetry); never stored.
	for _, s := range []string{subject.TelemetryIntakePrefix, subject.TelemetryIntake} {
		if err := n.subscribe(n.ops, s, in.HandleTelemetry); err != nil {
			return err
		}
	}
	// The store's epoch names it on every link; it is the same for all.
	if n.epoch, err = n.store.Epoch(ctx); err != nil {
		return err
	}
	n.table = conditions.New()
	if n.external() {
		if err := n.openLeases(ctx); err != nil {
			return err
		}
		n.holdAnnouncer(rctx)
	}
	for i := range n.config().Peers {
		p := &n.config().Peers[i]
		if n.external() {
			// Whichever process of the operator holds the peer's lease
			// works the link; this one waits its turn.
			n.holdLink(rctx, p.ID)
			continue
		}
		if err := n.startPeer(ctx, p, nil); err != nil {
			return err
		}
	}
	if err := n.startConditions(ctx, rctx); err != nil {
		return fmt.Errorf("condition table: %w", err)
	}
	if err := n.startCoordination(ctx); err != nil {
		return fmt.Errorf("coordination: %w", err)
	}
	n.log.Info().Str("client", n.ClientURL()).Str("leaf", n.LeafURL()).Int("peers", len(n.config().Peers)).Msg("node started")
	return nil
}

// loadKeys reads our signing key and pins the peers' and origins' keys.
func (n *Node) loadKeys() error {
	if n.signingKey == nil && n.config().Operator.SigningKeyFile != "" {
		kp, err := origin.LoadSigningKey(n.config().Operator.SigningKeyFile)
		if err != nil {
			return err
		}
		n.signingKey = kp
	}
	if n.signingKey == nil && len(n.config().Peers) > 0 {
		return errors.New("operator.signing_key_file is required: peers verify every signal against our signing key (create one with `anfed keys init`)")
	}
	if n.signingKey != nil {
		s, err := origin.NewSigner(n.signingKey)
		if err != nil {
			return err
		}
		n.signer = s
		n.keys.cur = n.signingKey
	}
	v, err := n.verifier(n.config())
	if err != nil {
		return err
	}
	n.deps.Verifier = v
	n.deps.Origins = n.config().MayOriginate()
	n.deps.Replay = replay.New(0)
	return nil
}

// verifier checks signatures against the keys cfg pins.
func (n *Node) verifier(cfg *config.Config) (*origin.Verifier, error) {
	pinned := map[string]string{}
	for _, o := range cfg.Origins {
		pinned[o.ID] = o.SigningKey
	}
	for _, p := range cfg.Peers {
		if p.SigningKey != "" {
			pinned[p.ID] = p.SigningKey
		}
	}
	if n.signer != nil {
		// Our own signals can come back through a loop: they must verify
		// before the loop check refuses them with the right reason.
		pinned[n.ID()] = n.signer.KeyID()
	}
	v, err := origin.NewVerifier(pinned)
	if err != nil {
		return nil, err
	}
	// The key rotations accepted since (rotation.go) hold on top of
	// the policy's pins.
	var peers []string
	for _, p := range cfg.Peers {
		if p.SigningKey != "" {
			peers = append(peers, p.ID)
		}
	}
	n.applyRotations(v, peers)
	return v, nil
}

// SigningKey is the operator's public signing key ("" without one).
func (n *Node) SigningKey() string {
	if n.signer == nil {
		return ""
	}
	return n.signer.KeyID()
}

func (n *Node) startServer() error {
	sec, err := natsconf.NewSecrets(n.config())
	if err != nil {
		return err
	}
	n.sec = sec
	opts, err := n.serverOptions(n.config(), sec)
	if err != nil {
		return err
	}
	if err := natsconf.CheckServerVersion(server.VERSION); err != nil {
		return err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("start NATS server: %w", err)
	}
	peers := &leafPeers{srv: func() *server.Server { return srv }, lids: map[uint64]string{}}
	peers.setUsers(n.config())
	srv.SetLoggerV2(natsLogger{log: n.log.With().Str("component", "nats").Logger(), stopping: &n.stopping, peers: peers, storeFault: n.storeWriteFailed}, false, false, false)
	n.srv, n.opts, n.natsPeers = srv, opts, peers
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		return errors.New("start NATS server: not ready after 10s (is a listen port in use?)")
	}
	return nil
}

// serverOptions are the embedded server's options derived from cfg,
// with the node's users sec.
func (n *Node) serverOptions(cfg *config.Config, sec natsconf.Secrets) (*server.Options, error) {
	opts := &server.Options{}
	if err := opts.ProcessConfigString(natsconf.Generate(cfg, sec)); err != nil {
		return nil, fmt.Errorf("derived NATS configuration: %w", err)
	}
	opts.NoSigs = true
	opts.DontListen = cfg.NATS.Client.Listen == ""
	if err := natsconf.CheckSecurity(opts); err != nil {
		return nil, fmt.Errorf("derived NATS configuration: %w", err)
	}
	return opts, nil
}

// startExternal readies the node to use an existing cluster: its stable
// users from credentials_dir, and the system-account connection that
// checks the cluster and watches the leaf links.
func (n *Node) startExternal() error {
	sec, err := natsconf.LoadSecrets(n.config())
	if err != nil {
		return err
	}
	n.sec = sec
	if n.sys, err = n.dial(natsconf.SysAccount, nats.Name("anfed-node-sys")); err != nil {
		return err
	}
	return nil
}

// connect opens a connection as the node's own user of account:
// in-process to the embedded server, or over TCP to the external cluster.
func (n *Node) connect(account string, opts ...nats.Option) (*nats.Conn, error) {
	if n.external() {
		return n.dial(account, opts...)
	}
	opts = append([]nats.Option{
		nats.InProcessServer(n.srv),
		nats.Nkey(n.sec.Public(account), n.sec[account].Sign),
		nats.MaxReconnects(-1),
		// The server is in this process: when it drops a connection
		// (a kick), it takes it back at once.
		nats.ReconnectWait(50 * time.Millisecond),
		// No write deadline: the connection is a net.Pipe to the
		// server's read loop in this process, where a deadline guards
		// against nothing a remote peer could do, and costs a runtime
		// timer and two allocations per flush (about nine flushes per
		// signal on the cross path). The server closing the connection
		// still ends a blocked write.
		nats.FlusherTimeout(0),
	}, opts...)
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to account %s: %w", account, err)
	}
	return nc, nil
}

// Connect opens an in-process client connection to the operations account,
// for local producers and consumers running in the same process.
func (n *Node) Connect(opts ...nats.Option) (*nats.Conn, error) {
	return n.connect(natsconf.OpsAccount, opts...)
}

func (n *Node) openStore(ctx context.Context) (*store.Store, error) {
	lim := store.Limits{
		MaxAge:          time.Duration(n.config().Storage.MaxAge),
		MaxBytes:        int64(n.config().Storage.MaxBytes),
		DuplicateWindow: time.Duration(n.config().Storage.DuplicateWindow),
		Replicas:        n.config().Storage.Replicas,

		DeadLettersPerReason: n.config().Storage.DeadLettersPerReason,
	}
	if _, err := store.Split(lim.MaxBytes); err != nil {
		return nil, err // no retry mends it
	}
	// JetStream may need a moment after the server is ready; a cluster's
	// may be electing its leaders.
	tries := 100
	if n.external() {
		tries = 600
	}
	var lastErr error
	for i := 0; i < tries; i++ {
		st, err := store.Open(ctx, n.storeConn, lim)
		if err == nil {
			return st, nil
		}
		lastErr = err
		if msg := err.Error(); strings.Contains(msg, "insufficient resources") || strings.Contains(msg, "no suitable peers") || strings.Contains(msg, "replicas > 1 not supported") {
			return nil, fmt.Errorf("storage.replicas %d: the cluster has fewer servers with JetStream than that (%w): add servers, or lower storage.replicas", max(lim.Replicas, 1), err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil, lastErr
}

func (n *Node) subscribe(nc *nats.Conn, subj string, h nats.MsgHandler) error {
	sub, err := n.subscribeTo(nc, subj, h)
	if err != nil {
		return err
	}
	n.subs = append(n.subs, sub)
	return nil
}

// waitDrained waits, briefly, until a draining subscription has handled
// what it had.
func waitDrained(s *nats.Subscription) {
	deadline := time.Now().Add(5 * time.Second)
	for s.IsValid() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// ClientURL is the TCP URL local clients use ("" without a client listener).
func (n *Node) ClientURL() string {
	if n.external() && n.ops != nil {
		return n.ops.ConnectedUrlRedacted() // the cluster server the node uses now
	}
	if n.srv == nil || n.config().NATS.Client.Listen == "" {
		return ""
	}
	return n.srv.ClientURL()
}

// LeafURL is the URL peers dial ("" without a leaf-node listener, or with
// nats.external: the cluster's servers listen).
func (n *Node) LeafURL() string {
	if n.srv == nil || n.config().NATS.LeafNodes == nil {
		return ""
	}
	// The server writes a randomly chosen port back into its options
	// before it is ready for connections.
	return fmt.Sprintf("nats-leaf://%s", net.JoinHostPort(n.opts.LeafNode.Host, strconv.Itoa(n.opts.LeafNode.Port)))
}

// LinkUp reports whether the leaf link with peer is connected.
func (n *Node) LinkUp(peer string) bool {
	if n.external() {
		return n.clusterLinkUp(peer)
	}
	if n.srv == nil {
		return false
	}
	lz, err := n.srv.Leafz(&server.LeafzOptions{Account: natsconf.PeerAccount(peer)})
	return err == nil && lz.NumLeafs > 0
}

// Backlog is how many stored signals still wait to be decided for peer:
// not yet delivered plus delivered and not yet answered.
func (n *Node) Backlog(ctx context.Context, peer string) (uint64, error) {
	if n.store == nil {
		return 0, errors.New("node not started")
	}
	if l := n.link(peer); l != nil && l.pipes != nil && l.pipes.lossy != nil {
		return 0, nil // nothing waits for a lossy peer
	}
	return outbound.Backlog(ctx, n.store.JetStream(), peer)
}

// DefaultStopTimeout is how long `anfed serve` lets Shutdown drain the
// node after SIGTERM before it gives the rest up and exits.
const DefaultStopTimeout = 15 * time.Second

// Shutdown is Stop, bounded by ctx: when ctx ends first it returns an
// error saying which step was left unfinished and what it abandoned (the
// stop goes on in the background; the caller is expected to exit).
func (n *Node) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Stop()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop abandoned while %s (%w)", n.stopStep.Load().(string), context.Cause(ctx))
	}
}

// Stop drains intake and links, stops exports, and shuts the server down.
// It is safe to call more than once; a second call waits for the first.
func (n *Node) Stop() {
	n.stopMu.Lock()
	defer n.stopMu.Unlock()
	n.stopping.Store(true)
	step := func(s string) { n.stopStep.Store(s) }
	if n.coord != nil {
		step("stopping coordination (a decision under way is finished)")
		n.coord.Stop()
	}
	step("draining intake's and the links' subscriptions (messages they hold go unanswered; senders retry them)")
	n.mu.Lock()
	links := n.links
	n.links, n.stopped = map[string]*peerLink{}, links
	n.mu.Unlock()
	subs := n.subs
	for _, l := range links {
		if l.pipes != nil && l.pipes.sub != nil {
			subs = append(subs, l.pipes.sub)
		}
	}
	for _, s := range subs {
		_ = s.Drain()
	}
	for _, s := range subs {
		waitDrained(s)
	}
	n.subs = nil
	step("closing the links (what they handed to the store waits for its answer)")
	for _, l := range links {
		if l.pipes != nil {
			l.pipes.rcv.Stop() // answers what the links handed over
		}
	}
	if n.intake != nil {
		step(fmt.Sprintf("waiting for the store to answer intake's last signals (%d unanswered: producers retry them with the same id)", n.intake.Unanswered()))
		// Every signal intake took is answered before the server stops.
		n.intake.Stop()
		n.intake = nil
	}
	step("stopping the exports")
	if n.cancel != nil {
		n.cancel()
	}
	for _, l := range links {
		l.stop()
	}
	n.wg.Wait()
	step("writing the audit trail's last records")
	n.stopAudit()
	if n.otlp != nil {
		step("sending the last spans to the OTLP collector")
		n.otlp.Close()
	}
	step("closing the node's connections")
	for _, l := range links {
		l.nc.Close()
		if l.pipes != nil {
			l.pipes.xc.Close()
		}
	}
	for _, nc := range append(n.extra, n.ops, n.storeConn, n.condConn) {
		if nc != nil {
			nc.Close()
		}
	}
	n.extra, n.ops, n.storeConn, n.condConn = nil, nil, nil, nil
	if n.sys != nil {
		n.sys.Close()
		n.sys = nil
		n.log.Info().Msg("node stopped")
	}
	if n.srv != nil {
		step("shutting the NATS server down (JetStream writes its state to disk)")
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
		n.log.Info().Msg("node stopped")
	}
	n.lock.Release()
	n.lock = nil
	step("stopped")
}

// StoreMeanSize is the mean size of a stored signal in bytes: what a
// peer's export.buffer.max_bytes counts each waiting signal as.
func (n *Node) StoreMeanSize(ctx context.Context) (float64, error) {
	if n.store == nil {
		return 0, errors.New("node not started")
	}
	return n.store.MeanSize(ctx)
}
