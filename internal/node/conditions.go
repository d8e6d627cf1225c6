package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/expiry"
	"github.com/anfed/anfed/internal/inbound"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/outbound"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/session"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// Conditions returns the table's active (and, with IncludeStale, stale)
// conditions, and those flap dampening suppressed: a held condition is
// marked Suppressed, with its penalty and when it is to be released; one
// the table does not hold active shows with status suppressed.
func (n *Node) Conditions(f conditions.Filter) []conditions.Condition {
	cs := n.table.Snapshot(f)
	now := time.Now()
	added := false
	for _, r := range n.receivers() {
		for _, s := range r.Suppressed(now) {
			if !f.Match(s.Key) {
				continue
			}
			i := slices.IndexFunc(cs, func(c conditions.Condition) bool { return c.Key == s.Key })
			if i < 0 {
				cs = append(cs, conditions.Condition{Key: s.Key, Status: conditions.StatusSuppressed})
				i, added = len(cs)-1, true
			}
			c := &cs[i]
			c.Suppressed, c.Penalty, c.SuppressedAt, c.ReuseAt, c.Held = true, math.Round(s.Penalty), s.SuppressedAt.UTC(), s.ReuseAt.UTC(), s.Held
		}
	}
	if added {
		slices.SortFunc(cs, func(a, b conditions.Condition) int { return conditions.CompareKeys(a.Key, b.Key) })
	}
	if planned := n.plannedPeers(now); len(planned) > 0 {
		for i := range cs {
			if until, ok := planned[cs[i].Peer]; ok {
				cs[i].PlannedUntil = until.UTC()
			}
		}
	}
	return cs
}

// Table is the node's condition table.
func (n *Node) Table() *conditions.Table { return n.table }

// startConditions rebuilds the table from the store, keeps it fed with
// every stored signal, watches the links, and serves the table. In
// process the node's own writes feed it (condFeed); with nats.external,
// where several processes write the stream, an ordered consumer of the
// stream does.
func (n *Node) startConditions(ctx, rctx context.Context) error {
	js, err := jetstream.New(n.condConn)
	if err != nil {
		return err
	}
	if n.feed != nil {
		if err := n.feed.start(ctx, js); err != nil {
			return err
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.feed.run(rctx)
		}()
	} else if err := n.consumeSignals(ctx, rctx, js); err != nil {
		return err
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.watchLinks(rctx)
	}()
	refresh := func(m *nats.Msg) { n.serveRefresh(rctx, m) }
	rotate := func(m *nats.Msg) { n.serveRotate(rctx, m) }
	for subj, h := range map[string]nats.MsgHandler{subject.APIConditions: n.serveConditions, subject.APIPeers: n.servePeers, subject.APITrace: n.serveTrace,
		subject.APIKeysRotate: rotate, subject.APIKeys: n.serveKeys} {
		if err := n.subscribe(n.ops, subj, h); err != nil {
			return err
		}
	}
	if !n.external() {
		return n.subscribe(n.ops, subject.APIPeerRefresh, refresh)
	}
	// Every process hears these; the link's holder answers.
	for subj, h := range map[string]nats.MsgHandler{subject.APIPeerRefresh: refresh, subject.APIPeerState: n.servePeerState} {
		sub, err := n.ops.Subscribe(subj, h)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", subj, err)
		}
		n.subs = append(n.subs, sub)
	}
	return nil
}

// consumeSignals feeds the table from an ordered consumer of the signal
// stream, from its start.
func (n *Node) consumeSignals(ctx, rctx context.Context, js jetstream.JetStream) error {
	cons, err := js.OrderedConsumer(ctx, store.SignalStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject.Signals},
	})
	if err != nil {
		return err
	}
	// Short pulls: on a cluster, a consumer lost with its server is
	// noticed within seconds (missed heartbeats), not after 30 s.
	cc, err := cons.Consume(func(m jetstream.Msg) { n.applySignal(m) }, jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return err
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		<-rctx.Done()
		cc.Stop()
	}()
	return nil
}

// applySignal applies a signal read from the stream.
func (n *Node) applySignal(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		return
	}
	n.applyRaw(m.Subject(), m.Data(), meta.Sequence.Stream)
}

// applyRaw applies a signal stored as subj with sequence seq, from its
// stored body.
func (n *Node) applyRaw(subj string, body []byte, seq uint64) {
	ev, err := signal.DecodeStructured(body)
	if err != nil {
		return
	}
	n.applyStored(subj, ev, seq)
}

// applyStored applies the signal ev stored as subj with sequence seq,
// and announces the change.
func (n *Node) applyStored(subj string, ev *signal.Event, seq uint64) {
	k, err := subject.ParseSignal(subj)
	if err != nil {
		return
	}
	peer := observe.Local
	if len(ev.Path) > 0 {
		peer = ev.Path[len(ev.Path)-1]
		if n.external() {
			// Whichever process stored it, every process's replay guard
			// knows it: a link's new holder answers the peer's resends
			// of what the last holder accepted as duplicates, without a
			// store write each (the guard is rebuilt from the stream).
			n.receiverDeps().Replay.Record(ev.Source, ev.ID)
		}
		if p, ok := n.config().Peer(peer); !ok || p.Disabled != nil {
			// A peering held down, or no longer in the policy: what the
			// store still holds of it (read again at start) is not a
			// condition we hold, as at the moment it went down
			// (withdrawAll), not only after its grace time.
			return
		}
	}
	c, err := n.table.Apply(peer, k.Class, ev, seq)
	if err != nil {
		n.log.Debug().Err(err).Str("subject", ev.Subject).Msg("conditions: signal not applied")
		return
	}
	n.announce(c)
}

// watchLinks turns link state into graceful-restart timers and ticks the
// table for expiries.
func (n *Node) watchLinks(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	up := map[string]bool{}
	seen := map[string]bool{}
	expiredLogged := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			leafs := n.leafsByPeer()
			changed := map[string]bool{}
			for i := range n.config().Peers {
				p := &n.config().Peers[i]
				is := len(leafs[p.ID]) > 0
				if !seen[p.ID] {
					// At start a link that is not up yet counts as down
					// from now: conditions rebuilt from the store for a
					// peer that does not come back go stale in time.
					seen[p.ID], up[p.ID] = true, !is
				}
				switch {
				case up[p.ID] && !is:
					grace, wd := p.Import.Timers()
					if until := n.plannedPeers(now)[p.ID]; until.Sub(now) > grace {
						// The peer announced a planned restart: its
						// conditions are kept until it is due back.
						grace = until.Sub(now)
						n.log.Info().Str("peer", p.ID).Time("planned_until", until).Msg("link down: a planned restart, the peer's conditions are kept until it is due back")
					} else {
						n.log.Warn().Str("peer", p.ID).Stringer("grace", grace).Msg("link down")
					}
					n.table.LinkDown(p.ID, now, grace, wd)
					n.dialCredentialsDue(p.ID)
				case !up[p.ID] && is:
					n.log.Info().Str("peer", p.ID).Msg("link up: the session opens, the peer's refresh re-states its conditions")
					n.table.LinkUp(p.ID)
				}
				if up[p.ID] != is {
					changed[p.ID] = true
				}
				up[p.ID] = is
			}
			n.tickSessions(ctx, now, up, changed)
			n.tickKeys(ctx, now)
			n.tickExpiry(now)
			n.refuseRogueHubs(leafs)
			n.enforceExpiry(now, leafs, expiredLogged)
			n.enforceDisabled(leafs)
			for _, c := range n.table.Tick(now) {
				n.announce(c)
			}
		}
	}
}

// enforceExpiry ends peerings whose time is up while the node runs: their
// links are cut, again whenever they come back (their credentials stop
// working at the next start, when the derived configuration no longer
// holds them), and their signals are refused meanwhile (inbound.Receiver).
func (n *Node) enforceExpiry(now time.Time, leafs map[string][]leafConn, logged map[string]bool) {
	for i := range n.config().Peers {
		p := &n.config().Peers[i]
		if !p.ExpiredAt(now) {
			continue
		}
		if !logged[p.ID] {
			logged[p.ID] = true
			n.log.Warn().Str("peer", p.ID).Time("expired", *p.Expires).Str("reason", string(reject.Revoked)).
				Msg("peering expired: link cut, signals refused; renew it with a new peering bundle")
		}
		for _, li := range leafs[p.ID] {
			n.kick(li)
		}
	}
}

// plannedPeers are the peers whose session is down after their
// graceful-shutdown notice, with when each is due back.
func (n *Node) plannedPeers(now time.Time) map[string]time.Time {
	n.mu.RLock()
	links := make([]*peerLink, 0, len(n.links))
	for _, l := range n.links {
		links = append(links, l)
	}
	n.mu.RUnlock()
	var out map[string]time.Time
	for _, l := range links {
		l.ps.mu.Lock()
		until, state := l.ps.plannedUntil, l.ps.m.Status().State
		l.ps.mu.Unlock()
		if state != session.Established && now.Before(until) {
			if out == nil {
				out = map[string]time.Time{}
			}
			out[l.p.ID] = until
		}
	}
	return out
}

// enforceDisabled holds the links of peerings administratively down
// (peers[].disabled) down: the NATS server has no credentials or remote
// for them, and a connection that is there anyway (with nats.external, a
// cluster whose configuration is not rewritten yet) is cut.
func (n *Node) enforceDisabled(leafs map[string][]leafConn) {
	for _, p := range n.config().Peers {
		if p.Disabled == nil {
			continue
		}
		for _, li := range leafs[p.ID] {
			n.kick(li)
		}
	}
}

// leafsByPeer is the node's leaf connections by peer, from one look at
// the server per tick of the link watcher.
func (n *Node) leafsByPeer() map[string][]leafConn {
	if n.external() {
		n.leafs.mu.Lock()
		defer n.leafs.mu.Unlock()
		return n.leafs.byPeer // replaced, never changed, by watchLeafs
	}
	lz, err := n.srv.Leafz(nil)
	if err != nil {
		return nil
	}
	out := map[string][]leafConn{}
	for _, li := range lz.Leafs {
		if peer, ok := strings.CutPrefix(li.Account, natsconf.PeerAccount("")); ok {
			out[peer] = append(out[peer], leafConn{LeafInfo: li})
		}
	}
	return out
}

// refuseRogueHubs cuts a leaf connection that dialled our listener and
// then declared itself the hub: the roles would flip and the server would
// silently drop, rather than refuse, what the peer may not send. A dialling
// peer is always the spoke.
func (n *Node) refuseRogueHubs(leafs map[string][]leafConn) {
	for _, p := range n.config().Peers {
		if p.Accept == nil {
			continue
		}
		for _, li := range leafs[p.ID] {
			if li.IsSpoke {
				n.log.Warn().Str("peer", p.ID).Uint64("lid", li.ID).Str("reason", "rogue-hub").
					Msg("leaf connection of a peer that dials us declared itself the hub: disconnected")
				n.kick(li)
			}
		}
	}
}

// announce tells local consumers of a change of the table.
func (n *Node) announce(c conditions.Change) {
	if c.Kind == "" {
		return
	}
	cd := c.Condition
	if !n.announcesFor(cd.Peer) {
		return // another process of the operator announces it
	}
	svc, res, _ := strings.Cut(cd.Subject, "/")
	subj := subject.Cond(string(c.Kind), subject.Key{Origin: cd.Origin, Class: cd.Class, Service: svc, Resource: res})
	if n.opsAcc != nil && !n.opsAcc.SubscriptionInterest(subj) {
		return // nobody listens (core NATS would drop it): no encoding, no hop
	}
	b, _ := json.Marshal(c) // plain data always marshals
	if err := n.condConn.Publish(subj, b); err != nil {
		n.log.Debug().Err(err).Msg("conditions: announce")
	}
}

func (n *Node) serveConditions(m *nats.Msg) {
	var f conditions.Filter
	if len(m.Data) > 0 {
		if err := json.Unmarshal(m.Data, &f); err != nil {
			_ = m.Respond([]byte(`{"error":"want a JSON filter: {\"Peer\":\"\",\"Origin\":\"\",\"Class\":\"\",\"Service\":\"\",\"IncludeStale\":false}"}`))
			return
		}
	}
	b, _ := json.Marshal(n.Conditions(f))
	_ = m.Respond(b)
}

// PeerState is what the node says of a peer.
type PeerState struct {
	ID         string `json:"id"`
	Name       string `json:"name,omitempty"`
	Direction  string `json:"direction"`
	Up         bool   `json:"up"`
	Backlog    uint64 `json:"backlog"`
	Conditions int    `json:"conditions"`
	// Delivery is "durable", "lossy" or "stream" (export.delivery).
	Delivery string `json:"delivery"`
	// Discarded counts signals the store dropped at its bounds before
	// they reached this peer.
	Discarded uint64 `json:"discarded"`
	// DroppedTooOld and DroppedOverBytes count signals dropped for this
	// peer at its own buffer bounds (export.buffer); DroppedLinkDown,
	// those a lossy export dropped while the link was down.
	DroppedTooOld    uint64 `json:"dropped_too_old"`
	DroppedOverBytes uint64 `json:"dropped_over_bytes"`
	DroppedLinkDown  uint64 `json:"dropped_link_down"`
	// DroppedSlow: signals NATS dropped before a lossy or stream export
	// took them (it could not keep up).
	DroppedSlow uint64 `json:"dropped_slow"`
	// Stream is the stream delivery's view (docs/durability.md#stream-
	// delivery): what we sent the peer in that mode and what it sent us,
	// with the losses each end counted. Absent when neither end streams.
	Stream *StreamView `json:"stream,omitempty"`
	// Suppressed counts the peer's conditions that flap dampening
	// suppressed now; Dampened the peer's signals it held.
	Suppressed int    `json:"suppressed"`
	Dampened   uint64 `json:"dampened"`
	// KeyHeld counts, since the start, the peer's signals held for want
	// of their origin's signing key (key-held), refused at that hold's
	// bound, and released or dead-lettered when checked again at start.
	KeyHeld inbound.KeyHeldStats `json:"key_held"`
	// AdjRibIn counts what is kept of the peer's signals that import
	// policy refused (its Adj-RIB-In): held now and its limit, kept,
	// not kept past the limit, admitted and withdrawn when the policy
	// changed.
	AdjRibIn inbound.RibInStats `json:"adj_rib_in"`
	// Advisories counts the advisories the peer sent us (that it reached
	// its maximum of active conditions from us, say), Advisory is the
	// last of them, and AdvisoriesSent counts those we sent it.
	Advisories     uint64            `json:"advisories"`
	Advisory       *inbound.Advisory `json:"advisory,omitempty"`
	AdvisoriesSent uint64            `json:"advisories_sent"`
	// Session is the link's session: its state, since when, the last
	// reason it went down, its flaps, what it negotiated, its refreshes.
	Session *SessionView `json:"session,omitempty"`
	// Disabled is why we hold the peering administratively down
	// (peers[].disabled); "" while it is not.
	Disabled string `json:"disabled,omitempty"`
	// Holder is the process working the link (the node's instance
	// name): with nats.external, the holder of the link's lease ("" while
	// none holds it), in its term Term. HeldHere says it is the process
	// that answered; a process that does not work the link gives the
	// holder's session and counts (asked on an.api.peer.state).
	Holder   string `json:"holder"`
	Term     uint64 `json:"term,omitempty"`
	HeldHere bool   `json:"held_here"`
	// Answered names the process that answered.
	Answered string `json:"answered_by"`
	// Keys are the peer's signing keys we pin now and its last key
	// rotation (docs/sessions.md#key-rotation).
	Keys PeerKeysView `json:"keys"`
	// Expiry is what the link with the peer depends on that expires —
	// the peering, the certificates — with the time each has left.
	Expiry []expiry.Status `json:"expiry,omitempty"`
}

// StreamView is a peer's stream delivery as this node sees it.
type StreamView struct {
	// Out: ours to the peer (export.delivery: stream here): sent, of
	// them telemetry, dropped while the link was down or for want of
	// speed.
	Out outbound.LossyCounts `json:"out"`
	// In: the peer's to us (stream at its end): the numbered messages
	// received, the numbers lost, the telemetry delivered locally.
	In inbound.StreamStats `json:"in"`
}

// Peers reports each peer's link state, export backlog and conditions.
func (n *Node) Peers(ctx context.Context) []PeerState {
	cfg := n.config()
	out := make([]PeerState, 0, len(cfg.Peers))
	for i := range cfg.Peers {
		out = append(out, n.peerState(ctx, &cfg.Peers[i], true))
	}
	return out
}

// peerState is what this process says of p; with ask, the process working
// p's link is asked for what only it knows (the session, the link's
// counts) when it is another.
func (n *Node) peerState(ctx context.Context, p *config.Peer, ask bool) PeerState {
	dir := "accept"
	if p.Dial != nil {
		dir = "dial"
	}
	bl, _ := n.Backlog(ctx, p.ID)
	ps := PeerState{ID: p.ID, Name: p.Name, Direction: dir, Up: n.LinkUp(p.ID), Backlog: bl, Conditions: n.table.Len(p.ID), Delivery: config.DeliveryDurable,
		Answered: n.instance}
	ps.Holder, ps.Term, _ = n.LinkHolder(ctx, p.ID)
	ps.HeldHere = n.heldHere(p.ID) || !n.external()
	if ask && !ps.HeldHere && ps.Holder != "" && ps.Holder != n.instance {
		if hs, ok := n.askHolder(ctx, p.ID); ok {
			hs.Answered, hs.HeldHere = n.instance, false
			return hs
		}
	}
	var pp *peerPipes
	if l := n.link(p.ID); l != nil {
		n.mu.RLock()
		pp = l.pipes
		n.mu.RUnlock()
	}
	if pp != nil && pp.snd != nil {
		ps.Discarded = pp.snd.Discarded()
		ps.DroppedTooOld, ps.DroppedOverBytes = pp.snd.Dropped()
	}
	if pp != nil {
		ps.Suppressed, ps.Dampened = pp.rcv.Dampening()
		ps.KeyHeld = pp.rcv.KeyHolds()
		ps.AdjRibIn = pp.rcv.RibIn()
		ps.Advisories, ps.Advisory, ps.AdvisoriesSent = pp.rcv.Advisories()
	}
	ps.Session = n.Session(p.ID)
	if p.Disabled != nil {
		ps.Disabled = p.Disabled.Reason
	}
	ps.Keys = n.PeerKeys(p.ID)
	ps.Expiry = n.PeerExpiry(p.ID)
	var sv StreamView
	if pp != nil && pp.lossy != nil {
		ps.Delivery = config.DeliveryLossy
		if p.Export.Stream() {
			ps.Delivery = config.DeliveryStream
		}
		sv.Out = pp.lossy.Stats()
		ps.DroppedLinkDown, ps.DroppedSlow = sv.Out.DroppedLinkDown, sv.Out.DroppedSlow
	}
	if l := n.link(p.ID); l != nil && l.stream != nil {
		sv.In = l.stream.Stats()
	}
	if ps.Delivery == config.DeliveryStream || sv.In.Received > 0 {
		ps.Stream = &sv
	}
	return ps
}

func (n *Node) servePeers(m *nats.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b, _ := json.Marshal(n.Peers(ctx))
	_ = m.Respond(b)
}

// RefreshRequest asks for a refresh with a peer (subject.APIPeerRefresh).
type RefreshRequest struct {
	Peer     string `json:"peer"`
	Inbound  bool   `json:"inbound,omitempty"`
	Outbound bool   `json:"outbound,omitempty"`
}

func (n *Node) serveRefresh(ctx context.Context, m *nats.Msg) {
	var req RefreshRequest
	err := json.Unmarshal(m.Data, &req)
	if err != nil {
		err = fmt.Errorf(`want a JSON request: {"peer":"op-b","inbound":true,"outbound":false}: %w`, err)
	} else {
		err = n.RefreshPeer(ctx, req.Peer, req.Inbound, req.Outbound)
	}
	if errors.Is(err, errNotHeldHere) {
		return // the link's holder answers
	}
	if err != nil {
		b, _ := json.Marshal(map[string]string{"error": err.Error()})
		_ = m.Respond(b)
		return
	}
	_ = m.Respond([]byte(`{"ok":true}`))
}
