// Package expiry watches what runs out while a node runs — its leaf TLS
// certificates (the listener's, its CA, our client certificates, the
// peers' CAs) and its peerings (peers[].expires) — and says when each
// crosses 30, 7 and 1 days before its end, and its end: once per
// threshold crossed, not at every look. Signing keys (NKeys) carry no
// expiry; they are rotated (docs/sessions.md#key-rotation).
//
// It holds plain types driven by the caller with the time; the node
// feeds it its policy's files and logs what it says.
package expiry

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sync"
	"time"

	"github.com/anfed/anfed/internal/boundedfile"
)

// Day is 24 hours.
const Day = 24 * time.Hour

// Thresholds are the warnings before an end, widest first.
var Thresholds = []time.Duration{30 * Day, 7 * Day, Day}

// The kinds of what expires.
const (
	KindCertificate = "certificate"
	KindPeering     = "peering"
)

// The certificates' names.
const (
	// CertListener is our leaf listener's certificate
	// (nats.leafnodes.tls.cert); CertListenerCA the CA that verifies the
	// peers' client certificates (nats.leafnodes.tls.ca).
	CertListener   = "listener"
	CertListenerCA = "listener-ca"
	// CertClient is our client certificate for a peer we dial
	// (peers[].dial.tls.cert); CertPeerCA the peer's CA that verifies its
	// listener (peers[].dial.tls.ca).
	CertClient = "client"
	CertPeerCA = "peer-ca"
)

// Item is one thing that expires.
type Item struct {
	Kind string `json:"kind"`
	// Name is the certificate's (CertListener, …), or "peering".
	Name string `json:"name"`
	// Peer is the peer it belongs to ("" for the node's own).
	Peer     string    `json:"peer,omitempty"`
	File     string    `json:"file,omitempty"`
	Subject  string    `json:"subject,omitempty"`
	NotAfter time.Time `json:"not_after"`
}

// Left is how long the item has at now (negative once past).
func (it Item) Left(now time.Time) time.Duration { return it.NotAfter.Sub(now) }

func (it Item) String() string {
	s := it.Kind + " " + it.Name
	if it.Peer != "" {
		s += " of peer " + it.Peer
	}
	if it.File != "" {
		s += " (" + it.File
		if it.Subject != "" {
			s += ", " + it.Subject
		}
		s += ")"
	}
	return s
}

// Status is an item as the API shows it: with the time it has left and
// the tightest threshold it crossed.
type Status struct {
	Item
	SecondsLeft int64 `json:"seconds_left"`
	// Warning: "" (more than 30 days), "30d", "7d", "1d" or "expired".
	Warning string `json:"warning,omitempty"`
}

// Warning is a threshold an item crossed.
type Warning struct {
	Item Item
	// Threshold crossed; 0: the item expired.
	Threshold time.Duration
	Left      time.Duration
}

// Expired reports whether the warning is the item's end.
func (w Warning) Expired() bool { return w.Threshold == 0 }

// band is how many thresholds an item crossed at now (len(Thresholds)+1
// once expired).
func band(it Item, now time.Time) int {
	left := it.Left(now)
	if left <= 0 {
		return len(Thresholds) + 1
	}
	b := 0
	for _, t := range Thresholds {
		if left <= t {
			b++
		}
	}
	return b
}

func bandName(b int) string {
	switch {
	case b == 0:
		return ""
	case b > len(Thresholds):
		return "expired"
	}
	return fmt.Sprintf("%dd", Thresholds[b-1]/Day)
}

// Watch says when items cross thresholds. It is safe for concurrent use.
type Watch struct {
	mu    sync.Mutex
	items []Item
	said  []int // the band each item was last said at; -1: never looked
}

// NewWatch watches items.
func NewWatch(items []Item) *Watch {
	w := &Watch{items: items, said: make([]int, len(items))}
	for i := range w.said {
		w.said[i] = -1
	}
	return w
}

// Renew is w watching what next watches: an item that did not change
// (same kind, name, peer, file and end) keeps what w said of it, so a
// reload that leaves it alone does not say it again.
func (w *Watch) Renew(next *Watch) *Watch {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, it := range next.items {
		for j, old := range w.items {
			if it.Kind == old.Kind && it.Name == old.Name && it.Peer == old.Peer && it.File == old.File && it.NotAfter.Equal(old.NotAfter) {
				next.said[i] = w.said[j]
			}
		}
	}
	return next
}

// Tick returns the thresholds crossed since the last Tick: at the first,
// the tightest each item is past already (one warning, not one per
// threshold); then each new one as it is crossed.
func (w *Watch) Tick(now time.Time) []Warning {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Warning
	for i, it := range w.items {
		b := band(it, now)
		if b <= w.said[i] || (w.said[i] < 0 && b == 0) {
			w.said[i] = max(w.said[i], b)
			continue
		}
		w.said[i] = b
		var th time.Duration
		if b <= len(Thresholds) {
			th = Thresholds[b-1]
		}
		out = append(out, Warning{Item: it, Threshold: th, Left: it.Left(now)})
	}
	return out
}

// Status is every item at now.
func (w *Watch) Status(now time.Time) []Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Status, 0, len(w.items))
	for _, it := range w.items {
		out = append(out, Status{Item: it, SecondsLeft: int64(it.Left(now) / time.Second), Warning: bandName(band(it, now))})
	}
	return out
}

// Certificate reads the certificates of a PEM file and returns the one
// that expires first (in a chain, the weakest link), as the item name of
// peer.
func Certificate(name, peer, file string) (Item, error) {
	b, err := boundedfile.Read(file, boundedfile.MaxSize)
	if err != nil {
		return Item{}, fmt.Errorf("certificate %s: %w", name, err)
	}
	var first *x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return Item{}, fmt.Errorf("certificate %s in %s: %w", name, file, err)
		}
		if first == nil || c.NotAfter.Before(first.NotAfter) {
			first = c
		}
	}
	if first == nil {
		return Item{}, fmt.Errorf("certificate %s: %s holds no PEM certificate", name, file)
	}
	return Item{Kind: KindCertificate, Name: name, Peer: peer, File: file, Subject: first.Subject.String(), NotAfter: first.NotAfter.UTC()}, nil
}
