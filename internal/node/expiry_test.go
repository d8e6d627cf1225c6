package node_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
)

// A peering that expires while the node runs ends then: the link is cut
// and stays cut, and nothing more crosses.
func TestPeeringExpiresWhileRunning(t *testing.T) {
	expires := time.Now().Add(4 * time.Second) // room for two nodes to start and link on a loaded machine
	na, nb := pairWith(t, []string{"congestion"}, []string{"congestion"}, func(c *config.Config) {
		c.Peers[0].Expires = &expires
	})
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	cb, err := nb.Connect()
	require.NoError(t, err)
	defer cb.Close()
	got := &collector{}
	_, err = cb.Subscribe("an.sig.op-a.>", got.add)
	require.NoError(t, err)
	require.NoError(t, cb.Flush())
	require.True(t, publish(t, pa, congestion("op-a", "before")).OK())
	waitFor(t, 5*time.Second, func() error {
		if got.n() != 1 {
			return fmt.Errorf("got %d", got.n())
		}
		return nil
	})
	time.Sleep(time.Until(expires))
	waitFor(t, 5*time.Second, func() error {
		if na.LinkUp("op-b") || nb.LinkUp("op-a") {
			return fmt.Errorf("link still up")
		}
		return nil
	})
	require.True(t, publish(t, pa, congestion("op-a", "after")).OK())
	// The link stays cut: for a few of B's redial intervals, nothing crosses.
	for range 8 {
		time.Sleep(250 * time.Millisecond)
		assert.Equal(t, 1, got.n(), "nothing crosses an expired peering")
	}
}
