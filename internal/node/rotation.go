package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/nats-io/nuid"

	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/session"
)

// Key rotation (docs/sessions.md#key-rotation). We announce a new signing
// key to every peer over the session, signed by the key they pinned; we
// keep signing with the old key until every peer confirmed the new one,
// then switch and tell them; each peer retires the old key once the
// overlap has passed after it heard of the switch. Both ends keep what
// they know in the store's key bucket (store.KeysBucket), so a restart
// signs with the key in force and takes the keys peers rotated to.

// DefaultOverlap is how long peers keep taking the old key after the
// switch when `anfed keys rotate` names none.
const DefaultOverlap = 24 * time.Hour

// announceEvery is how often an announcement a peer has not answered is
// sent again while its session is established.
const announceEvery = 5 * time.Second

// maxPeerKeys bounds the keys pinned at once for one peer: its pin and
// the rotations still overlapping it.
const maxPeerKeys = 3

// maxRotations bounds the rotations of one peer kept in its record.
const maxRotations = 8

// OwnRotation is our signing-key rotation, as the store keeps it and the
// API shows it.
type OwnRotation struct {
	ID             string `json:"id"`
	Previous       string `json:"previous"`
	Key            string `json:"key"`
	KeyFile        string `json:"key_file"`
	OverlapSeconds int64  `json:"overlap_seconds"`
	// Started is when it was asked for; Confirmed, when each peer
	// confirmed the new key; Refused, why a peer refused it (its last
	// word).
	Started   time.Time            `json:"started"`
	Confirmed map[string]time.Time `json:"confirmed"`
	Refused   map[string]string    `json:"refused,omitempty"`
	// Waiting are the peers that have not confirmed yet (API only).
	Waiting []string `json:"waiting,omitempty"`
	// SwitchedAt: since then we sign with Key; Done: the overlap has
	// passed, our peers retire Previous.
	SwitchedAt time.Time `json:"switched_at,omitzero"`
	Done       bool      `json:"done,omitempty"`
}

// PeerRotation is a peer's rotation we accepted, as the store keeps it.
type PeerRotation struct {
	ID             string    `json:"id"`
	Previous       string    `json:"previous"`
	Key            string    `json:"key"`
	OverlapSeconds int64     `json:"overlap_seconds"`
	AcceptedAt     time.Time `json:"accepted_at"`
	// SwitchedAt is when the peer told us it signs with Key; Previous
	// is retired OverlapSeconds after it.
	SwitchedAt time.Time `json:"switched_at,omitzero"`
	Retired    bool      `json:"retired,omitempty"`
}

// RetireAt is when the rotation's previous key is retired (zero before
// the switch).
func (r PeerRotation) RetireAt() time.Time {
	if r.SwitchedAt.IsZero() {
		return time.Time{}
	}
	return r.SwitchedAt.Add(time.Duration(r.OverlapSeconds) * time.Second)
}

// PeerKeysView is what the peers view shows of a peer's signing keys.
type PeerKeysView struct {
	// Pinned are the keys its signals verify under now, oldest first.
	Pinned []string `json:"pinned"`
	// Rotation is the last rotation of its key we accepted.
	Rotation *PeerRotation `json:"rotation,omitempty"`
	// Refused counts its key-rotation messages refused.
	Refused int `json:"refused,omitempty"`
}

type peerRecord struct {
	Rotations []PeerRotation `json:"rotations"`
}

// keyRing is the node's key rotations: ours, and those of its peers.
type keyRing struct {
	mu      sync.Mutex
	own     *OwnRotation
	cur     nkeys.KeyPair // the key we sign with
	prev    nkeys.KeyPair // own's previous and new keys
	next    nkeys.KeyPair
	sentAt  map[string]time.Time // peer -> our last announcement to it
	peers   map[string]*peerRecord
	refused map[string]int
}

func ownRecord() string              { return "self" }
func peerRecordName(p string) string { return "peer." + p }

// pins is the verifier in force (a reload replaces it).
func (n *Node) pins() *origin.Verifier {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.deps.Verifier
}

// peerSession is the peer's session (nil: no such peer).
func (n *Node) peerSession(peer string) *peerSession {
	if l := n.link(peer); l != nil {
		return l.ps
	}
	return nil
}

// applyRotations pins, on top of what the policy pins in v, the keys our
// peers rotated to (their previous keys too, until retired) and, during
// our own rotation's overlap, our previous key beside our key in force:
// at start, and at a reload that makes the verifier anew.
func (n *Node) applyRotations(v *origin.Verifier, peers []string) {
	n.keys.mu.Lock()
	defer n.keys.mu.Unlock()
	if o := n.keys.own; o != nil && !o.Done && !o.SwitchedAt.IsZero() && n.signer != nil && n.signer.KeyID() == o.Key {
		_ = v.Accept(n.ID(), o.Previous)
	}
	now := time.Now()
	for _, peer := range peers {
		rec := n.keys.peers[peer]
		if rec == nil {
			continue
		}
		for _, r := range rec.Rotations {
			if !v.Accepts(peer, r.Previous) {
				n.log.Warn().Str("peer", peer).Str("rotation", r.ID).Str("previous", r.Previous).Strs("pinned", v.Keys(peer)).
					Msg("keys: a rotation of the peer's key in the store starts from a key the policy no longer pins: not applied (the policy's pin holds)")
				continue
			}
			if err := v.Accept(peer, r.Key); err != nil {
				continue
			}
			if r.Retired || (!r.RetireAt().IsZero() && now.After(r.RetireAt())) {
				_ = v.Retire(peer, r.Previous)
			}
		}
	}
}

// restoreKeys reads the rotations the store keeps: ours (sign with the
// key in force) and our peers' (pin the keys they rotated to, retire
// those whose overlap has passed). It runs at start, after the store
// opens and before the links' receivers check what they held.
func (n *Node) restoreKeys(ctx context.Context) error {
	n.keys.peers, n.keys.sentAt, n.keys.refused = map[string]*peerRecord{}, map[string]time.Time{}, map[string]int{}
	if n.signer != nil {
		if err := n.restoreOwn(ctx); err != nil {
			return err
		}
	}
	var peers []string
	for _, p := range n.config().Peers {
		b, err := n.store.KeyRecord(ctx, peerRecordName(p.ID))
		if err != nil {
			return err
		}
		if b == nil {
			continue
		}
		var rec peerRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			n.log.Error().Err(err).Str("peer", p.ID).Msg("keys: the peer's rotations in the store are unreadable: its policy pin alone holds")
			continue
		}
		n.keys.mu.Lock()
		n.keys.peers[p.ID] = &rec
		n.keys.mu.Unlock()
		peers = append(peers, p.ID)
	}
	v := n.pins()
	n.applyRotations(v, peers)
	for _, p := range peers {
		n.log.Info().Str("peer", p).Strs("pinned", v.Keys(p)).Msg("keys: the peer's key rotations restored from the store")
	}
	return nil
}

func (n *Node) restoreOwn(ctx context.Context) error {
	b, err := n.store.KeyRecord(ctx, ownRecord())
	if err != nil || b == nil {
		return err
	}
	var r OwnRotation
	if err := json.Unmarshal(b, &r); err != nil {
		n.log.Error().Err(err).Msg("keys: our rotation in the store is unreadable: we sign with the policy's key")
		return nil
	}
	if r.Done {
		if cur := n.signer.KeyID(); cur == r.Previous {
			kp, err := n.loadRotated(r)
			if err != nil {
				return fmt.Errorf("our key rotation %s is done, our peers retired %s, and operator.signing_key_file still names it: set it to %s: %w", r.ID, r.Previous, r.KeyFile, err)
			}
			if err := n.signer.Switch(kp); err != nil {
				return err
			}
			n.keys.cur = kp
			n.pinSelf(n.pins(), r.Key, "")
			n.log.Warn().Str("key", r.Key).Str("key_file", r.KeyFile).Msg("keys: signing with the key our rotation switched to; set operator.signing_key_file to its file")
		}
		return nil
	}
	switch n.signer.KeyID() {
	case r.Previous:
		kp, err := n.loadRotated(r)
		if err != nil {
			if r.SwitchedAt.IsZero() {
				n.log.Error().Err(err).Str("rotation", r.ID).Msg("keys: our rotation's new key cannot be read: the rotation is abandoned, we sign with the policy's key")
				return nil
			}
			return fmt.Errorf("our key rotation %s switched to %s, whose file %s: %w (restore the file, or set operator.signing_key_file to it)", r.ID, r.Key, r.KeyFile, err)
		}
		n.keys.prev, n.keys.next = n.keys.cur, kp
		if !r.SwitchedAt.IsZero() {
			if err := n.signer.Switch(kp); err != nil {
				return err
			}
			n.keys.cur = kp
			n.pinSelf(n.pins(), r.Key, r.Previous)
		}
	case r.Key:
		// The policy names the new key already.
		if r.SwitchedAt.IsZero() {
			r.SwitchedAt = time.Now().UTC()
		}
		n.keys.next = n.keys.cur
	default:
		n.log.Warn().Str("rotation", r.ID).Str("previous", r.Previous).Str("key", r.Key).Str("signing_key", n.signer.KeyID()).
			Msg("keys: the policy's signing key is neither key of the rotation in the store: the rotation is abandoned")
		return nil
	}
	n.keys.own = &r
	n.log.Info().Str("rotation", r.ID).Str("key", r.Key).Bool("switched", !r.SwitchedAt.IsZero()).Msg("keys: our key rotation resumed")
	return nil
}

func (n *Node) loadRotated(r OwnRotation) (nkeys.KeyPair, error) {
	kp, err := origin.LoadSigningKey(r.KeyFile)
	if err != nil {
		return nil, err
	}
	if pub, _ := kp.PublicKey(); pub != r.Key {
		return nil, fmt.Errorf("%s holds %s, not the rotation's key %s", r.KeyFile, pub, r.Key)
	}
	return kp, nil
}

// pinSelf pins our key in force for our own signals coming back through a
// loop (they must verify before the loop check refuses them), the
// previous one beside it until it is retired ("" for none).
func (n *Node) pinSelf(v *origin.Verifier, key, previous string) {
	_ = v.Accept(n.ID(), key)
	for _, k := range v.Keys(n.ID()) {
		if k != key && k != previous {
			_ = v.Retire(n.ID(), k)
		}
	}
}

// RotateRequest asks the node to rotate its signing key
// (subject.APIKeysRotate).
type RotateRequest struct {
	// Overlap is how long peers keep taking the old key after the
	// switch, a Go duration ("24h"); "" is DefaultOverlap.
	Overlap string `json:"overlap,omitempty"`
}

// RotateKey starts a rotation of our signing key: it makes the new key
// (written beside operator.signing_key_file, or in storage.dir/keys),
// records the rotation in the store and announces it to every peer. The
// node switches to the new key once every peer confirmed it.
func (n *Node) RotateKey(ctx context.Context, overlap time.Duration) (OwnRotation, error) {
	if n.signer == nil {
		return OwnRotation{}, errors.New("the node has no signing key to rotate (operator.signing_key_file)")
	}
	if overlap == 0 {
		overlap = DefaultOverlap
	}
	if overlap < session.MinOverlap || overlap > session.MaxOverlap || overlap%time.Second != 0 {
		return OwnRotation{}, fmt.Errorf("overlap %s: it must be whole seconds between %s and %s", overlap, session.MinOverlap, session.MaxOverlap)
	}
	v := n.pins() // before keys.mu: a reload holds Node.mu, then keys.mu
	n.keys.mu.Lock()
	defer n.keys.mu.Unlock()
	if o := n.keys.own; o != nil && !o.Done {
		return OwnRotation{}, fmt.Errorf("rotation %s to %s is in progress since %s (%s): one at a time; `anfed keys status` shows it",
			o.ID, o.Key, o.Started.Format(time.RFC3339), n.rotationStage(o))
	}
	kp, err := origin.NewSigningKey()
	if err != nil {
		return OwnRotation{}, err
	}
	pub, _ := kp.PublicKey()
	file, err := n.writeRotatedKey(kp)
	if err != nil {
		return OwnRotation{}, err
	}
	prev := n.keys.cur
	r := &OwnRotation{ID: nuid.Next(), Previous: n.signer.KeyID(), Key: pub, KeyFile: file, OverlapSeconds: int64(overlap / time.Second),
		Started: time.Now().UTC(), Confirmed: map[string]time.Time{}, Refused: map[string]string{}}
	if err := n.putOwn(ctx, r); err != nil {
		return OwnRotation{}, err
	}
	n.keys.own, n.keys.prev, n.keys.next = r, prev, kp
	clear(n.keys.sentAt)
	n.log.Info().Str("rotation", r.ID).Str("previous", r.Previous).Str("key", pub).Str("key_file", file).Stringer("overlap", overlap).
		Msg("keys: rotation started: the new key is announced to every peer; we sign with it once all confirmed it")
	if len(n.config().Peers) == 0 {
		n.switchKey(ctx, time.Now(), v)
	}
	return n.ownView(), nil
}

// writeRotatedKey writes the new key beside the one in force, never over
// a file.
func (n *Node) writeRotatedKey(kp nkeys.KeyPair) (string, error) {
	dir := filepath.Dir(n.config().Operator.SigningKeyFile)
	if n.config().Operator.SigningKeyFile == "" {
		if n.config().Storage.Dir == "" {
			return "", errors.New("nowhere to write the new signing key: set operator.signing_key_file or storage.dir")
		}
		dir = filepath.Join(n.config().Storage.Dir, "keys")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("write the new signing key: %w", err)
		}
	}
	pub, _ := kp.PublicKey()
	file := filepath.Join(dir, fmt.Sprintf("signing-%s-%s.nk", time.Now().UTC().Format("20060102T150405Z"), pub[:8]))
	if abs, err := filepath.Abs(file); err == nil {
		file = abs
	}
	if err := origin.WriteSigningKey(file, kp); err != nil {
		return "", err
	}
	return file, nil
}

func (n *Node) putOwn(ctx context.Context, r *OwnRotation) error {
	v := *r
	v.Waiting = nil
	b, _ := json.Marshal(v) // plain data always marshals
	return n.store.PutKeyRecord(ctx, ownRecord(), b)
}

func (n *Node) rotationStage(o *OwnRotation) string {
	switch {
	case o.Done:
		return "done"
	case !o.SwitchedAt.IsZero():
		return "switched, overlapping until " + o.SwitchedAt.Add(time.Duration(o.OverlapSeconds)*time.Second).Format(time.RFC3339)
	}
	return fmt.Sprintf("announced, %d of %d peers confirmed", len(o.Confirmed), len(n.config().Peers))
}

// KeyRotation is our key rotation, the last one or the one in progress
// (nil: none since the store was made).
func (n *Node) KeyRotation() *OwnRotation {
	n.keys.mu.Lock()
	defer n.keys.mu.Unlock()
	if n.keys.own == nil {
		return nil
	}
	v := n.ownView()
	return &v
}

// ownView copies own for the API; the caller holds keys.mu.
func (n *Node) ownView() OwnRotation {
	o := *n.keys.own
	o.Confirmed, o.Refused = maps.Clone(o.Confirmed), maps.Clone(o.Refused)
	o.Waiting = nil
	for _, p := range n.config().Peers {
		if _, ok := o.Confirmed[p.ID]; !ok {
			o.Waiting = append(o.Waiting, p.ID)
		}
	}
	return o
}

// PeerKeys is what the peers view shows of peer's signing keys.
func (n *Node) PeerKeys(peer string) PeerKeysView {
	v := PeerKeysView{Pinned: n.pins().Keys(peer)}
	n.keys.mu.Lock()
	defer n.keys.mu.Unlock()
	if rec := n.keys.peers[peer]; rec != nil && len(rec.Rotations) > 0 {
		r := rec.Rotations[len(rec.Rotations)-1]
		v.Rotation = &r
	}
	v.Refused = n.keys.refused[peer]
	return v
}

// rotationMessage builds our rotation message of type t to peer; the
// caller holds keys.mu.
func (n *Node) rotationMessage(t session.Type, peer string) (session.Message, error) {
	o := n.keys.own
	r := session.Rotation{ID: o.ID, Origin: n.ID(), Previous: o.Previous, Key: o.Key, OverlapSeconds: o.OverlapSeconds}
	if err := r.Sign(t, n.ID(), peer, n.keys.prev, n.keys.next); err != nil {
		return session.Message{}, err
	}
	return session.Message{Type: t, From: n.ID(), To: peer, Rotation: &r}, nil
}

// announce sends peer what it needs of our rotation in progress: the
// announcement until it confirmed, the switch once we made it. force
// sends it even if sent lately (a new session).
func (n *Node) announceRotation(ps *peerSession, now time.Time, force bool) {
	n.keys.mu.Lock()
	o := n.keys.own
	if o == nil || o.Done || n.keys.next == nil {
		n.keys.mu.Unlock()
		return
	}
	if !force && now.Sub(n.keys.sentAt[ps.peer]) < announceEvery {
		n.keys.mu.Unlock()
		return
	}
	t := session.TypeKeyRotate
	_, confirmed := o.Confirmed[ps.peer]
	switch {
	case !o.SwitchedAt.IsZero():
		t = session.TypeKeySwitch
		if !force {
			n.keys.mu.Unlock()
			return // sent at the switch and at each new session
		}
	case confirmed:
		n.keys.mu.Unlock()
		return
	case n.keys.prev == nil:
		n.keys.mu.Unlock()
		return // resumed with the new key in the policy: nothing to announce
	}
	m, err := n.rotationMessage(t, ps.peer)
	n.keys.sentAt[ps.peer] = now
	n.keys.mu.Unlock()
	if err != nil {
		n.log.Error().Err(err).Str("peer", ps.peer).Msg("keys: rotation message not signed")
		return
	}
	ps.send(m)
}

// tickKeys sends announcements peers have not answered, and ends
// overlaps: ours (we stop pinning our previous key for our own signals)
// and our peers' (their previous key retired).
func (n *Node) tickKeys(ctx context.Context, now time.Time) {
	for _, p := range n.config().Peers {
		ps := n.peerSession(p.ID)
		if ps == nil {
			continue
		}
		ps.mu.Lock()
		up := ps.m.Status().State == session.Established
		ps.mu.Unlock()
		if up {
			n.announceRotation(ps, now, false)
		}
	}
	v := n.pins() // before keys.mu: a reload holds Node.mu, then keys.mu
	n.keys.mu.Lock()
	if o := n.keys.own; o != nil && !o.Done && !o.SwitchedAt.IsZero() && now.After(o.SwitchedAt.Add(time.Duration(o.OverlapSeconds)*time.Second)) {
		o.Done = true
		if err := n.putOwn(ctx, o); err != nil {
			o.Done = false
			n.log.Error().Err(err).Msg("keys: the end of our rotation's overlap not recorded: tried again")
		} else {
			_ = v.Retire(n.ID(), o.Previous)
			n.log.Info().Str("rotation", o.ID).Str("retired", o.Previous).Str("key", o.Key).Str("key_file", o.KeyFile).
				Msg("keys: our rotation is done: peers retire the previous key; set operator.signing_key_file to the new key's file")
		}
	}
	type due struct {
		peer string
		rec  *peerRecord
		i    int
	}
	var retire []due
	for peer, rec := range n.keys.peers {
		for i, r := range rec.Rotations {
			if !r.Retired && !r.RetireAt().IsZero() && now.After(r.RetireAt()) {
				retire = append(retire, due{peer, rec, i})
			}
		}
	}
	for _, d := range retire {
		r := &d.rec.Rotations[d.i]
		r.Retired = true
		if err := n.putPeer(ctx, d.peer, d.rec); err != nil {
			r.Retired = false
			n.log.Error().Err(err).Str("peer", d.peer).Msg("keys: the retirement of the peer's previous key not recorded: tried again")
			continue
		}
		_ = v.Retire(d.peer, r.Previous)
		n.log.Info().Str("peer", d.peer).Str("rotation", r.ID).Str("retired", r.Previous).Strs("pinned", v.Keys(d.peer)).
			Msg("keys: the overlap of the peer's key rotation is over: its previous key is retired")
	}
	n.keys.mu.Unlock()
	if len(retire) > 0 {
		n.setSessionKeys(v)
	}
}

func (n *Node) putPeer(ctx context.Context, peer string, rec *peerRecord) error {
	b, _ := json.Marshal(rec) // plain data always marshals
	return n.store.PutKeyRecord(ctx, peerRecordName(peer), b)
}

// setSessionKeys gives every session the keys in force: ours in its
// OPEN, the peer's pinned ones to check the peer's OPEN against.
func (n *Node) setSessionKeys(v *origin.Verifier) {
	var ours []string
	if n.signer != nil {
		ours = []string{n.signer.KeyID()}
	}
	for _, p := range n.config().Peers {
		ps := n.peerSession(p.ID)
		if ps == nil {
			continue
		}
		var theirs []string
		if p.SigningKey != "" {
			theirs = v.Keys(p.ID)
		}
		ps.mu.Lock()
		ps.m.KeysRotated(ours, theirs)
		ps.mu.Unlock()
	}
}

// rotationMsg takes a key-rotation message from the peer.
func (n *Node) rotationMsg(ctx context.Context, ps *peerSession, m session.Message) {
	switch m.Type {
	case session.TypeKeyRotate:
		if err := n.acceptRotation(ctx, ps.peer, *m.Rotation); err != nil {
			n.refuseRotation(ps, m, err)
			return
		}
		ps.send(session.Message{Type: session.TypeKeyAccept, From: n.ID(), To: ps.peer, Rotation: &session.Rotation{ID: m.Rotation.ID, Origin: m.Rotation.Origin, Key: m.Rotation.Key}})
	case session.TypeKeySwitch:
		if err := n.peerSwitched(ctx, ps.peer, *m.Rotation); err != nil {
			n.refuseRotation(ps, m, err)
		}
	case session.TypeKeyAccept:
		n.rotationConfirmed(ctx, ps.peer, *m.Rotation)
	case session.TypeKeyRefuse:
		n.keys.mu.Lock()
		if o := n.keys.own; o != nil && o.ID == m.Rotation.ID {
			o.Refused[ps.peer] = m.Reason + ": " + m.Text
		}
		n.keys.mu.Unlock()
		n.log.Warn().Str("peer", ps.peer).Str("rotation", m.Rotation.ID).Str("reason", m.Reason).Str("text", m.Text).
			Msg("keys: the peer refused our key rotation: we keep signing with the previous key")
	}
}

// refuseRotation answers a key-rotation message the peer should not have
// sent: counted per peer (reason bad-key-rotation), logged, and said to
// the peer. Nothing else changes: the pins stay, the session stays up.
func (n *Node) refuseRotation(ps *peerSession, m session.Message, err error) {
	n.keys.mu.Lock()
	n.keys.refused[ps.peer]++
	n.keys.mu.Unlock()
	n.obs.Rejected(observe.Rejection{Node: n.ID(), From: ps.peer, Reason: reject.BadKeyRotation, Detail: err.Error()})
	n.log.Warn().Str("peer", ps.peer).Str("reason", string(reject.BadKeyRotation)).Str("type", string(m.Type)).
		Str("origin", m.Rotation.Origin).Str("key", m.Rotation.Key).Err(err).Msg("keys: a key rotation from the peer refused: the pinned keys stay")
	r := &session.Rotation{ID: m.Rotation.ID, Origin: m.Rotation.Origin, Key: m.Rotation.Key}
	ps.send(session.Message{Type: session.TypeKeyRefuse, From: n.ID(), To: ps.peer, Reason: string(reject.BadKeyRotation), Text: err.Error(), Rotation: r})
}

// acceptRotation checks the peer's announcement and pins its new key
// beside the previous one: recorded in the store first, so that what we
// confirm survives our restart.
func (n *Node) acceptRotation(ctx context.Context, peer string, r session.Rotation) error {
	if err := r.Check(session.TypeKeyRotate, peer, n.ID()); err != nil {
		return err
	}
	v := n.pins()
	if err := v.VerifyBytes(peer, r.Previous, r.Payload(session.TypeKeyRotate, peer, n.ID()), r.PreviousSignature()); err != nil {
		return fmt.Errorf("the announcement is not signed by a key we pinned for %s: %w", peer, err)
	}
	if v.Accepts(peer, r.Key) {
		return nil // accepted before: confirmed again
	}
	if ks := v.Keys(peer); len(ks) >= maxPeerKeys {
		return fmt.Errorf("%s has %d keys pinned already (%d at most: a rotation's overlap must end before the next)", peer, len(ks), maxPeerKeys)
	}
	n.keys.mu.Lock()
	rec := n.keys.peers[peer]
	if rec == nil {
		rec = &peerRecord{}
	}
	next := &peerRecord{Rotations: append(slices.Clone(rec.Rotations), PeerRotation{ID: r.ID, Previous: r.Previous, Key: r.Key,
		OverlapSeconds: r.OverlapSeconds, AcceptedAt: time.Now().UTC()})}
	if len(next.Rotations) > maxRotations {
		next.Rotations = next.Rotations[len(next.Rotations)-maxRotations:]
	}
	err := n.putPeer(ctx, peer, next)
	if err == nil {
		n.keys.peers[peer] = next
	}
	n.keys.mu.Unlock()
	if err != nil {
		return fmt.Errorf("not recorded in our store, so not pinned (the peer announces it again): %w", err)
	}
	if err := v.Accept(peer, r.Key); err != nil {
		return err
	}
	n.setSessionKeys(v)
	n.log.Info().Str("peer", peer).Str("rotation", r.ID).Str("previous", r.Previous).Str("key", r.Key).Stringer("overlap", r.Overlap()).
		Msg("keys: the peer's key rotation accepted: both keys pinned until the overlap after its switch")
	// Signals held for want of this key, whichever link they came on.
	for _, rcv := range n.receivers() {
		rcv.RecheckKeyHeld()
	}
	return nil
}

// peerSwitched takes the peer's word that it signs with its new key: its
// previous key is retired the rotation's overlap from now.
func (n *Node) peerSwitched(ctx context.Context, peer string, r session.Rotation) error {
	if err := r.Check(session.TypeKeySwitch, peer, n.ID()); err != nil {
		return err
	}
	n.keys.mu.Lock()
	defer n.keys.mu.Unlock()
	rec := n.keys.peers[peer]
	var i = -1
	if rec != nil {
		i = slices.IndexFunc(rec.Rotations, func(a PeerRotation) bool { return a.ID == r.ID && a.Key == r.Key && a.Previous == r.Previous })
	}
	if i < 0 {
		return fmt.Errorf("a switch to %s for a rotation (%s) we did not accept", r.Key, r.ID)
	}
	if !rec.Rotations[i].SwitchedAt.IsZero() {
		return nil // heard before
	}
	next := &peerRecord{Rotations: slices.Clone(rec.Rotations)}
	next.Rotations[i].SwitchedAt = time.Now().UTC()
	if err := n.putPeer(ctx, peer, next); err != nil {
		n.log.Error().Err(err).Str("peer", peer).Msg("keys: the peer's switch not recorded: its previous key stays pinned until it says so again")
		return nil
	}
	n.keys.peers[peer] = next
	n.log.Info().Str("peer", peer).Str("rotation", r.ID).Str("key", r.Key).Time("retire_previous_at", next.Rotations[i].RetireAt()).
		Msg("keys: the peer signs with its new key: its previous key is retired after the overlap")
	return nil
}

// rotationConfirmed takes a peer's confirmation of our new key; once
// every peer confirmed it, we switch.
func (n *Node) rotationConfirmed(ctx context.Context, peer string, r session.Rotation) {
	v := n.pins() // before keys.mu: a reload holds Node.mu, then keys.mu
	n.keys.mu.Lock()
	defer n.keys.mu.Unlock()
	o := n.keys.own
	if o == nil || o.ID != r.ID || o.Key != r.Key {
		return // an old rotation's, or nothing of ours
	}
	if _, ok := o.Confirmed[peer]; ok {
		return
	}
	o.Confirmed[peer] = time.Now().UTC()
	delete(o.Refused, peer)
	if err := n.putOwn(ctx, o); err != nil {
		n.log.Error().Err(err).Str("peer", peer).Msg("keys: the peer's confirmation not recorded (counted; recorded with the next)")
	}
	n.log.Info().Str("peer", peer).Str("rotation", o.ID).Int("confirmed", len(o.Confirmed)).Int("peers", len(n.config().Peers)).
		Msg("keys: the peer confirmed our new key")
	for _, p := range n.config().Peers {
		if _, ok := o.Confirmed[p.ID]; !ok {
			return
		}
	}
	if o.SwitchedAt.IsZero() {
		n.switchKey(ctx, time.Now(), v)
	}
}

// switchKey makes the new key the one we sign with and tells every peer;
// the caller holds keys.mu.
func (n *Node) switchKey(ctx context.Context, now time.Time, v *origin.Verifier) {
	o := n.keys.own
	o.SwitchedAt = now.UTC()
	if err := n.putOwn(ctx, o); err != nil {
		// Not switched: a restart would sign with the previous key
		// while peers retire it after the overlap.
		o.SwitchedAt = time.Time{}
		n.log.Error().Err(err).Msg("keys: the switch not recorded: not switched, tried again at the next confirmation or start")
		return
	}
	if err := n.signer.Switch(n.keys.next); err != nil {
		n.log.Error().Err(err).Msg("keys: switch")
		return
	}
	n.keys.cur = n.keys.next
	n.pinSelf(v, o.Key, o.Previous)
	n.log.Info().Str("rotation", o.ID).Str("key", o.Key).Str("previous", o.Previous).
		Time("previous_retired_at", o.SwitchedAt.Add(time.Duration(o.OverlapSeconds)*time.Second)).
		Msg("keys: every peer confirmed our new key: signing with it now")
	for _, p := range n.config().Peers {
		if ps := n.peerSession(p.ID); ps != nil {
			if m, err := n.rotationMessage(session.TypeKeySwitch, p.ID); err == nil {
				ps.send(m)
			}
		}
	}
	// Lock order: Node.mu, then keys.mu, then a session's
	// (setSessionKeys); nothing takes keys.mu holding a session's lock,
	// nor Node.mu holding keys.mu (the verifier is read before).
	n.setSessionKeys(v)
}

// serveRotate answers subject.APIKeysRotate.
func (n *Node) serveRotate(ctx context.Context, m *nats.Msg) {
	var req RotateRequest
	var overlap time.Duration
	err := json.Unmarshal(m.Data, &req)
	if err != nil {
		err = fmt.Errorf(`want a JSON request: {"overlap":"24h"}: %w`, err)
	} else if req.Overlap != "" {
		if overlap, err = time.ParseDuration(req.Overlap); err != nil {
			err = fmt.Errorf("overlap %q: want a duration like 24h: %w", req.Overlap, err)
		}
	}
	var r OwnRotation
	if err == nil {
		r, err = n.RotateKey(ctx, overlap)
	}
	if err != nil {
		b, _ := json.Marshal(map[string]string{"error": err.Error()})
		_ = m.Respond(b)
		return
	}
	b, _ := json.Marshal(r)
	_ = m.Respond(b)
}

// serveKeys answers subject.APIKeys: our rotation and each peer's keys.
func (n *Node) serveKeys(m *nats.Msg) {
	_ = m.Respond(n.keysJSON())
}

// KeysState is what `anfed keys status` shows.
type KeysState struct {
	SigningKey string                  `json:"signing_key"`
	Rotation   *OwnRotation            `json:"rotation,omitempty"`
	Peers      map[string]PeerKeysView `json:"peers"`
}

// Keys is the node's signing keys: ours in force, our rotation, the
// peers' pinned keys.
func (n *Node) Keys() KeysState {
	s := KeysState{SigningKey: n.SigningKey(), Rotation: n.KeyRotation(), Peers: map[string]PeerKeysView{}}
	for _, p := range n.config().Peers {
		s.Peers[p.ID] = n.PeerKeys(p.ID)
	}
	return s
}

func (n *Node) keysJSON() []byte {
	b, _ := json.Marshal(n.Keys())
	return b
}
