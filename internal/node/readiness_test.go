package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/store"
)

// Readiness names the part that is broken: the store (its probe write
// fails), intake (it answers no probe), a link (its connection closed).
// A full store is TestFullDisk's.
func TestReadinessNamesTheBrokenPart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		brk   func(t *testing.T, na *node.Node)
		names string
	}{
		{"store", func(t *testing.T, na *node.Node) {
			// The probe's stream gone: its writes find no stream.
			nc, err := na.Connect()
			require.NoError(t, err)
			defer nc.Close()
			js, err := jetstream.New(nc)
			require.NoError(t, err)
			require.NoError(t, js.DeleteStream(context.Background(), store.ProbeStream))
		}, "store: not writable"},
		{"intake", func(t *testing.T, na *node.Node) { na.UnsubscribeIntake() }, "intake: not answering"},
		{"link", func(t *testing.T, na *node.Node) {
			require.NoError(t, na.PeerConn("op-b").Publish(strings.Repeat("x", 5000), nil))
		}, "link op-b: connection anfed-node-op-b CLOSED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			na, _ := pair(t, []string{"congestion"}, []string{"congestion"})
			require.NoError(t, na.Readiness(), "ready before")
			tc.brk(t, na)
			start := time.Now()
			waitFor(t, 10*time.Second, func() error {
				if err := na.Readiness(); err == nil || !strings.Contains(err.Error(), tc.names) {
					return fmt.Errorf("readiness %v does not name %q", err, tc.names)
				}
				return nil
			})
			t.Logf("%s broken: not ready after %v: %v", tc.name, time.Since(start).Round(time.Millisecond), na.Readiness())
		})
	}
}
