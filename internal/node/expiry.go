package node

import (
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/expiry"
)

// watchExpiry makes the watch of what expires in the policy: the leaf
// listener's certificate and CA, each dialled peer's client certificate
// and CA, each peering's end (peers[].expires). A certificate that cannot
// be read is logged (the policy check reports it with its line) and not
// watched.
func (n *Node) watchExpiry() *expiry.Watch {
	var items []expiry.Item
	cert := func(name, peer, file string) {
		if file == "" {
			return
		}
		it, err := expiry.Certificate(name, peer, file)
		if err != nil {
			n.log.Warn().Err(err).Msg("expiry: certificate not watched")
			return
		}
		items = append(items, it)
	}
	if ln := n.config().NATS.LeafNodes; ln != nil && ln.TLS != nil {
		cert(expiry.CertListener, "", ln.TLS.Cert)
		cert(expiry.CertListenerCA, "", ln.TLS.CA)
	}
	for _, p := range n.config().Peers {
		if p.Dial != nil && p.Dial.TLS != nil {
			cert(expiry.CertClient, p.ID, p.Dial.TLS.Cert)
			cert(expiry.CertPeerCA, p.ID, p.Dial.TLS.CA)
		}
		if p.Expires != nil {
			items = append(items, expiry.Item{Kind: expiry.KindPeering, Name: expiry.KindPeering, Peer: p.ID, NotAfter: p.Expires.UTC()})
		}
	}
	return expiry.NewWatch(items)
}

// rewatchExpiry watches what the policy in force names (after a reload):
// what did not change is not said again.
func (n *Node) rewatchExpiry() {
	w := n.watchExpiry()
	if old := n.expiry.Load(); old != nil {
		w = old.Renew(w)
	}
	n.expiry.Store(w)
	n.tickExpiry(time.Now())
}

// tickExpiry logs each threshold crossed (30, 7, 1 days, the end) once.
func (n *Node) tickExpiry(now time.Time) {
	x := n.expiry.Load()
	if x == nil {
		return
	}
	for _, w := range x.Tick(now) {
		ev, what := n.log.Warn(), "expires within "+strconv.Itoa(int(w.Threshold/expiry.Day))+" days"
		switch {
		case w.Expired():
			ev, what = n.log.Error(), "has expired"
		case w.Threshold == expiry.Day:
			ev, what = n.log.Error(), "expires within a day"
		}
		fix := "renew it"
		if w.Item.Kind == expiry.KindPeering {
			fix = "renew the peering (a new bundle, peers[].expires) or it ends: its link is cut and its signals refused"
		}
		logItem(ev, w.Item).Str("warning", warningName(w)).Int64("seconds_left", int64(w.Left/time.Second)).
			Msg("expiry: " + w.Item.String() + " " + what + ": " + fix)
	}
}

func logItem(ev *zerolog.Event, it expiry.Item) *zerolog.Event {
	ev = ev.Str("kind", it.Kind).Str("name", it.Name).Time("not_after", it.NotAfter)
	if it.Peer != "" {
		ev = ev.Str("peer", it.Peer)
	}
	if it.File != "" {
		ev = ev.Str("file", it.File).Str("subject", it.Subject)
	}
	return ev
}

func warningName(w expiry.Warning) string {
	if w.Expired() {
		return "expired"
	}
	return strconv.Itoa(int(w.Threshold/expiry.Day)) + "d"
}

// Expiry is what expires and when: ours (Peer "") and each peer's.
func (n *Node) Expiry() []expiry.Status {
	x := n.expiry.Load()
	if x == nil {
		return nil
	}
	return x.Status(time.Now())
}

// PeerExpiry is what the peer's link depends on that expires: the
// peering, our client certificate and the peer's CA when we dial it, our
// listener's certificate and CA when it dials us.
func (n *Node) PeerExpiry(peer string) []expiry.Status {
	var accepts bool
	for _, p := range n.config().Peers {
		if p.ID == peer {
			accepts = p.Accept != nil
		}
	}
	var out []expiry.Status
	for _, s := range n.Expiry() {
		if s.Peer == peer || (accepts && s.Peer == "") {
			out = append(out, s)
		}
	}
	return out
}
