// Package origin signs the signals an operator originates and verifies the
// signatures of signals from others, per the CloudEvents verifiability
// extension: a DSSE envelope (ed25519) in dssematerial over a digest of the
// event's context attributes, its data and the extension attributes named
// in signedextattrs. The path (anfedpath) is hop-level and not signed, so a
// relayed signal keeps its origin's signature and any operator holding the
// origin's public key can verify it.
package origin

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

// PayloadType is the DSSE payload type of the verifiability extension.
const PayloadType = "https://cloudevents.io/verifiability/dsse/v0.1"

// SignedAttrs are the extension attributes an origin signs, in this order,
// when the signal carries them. anfedorigin and anfedstate are always
// carried, so always signed.
var SignedAttrs = []string{
	signal.AttrOrigin, signal.AttrState, signal.AttrExpiryTime,
	signal.AttrSeverityText, signal.AttrSeverityNumber,
	signal.AttrCorrelationID, signal.AttrCausationID, signal.AttrSequence,
}

// coreAttrs may not appear in signedextattrs.
var coreAttrs = []string{"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time"}

// Signer signs signals with one operator's key.
type Signer struct {
	key   ed25519.PrivateKey
	keyID string
}

// NewSigner returns a signer using kp; its key id is kp's public key.
func NewSigner(kp nkeys.KeyPair) (*Signer, error) {
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	// Expand the seed once: nkeys does it again on every Sign.
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	_, raw, err := nkeys.DecodeSeed(seed)
	if err != nil || len(raw) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key: not an ed25519 seed")
	}
	return &Signer{key: ed25519.NewKeyFromSeed(raw), keyID: pub}, nil
}

// KeyID is the signer's public key, as peers pin it.
func (s *Signer) KeyID() string { return s.keyID }

// Sign sets signedextattrs and dssematerial on ev. It normalises an absent
// datacontenttype to application/json first, since that is what the
// encoded signal carries.
func (s *Signer) Sign(ev *signal.Event) error {
	if ev.DataContentType == "" {
		ev.DataContentType = signal.ContentType
	}
	var names []string
	for _, a := range SignedAttrs {
		if v, ok := extValue(ev, a); ok && v != "" {
			names = append(names, a)
		}
	}
	ev.SignedExtAttrs = strings.Join(names, ",")
	digest := Digest(ev, names)
	sig := ed25519.Sign(s.key, pae(PayloadType, digest[:]))
	// The envelope as encoding/json marshals it, without reflection.
	b := make([]byte, 0, 256)
	b = append(b, `{"payload":"`...)
	b = base64.StdEncoding.AppendEncode(b, digest[:])
	b = append(b, `","payloadType":`...)
	b = signal.AppendJSONString(b, PayloadType)
	b = append(b, `,"signatures":[{"keyid":`...)
	b = signal.AppendJSONString(b, s.keyID)
	b = append(b, `,"sig":"`...)
	b = base64.StdEncoding.AppendEncode(b, sig)
	b = append(b, `"}]}`...)
	ev.DSSEMaterial = base64.StdEncoding.EncodeToString(b)
	return nil
}

type envelope struct {
	Payload     string   `json:"payload"`
	PayloadType string   `json:"payloadType"`
	Signatures  []envSig `json:"signatures"`
}

type envSig struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// pae is DSSE v1's pre-authentication encoding.
func pae(typ string, body []byte) []byte {
	b := make([]byte, 0, len("DSSEv1 ")+2*20+3+len(typ)+len(body))
	b = append(b, "DSSEv1 "...)
	b = strconv.AppendInt(b, int64(len(typ)), 10)
	b = append(b, ' ')
	b = append(b, typ...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, ' ')
	return append(b, body...)
}

// Digest is the verifiability extension's verification material for ev
// and the signed extension attributes names, in order.
func Digest(ev *signal.Event, names []string) [32]byte {
	h := make([]byte, 0, 32*(9+2*len(names)))
	var buf [256]byte // most attributes fit: hashed without a copy on the heap
	add := func(s string) {
		var d [32]byte
		if len(s) <= len(buf) {
			d = sha256.Sum256(buf[:copy(buf[:], s)])
		} else {
			d = sha256.Sum256([]byte(s))
		}
		h = append(h, d[:]...)
	}
	add(ev.ID)
	add(ev.Source)
	add(signal.SpecVersion)
	add(ev.Type)
	add(ev.DataContentType)
	add(ev.DataSchema)
	add(ev.Subject)
	if ev.Time.IsZero() {
		add("")
	} else {
		add(ev.Time.UTC().Format(time.RFC3339))
	}
	sum := sha256.Sum256(ev.Data)
	h = append(h, sum[:]...)
	for _, n := range names {
		v, _ := extValue(ev, n)
		add(n)
		add(v)
	}
	return sha256.Sum256(h)
}

// extValue is the canonical string of an extension attribute: strings as
// carried, integers in decimal, timestamps in RFC 3339 UTC as the codec
// encodes them.
func extValue(ev *signal.Event, name string) (string, bool) {
	switch name {
	case signal.AttrOrigin:
		return ev.Origin, true
	case signal.AttrState:
		return string(ev.State), true
	case signal.AttrExpiryTime:
		if ev.ExpiryTime.IsZero() {
			return "", true
		}
		return ev.ExpiryTime.UTC().Format(time.RFC3339Nano), true
	case signal.AttrSeverityText:
		return ev.SeverityText, true
	case signal.AttrSeverityNumber:
		if ev.SeverityNumber == 0 {
			return "", true
		}
		return strconv.Itoa(ev.SeverityNumber), true
	case signal.AttrCorrelationID:
		return ev.CorrelationID, true
	case signal.AttrCausationID:
		return ev.CausationID, true
	case signal.AttrSequence:
		return ev.Sequence, true
	case signal.AttrTraceParent:
		return ev.TraceParent, true
	case signal.AttrTraceState:
		return ev.TraceState, true
	case signal.AttrPath:
		return strings.Join(ev.Path, ","), true
	}
	v, ok := ev.Extensions[name]
	if !ok {
		return "", true
	}
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case int32:
		return strconv.Itoa(int(x)), true
	}
	return fmt.Sprint(v), true
}

// Verifier checks origin signatures against pinned keys.
type Verifier struct {
	keys  map[string]nkeys.KeyPair // origin id -> public key
	ids   map[string]string        // origin id -> key id
	known map[string]bool          // the key ids pinned, for any origin
}

// NewVerifier pins keys: origin operator id -> public signing key (O...).
func NewVerifier(keys map[string]string) (*Verifier, error) {
	v := &Verifier{keys: map[string]nkeys.KeyPair{}, ids: map[string]string{}, known: map[string]bool{}}
	for id, k := range keys {
		kp, err := nkeys.FromPublicKey(k)
		if err != nil || !nkeys.IsValidPublicOperatorKey(k) {
			return nil, fmt.Errorf("signing key of %s: %q is not an operator public NKey (O...)", id, k)
		}
		v.keys[id], v.ids[id], v.known[k] = kp, k, true
	}
	return v, nil
}

// Verify checks that ev carries a valid signature of its origin over
// everything the origin signed, and that the origin signed every attribute
// of SignedAttrs the signal carries. It returns a *reject.Error.
func (v *Verifier) Verify(ev *signal.Event) error {
	kp, ok := v.keys[ev.Origin]
	if !ok {
		return reject.Errorf(reject.UnknownOrigin, "no signing key is pinned for origin %s: add it to peers[].signing_key or origins[]", ev.Origin)
	}
	if ev.DSSEMaterial == "" {
		return reject.Errorf(reject.BadSignature, "%s is missing: %s signs every signal it originates", signal.AttrDSSEMaterial, ev.Origin)
	}
	raw, err := base64.StdEncoding.DecodeString(ev.DSSEMaterial)
	if err != nil {
		return reject.Errorf(reject.BadSignature, "%s is not base64: %v", signal.AttrDSSEMaterial, err)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return reject.Errorf(reject.BadSignature, "%s is not a DSSE JSON envelope: %v", signal.AttrDSSEMaterial, err)
	}
	if env.PayloadType != PayloadType {
		return reject.Errorf(reject.BadSignature, "DSSE payloadType %q: want %s", env.PayloadType, PayloadType)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil || len(payload) != 32 {
		return reject.Errorf(reject.BadSignature, "DSSE payload must be a base64 32-byte digest")
	}
	keyID := v.ids[ev.Origin]
	verified := false
	for _, s := range env.Signatures {
		if s.KeyID != keyID {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			continue
		}
		if kp.Verify(pae(env.PayloadType, payload), sig) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return reject.Errorf(reject.BadSignature, "no signature by %s's pinned key %s verifies", ev.Origin, short(keyID))
	}
	names, err := signedNames(ev.SignedExtAttrs)
	if err != nil {
		return err
	}
	for _, a := range SignedAttrs {
		if val, _ := extValue(ev, a); val != "" && !slices.Contains(names, a) {
			return reject.Errorf(reject.BadSignature, "attribute %s is carried but not signed by %s", a, ev.Origin)
		}
	}
	want := Digest(ev, names)
	if subtle.ConstantTimeCompare(want[:], payload) != 1 {
		return reject.Errorf(reject.BadSignature, "the signal does not match what %s signed: it was modified after signing", ev.Origin)
	}
	return nil
}

func signedNames(list string) ([]string, error) {
	if list == "" {
		return nil, nil
	}
	names := strings.Split(list, ",")
	for i, n := range names {
		switch {
		case n == "" || slices.Contains(names[:i], n):
			return nil, reject.Errorf(reject.BadSignature, "%s %q: empty or repeated name", signal.AttrSignedExtAttrs, list)
		case slices.Contains(coreAttrs, n), n == signal.AttrDSSEMaterial, n == signal.AttrSignedExtAttrs:
			return nil, reject.Errorf(reject.BadSignature, "%s %q: %s may not be listed", signal.AttrSignedExtAttrs, list, n)
		case n == signal.AttrPath, n == signal.AttrTags:
			// Hop-level: every relay changes them, so a signature over
			// them would break at the first relay, after our node had
			// accepted and passed the signal on.
			return nil, reject.Errorf(reject.BadSignature, "%s %q: %s is hop-level (relays change it) and may not be signed", signal.AttrSignedExtAttrs, list, n)
		}
	}
	return names, nil
}

func short(k string) string {
	if len(k) > 12 {
		return k[:6] + "…" + k[len(k)-4:]
	}
	return k
}

// Pinned returns the key pinned for origin ("" for none).
func (v *Verifier) Pinned(origin string) string { return v.ids[origin] }

// Unpinned reports whether ev fails verification only for want of its
// key: its signature envelope is well formed and carries no signature by
// the key pinned for its origin (or none is pinned), so pinning the key it
// was signed with may make it verify. A signature by the pinned key that
// does not verify is a forgery or a modification, not an unpinned key;
// so is a signature by a key pinned for any origin (a signature lifted
// from another operator's signal).
func (v *Verifier) Unpinned(ev *signal.Event) bool {
	if ev.DSSEMaterial == "" {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(ev.DSSEMaterial)
	if err != nil {
		return false
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil || env.PayloadType != PayloadType || len(env.Signatures) == 0 {
		return false
	}
	for _, s := range env.Signatures {
		if s.KeyID == "" || v.known[s.KeyID] {
			return false
		}
	}
	return true
}
