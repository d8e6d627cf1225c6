package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"golang.org/x/time/rate"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/inbound"
	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/outbound"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/session"
	"github.com/anfed/anfed/internal/subject"
	"github.com/anfed/anfed/schemas"
)

// refreshWait bounds how long a refresh waits for the durable export's
// unanswered signals before it reads the store.
const refreshWait = 30 * time.Second

// The bound on what a peer sends on its session subject, enforced where
// the messages arrive, before they are decoded. A session sends a
// handful of messages per refresh and a KEEPALIVE every third of the hold
// time; a flood of them would walk the peer's conditions under the
// table's lock (begin-of-rib, end-of-rib) or re-send our whole export
// (REFRESH) again and again. Over the bound a message is dropped,
// refused reject.SessionFlood.
const (
	// SessionRate and SessionBurst: the token bucket of a peer's
	// session messages, of every type.
	SessionRate  = 5 // per second
	SessionBurst = 20
	// RefreshAskEvery: at most one REFRESH ask from the peer per this
	// long (burst refreshAskBurst); one asked while our refresh to it
	// runs is coalesced into that refresh.
	RefreshAskEvery = 5 * time.Second
	refreshAskBurst = 2
)

// peerSession is one link's session at work: the machine, driven by the
// link watcher's ticks and the peer's messages, and the refreshes it
// starts.
type peerSession struct {
	peer string
	send func(session.Message)
	// gone is closed when the peering ends (removed by a reload, or the
	// node stops): its refreshes stop.
	gone     chan struct{}
	goneOnce sync.Once

	mu sync.Mutex
	m  *session.Machine
	// Outbound refresh: one at a time; again: another was asked for
	// while one ran.
	running, again bool
	refreshes      int
	// notEstablished is the failure last logged as "session not
	// established" (its time): each failure is logged once.
	notEstablished time.Time
	last           outbound.RefreshStats
	lastErr        string
	// Inbound refresh: the peer's last End-of-RIB.
	eor      int
	eorAt    time.Time
	eorSwept int
	// The peer's refresh in progress (begun, its id): a begin-of-rib
	// while one is in progress is coalesced into it (adopting the new
	// id) and does not walk the table again; an End-of-RIB ends only the
	// refresh of its id.
	inRefresh bool
	inID      string
	// The bound on the peer's session messages: limit (all of them),
	// asks (REFRESH); flooded counts the refused since the last log line
	// at floodLogged; refused and coalesced count them all.
	limit, asks *rate.Limiter
	flooded     int
	floodLogged time.Time
	refused     int
	coalesced   int
	// askDeferred: a REFRESH ask over the bound waits for the bound to
	// allow it (deferRefreshAsk); later ones are folded into it.
	askDeferred *session.Message
	// dropRefresh: a refresh after a drop at the buffer bound is due
	// (refreshAfterDrop).
	dropRefresh bool
	// plannedUntil: the peer said it restarts and is back by then (a
	// graceful-shutdown notice); its conditions are kept, marked, until
	// then. plannedText is what it said. Cleared when the session is up.
	plannedUntil time.Time
	plannedText  string
	// quietUntil: we announced a planned restart (Drain): the session
	// neither opens nor answers OPENs until then, or until the node stops.
	quietUntil time.Time
	// cause is why the session is going down (planned, administrative),
	// set before the machine's step; downs counts the downs by cause.
	cause string
	downs map[string]int
}

// Causes of a session's going down, as counted (SessionView.Downs,
// anfed_peer_session_downs_total).
const (
	CausePlanned        = "planned"
	CauseAdministrative = "administrative"
	CauseFailed         = "failed"
)

// MaxPlannedRestart bounds how long a peer's graceful-shutdown notice
// keeps its conditions: a peer cannot keep them for good by announcing a
// restart that never comes.
const MaxPlannedRestart = time.Hour

// SessionView is a peer's session as the peers view shows it.
type SessionView struct {
	session.Status
	// RefreshesSent counts our refreshes to the peer (each ends with
	// End-of-RIB); LastRefresh is the last one's.
	RefreshesSent int                    `json:"refreshes_sent"`
	LastRefresh   *outbound.RefreshStats `json:"last_refresh,omitempty"`
	RefreshError  string                 `json:"refresh_error,omitempty"`
	// EndOfRIBs counts the peer's refreshes ended here, at EndOfRIBAt
	// the last, which withdrew Swept conditions it no longer stated.
	EndOfRIBs  int       `json:"end_of_ribs"`
	EndOfRIBAt time.Time `json:"end_of_rib_at,omitzero"`
	Swept      int       `json:"swept"`
	// Refused counts the peer's session messages dropped over the
	// session bound (reason session-flood); Coalesced its begin-of-ribs
	// and REFRESH asks joined to a refresh already in progress.
	Refused   int `json:"session_refused"`
	Coalesced int `json:"session_coalesced"`
	// PlannedUntil: the peer announced a planned restart and is expected
	// back by then; its conditions are kept until then (planned-down).
	PlannedUntil time.Time `json:"planned_until,omitzero"`
	PlannedText  string    `json:"planned_text,omitempty"`
	// Downs counts the established session's downs by cause: planned
	// (the peer's or our graceful-shutdown notice), administrative
	// (disabled or removed), failed (everything else: link cut, hold
	// timer, a mismatch, a peer that restarted unannounced).
	Downs map[string]int `json:"downs,omitempty"`
}

// PlannedDown tells a session the peer left with a graceful-shutdown
// notice whose time has not passed.
func (v *SessionView) PlannedDown(now time.Time) bool {
	return v.State != session.Established && now.Before(v.PlannedUntil)
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return "anfed " + bi.Main.Version
	}
	return "anfed (devel)"
}

// newSession makes p's session; its messages go out on the link's
// connection nc.
func (n *Node) newSession(p *config.Peer, nc *nats.Conn) *peerSession {
	l := n.sessionLocal(p)
	subj := subject.Session(n.ID())
	ps := &peerSession{peer: p.ID, m: session.New(l, time.Now()), gone: make(chan struct{}),
		limit: rate.NewLimiter(SessionRate, SessionBurst),
		asks:  rate.NewLimiter(rate.Every(RefreshAskEvery), refreshAskBurst)}
	ps.send = func(m session.Message) {
		if err := nc.Publish(subj, m.Encode()); err != nil {
			n.log.Debug().Err(err).Str("peer", p.ID).Str("type", string(m.Type)).Msg("session: message not sent")
		}
	}
	return ps
}

// sessionLocal is what our end of p's session states in its OPEN.
func (n *Node) sessionLocal(p *config.Peer) session.Local {
	var catalog []string
	for _, c := range schemas.Classes {
		catalog = append(catalog, schemas.Type(c))
	}
	var peerKeys []string
	if p.SigningKey != "" {
		peerKeys = n.pins().Keys(p.ID) // the pin, and keys it rotated to
	}
	grace, _ := p.Import.Timers()
	l := session.Local{Self: n.ID(), Peer: p.ID, Version: version(), Restart: grace,
		PeerKeys: peerKeys, Catalog: catalog,
		Import: session.Import{Classes: p.Import.Classes, Transit: p.Import.Transit},
		Export: p.Export.Classes, Refreshes: !p.Export.Lossy()}
	if k := n.SigningKey(); k != "" {
		l.Keys = []string{k}
	}
	return l
}

// sessionMsg takes a session message from the peer, on the receiver's
// subscription goroutine.
func (n *Node) sessionMsg(ctx context.Context, ps *peerSession, rcv *inbound.Receiver, raw *nats.Msg) {
	if !ps.limit.Allow() {
		n.sessionFlood(ps, fmt.Sprintf("over the session rate of %d messages/s (burst %d)", SessionRate, SessionBurst))
		return
	}
	m, err := session.Decode(raw.Data, ps.peer, n.ID())
	if err != nil {
		n.log.Warn().Err(err).Str("peer", ps.peer).Msg("session: unreadable message from the peer ignored")
		return
	}
	switch m.Type {
	case session.TypeKeyRotate, session.TypeKeySwitch, session.TypeKeyAccept, session.TypeKeyRefuse:
		ps.mu.Lock()
		_, _ = ps.m.Receive(time.Now(), m) // heard: the hold timer
		established := ps.m.Status().State == session.Established
		ps.mu.Unlock()
		if !established {
			// The peer announces again at the session's establishment.
			n.log.Warn().Str("peer", ps.peer).Str("type", string(m.Type)).Msg("session: a key-rotation message outside an established session ignored")
			return
		}
		n.rotationMsg(ctx, ps, m)
		return
	case session.TypeBegin:
		ps.mu.Lock()
		walk := !ps.inRefresh
		ps.inRefresh, ps.inID = true, m.ID
		if !walk {
			ps.coalesced++
		}
		ps.mu.Unlock()
		if walk {
			rcv.Sync(func() { n.table.BeginRefresh(ps.peer) })
		}
		return
	case session.TypeEndOfRIB:
		ps.mu.Lock()
		ends := ps.inRefresh && ps.inID == m.ID
		if ends {
			ps.inRefresh = false
		}
		ps.mu.Unlock()
		if !ends {
			n.sessionFlood(ps, "an End-of-RIB with no refresh of its id in progress")
			return
		}
		rcv.Sync(func() {
			swept := n.table.EndRefresh(ps.peer)
			for _, c := range swept {
				n.announce(c)
			}
			ps.mu.Lock()
			ps.eor++
			ps.eorAt, ps.eorSwept = time.Now().UTC(), len(swept)
			ps.mu.Unlock()
			n.log.Info().Str("peer", ps.peer).Int("restated", m.Count).Int("withdrawn", len(swept)).
				Msg("session: End-of-RIB from the peer: what it no longer states is withdrawn")
		})
		return
	}
	if m.Type == session.TypeOpen && ps.quiet(time.Now()) {
		return // we announced a planned restart: no session until we are back
	}
	if m.Type == session.TypeNotification {
		ps.mu.Lock()
		switch m.Reason {
		case session.ReasonPlanned:
			within := min(time.Duration(m.RestartSeconds)*time.Second, MaxPlannedRestart)
			ps.plannedUntil, ps.plannedText, ps.cause = time.Now().Add(within), m.Text, CausePlanned
		case session.ReasonAdministrative:
			ps.cause = CauseAdministrative
		}
		ps.mu.Unlock()
	}
	if m.Type == session.TypeRefresh && !ps.asks.Allow() {
		n.sessionFlood(ps, fmt.Sprintf("a REFRESH ask over one per %s (burst %d): folded into one refresh when the bound allows", RefreshAskEvery, refreshAskBurst))
		n.deferRefreshAsk(ps, m)
		return
	}
	n.takeSessionMsg(ctx, ps, rcv, m)
}

// deferRefreshAsk keeps one REFRESH ask over the bound for the moment the
// bound allows it (tickSessions serves it), and folds every later one into
// it: an ask made for a reason (the peer reloaded its import policy just
// after another ask) is served late but never lost, and a flood of asks
// still costs at most one refresh per RefreshAskEvery. It is kept by the
// session, not by the receiver that heard it: a reload that replaces the
// receiver does not lose it.
func (n *Node) deferRefreshAsk(ps *peerSession, m session.Message) {
	ps.mu.Lock()
	if ps.askDeferred == nil {
		ps.askDeferred = &m
	}
	ps.mu.Unlock()
}

// serveDeferredAsk takes ps's deferred REFRESH ask if the bound allows it
// now.
func (n *Node) serveDeferredAsk(ctx context.Context, ps *peerSession) {
	ps.mu.Lock()
	m := ps.askDeferred
	if m == nil || !ps.asks.Allow() {
		ps.mu.Unlock()
		return
	}
	ps.askDeferred = nil
	ps.mu.Unlock()
	n.takeSessionMsg(ctx, ps, nil, *m)
}

// takeSessionMsg acts on a session message from the peer within the
// session's bounds; rcv is the peer's receiver (nil for a deferred
// REFRESH ask, which does not need it).
func (n *Node) takeSessionMsg(ctx context.Context, ps *peerSession, rcv *inbound.Receiver, m session.Message) {
	ps.mu.Lock()
	out, ev := ps.m.Receive(time.Now(), m)
	st := ps.m.Status()
	ps.mu.Unlock()
	for _, o := range out {
		ps.send(o)
	}
	n.sessionEvent(ctx, ps, ev, st)
	if m.Type == session.TypeNotification && m.Reason == session.ReasonAdministrative && ev == session.Down {
		// An administrative shutdown (the peer disabled or removed the
		// peering, RFC 8203) is no failure to ride out: what the peer
		// told us goes now, not after the grace time.
		rcv.Sync(func() {
			withdrawn := n.withdrawAll(ps.peer)
			n.log.Warn().Str("peer", ps.peer).Str("text", m.Text).Int("withdrawn", withdrawn).
				Msg("session: the peer shut the peering down administratively; its conditions are withdrawn")
		})
	}
}

// quiet tells whether we announced a planned restart to the peer that
// has not run out.
func (ps *peerSession) quiet(now time.Time) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return now.Before(ps.quietUntil)
}

// sessionFlood drops a session message of the peer's over the bound:
// counted per peer and reason, logged at most once a second with the
// count, so a flood does not flood the log.
func (n *Node) sessionFlood(ps *peerSession, detail string) {
	n.obs.Rejected(observe.Rejection{Node: n.ID(), From: ps.peer, Reason: reject.SessionFlood, Detail: detail})
	ps.mu.Lock()
	ps.refused++
	ps.flooded++
	now := time.Now()
	logIt := now.Sub(ps.floodLogged) >= time.Second
	count := ps.flooded
	if logIt {
		ps.flooded, ps.floodLogged = 0, now
	}
	ps.mu.Unlock()
	if logIt {
		n.log.Warn().Str("peer", ps.peer).Str("reason", string(reject.SessionFlood)).Int("count", count).Str("last", detail).
			Msg("session: messages from the peer over the session bound dropped")
	}
}

// sessionEvent acts on what a step of the machine said.
func (n *Node) sessionEvent(ctx context.Context, ps *peerSession, ev session.Event, st session.Status) {
	switch ev {
	case session.Up:
		ps.mu.Lock()
		ps.inRefresh = false // a new session: its first begin walks the table
		if !ps.plannedUntil.IsZero() {
			n.log.Info().Str("peer", ps.peer).Time("planned_until", ps.plannedUntil).Msg("session: the peer is back from its planned restart")
		}
		ps.plannedUntil, ps.plannedText = time.Time{}, ""
		ps.mu.Unlock()
		neg := st.Negotiated
		if !neg.PeerRefreshes {
			// A peer that sends no End-of-RIB (a lossy export) re-states
			// nothing: its stale conditions are taken as they were.
			for _, c := range n.table.Freshen(ps.peer) {
				n.announce(c)
			}
		}
		n.log.Info().Str("peer", ps.peer).Str("peer_version", neg.Version).Stringer("hold", neg.Hold).
			Strs("sendable", neg.Sendable).Strs("peer_accepts", neg.PeerImport.Classes).Int("flaps", st.Flaps).
			Msg("session established: refreshing what we export to the peer")
		n.announceRotation(ps, time.Now(), true)
		n.refreshOut(ctx, ps)
	case session.RefreshAsked:
		ps.mu.Lock()
		running := ps.running
		if running {
			// The refresh under way re-states everything after its
			// begin-of-rib: the ask is answered by it, not queued.
			ps.coalesced++
		}
		ps.mu.Unlock()
		if running {
			return
		}
		n.log.Info().Str("peer", ps.peer).Msg("session: the peer asked for a refresh")
		n.refreshOut(ctx, ps)
	case session.Down:
		ps.mu.Lock()
		cause := ps.cause
		if cause == "" {
			cause = CauseFailed
		}
		if ps.downs == nil {
			ps.downs = map[string]int{}
		}
		ps.downs[cause]++
		until := ps.plannedUntil
		ps.mu.Unlock()
		ev := n.log.Warn()
		if cause == CausePlanned && !until.IsZero() {
			ev = n.log.Info().Time("planned_until", until)
		}
		ev.Str("peer", ps.peer).Str("reason", st.LastDown).Str("cause", cause).Int("flaps", st.Flaps).Msg("session down")
	}
	if ev != session.None {
		ps.mu.Lock()
		ps.cause = ""
		ps.mu.Unlock()
	}
	if ev == session.None && st.State == session.Idle && st.LastDown != "" && st.LastDownAt.After(time.Now().Add(-time.Second)) {
		ps.mu.Lock()
		first := !st.LastDownAt.Equal(ps.notEstablished)
		ps.notEstablished = st.LastDownAt
		ps.mu.Unlock()
		if first {
			n.log.Warn().Str("peer", ps.peer).Str("reason", st.LastDown).Time("down_at", st.LastDownAt).Msg("session not established")
		}
	}
}

// tickSessions drives every session with the link state and the time; the
// link watcher calls it.
func (n *Node) tickSessions(ctx context.Context, now time.Time, up map[string]bool, changed map[string]bool) {
	n.mu.RLock()
	sessions := make([]*peerSession, 0, len(n.links))
	for _, l := range n.links {
		sessions = append(sessions, l.ps)
	}
	n.mu.RUnlock()
	for _, ps := range sessions {
		// After our planned-restart notice the session stays quiet: the
		// link's comings and goings are taken, nothing is sent.
		quiet := ps.quiet(now)
		if quiet && !changed[ps.peer] {
			continue
		}
		ps.mu.Lock()
		var out []session.Message
		var ev session.Event
		if changed[ps.peer] {
			if up[ps.peer] {
				out = ps.m.LinkUp(now)
			} else {
				ev = ps.m.LinkDown(now)
			}
		} else {
			out, ev = ps.m.Tick(now)
		}
		st := ps.m.Status()
		ps.mu.Unlock()
		if quiet {
			out = nil
		}
		for _, o := range out {
			ps.send(o)
		}
		n.sessionEvent(ctx, ps, ev, st)
		n.serveDeferredAsk(ctx, ps)
	}
}

// DropRefreshDelay is how long after a drop at a peer's buffer bound
// (export.buffer) the node refreshes the peer; drops meanwhile fold into
// the same refresh.
const DropRefreshDelay = time.Second

// refreshAfterDrop refreshes the peer DropRefreshDelay after a signal for
// it was dropped at its buffer bound. A refresh re-states what the peer
// should hold; one that began before the drop's acknowledgement was
// counted sends that condition keep-only, expecting the signal itself to
// follow (TestConvergence found the peer without it for good).
func (n *Node) refreshAfterDrop(ps *peerSession) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.dropRefresh {
		return
	}
	ps.dropRefresh = true
	time.AfterFunc(DropRefreshDelay, func() {
		ps.mu.Lock()
		ps.dropRefresh = false
		established := ps.m.Status().State == session.Established
		ps.mu.Unlock()
		if established && !n.stopping.Load() {
			n.refreshOut(context.Background(), ps)
		}
	})
}

// refreshOut re-states what we export to the peer, then End-of-RIB; one
// refresh at a time per peer, and one more if asked meanwhile.
func (n *Node) refreshOut(ctx context.Context, ps *peerSession) {
	if n.sender(ps.peer) == nil {
		return // a lossy export keeps no state to re-state
	}
	ps.mu.Lock()
	if ps.running {
		ps.again = true
		ps.mu.Unlock()
		return
	}
	ps.running = true
	ps.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		// The refresh belongs to the session, not to the caller (a
		// receiver that a reload replaces, say): it ends with the
		// peering or the node.
		ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		go func() {
			select {
			case <-ps.gone:
				cancel()
			case <-ctx.Done():
			}
		}()
		replaced := false
		for {
			// The sender of the moment: a reload may have made a new one
			// for a new export policy. A reload that replaces it while it
			// refreshes ends that refresh (it reads and waits for the old
			// policy's subjects, which the new export consumer may never
			// acknowledge: 30 s lost) and runs it again on the new one.
			snd, stopped := n.senderOf(ps.peer)
			for wait := 0; snd == nil && replaced && wait < 50 && ctx.Err() == nil; wait++ {
				time.Sleep(100 * time.Millisecond) // the reload's new pipelines
				snd, stopped = n.senderOf(ps.peer)
			}
			replaced = false
			if snd != nil {
				rctx, rcancel := context.WithCancel(ctx)
				go func() {
					select {
					case <-stopped:
						rcancel()
					case <-rctx.Done():
					}
				}()
				n.refreshOnce(rctx, ps, snd)
				rcancel()
				select {
				case <-stopped:
					replaced = true
					ps.mu.Lock()
					ps.again = true
					ps.mu.Unlock()
				default:
				}
			}
			ps.mu.Lock()
			if !ps.again || n.stopping.Load() || ctx.Err() != nil {
				ps.running, ps.again = false, false
				ps.mu.Unlock()
				return
			}
			ps.again = false
			ps.mu.Unlock()
		}
	}()
}

func (n *Node) refreshOnce(ctx context.Context, ps *peerSession, snd *outbound.Sender) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	id := nuid.Next()
	marker := func(t session.Type, count int) error {
		ps.mu.Lock()
		established := ps.m.Status().State == session.Established
		ps.mu.Unlock()
		if !established {
			return errors.New("the session is not established")
		}
		ps.send(session.Message{Type: t, From: n.ID(), To: ps.peer, ID: id, Count: count})
		return nil
	}
	st, err := snd.Refresh(ctx, n.store.JetStream(), id, refreshWait,
		func() error { return marker(session.TypeBegin, 0) },
		func(count int) error { return marker(session.TypeEndOfRIB, count) })
	ps.mu.Lock()
	ps.refreshes++
	ps.last, ps.lastErr = st, ""
	if err != nil {
		ps.lastErr = err.Error()
	}
	ps.mu.Unlock()
	if err != nil {
		n.log.Warn().Err(err).Str("peer", ps.peer).Msg("session: refresh to the peer not completed")
		return
	}
	n.log.Info().Str("peer", ps.peer).Int("read", st.Read).Int("sent", st.Sent).Int("kept", st.Kept).Int("resent", st.Resent).
		Stringer("took", st.Took).Msg("session: refresh sent, End-of-RIB")
}

// RefreshPeer asks for a refresh with peer: inbound asks the peer to
// re-state its state to us, outbound re-states ours to it; both when
// neither is set. The refresh runs until it ends or ctx is done.
func (n *Node) RefreshPeer(ctx context.Context, peer string, inbound, outbound bool) error {
	n.mu.RLock()
	l := n.links[peer]
	n.mu.RUnlock()
	if _, ok := n.config().Peer(peer); ok && l == nil && n.external() {
		return fmt.Errorf("%w: %s", errNotHeldHere, peer)
	}
	if l == nil {
		return fmt.Errorf("no peer %q: the policy's peers are listed by `anfed peers`", peer)
	}
	ps := l.ps
	if !inbound && !outbound {
		inbound, outbound = true, true
	}
	ps.mu.Lock()
	st := ps.m.Status()
	var out []session.Message
	if inbound {
		out = ps.m.Refresh()
	}
	ps.mu.Unlock()
	if st.State != session.Established {
		return fmt.Errorf("the session with %s is %s (last down: %s): a refresh runs once it is established", peer, st.State, st.LastDown)
	}
	for _, o := range out {
		ps.send(o)
	}
	if outbound {
		n.refreshOut(ctx, ps)
	}
	return nil
}

// Session is the peer's session as the peers view shows it.
func (n *Node) Session(peer string) *SessionView {
	l := n.link(peer)
	if l == nil {
		return nil
	}
	ps := l.ps
	ps.mu.Lock()
	defer ps.mu.Unlock()
	v := &SessionView{Status: ps.m.Status(), RefreshesSent: ps.refreshes, RefreshError: ps.lastErr,
		EndOfRIBs: ps.eor, EndOfRIBAt: ps.eorAt, Swept: ps.eorSwept, Refused: ps.refused, Coalesced: ps.coalesced,
		PlannedUntil: ps.plannedUntil, PlannedText: ps.plannedText}
	if len(ps.downs) > 0 {
		v.Downs = maps.Clone(ps.downs)
	}
	if ps.refreshes > 0 {
		l := ps.last
		v.LastRefresh = &l
	}
	return v
}

// ReapplyImport applies peer's import policy again, imp from now on (nil:
// the current one), to what the peer sent, without asking it (soft
// reconfiguration inbound): the signals it sent that the policy refused
// and now passes are admitted from its Adj-RIB-In, and, with a new imp,
// the conditions held from it that imp refuses are withdrawn and kept.
// imp replaces the running receiver's import decision (classes, transit,
// tags, filter) only, not the policy in force (Config): a reload that
// makes the peer's pipelines anew starts from the policy it loads (and
// its new receiver admits from the Adj-RIB-In what that passes). It
// returns once done, or when ctx ends.
func (n *Node) ReapplyImport(ctx context.Context, peer string, imp *config.ImportPolicy) (inbound.ReimportStats, error) {
	var r *inbound.Receiver
	if l := n.link(peer); l != nil {
		n.mu.RLock()
		if l.pipes != nil {
			r = l.pipes.rcv
		}
		n.mu.RUnlock()
	}
	if r == nil {
		return inbound.ReimportStats{}, fmt.Errorf("no peer %q with its pipelines running: the policy's peers are listed by `anfed peers`", peer)
	}
	return r.Reimport(ctx, imp)
}
