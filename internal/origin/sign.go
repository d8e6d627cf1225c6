// Package origin signs the signals an operator originates and verifies the
// signatures of signals from others, per the CloudEvents verifiability
// extension: a DSSE envelope (ed25519) in dssematerial over a digest of the
// event's context attributes, its data and the extension attributes named
// in signedextattrs. The path (anfedpath) is hop-level and not signed, so a
// relayed signal keeps its origin's signature and any operator holding the
// origin's public key can verify it.
package origin

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// Signer signs signals with one operator's key: the one in force, which
// a key rotation switches (Switch) while signals are being signed.
type Signer struct {
	cur      atomic.Pointer[signingKey]
	switched atomic.Bool
}

type signingKey struct {
	key   ed25519.PrivateKey
	keyID string
}

// NewSigner returns a signer using kp; its key id is kp's public key.
func NewSigner(kp nkeys.KeyPair) (*Signer, error) {
	k, err := expand(kp)
	if err != nil {
		return nil, err
	}
	s := &Signer{}
	s.cur.Store(k)
	return s, nil
}

func expand(kp nkeys.KeyPair) (*signingKey, error) {
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
	return &signingKey{key: ed25519.NewKeyFromSeed(raw), keyID: pub}, nil
}

// Switch makes kp the key every later Sign uses (a key rotation's
// switch); a Sign under way finishes with the key it started with.
func (s *Signer) Switch(kp nkeys.KeyPair) error {
	k, err := expand(kp)
	if err != nil {
		return err
	}
	s.cur.Store(k)
	s.switched.Store(true)
	return nil
}

// KeyID is the signer's public key in force, as peers pin it.
func (s *Signer) KeyID() string { return s.cur.Load().keyID }

// Stale reports whether ev carries no signature by the key in force: it
// was signed before a Switch. Free until the signer first switched.
func (s *Signer) Stale(ev *signal.Event) bool {
	if !s.switched.Load() {
		return false
	}
	var rawBuf [384]byte
	raw, err := decodeB64(rawBuf[:], []byte(ev.DSSEMaterial))
	if err != nil {
		return true
	}
	env, err := readEnvelope(raw)
	if err != nil {
		return true
	}
	id := s.cur.Load().keyID
	for i := range env.n {
		if string(env.sig(i).keyID) == id {
			return false
		}
	}
	return true
}

// Sign sets signedextattrs and dssematerial on ev. It normalises an absent
// datacontenttype to application/json first, since that is what the
// encoded signal carries.
func (s *Signer) Sign(ev *signal.Event) error {
	if ev.DataContentType == "" {
		ev.DataContentType = signal.ContentType
	}
	var nb [8]string // len(SignedAttrs): on the stack
	names := nb[:0]
	var carries uint8 // bit i: SignedAttrs[i]
	for i, a := range SignedAttrs {
		if carried(ev, a) {
			names = append(names, a)
			carries |= 1 << i
		}
	}
	ev.SignedExtAttrs = signedLists[carries]
	digest := Digest(ev, names)
	k := s.cur.Load()
	var pb [paeSize]byte
	sig := ed25519.Sign(k.key, appendPAE(pb[:0], PayloadType, digest[:]))
	// The envelope as encoding/json marshals it, without reflection.
	var eb [384]byte
	b := append(eb[:0], `{"payload":"`...)
	b = base64.StdEncoding.AppendEncode(b, digest[:])
	b = append(b, `","payloadType":`...)
	b = signal.AppendJSONString(b, PayloadType)
	b = append(b, `,"signatures":[{"keyid":`...)
	b = signal.AppendJSONString(b, k.keyID)
	b = append(b, `,"sig":"`...)
	b = base64.StdEncoding.AppendEncode(b, sig)
	b = append(b, `"}]}`...)
	var ob [512]byte // the envelope's base64: on the stack, copied once
	ev.DSSEMaterial = string(base64.StdEncoding.AppendEncode(ob[:0], b))
	return nil
}

// signedLists are the signedextattrs values, made once: for each set of
// SignedAttrs a signal carries (bit i: SignedAttrs[i]), their comma
// list in order.
var signedLists = func() (l [1 << 8]string) {
	if len(SignedAttrs) > 8 {
		panic("origin: more than 8 SignedAttrs: widen Sign's set")
	}
	for set := range l {
		var names []string
		for i, a := range SignedAttrs {
			if set&(1<<i) != 0 {
				names = append(names, a)
			}
		}
		l[set] = strings.Join(names, ",")
	}
	return l
}()

type envelope struct {
	Payload     string   `json:"payload"`
	PayloadType string   `json:"payloadType"`
	Signatures  []envSig `json:"signatures"`
}

type envSig struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// paeSize fits the pre-authentication encoding of a 32-byte digest of
// PayloadType, so that it is built on the stack.
const paeSize = 128

// appendPAE appends DSSE v1's pre-authentication encoding to b.
func appendPAE(b []byte, typ string, body []byte) []byte {
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
	// The attributes' hashes, one after the other, then hashed: on the
	// stack for up to 23 signed extension attributes.
	var hb [32 * (9 + 2*23)]byte
	h := hb[:0]
	var buf [256]byte // most attributes fit: hashed without a copy on the heap
	addB := func(b []byte) {
		d := sha256.Sum256(b)
		h = append(h, d[:]...)
	}
	add := func(s string) {
		if len(s) <= len(buf) {
			addB(buf[:copy(buf[:], s)])
		} else {
			addB([]byte(s))
		}
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
		addB(ev.Time.UTC().AppendFormat(buf[:0], time.RFC3339))
	}
	sum := sha256.Sum256(ev.Data)
	h = append(h, sum[:]...)
	for _, n := range names {
		add(n)
		addB(appendExtValue(buf[:0], ev, n))
	}
	return sha256.Sum256(h)
}

// appendExtValue appends extValue(ev, name) to b, formatting the
// timestamps and integers in place.
func appendExtValue(b []byte, ev *signal.Event, name string) []byte {
	switch name {
	case signal.AttrExpiryTime:
		if ev.ExpiryTime.IsZero() {
			return b
		}
		return ev.ExpiryTime.UTC().AppendFormat(b, time.RFC3339Nano)
	case signal.AttrSeverityNumber:
		if ev.SeverityNumber == 0 {
			return b
		}
		return strconv.AppendInt(b, int64(ev.SeverityNumber), 10)
	}
	v, _ := extValue(ev, name)
	return append(b, v...)
}

// carried reports whether ev carries the extension attribute name:
// extValue(ev, name) is not empty.
func carried(ev *signal.Event, name string) bool {
	switch name {
	case signal.AttrExpiryTime:
		return !ev.ExpiryTime.IsZero()
	case signal.AttrSeverityNumber:
		return ev.SeverityNumber != 0
	}
	v, _ := extValue(ev, name)
	return v != ""
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

// Verifier checks origin signatures against pinned keys. An origin has
// one key pinned, or two while a key rotation overlaps its old key with
// the new one (Accept, Retire). Verify reads the pins without a lock: a
// change replaces them whole.
type Verifier struct {
	mu sync.Mutex // writers of p
	p  atomic.Pointer[pins]
}

type pins struct {
	keys  map[string][]pinnedKey // origin id -> its keys, oldest first
	known map[string]bool        // the key ids pinned, for any origin
}

type pinnedKey struct {
	id  string
	pub ed25519.PublicKey
}

// NewVerifier pins keys: origin operator id -> public signing key (O...).
func NewVerifier(keys map[string]string) (*Verifier, error) {
	p := &pins{keys: map[string][]pinnedKey{}, known: map[string]bool{}}
	for id, k := range keys {
		pub, err := publicKey(id, k)
		if err != nil {
			return nil, err
		}
		p.keys[id], p.known[k] = []pinnedKey{{id: k, pub: pub}}, true
	}
	v := &Verifier{}
	v.p.Store(p)
	return v, nil
}

func publicKey(origin, k string) (ed25519.PublicKey, error) {
	raw, err := nkeys.Decode(nkeys.PrefixByteOperator, []byte(k))
	if err != nil || !nkeys.IsValidPublicOperatorKey(k) || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("signing key of %s: %q is not an operator public NKey (O...)", origin, k)
	}
	return ed25519.PublicKey(raw), nil
}

// change applies f to a copy of the pins and puts the copy in force.
func (v *Verifier) change(f func(p *pins) error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	old := v.p.Load()
	p := &pins{keys: make(map[string][]pinnedKey, len(old.keys)), known: map[string]bool{}}
	for o, ks := range old.keys {
		p.keys[o] = slices.Clone(ks)
	}
	if err := f(p); err != nil {
		return err
	}
	for _, ks := range p.keys {
		for _, k := range ks {
			p.known[k.id] = true
		}
	}
	v.p.Store(p)
	return nil
}

// Accept pins key for origin beside the keys pinned already (a key
// rotation's overlap); pinned already, it changes nothing.
func (v *Verifier) Accept(origin, key string) error {
	pub, err := publicKey(origin, key)
	if err != nil {
		return err
	}
	return v.change(func(p *pins) error {
		if slices.ContainsFunc(p.keys[origin], func(k pinnedKey) bool { return k.id == key }) {
			return nil
		}
		p.keys[origin] = append(p.keys[origin], pinnedKey{id: key, pub: pub})
		return nil
	})
}

// Retire unpins key for origin (the end of a key rotation's overlap). An
// origin's last key is never retired.
func (v *Verifier) Retire(origin, key string) error {
	return v.change(func(p *pins) error {
		ks := p.keys[origin]
		i := slices.IndexFunc(ks, func(k pinnedKey) bool { return k.id == key })
		if i < 0 {
			return nil
		}
		if len(ks) == 1 {
			return fmt.Errorf("retire %s's key %s: it is the only key pinned for %s", origin, short(key), origin)
		}
		p.keys[origin] = slices.Delete(ks, i, i+1)
		return nil
	})
}

// Keys are the keys pinned for origin, oldest first (none: nil).
func (v *Verifier) Keys(origin string) []string {
	var out []string
	for _, k := range v.p.Load().keys[origin] {
		out = append(out, k.id)
	}
	return out
}

// Accepts reports whether key is pinned for origin.
func (v *Verifier) Accepts(origin, key string) bool {
	return slices.Contains(v.Keys(origin), key)
}

// VerifyBytes checks that sig is key's ed25519 signature of msg and that
// key is pinned for origin: a key rotation's announcement, signed by the
// key the announcing origin had pinned.
func (v *Verifier) VerifyBytes(origin, key string, msg, sig []byte) error {
	for _, k := range v.p.Load().keys[origin] {
		if k.id == key {
			if !ed25519.Verify(k.pub, msg, sig) {
				return fmt.Errorf("the signature by %s's key %s does not verify", origin, short(key))
			}
			return nil
		}
	}
	return fmt.Errorf("%s is not a key pinned for %s (pinned: %s)", short(key), origin, shortAll(v.Keys(origin)))
}

func shortAll(ks []string) string {
	if len(ks) == 0 {
		return "none"
	}
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = short(k)
	}
	return strings.Join(out, ", ")
}

// envView is a DSSE envelope as Verify reads it: its strings as bytes,
// in the envelope's own buffer or in fields encoding/json decoded.
type envView struct {
	payload, payloadType []byte
	// The signatures: sigs, or only one when read in place (sigs nil).
	sigs []sigView
	one  sigView
	n    int
}

// sig is the envelope's signature i, of n.
func (e *envView) sig(i int) sigView {
	if e.sigs == nil {
		return e.one
	}
	return e.sigs[i]
}

type sigView struct{ keyID, sig []byte }

// readEnvelope reads a DSSE JSON envelope. The envelope Sign writes is
// read in place, without encoding/json (one signature, in one buffer:
// one1 holds it); any other shape is read by encoding/json, the
// reference, so the fast path may only ever say what encoding/json would
// (FuzzReadEnvelope holds it to that).
func readEnvelope(raw []byte) (envView, error) {
	if e, ok := readSigned(raw); ok {
		return e, nil
	}
	return readJSON(bytes.Clone(raw)) // a copy: raw may be on the caller's stack
}

// readJSON reads a DSSE JSON envelope with encoding/json.
func readJSON(raw []byte) (envView, error) {
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return envView{}, err
	}
	e := envView{payload: []byte(env.Payload), payloadType: []byte(env.PayloadType), sigs: make([]sigView, len(env.Signatures)), n: len(env.Signatures)}
	for i, s := range env.Signatures {
		e.sigs[i] = sigView{keyID: []byte(s.KeyID), sig: []byte(s.Sig)}
	}
	return e, nil
}

// readSigned reads the envelope exactly as Sign writes it:
// {"payload":"…","payloadType":"…","signatures":[{"keyid":"…","sig":"…"}]}
// with printable ASCII strings and no escapes. ok is false for anything
// else.
func readSigned(raw []byte) (e envView, ok bool) {
	rest := raw
	var kid, sig []byte
	if e.payload, rest, ok = jsonField(rest, `{"payload":"`); !ok {
		return envView{}, false
	}
	if e.payloadType, rest, ok = jsonField(rest, `","payloadType":"`); !ok {
		return envView{}, false
	}
	if kid, rest, ok = jsonField(rest, `","signatures":[{"keyid":"`); !ok {
		return envView{}, false
	}
	if sig, rest, ok = jsonField(rest, `","sig":"`); !ok {
		return envView{}, false
	}
	if string(rest) != `"}]}` {
		return envView{}, false
	}
	e.one, e.n = sigView{keyID: kid, sig: sig}, 1
	return e, true
}

// jsonField reads lit, then a string's plain content (up to its closing
// quote, which it leaves in rest).
func jsonField(b []byte, lit string) (val, rest []byte, ok bool) {
	if len(b) < len(lit) || string(b[:len(lit)]) != lit {
		return nil, nil, false
	}
	b = b[len(lit):]
	n := plainLen(b)
	return b[:n:n], b[n:], true
}

// plainLen is how many bytes of b are printable ASCII other than '"' and
// '\\': a JSON string's content that needs no unescaping.
func plainLen(b []byte) int {
	for i, c := range b {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return i
		}
	}
	return len(b)
}

// decodeB64 decodes base64 src into buf when it fits there (on the
// caller's stack), else into a new slice: the same bytes and errors as
// base64.StdEncoding.DecodeString.
func decodeB64(buf []byte, src []byte) ([]byte, error) {
	if base64.StdEncoding.DecodedLen(len(src)) <= len(buf) {
		n, err := base64.StdEncoding.Decode(buf, src)
		return buf[:n], err
	}
	return base64.StdEncoding.AppendDecode(nil, src)
}

// Verify checks that ev carries a valid signature of its origin over
// everything the origin signed, and that the origin signed every attribute
// of SignedAttrs the signal carries. It returns a *reject.Error.
func (v *Verifier) Verify(ev *signal.Event) error {
	keys := v.p.Load().keys[ev.Origin]
	if len(keys) == 0 {
		return reject.Errorf(reject.UnknownOrigin, "no signing key is pinned for origin %s: add it to peers[].signing_key or origins[]", ev.Origin)
	}
	if ev.DSSEMaterial == "" {
		return reject.Errorf(reject.BadSignature, "%s is missing: %s signs every signal it originates", signal.AttrDSSEMaterial, ev.Origin)
	}
	var rawBuf [384]byte
	raw, err := decodeB64(rawBuf[:], []byte(ev.DSSEMaterial))
	if err != nil {
		return reject.Errorf(reject.BadSignature, "%s is not base64: %v", signal.AttrDSSEMaterial, err)
	}
	env, err := readEnvelope(raw)
	if err != nil {
		return reject.Errorf(reject.BadSignature, "%s is not a DSSE JSON envelope: %v", signal.AttrDSSEMaterial, err)
	}
	if string(env.payloadType) != PayloadType {
		return reject.Errorf(reject.BadSignature, "DSSE payloadType %q: want %s", string(env.payloadType), PayloadType)
	}
	var payloadBuf [48]byte
	payload, err := decodeB64(payloadBuf[:], env.payload)
	if err != nil || len(payload) != 32 {
		return reject.Errorf(reject.BadSignature, "DSSE payload must be a base64 32-byte digest")
	}
	var pb [paeSize]byte
	msg := appendPAE(pb[:0], PayloadType, payload)
	verified := false
	for i := range env.n {
		s := env.sig(i)
		j := 0
		for j < len(keys) && string(s.keyID) != keys[j].id {
			j++
		}
		if j == len(keys) {
			continue
		}
		var sigBuf [96]byte
		sig, err := decodeB64(sigBuf[:], s.sig)
		if err != nil {
			continue
		}
		if ed25519.Verify(keys[j].pub, msg, sig) {
			verified = true
			break
		}
	}
	if !verified {
		if len(keys) == 1 {
			return reject.Errorf(reject.BadSignature, "no signature by %s's pinned key %s verifies", ev.Origin, short(keys[0].id))
		}
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = k.id
		}
		return reject.Errorf(reject.BadSignature, "no signature by %s's pinned keys %s verifies", ev.Origin, shortAll(ids))
	}
	var nb [8]string // len(SignedAttrs): on the stack
	names, err := signedNames(nb[:0], ev.SignedExtAttrs)
	if err != nil {
		return err
	}
	for _, a := range SignedAttrs {
		if carried(ev, a) && !slices.Contains(names, a) {
			return reject.Errorf(reject.BadSignature, "attribute %s is carried but not signed by %s", a, ev.Origin)
		}
	}
	want := Digest(ev, names)
	if subtle.ConstantTimeCompare(want[:], payload) != 1 {
		return reject.Errorf(reject.BadSignature, "the signal does not match what %s signed: it was modified after signing", ev.Origin)
	}
	return nil
}

// signedNames appends the names of signedextattrs list to names.
func signedNames(names []string, list string) ([]string, error) {
	if list == "" {
		return names, nil
	}
	for n := range strings.SplitSeq(list, ",") {
		names = append(names, n)
	}
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

func short(k string) string { return ShortKey(k) }

// ShortKey is a public key as logs and messages show it: its first six
// and last four characters.
func ShortKey(k string) string {
	if len(k) > 12 {
		return k[:6] + "…" + k[len(k)-4:]
	}
	return k
}

// Pinned names the keys pinned for origin, comma-separated ("" for
// none): what a signal held for want of a key records, to be checked
// again once it changed.
func (v *Verifier) Pinned(origin string) string { return strings.Join(v.Keys(origin), ",") }

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
	var rawBuf [384]byte
	raw, err := decodeB64(rawBuf[:], []byte(ev.DSSEMaterial))
	if err != nil {
		return false
	}
	env, err := readEnvelope(raw)
	if err != nil || string(env.payloadType) != PayloadType || env.n == 0 {
		return false
	}
	known := v.p.Load().known
	for i := range env.n {
		s := env.sig(i)
		if len(s.keyID) == 0 || known[string(s.keyID)] {
			return false
		}
	}
	return true
}
