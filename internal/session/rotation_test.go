package session_test

import (
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/session"
)

func opKey(t *testing.T) (nkeys.KeyPair, string) {
	kp, err := nkeys.CreateOperator()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	return kp, pub
}

// TestRotationCheck: what a rotation message says by itself — its
// origin, keys, overlap and the new key's signature over everything it
// carries — is checked; the previous key's signature is the receiver's
// to check against its pins.
func TestRotationCheck(t *testing.T) {
	prev, prevPub := opKey(t)
	next, nextPub := opKey(t)
	good := func() session.Rotation {
		r := session.Rotation{ID: "r1", Origin: "op-a", Previous: prevPub, Key: nextPub, OverlapSeconds: 3600}
		require.NoError(t, r.Sign(session.TypeKeyRotate, "op-a", "op-b", prev, next))
		return r
	}
	r := good()
	require.NoError(t, r.Check(session.TypeKeyRotate, "op-a", "op-b"))
	assert.NoError(t, prev.Verify(r.Payload(session.TypeKeyRotate, "op-a", "op-b"), r.PreviousSignature()))
	assert.Equal(t, time.Hour, r.Overlap())

	for _, tc := range []struct {
		name, want string
		edit       func(*session.Rotation)
		typ        session.Type
		from, to   string
	}{
		{"another origin", `announces a key for origin "op-c"`, func(r *session.Rotation) { r.Origin = "op-c" }, session.TypeKeyRotate, "op-a", "op-b"},
		{"from another peer", `op-c announces a key for origin "op-a"`, nil, session.TypeKeyRotate, "op-c", "op-b"},
		{"to another operator", "does not verify", nil, session.TypeKeyRotate, "op-a", "op-c"},
		{"as a switch", "does not verify", nil, session.TypeKeySwitch, "op-a", "op-b"},
		{"key changed", "does not verify", func(r *session.Rotation) { _, r.Key = opKey(t) }, session.TypeKeyRotate, "op-a", "op-b"},
		{"overlap changed", "does not verify", func(r *session.Rotation) { r.OverlapSeconds = 60 }, session.TypeKeyRotate, "op-a", "op-b"},
		{"no signature by the new key", "missing", func(r *session.Rotation) { r.SigKey = "" }, session.TypeKeyRotate, "op-a", "op-b"},
		{"not base64", "not base64", func(r *session.Rotation) { r.SigKey = "%%" }, session.TypeKeyRotate, "op-a", "op-b"},
		{"same key", "is its previous one", func(r *session.Rotation) { r.Key = r.Previous }, session.TypeKeyRotate, "op-a", "op-b"},
		{"not a key", "operator public NKeys", func(r *session.Rotation) { r.Key = "UABC" }, session.TypeKeyRotate, "op-a", "op-b"},
		{"overlap too long", "overlap", func(r *session.Rotation) { r.OverlapSeconds = int64(session.MaxOverlap/time.Second) + 1 }, session.TypeKeyRotate, "op-a", "op-b"},
		{"overlap zero", "overlap", func(r *session.Rotation) { r.OverlapSeconds = 0 }, session.TypeKeyRotate, "op-a", "op-b"},
		{"id with control characters", "not printable", func(r *session.Rotation) { r.ID = "a\x1b[31m" }, session.TypeKeyRotate, "op-a", "op-b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good()
			if tc.edit != nil {
				tc.edit(&r)
			}
			err := r.Check(tc.typ, tc.from, tc.to)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestDecodeRotationMessage: a key-rotation message without its
// rotation is refused at decoding.
func TestDecodeRotationMessage(t *testing.T) {
	_, err := session.Decode([]byte(`{"type":"key-rotate","from":"op-a","to":"op-b"}`), "op-a", "op-b")
	assert.ErrorContains(t, err, "without its rotation")
	m, err := session.Decode([]byte(`{"type":"key-accept","from":"op-a","to":"op-b","rotation":{"id":"r1"}}`), "op-a", "op-b")
	require.NoError(t, err)
	assert.Equal(t, "r1", m.Rotation.ID)
}

// TestKeysRotated: the keys an OPEN states and checks change while the
// session runs (a rotation): the peer's OPEN with its new key is taken
// once it is pinned.
func TestKeysRotated(t *testing.T) {
	now := time.Unix(0, 0)
	l := session.Local{Self: "op-b", Peer: "op-a", Catalog: []string{"net.anfed.fault.v1"}, PeerKeys: []string{"OLD"}}
	m := session.New(l, now)
	m.LinkUp(now)
	open := session.Message{Type: session.TypeOpen, From: "op-a", To: "op-b", Keys: []string{"NEW"}, Catalog: l.Catalog}
	out, _ := m.Receive(now, open)
	require.NotEmpty(t, out)
	assert.Equal(t, session.TypeNotification, out[0].Type, "NEW not pinned")
	m.KeysRotated([]string{"MINE"}, []string{"OLD", "NEW"})
	now = now.Add(2 * session.Retry)
	m.Tick(now)
	out, _ = m.Receive(now, open)
	require.NotEmpty(t, out)
	assert.Equal(t, session.TypeOpen, out[0].Type)
	assert.Equal(t, []string{"MINE"}, out[0].Keys)
}
