package origin_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/signal"
)

// What docs/signals.md ("What the signature covers") says is not signed
// can change in transit without breaking the signature; TestVerifyRefuses
// covers what is.
func TestWhatTheSignatureLeavesOut(t *testing.T) {
	kp, pub := newKey(t)
	s, err := origin.NewSigner(kp)
	require.NoError(t, err)
	v, err := origin.NewVerifier(map[string]string{"op-a": pub})
	require.NoError(t, err)
	for name, mutate := range map[string]func(*signal.Event){
		"time's fraction of a second": func(e *signal.Event) { e.Time = e.Time.Truncate(time.Second).Add(987 * time.Millisecond) },
		"anfedpath":                   func(e *signal.Event) { e.Path = append(e.Path, "op-b") },
		"anfedtags":                   func(e *signal.Event) { e.Tags = []string{"op-b:transit"} },
		"traceparent":                 func(e *signal.Event) { e.TraceParent = "00-00000000000000000000000000000001-0000000000000001-01" },
	} {
		t.Run(name, func(t *testing.T) {
			ev := sample()
			require.NoError(t, s.Sign(ev))
			mutate(ev)
			assert.NoError(t, v.Verify(ev), "not signed, so it may change")
		})
	}
}
