package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/outbound"
	"github.com/anfed/anfed/internal/session"
	"github.com/anfed/anfed/internal/store"
)

// reloadState is the node's reloads: one at a time, counted.
type reloadState struct {
	run sync.Mutex // held for a whole reload
	mu  sync.Mutex
	ok  int
	bad int
	// last is the last reload's result.
	last *ReloadResult
}

// ReloadResult is what a reload found and did.
type ReloadResult struct {
	At   time.Time `json:"at"`
	File string    `json:"file,omitempty"`
	// Added and Removed are peers; Changed says, for each peer whose
	// policy changed, what changed (export, import, dial, ...).
	Added   []string            `json:"added,omitempty"`
	Removed []string            `json:"removed,omitempty"`
	Changed map[string][]string `json:"changed,omitempty"`
	// Node lists changes to the node's own sections that the reload
	// applied (origins, nats.users, the leaf listener's TLS files).
	Node []string `json:"node,omitempty"`
	// Restart lists changes a reload does not apply: they take effect at
	// the next start.
	Restart []string      `json:"restart,omitempty"`
	Took    time.Duration `json:"took"`
	Error   string        `json:"error,omitempty"`
}

// Unchanged tells a reload that found nothing to change.
func (r *ReloadResult) Unchanged() bool {
	return len(r.Added) == 0 && len(r.Removed) == 0 && len(r.Changed) == 0 && len(r.Node) == 0
}

// Reloads counts the node's reloads: ok, failed (a bad file, or a change
// a reload cannot make), and the last one's result (nil: none yet).
func (n *Node) Reloads() (ok, failed int, last *ReloadResult) {
	n.reloads.mu.Lock()
	defer n.reloads.mu.Unlock()
	var l *ReloadResult
	if n.reloads.last != nil {
		c := *n.reloads.last
		l = &c
	}
	return n.reloads.ok, n.reloads.bad, l
}

// ReloadFile reads and checks the policy file at path (every problem with
// its file and line, as `anfed validate` reports them), then applies it
// as Reload does. A file with a problem changes nothing.
func (n *Node) ReloadFile(ctx context.Context, path string) (*ReloadResult, error) {
	cfg, err := config.LoadAll(path)
	if err != nil {
		res := &ReloadResult{At: time.Now().UTC(), File: path}
		err = fmt.Errorf("%w\nnothing was changed: the node runs on its previous policy", err)
		n.reloadDone(res, err)
		return res, err
	}
	return n.Reload(ctx, cfg)
}

// Reload applies cfg, a checked policy, to the running node. It diffs cfg
// against the policy in force and changes only what differs: a new peer
// gets its account, users and leaf listener entry or remote on the running
// NATS server, and its link; a removed peer is told why, cut at once and
// its conditions withdrawn; a peer whose policy changed gets new
// pipelines over the same leaf link and session, then a refresh (ours to
// it when its export changed, its to us when its import changed). Peers
// the change does not touch are not disturbed. A change a reload cannot
// make (the operator id, storage, a listener's address) fails the reload
// before anything is changed.
func (n *Node) Reload(ctx context.Context, cfg *config.Config) (*ReloadResult, error) {
	n.reloads.run.Lock()
	defer n.reloads.run.Unlock()
	start := time.Now()
	res := &ReloadResult{At: start.UTC(), File: cfg.File}
	if n.store == nil || n.stopping.Load() {
		err := errors.New("the node is not running")
		n.reloadDone(res, err)
		return res, err
	}
	old := n.config()
	d, err := diffPolicies(old, cfg, n.external(), n.SigningKey())
	res.Added, res.Removed, res.Changed, res.Node, res.Restart = d.added, d.removed, d.changed, d.node, d.restart
	if err != nil {
		err = fmt.Errorf("%w: nothing was changed", err)
		n.reloadDone(res, err)
		return res, err
	}
	err = n.apply(ctx, old, cfg, d)
	res.Took = time.Since(start)
	n.reloadDone(res, err)
	return res, err
}

// reloadDone counts and logs a reload.
func (n *Node) reloadDone(res *ReloadResult, err error) {
	if err != nil {
		res.Error = err.Error()
	}
	n.reloads.mu.Lock()
	if err != nil {
		n.reloads.bad++
	} else {
		n.reloads.ok++
	}
	n.reloads.last = res
	n.reloads.mu.Unlock()
	ev := n.log.Info()
	if err != nil {
		ev = n.log.Error().Err(err)
	}
	ev = ev.Str("file", res.File).Strs("added", res.Added).Strs("removed", res.Removed).Strs("node", res.Node).Strs("restart", res.Restart).Stringer("took", res.Took)
	for _, p := range slices.Sorted(maps.Keys(res.Changed)) {
		ev = ev.Strs("changed_"+p, res.Changed[p])
	}
	switch {
	case err != nil:
		ev.Msg("reload failed")
	case res.Unchanged():
		ev.Msg("reload: the policy is unchanged")
	default:
		ev.Msg("reload applied")
	}
}

// keyInForce checks that file holds signs, the key the node signs with.
func keyInForce(file, signs string) error {
	const how = "a signing key changes with `anfed keys rotate`, announced to the peers, or at a restart; once a rotation switched, name the file it wrote"
	if file == "" || signs == "" {
		return errors.New(how)
	}
	kp, err := origin.LoadSigningKey(file)
	if err != nil {
		return fmt.Errorf("%w; %s", err, how)
	}
	if pub, _ := kp.PublicKey(); pub != signs {
		return fmt.Errorf("%s holds %s, the node signs with %s: %s", file, origin.ShortKey(pub), origin.ShortKey(signs), how)
	}
	return nil
}

// policyDiff is what differs between two policies.
type policyDiff struct {
	added, removed []string
	changed        map[string][]string
	// export and import: the peers whose export (import) side changed,
	// to refresh that way once their pipelines are new.
	export, imports map[string]bool
	node, restart   []string
	// pins: a pinned signing key or origins changed (every receiver
	// verifies with the new pins).
	pins bool
	// disable and enable: peers held administratively down from now on
	// (peers[].disabled), and back up.
	disable, enable []string
}

// diffPolicies diffs old and new, and refuses what a reload cannot change;
// signs is the key the node signs with now.
func diffPolicies(old, new *config.Config, external bool, signs string) (policyDiff, error) {
	d := policyDiff{changed: map[string][]string{}, export: map[string]bool{}, imports: map[string]bool{}}
	var refuse []string
	cannot := func(what, why string) { refuse = append(refuse, what+" ("+why+")") }
	if old.Operator.ID != new.Operator.ID {
		cannot("operator.id", "it names the node's accounts, subjects and signatures")
	}
	if old.Operator.SigningKeyFile != new.Operator.SigningKeyFile {
		// After `anfed keys rotate` switched, the runbook names the new
		// key's file here: the key in force, so nothing to change but the
		// file the next start reads.
		if err := keyInForce(new.Operator.SigningKeyFile, signs); err != nil {
			cannot("operator.signing_key_file", err.Error())
		} else {
			d.node = append(d.node, "operator.signing_key_file")
		}
	}
	if !reflect.DeepEqual(old.Storage, new.Storage) {
		cannot("storage", "the store is open on it; restart the node")
	}
	if !reflect.DeepEqual(old.NATS.Client, new.NATS.Client) {
		cannot("nats.client", "nats-server cannot move a listener on reload (server/reload.go: diffOptions refuses a changed port or host)")
	}
	if (old.NATS.External == nil) != (new.NATS.External == nil) || (old.NATS.External != nil && !reflect.DeepEqual(*old.NATS.External, *new.NATS.External)) {
		cannot("nats.external", "the node's connections to the cluster are made at start")
	}
	ol, nl := old.NATS.LeafNodes, new.NATS.LeafNodes
	switch {
	case (ol == nil) != (nl == nil):
		cannot("nats.leafnodes", "nats-server cannot add or remove the leaf listener on reload (server/reload.go: getLeafNodeOptionsChanges compares every LeafNodeOpts field but the remotes, TLS and compression)")
	case ol != nil && ol.Listen != nl.Listen:
		cannot("nats.leafnodes.listen", "nats-server cannot move the leaf listener on reload (server/reload.go: getLeafNodeOptionsChanges)")
	case ol != nil && (ol.TLS == nil) != (nl.TLS == nil):
		cannot("nats.leafnodes.tls", "turning the leaf listener's TLS on or off changes how every peer connects; restart the node")
	case ol != nil && ol.TLS != nil && ol.TLS.CA != nl.TLS.CA && (ol.TLS.CA == "") != (nl.TLS.CA == ""):
		cannot("nats.leafnodes.tls.ca", "asking for client certificates, or no longer, renames every accepted peer's leaf user; restart the node")
	case ol != nil && !reflect.DeepEqual(ol.TLS, nl.TLS):
		d.node = append(d.node, "nats.leafnodes.tls")
	}
	if !reflect.DeepEqual(old.NATS.Users, new.NATS.Users) {
		d.node = append(d.node, "nats.users")
	}
	if !reflect.DeepEqual(old.Origins, new.Origins) {
		d.node = append(d.node, "origins")
		d.pins = true
	}
	if !reflect.DeepEqual(old.HTTP, new.HTTP) {
		d.restart = append(d.restart, "http")
	}
	if !reflect.DeepEqual(old.Bridges, new.Bridges) {
		d.restart = append(d.restart, "bridges")
	}
	if !reflect.DeepEqual(old.Coordination, new.Coordination) {
		d.restart = append(d.restart, "coordination")
	}
	if !reflect.DeepEqual(old.Intents, new.Intents) {
		d.restart = append(d.restart, "intents")
	}
	if old.Audit != new.Audit {
		d.restart = append(d.restart, "audit")
	}
	if old.Telemetry.OTLPEndpoint() != new.Telemetry.OTLPEndpoint() {
		d.restart = append(d.restart, "telemetry")
	}
	if old.Operator.Name != new.Operator.Name {
		d.node = append(d.node, "operator.name")
	}

	roles := false
	for i := range new.Peers {
		np := &new.Peers[i]
		op, ok := old.Peer(np.ID)
		if !ok {
			d.added = append(d.added, np.ID)
			roles = true
			continue
		}
		what := peerChanges(op, np)
		if len(what) == 0 {
			continue
		}
		d.changed[np.ID] = what
		for _, w := range what {
			switch w {
			case "export", "expires":
				d.export[np.ID] = true
			case "import", "may_originate", "signing_key":
				d.imports[np.ID] = true
			case "role":
				roles = true
				d.export[np.ID] = true // valley-free: what it is sent depends on its role
			case "disabled":
				if np.Disabled != nil && op.Disabled == nil {
					d.disable = append(d.disable, np.ID)
				} else if np.Disabled == nil {
					d.enable = append(d.enable, np.ID)
				}
			}
			if w == "signing_key" {
				d.pins = true
			}
		}
	}
	for _, op := range old.Peers {
		if _, ok := new.Peer(op.ID); !ok {
			d.removed = append(d.removed, op.ID)
			roles = true
		}
	}
	if len(d.added) > 0 || len(d.removed) > 0 {
		d.pins = true // a peer's key is pinned with its peering
	}
	// What a peer with transit is sent depends on the other peerings'
	// roles (RFC 9234 valley-free): a role, or the set of peers, changed.
	if roles {
		for i := range new.Peers {
			np := &new.Peers[i]
			if _, ok := old.Peer(np.ID); ok && np.Export.Transit && !d.export[np.ID] {
				d.changed[np.ID] = append(d.changed[np.ID], "transit (another peering's role)")
				d.export[np.ID] = true
			}
		}
	}
	// Every receiver checks against the origins' authorisations.
	if !reflect.DeepEqual(old.MayOriginate(), new.MayOriginate()) || d.pins {
		for i := range new.Peers {
			np := &new.Peers[i]
			if _, ok := old.Peer(np.ID); ok && np.Import.Transit && !d.imports[np.ID] {
				d.changed[np.ID] = append(d.changed[np.ID], "import (origins)")
				d.imports[np.ID] = true
			}
		}
	}
	if external && (len(d.added) > 0 || len(d.removed) > 0 || natsChanged(d)) {
		cannot("peers", "with nats.external the cluster's servers hold the accounts, users and remotes: write their configuration with `anfed natsconf`, reload the servers, then restart the node")
	}
	if len(refuse) > 0 {
		return d, fmt.Errorf("a reload cannot change %s", strings.Join(refuse, "; "))
	}
	return d, nil
}

// natsChanged tells whether d changes what the NATS server holds, beyond
// the peers added and removed.
func natsChanged(d policyDiff) bool {
	if slices.Contains(d.node, "nats.users") || slices.Contains(d.node, "nats.leafnodes.tls") {
		return true
	}
	for _, what := range d.changed {
		for _, w := range what {
			switch w {
			case "accept", "dial", "limits", "expires", "import":
				return true
			}
		}
	}
	return false
}

// peerChanges names the sections of a peer's policy that differ.
func peerChanges(old, new *config.Peer) []string {
	var out []string
	for _, s := range []struct {
		name string
		a, b any
	}{
		{"name", old.Name, new.Name},
		{"accept", old.Accept, new.Accept},
		{"dial", old.Dial, new.Dial},
		{"export", old.Export, new.Export},
		{"import", old.Import, new.Import},
		{"role", old.Role, new.Role},
		{"signing_key", old.SigningKey, new.SigningKey},
		{"may_originate", old.MayOriginate, new.MayOriginate},
		{"expires", old.Expires, new.Expires},
		{"limits", old.Limits, new.Limits},
		{"disabled", old.Disabled, new.Disabled},
	} {
		if !reflect.DeepEqual(s.a, s.b) {
			out = append(out, s.name)
		}
	}
	return out
}

// apply makes the running node match cfg: d is what differs from old.
func (n *Node) apply(ctx context.Context, old, cfg *config.Config, d policyDiff) error {
	// Removed peers first: told, their pipelines and connections closed
	// before the server forgets their accounts.
	for _, id := range d.removed {
		n.removePeer(ctx, id, "the peering was removed from "+n.ID()+"'s policy")
	}
	for _, id := range d.disable {
		if l := n.link(id); l != nil {
			// The pipelines stop before the notice: nothing of our export
			// follows it on the link (the peer withdraws what we told it
			// when it comes), and nothing the peer still sends is taken
			// after we withdraw its conditions. Enabled, they start anew.
			n.takePipes(l)
			p, _ := cfg.Peer(id)
			n.notifyDown(l, p.Disabled.Reason)
		}
	}
	n.mu.Lock()
	if !n.external() {
		fresh, err := natsconf.NewSecrets(cfg)
		if err != nil {
			n.mu.Unlock()
			return err
		}
		for acc, kp := range fresh {
			if _, ok := n.sec[acc]; !ok {
				n.sec[acc] = kp
			}
		}
	}
	if d.pins {
		v, err := n.verifier(cfg)
		if err != nil {
			n.mu.Unlock()
			return err
		}
		n.deps.Verifier = v
	}
	n.deps.Origins = cfg.MayOriginate()
	sec := n.sec
	// A dialled peer's new credentials (dial.user, dial.password) wait
	// for its live link's next connection: nats-server names a remote by
	// its URLs with their credentials (server/opts.go:
	// RemoteLeafOpts.name), so a reload with them would remove the remote
	// and cut the link. The peer took the link with the old ones and does
	// not check them again.
	for _, id := range slices.Sorted(maps.Keys(d.changed)) {
		p, _ := cfg.Peer(id)
		op, _ := old.Peer(id)
		if op.Dial != nil && p.Dial != nil && credentialsOnly(op.Dial, p.Dial) && n.LinkUp(id) {
			if n.liveDial == nil {
				n.liveDial = map[string]*config.Dial{}
			}
			if n.liveDial[id] == nil {
				n.liveDial[id] = op.Dial
			}
		} else {
			delete(n.liveDial, id)
		}
	}
	n.mu.Unlock()
	n.cfg.Store(cfg)
	if !n.external() {
		if err := n.reloadServer(cfg, sec); err != nil {
			return fmt.Errorf("NATS server: %w (the peers removed are gone; the rest of the change was not applied: fix it and reload again)", err)
		}
		n.natsPeers.setUsers(cfg)
		// nats-server does not check established leaf connections
		// against the reloaded users (server/reload.go:
		// reloadAuthorization checks client connections only): a removed
		// peer's is cut here.
		leafs := n.leafsByPeer()
		for _, id := range append(slices.Clone(d.removed), d.disable...) {
			for _, lc := range leafs[id] {
				n.kick(lc)
			}
		}
	}
	for _, id := range d.disable {
		p, _ := cfg.Peer(id)
		n.adminDown(id, p.Disabled.Reason)
	}
	var errs []error
	for _, id := range d.enable {
		p, _ := cfg.Peer(id)
		if l := n.link(id); l != nil && l.pipes == nil {
			pp, err := n.startPipes(ctx, l, p)
			if err != nil {
				errs = append(errs, fmt.Errorf("peer %s: %w", id, err))
				continue
			}
			n.mu.Lock()
			l.pipes = pp
			n.mu.Unlock()
		}
		n.log.Info().Str("peer", id).Msg("peering enabled again: the link comes back, the session opens and both ends refresh")
	}
	for _, id := range d.added {
		p, _ := cfg.Peer(id)
		if err := n.startPeer(ctx, p, nil); err != nil { // not with nats.external: diffPolicies refuses added peers
			errs = append(errs, fmt.Errorf("peer %s: %w", id, err))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(d.changed)) {
		p, _ := cfg.Peer(id)
		if !d.export[id] && !d.imports[id] {
			n.mu.Lock()
			if l := n.links[id]; l != nil {
				l.p = p
			}
			n.mu.Unlock()
			continue // the NATS server's business only (credentials, limits, disabled)
		}
		if err := n.renewPeer(ctx, p, d.export[id], d.imports[id]); err != nil {
			errs = append(errs, fmt.Errorf("peer %s: %w", id, err))
		}
	}
	n.rewatchExpiry() // certificates and peerings' ends may have changed
	return errors.Join(errs...)
}

// reloadServer hands the embedded NATS server the configuration derived
// from cfg. nats-server updates accounts in place, adds and removes users
// and leaf remotes, and reloads TLS certificates (server/reload.go:
// ReloadOptions, configureAccounts(true), leafNodeOption.Apply); the
// node's own connections keep their users (sec), so none is dropped.
func (n *Node) reloadServer(cfg *config.Config, sec natsconf.Secrets) error {
	n.mu.RLock()
	if len(n.liveDial) > 0 {
		// The server keeps the credentials of live links (see apply).
		c := *cfg
		c.Peers = slices.Clone(cfg.Peers)
		for i := range c.Peers {
			if d := n.liveDial[c.Peers[i].ID]; d != nil {
				c.Peers[i].Dial = d
			}
		}
		cfg = &c
	}
	n.mu.RUnlock()
	opts, err := n.serverOptions(cfg, sec)
	if err != nil {
		return err
	}
	return n.srv.ReloadOptions(opts)
}

// credentialsOnly tells two dials that differ in the user and password
// alone.
func credentialsOnly(a, b *config.Dial) bool {
	x, y := *a, *b
	x.User, x.Password, y.User, y.Password = "", "", "", ""
	return reflect.DeepEqual(x, y)
}

// dialCredentialsDue gives the NATS server a dialled peer's new
// credentials once its link is down (apply kept the old ones while it
// was up): the next connection uses them.
func (n *Node) dialCredentialsDue(peer string) {
	n.mu.Lock()
	_, due := n.liveDial[peer]
	delete(n.liveDial, peer)
	sec := n.sec
	n.mu.Unlock()
	if !due || n.external() {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.reloads.run.Lock()
		defer n.reloads.run.Unlock()
		if n.stopping.Load() {
			return
		}
		if err := n.reloadServer(n.config(), sec); err != nil {
			n.log.Error().Err(err).Str("peer", peer).Msg("the peer's new dial credentials were not given to the NATS server: reload again")
			return
		}
		n.log.Info().Str("peer", peer).Msg("link down: its next connection uses the new dial credentials")
	}()
}

// renewPeer makes p's pipelines anew from its new policy, over the same
// leaf link and session, then refreshes: ours to the peer when its export
// changed, the peer's to us when its import changed.
func (n *Node) renewPeer(ctx context.Context, p *config.Peer, export, imports bool) error {
	n.mu.RLock()
	l := n.links[p.ID]
	n.mu.RUnlock()
	if l == nil {
		return errors.New("no link")
	}
	n.mu.Lock()
	old := l.pipes
	l.pipes = nil
	n.mu.Unlock()
	if old != nil {
		n.stopPipes(old)
	}
	pp, err := n.startPipes(ctx, l, p)
	if err != nil {
		return err
	}
	n.mu.Lock()
	l.pipes, l.p = pp, p
	n.mu.Unlock()
	if imports && pp.rcv != nil {
		// Soft reconfiguration inbound: what we hold from the peer that
		// the new import policy refuses is withdrawn now, and what it
		// kept refused that the policy passes now is admitted, without
		// the peer (whose session may not be up) — the refresh asked
		// below brings what the peer held back for our old policy.
		if _, err := pp.rcv.Reimport(ctx, &p.Import); err != nil {
			n.log.Warn().Err(err).Str("peer", p.ID).Msg("reload: the new import policy not applied to what the peer sent; the next refresh does it")
		}
	}
	l.ps.mu.Lock()
	l.ps.m.Update(n.sessionLocal(p))
	established := l.ps.m.Status().State == session.Established
	var out []session.Message
	if imports && established {
		out = l.ps.m.Refresh()
	}
	l.ps.mu.Unlock()
	for _, o := range out {
		l.ps.send(o)
	}
	if export && established {
		n.refreshOut(ctx, l.ps)
	}
	return nil
}

// removePeer ends the peering with id at once: the peer is told why
// (a NOTIFICATION), its pipelines, session and connections are closed,
// its export consumer deleted and every condition it told us withdrawn.
func (n *Node) removePeer(ctx context.Context, id, why string) {
	n.mu.Lock()
	l := n.links[id]
	delete(n.links, id)
	n.mu.Unlock()
	if l == nil {
		return
	}
	n.takePipes(l) // before the notice, as for a disable (see apply)
	n.notifyDown(l, why)
	l.stop()
	n.closeOwn(l.nc)
	// What waited for the peer will never be sent.
	if err := n.store.JetStream().DeleteConsumer(ctx, store.SignalStream, outbound.ConsumerName(id)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		n.log.Warn().Err(err).Str("peer", id).Msg("reload: the removed peer's export consumer was not deleted")
	}
	withdrawn := n.withdrawAll(id)
	n.log.Warn().Str("peer", id).Str("reason", why).Int("withdrawn", withdrawn).Msg("peering ended: link cut, its conditions withdrawn")
}

// adminDown withdraws the conditions of a peering held administratively
// down (RFC 8203), once its link is cut: told why (notifyDown) and its
// link held down (the NATS server has no credentials or remote for it;
// enforceDisabled cuts what comes anyway). Its pipelines stopped before
// the notice (apply), so nothing the peer sent is taken afterwards; its
// link stays, idle, for when it is enabled again.
func (n *Node) adminDown(id, reason string) {
	if n.link(id) == nil {
		return
	}
	withdrawn := n.withdrawAll(id)
	n.log.Warn().Str("peer", id).Str("reason", reason).Int("withdrawn", withdrawn).
		Msg("peering administratively down: the peer was told why, its link is held down, its conditions withdrawn")
}

// takePipes stops l's pipelines and leaves it without: what its receiver
// was handed is answered, nothing more is taken or sent.
func (n *Node) takePipes(l *peerLink) {
	n.mu.Lock()
	pp := l.pipes
	l.pipes = nil
	n.mu.Unlock()
	if pp != nil {
		n.stopPipes(pp)
	}
}

// notifyDown closes the link's session with an administrative
// NOTIFICATION carrying why, and waits (a second at most) until it
// reached the peer, so that the cut that follows does not overtake it.
func (n *Node) notifyDown(l *peerLink, why string) {
	l.ps.mu.Lock()
	l.ps.cause = CauseAdministrative
	out, ev := l.ps.m.Close(time.Now(), session.ReasonAdministrative, why)
	st := l.ps.m.Status()
	l.ps.mu.Unlock()
	for _, o := range out {
		l.ps.send(o)
	}
	n.crossed(l)
	n.sessionEvent(context.Background(), l.ps, ev, st)
}

// withdrawAll withdraws every condition peer told us, tells local
// consumers, and returns how many; its signals stored so far that the
// table has not taken yet are refused when they come (Table.Cut). Call it
// once nothing more of peer's is stored: its pipelines stopped, or in the
// receiver's order after the peer's administrative notice.
func (n *Node) withdrawAll(peer string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	last, err := n.store.LastSeq(ctx)
	cancel()
	if err != nil {
		n.log.Warn().Err(err).Str("peer", peer).Msg("withdraw: the store's last sequence is unknown: a signal of the peer's on its way may bring a condition back until its grace time")
	}
	n.table.Cut(peer, last)
	n.table.BeginRefresh(peer)
	withdrawn := n.table.EndRefresh(peer)
	for _, c := range withdrawn {
		n.announce(c)
	}
	return len(withdrawn)
}
