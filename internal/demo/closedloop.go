package demo

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
	"github.com/anfed/anfed/schemas"
)

// closedLoop is op-b's example closed loop. It subscribes, as any NATS
// client can, to what op-a tells op-b, and answers every raised or worsened
// condition with a mitigation back to op-a; a congestion also puts op-b's
// service to op-c at risk, which op-b tells op-c.
type closedLoop struct {
	p       *producer
	sub     *nats.Subscription
	log     zerolog.Logger
	got     atomic.Int64
	handled atomic.Int64
	// firstCongestion has op-a's first raised congestion, for the
	// coordination scenario.
	firstCongestion chan *signal.Event
}

func startClosedLoop(ctx context.Context, p *producer, log zerolog.Logger) (*closedLoop, error) {
	l := &closedLoop{p: p, log: log, firstCongestion: make(chan *signal.Event, 1)}
	sub, err := p.nc.Subscribe(subject.SignalPrefix+"."+opA+".>", func(m *nats.Msg) { l.handle(ctx, m) })
	if err != nil {
		return nil, err
	}
	l.sub = sub
	return l, p.nc.Flush()
}

// handle answers one signal; ctx is the demo's (once it is done, a
// publish that fails is the demo stopping, not an error).
func (l *closedLoop) handle(ctx context.Context, m *nats.Msg) {
	l.got.Add(1)
	defer l.handled.Add(1)
	ev, err := signal.DecodeStructured(m.Data)
	if err != nil {
		l.log.Error().Err(err).Msg("closed loop: undecodable signal")
		return
	}
	if ev.State == signal.Cleared {
		return
	}
	class, _, _ := schemas.ClassOf(ev.Type)
	if class == "action" {
		return // coordination's steps: the scenario's business
	}
	if class == "congestion" && ev.State == signal.Raised {
		select {
		case l.firstCongestion <- ev:
		default:
		}
	}
	action, detail := "reroute", "shift vpn-acme traffic away from "+ev.Resource()
	if class == "fault" {
		action, detail = "failover", "fail vpn-acme over to the protection path of "+ev.Resource()
	}
	mit, err := l.p.event("mitigation", ev.Service(), ev.Resource(), signal.Raised, "INFO", map[string]any{
		"action":         action,
		"detail":         detail,
		"status":         "in-progress",
		"respondsTo":     []map[string]string{{"source": ev.Source, "id": ev.ID}},
		"target":         map[string]string{"id": ev.Resource(), "type": "interconnect"},
		"expectedEffect": "utilisation of " + ev.Resource() + " below 80% within 5 minutes",
	})
	if err != nil {
		l.log.Error().Err(err).Msg("closed loop: build mitigation")
		return
	}
	mit.CausationID, mit.CorrelationID = ev.ID, ev.CorrelationID
	l.publish(ctx, mit)
	if class == "congestion" && ev.State == signal.Raised {
		risk, err := l.p.event("sla-risk", transitService, ev.Resource(), signal.Raised, "WARN", map[string]any{
			"slaId":          "sla-" + opC + "-transit-gold",
			"metric":         "latency.one-way.p95",
			"objective":      map[string]any{"comparator": "<=", "target": 30, "unit": "ms"},
			"predictedValue": 38.5,
			"probability":    0.7,
			"horizon":        time.Now().Add(30 * time.Minute).UTC().Format(time.RFC3339),
			"confidence":     0.6,
			"model":          "demo-linear",
		})
		if err != nil {
			l.log.Error().Err(err).Msg("closed loop: build sla-risk")
			return
		}
		risk.CausationID, risk.CorrelationID = ev.ID, ev.CorrelationID
		l.publish(ctx, risk)
	}
}

func (l *closedLoop) publish(ctx context.Context, ev *signal.Event) {
	a, err := l.p.publish(ev)
	if err == nil {
		err = a.Err()
	}
	if err != nil && ctx.Err() == nil {
		l.log.Error().Err(err).Str("type", ev.Type).Msg("closed loop: publish")
	}
}

// idle reports that every signal received so far has been handled.
func (l *closedLoop) idle() bool {
	n, _, _ := l.sub.Pending()
	return n == 0 && l.got.Load() == l.handled.Load()
}

func (l *closedLoop) stop() { _ = l.sub.Unsubscribe() }
