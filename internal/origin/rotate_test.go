package origin_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/reject"
)

// TestVerifierOverlap: during a key rotation's overlap an origin's
// signals verify under its old key and its new one; once the old key is
// retired, only under the new one; the last key is never retired.
func TestVerifierOverlap(t *testing.T) {
	oldKP, oldPub := newKey(t)
	newKP, newPub := newKey(t)
	v, err := origin.NewVerifier(map[string]string{"op-a": oldPub})
	require.NoError(t, err)
	signed := func(s *origin.Signer) error {
		ev := sample()
		require.NoError(t, s.Sign(ev))
		return v.Verify(ev)
	}
	s, err := origin.NewSigner(oldKP)
	require.NoError(t, err)
	require.NoError(t, signed(s))

	ns, err := origin.NewSigner(newKP)
	require.NoError(t, err)
	assert.Equal(t, reject.BadSignature, reject.ReasonOf(signed(ns)), "not pinned yet")

	require.NoError(t, v.Accept("op-a", newPub))
	require.NoError(t, v.Accept("op-a", newPub), "accepted twice: once")
	assert.Equal(t, []string{oldPub, newPub}, v.Keys("op-a"))
	assert.Equal(t, oldPub+","+newPub, v.Pinned("op-a"))
	assert.NoError(t, signed(s), "overlap: the old key")
	assert.NoError(t, signed(ns), "overlap: the new key")

	require.NoError(t, v.Retire("op-a", oldPub))
	assert.Equal(t, []string{newPub}, v.Keys("op-a"))
	assert.Equal(t, reject.BadSignature, reject.ReasonOf(signed(s)), "retired")
	assert.NoError(t, signed(ns))
	assert.Error(t, v.Retire("op-a", newPub), "the last key stays")
	assert.Error(t, v.Accept("op-a", "not-a-key"))

	// Announcements: signed by a key pinned for that origin only.
	msg := []byte("rotate")
	sig, err := newKP.Sign(msg)
	require.NoError(t, err)
	assert.NoError(t, v.VerifyBytes("op-a", newPub, msg, sig))
	assert.Error(t, v.VerifyBytes("op-a", newPub, []byte("other"), sig))
	assert.Error(t, v.VerifyBytes("op-b", newPub, msg, sig), "not op-b's key")
	oldSig, err := oldKP.Sign(msg)
	require.NoError(t, err)
	assert.Error(t, v.VerifyBytes("op-a", oldPub, msg, oldSig), "retired")
}

// TestSignerSwitchWhileSigning: signals signed while the signer switches
// carry one key each, old or new, and verify under it.
func TestSignerSwitchWhileSigning(t *testing.T) {
	oldKP, oldPub := newKey(t)
	newKP, newPub := newKey(t)
	s, err := origin.NewSigner(oldKP)
	require.NoError(t, err)
	vOld, err := origin.NewVerifier(map[string]string{"op-a": oldPub})
	require.NoError(t, err)
	vNew, err := origin.NewVerifier(map[string]string{"op-a": newPub})
	require.NoError(t, err)
	before := sample()
	require.NoError(t, s.Sign(before))
	assert.False(t, s.Stale(before), "signed by the key in force")
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				ev := sample()
				if err := s.Sign(ev); err != nil {
					errs <- err
					continue
				}
				if vOld.Verify(ev) != nil && vNew.Verify(ev) != nil {
					errs <- vNew.Verify(ev)
				}
			}
		}()
	}
	require.NoError(t, s.Switch(newKP))
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Equal(t, newPub, s.KeyID())
	ev := sample()
	require.NoError(t, s.Sign(ev))
	assert.NoError(t, vNew.Verify(ev))
	assert.Error(t, vOld.Verify(ev), "after the switch: the new key only")
	assert.False(t, s.Stale(ev))
	assert.True(t, s.Stale(before), "signed before the switch: the sender signs it again")
}
