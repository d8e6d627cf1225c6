package node_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/signal"
)

// TestRefreshScale measures a refresh at scale: op-a holds n active
// conditions that op-b holds too; op-b asks op-a for a refresh
// (inbound); the time until op-b took the End-of-RIB, and what op-a sent.
// It runs only with ANFED_REFRESH_SCALE=1000,10000,100000 (docs/sessions.md).
func TestRefreshScale(t *testing.T) {
	env := os.Getenv("ANFED_REFRESH_SCALE")
	if env == "" {
		t.Skip("set ANFED_REFRESH_SCALE=1000,10000,100000 to measure")
	}
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(f)
		require.NoError(t, err)
		t.Run(f, func(t *testing.T) {
			l := newSessionLab(t, func(c *config.Config) {
				c.Storage.Sync = "2m"
				c.Storage.MaxBytes = config.ByteSize(4 << 30)
			}, func(c *config.Config) {
				c.Storage.Sync = "2m"
				c.Storage.MaxBytes = config.ByteSize(4 << 30)
			})
			start := time.Now()
			publishMany(t, l.pa, n)
			pub := time.Since(start)
			waitFor(t, 10*time.Minute, func() error {
				if got := l.nb.Table().Len("op-a"); got != n {
					return fmt.Errorf("op-b holds %d of %d", got, n)
				}
				return nil
			})
			crossed := time.Since(start)
			for range 2 {
				eor := l.eors()
				t0 := time.Now()
				require.NoError(t, l.nb.RefreshPeer(t.Context(), "op-a", true, false))
				waitFor(t, 10*time.Minute, func() error {
					if l.eors() <= eor {
						return fmt.Errorf("no End-of-RIB yet")
					}
					return nil
				})
				took := time.Since(t0)
				s := l.na.Session("op-b")
				t.Logf("n=%d: published in %s, held at op-b after %s; refresh to End-of-RIB %s (op-a: read %d, sent %d of which kept-only %d, resent %d, its refresh %s); op-b holds %d, withdrew %d",
					n, pub.Round(time.Millisecond), crossed.Round(time.Millisecond), took.Round(time.Millisecond),
					s.LastRefresh.Read, s.LastRefresh.Sent, s.LastRefresh.Kept, s.LastRefresh.Resent, s.LastRefresh.Took.Round(time.Millisecond),
					l.nb.Table().Len("op-a"), l.nb.Session("op-a").Swept)
				require.Equal(t, n, l.nb.Table().Len("op-a"))
			}
		})
	}
}

// publishMany publishes n raised congestions of distinct resources at
// op-a, up to 256 unanswered.
func publishMany(t *testing.T, nc *nats.Conn, n int) {
	t.Helper()
	publishManyAs(t, nc, "op-a", n)
}

// publishManyAs is publishMany at the node origin runs on (nc).
func publishManyAs(t *testing.T, nc *nats.Conn, origin string, n int) {
	t.Helper()
	answers := make(chan *nats.Msg, 1024)
	inbox := nats.NewInbox()
	sub, err := nc.ChanSubscribe(inbox+".*", answers)
	require.NoError(t, err)
	defer sub.Unsubscribe()
	inflight, ok := 0, 0
	take := func() {
		m := <-answers
		inflight--
		if a, err := signal.ParseAnswer(m.Data); err == nil && a.OK() {
			ok++
		}
	}
	for i := range n {
		for inflight >= 256 {
			take()
		}
		ev := congestion(origin, fmt.Sprintf("s-%d", i))
		ev.Subject = fmt.Sprintf("vpn-acme/ic-%d", i)
		require.NoError(t, nc.PublishRequest("an.pub", inbox+"."+strconv.Itoa(i), ev.Encode()))
		inflight++
	}
	for inflight > 0 {
		take()
	}
	require.Equal(t, n, ok)
}
