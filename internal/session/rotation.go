package session

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/anfed/anfed/internal/origin"
)

// Rotation is a signing-key rotation as its session messages carry it.
// The origin announces Key to replace Previous (key-rotate), signed by
// Previous — the key the peer pinned, so the peer knows the announcement
// is the origin's — and by Key, so the origin shows it holds it. The
// peer pins both for the overlap; once the origin signs with Key it says
// so (key-switch, signed by Key) and the peer retires Previous Overlap
// after it heard that.
type Rotation struct {
	ID       string `json:"id"`
	Origin   string `json:"origin"`
	Previous string `json:"previous"`
	Key      string `json:"key"`
	// OverlapSeconds: how long after the switch the peer still takes
	// signals signed by Previous (those stored before the switch and
	// sent later: a backlog, a refresh).
	OverlapSeconds int64 `json:"overlap_seconds"`
	// SigPrevious and SigKey are base64 ed25519 signatures by Previous
	// and Key of Payload: both on key-rotate, SigKey on key-switch.
	SigPrevious string `json:"sig_previous,omitempty"`
	SigKey      string `json:"sig_key,omitempty"`
}

// Bounds of a rotation's overlap, checked by the announcing node and by
// the peer.
const (
	MinOverlap = time.Second
	MaxOverlap = 90 * 24 * time.Hour
)

// Overlap is the rotation's overlap.
func (r Rotation) Overlap() time.Duration { return time.Duration(r.OverlapSeconds) * time.Second }

// Payload is what a rotation's signatures sign for a message of type t
// from one operator to another: every field but the signatures, so no
// signature of one message can be lifted into another.
func (r Rotation) Payload(t Type, from, to string) []byte {
	return []byte(strings.Join([]string{"anfed-key-rotation/v1", string(t), from, to,
		r.ID, r.Origin, r.Previous, r.Key, strconv.FormatInt(r.OverlapSeconds, 10)}, "\n"))
}

// Sign sets the signatures of a message of type t from one operator to
// another: by previous (key-rotate only) and by key.
func (r *Rotation) Sign(t Type, from, to string, previous, key nkeys.KeyPair) error {
	p := r.Payload(t, from, to)
	if t == TypeKeyRotate {
		sig, err := previous.Sign(p)
		if err != nil {
			return fmt.Errorf("sign the rotation with the previous key: %w", err)
		}
		r.SigPrevious = base64.StdEncoding.EncodeToString(sig)
	}
	sig, err := key.Sign(p)
	if err != nil {
		return fmt.Errorf("sign the rotation with the new key: %w", err)
	}
	r.SigKey = base64.StdEncoding.EncodeToString(sig)
	return nil
}

// Check checks what a rotation message of type t from peer to self says
// by itself: the origin is the peer (a peer rotates its own key only),
// the keys are operator keys, the overlap within its bounds, and SigKey
// verifies under Key. Whether Previous is the key pinned for the peer,
// and SigPrevious, the receiver checks against its pins (VerifyPrevious).
func (r Rotation) Check(t Type, peer, self string) error {
	if r.Origin != peer {
		return fmt.Errorf("%s announces a key for origin %q: an operator rotates its own key only", peer, clean(r.Origin, 64))
	}
	if r.ID == "" || len(r.ID) > 64 || clean(r.ID, 64) != r.ID {
		return fmt.Errorf("the rotation's id is empty, over 64 characters or not printable")
	}
	if !nkeys.IsValidPublicOperatorKey(r.Key) || !nkeys.IsValidPublicOperatorKey(r.Previous) {
		return fmt.Errorf("the rotation's keys must be operator public NKeys (O...)")
	}
	if r.Key == r.Previous {
		return fmt.Errorf("the rotation's new key is its previous one")
	}
	if o := r.Overlap(); o < MinOverlap || o > MaxOverlap {
		return fmt.Errorf("overlap %s: it must be between %s and %s", o, MinOverlap, MaxOverlap)
	}
	kp, _ := nkeys.FromPublicKey(r.Key) // valid: checked above
	if err := verify(kp, r.Payload(t, peer, self), r.SigKey); err != nil {
		return fmt.Errorf("the signature by the new key %s: %w", origin.ShortKey(r.Key), err)
	}
	return nil
}

// PreviousSignature is the decoded signature by the previous key.
func (r Rotation) PreviousSignature() []byte {
	b, _ := base64.StdEncoding.DecodeString(r.SigPrevious)
	return b
}

func verify(kp nkeys.KeyPair, msg []byte, sig64 string) error {
	if sig64 == "" {
		return fmt.Errorf("missing")
	}
	sig, err := base64.StdEncoding.DecodeString(sig64)
	if err != nil {
		return fmt.Errorf("not base64")
	}
	if kp.Verify(msg, sig) != nil {
		return fmt.Errorf("does not verify")
	}
	return nil
}
