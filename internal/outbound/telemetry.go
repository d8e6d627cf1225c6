package outbound

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/anfed/anfed/internal/signal"
)

// TelemetryFeed hands checked telemetry to a node's stream senders in
// process, on the embedded server: intake and the receivers Offer each
// signal they publish on an.telsig, and every stream sender that runs
// with the feed (LossyConfig.Feed) takes those its export policy's
// telemetry subjects match (Policy.TelemetrySubjects), as its an.telsig
// subscriptions would, without the round trip through the server:
// one publish, one delivery and one goroutine hand-off fewer per
// signal. What the sender does with it is the same: the export
// policy's stages, the stream's numbering, the link-down drops.
//
// Offer runs the senders on its caller's goroutine (intake's and the
// receivers' workers), so telemetry waits in no sender's queue: a node
// that cannot keep up drops it where it comes in (NATS, at intake's and
// the receivers' subscriptions), never per peer (LossyCounts.DroppedSlow
// counts the stored signals' subscriptions only). On an external NATS
// cluster another process may hold a peer's link: there the senders
// subscribe to an.telsig as before and no feed is used.
type TelemetryFeed struct {
	mu   sync.Mutex // Join and leave
	taps atomic.Pointer[[]*telemetryTap]
}

// telemetryTap is one stream sender on the feed.
type telemetryTap struct {
	filters []string
	take    func(subj string, ev *signal.Event, data []byte)
}

// Offer hands one checked telemetry signal, ev, whose subject under
// an.telsig is subj, to every sender whose filters match subj. No
// sender changes ev: each takes a copy of its own.
func (f *TelemetryFeed) Offer(subj string, ev *signal.Event) {
	if f == nil {
		return
	}
	taps := f.taps.Load()
	if taps == nil {
		return
	}
	for _, t := range *taps {
		for _, filter := range t.filters {
			if server.SubjectMatchesFilter(subj, filter) {
				t.take(subj, ev, nil)
				break
			}
		}
	}
}

// Senders is how many stream senders are on the feed now.
func (f *TelemetryFeed) Senders() int {
	if taps := f.taps.Load(); taps != nil {
		return len(*taps)
	}
	return 0
}

// join adds a tap; the returned func takes it off again. Once it
// returned, Offers that start no longer reach the tap.
func (f *TelemetryFeed) join(t *telemetryTap) (leave func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var taps []*telemetryTap
	if cur := f.taps.Load(); cur != nil {
		taps = slices.Clone(*cur)
	}
	taps = append(taps, t)
	f.taps.Store(&taps)
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		cur := f.taps.Load()
		if cur == nil {
			return
		}
		rest := slices.DeleteFunc(slices.Clone(*cur), func(x *telemetryTap) bool { return x == t })
		f.taps.Store(&rest)
	}
}
