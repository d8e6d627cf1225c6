package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/session"
	"github.com/anfed/anfed/internal/subject"
)

// DefaultRestartWithin is how long `anfed serve` tells its peers, on
// SIGTERM, that it will be back within (--restart-within).
const DefaultRestartWithin = 5 * time.Minute

// Drain tells every peer whose session is open that this node restarts
// and is back within the given time (a graceful-shutdown notice: a
// NOTIFICATION planned-restart with the time): the peers keep our
// conditions, marked planned-down, until then instead of letting them go
// stale after their grace time. Our sessions close and stay quiet (no
// OPEN sent or answered) until then, or until the node stops; the link
// itself stays up. It returns how many peers were told.
func (n *Node) Drain(ctx context.Context, within time.Duration) int {
	if within <= 0 {
		return 0
	}
	within = min(within, MaxPlannedRestart) // what the peers hold us to
	now := time.Now()
	text := fmt.Sprintf("planned restart of %s: back within %s", n.ID(), within)
	n.mu.RLock()
	links := make([]*peerLink, 0, len(n.links))
	for _, l := range n.links {
		links = append(links, l)
	}
	n.mu.RUnlock()
	told := 0
	var crossed sync.WaitGroup
	for _, l := range links {
		ps := l.ps
		ps.mu.Lock()
		ps.quietUntil = now.Add(within)
		var out []session.Message
		var ev session.Event
		if ps.m.Status().State != session.Idle {
			ps.cause = CausePlanned
			out, ev = ps.m.Close(now, session.ReasonPlanned, text)
			for i := range out {
				out[i].RestartSeconds = int(within / time.Second)
			}
		}
		st := ps.m.Status()
		ps.mu.Unlock()
		if len(out) == 0 {
			continue
		}
		for _, o := range out {
			ps.send(o)
		}
		crossed.Add(1)
		go func() {
			defer crossed.Done()
			n.crossed(l)
		}()
		n.sessionEvent(ctx, ps, ev, st)
		told++
	}
	crossed.Wait() // a stop that follows does not overtake the notices
	n.log.Info().Int("told", told).Stringer("within", within).Msg("planned restart announced to the peers: they keep our conditions until we are back")
	return told
}

// crossed waits, a second at most, until what we sent on l's link has
// reached the peer's node: the peer answers a probe sent after it, and
// its receiver takes the link's messages in order.
func (n *Node) crossed(l *peerLink) {
	probe := nats.NewMsg(subject.Probe(n.ID()))
	probe.Header.Set(link.HeaderEpoch, n.epoch)
	if _, err := l.nc.RequestMsg(probe, time.Second); err != nil {
		n.log.Debug().Err(err).Str("peer", l.p.ID).Msg("planned restart: the peer did not answer a probe after the notice")
	}
}
