package demo

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/inbound/importpolicy"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/outbound/exportpolicy"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
	"github.com/anfed/anfed/schemas"
)

// producer publishes one operator's signals through its node's intake, as
// any NATS client would, and tells the ledger where each accepted signal
// must arrive according to the same policies the nodes run.
type producer struct {
	nc     *nats.Conn
	origin string
	source string
	seq    uint64
	led    *ledger
	routes []route
}

type route struct {
	peer string
	exp  *exportpolicy.Policy
	imp  *importpolicy.Policy
}

func newProducer(n *node.Node, name string, led *ledger, all map[string]*config.Config) (*producer, error) {
	nc, err := n.Connect(nats.Name("demo-" + name))
	if err != nil {
		return nil, err
	}
	p := &producer{nc: nc, origin: n.ID(), source: "anfed://" + n.ID() + "/" + name, led: led}
	for i := range n.Config().Peers {
		peer := &n.Config().Peers[i]
		r := route{peer: peer.ID, exp: exportpolicy.ForConfig(n.Config(), peer)}
		if pc, ok := all[peer.ID]; ok {
			if back, ok := pc.Peer(n.ID()); ok {
				r.imp = importpolicy.New(peer.ID, back)
			}
		}
		p.routes = append(p.routes, r)
	}
	return p, nil
}

// event builds a signal of this producer.
func (p *producer) event(class, service, resource string, st signal.State, sev string, data any) (*signal.Event, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	p.seq++
	sevNum := map[string]int{"INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21}[sev]
	return &signal.Event{
		ID:              nuid.Next(),
		Source:          p.source,
		Type:            schemas.Type(class),
		Subject:         service + "/" + resource,
		Time:            time.Now().UTC(),
		DataContentType: signal.ContentType,
		DataSchema:      schemas.SchemaURI(class),
		Data:            b,
		Origin:          p.origin,
		State:           st,
		SeverityText:    sev,
		SeverityNumber:  sevNum,
		Sequence:        fmt.Sprintf("%020d", p.seq),
	}, nil
}

// publish sends ev to intake and waits for the answer.
func (p *producer) publish(ev *signal.Event) (signal.Answer, error) {
	m, err := p.nc.Request(subject.IntakePrefix, ev.Encode(), 5*time.Second)
	if err != nil {
		return signal.Answer{}, fmt.Errorf("publish %s: %w", ev.ID, err)
	}
	a, err := signal.ParseAnswer(m.Data)
	if err != nil {
		return a, err
	}
	if a.Status == signal.StatusAccepted {
		class, _, _ := schemas.ClassOf(ev.Type)
		hop := *ev
		hop.Path = []string{p.origin}
		for _, r := range p.routes {
			if !r.exp.Decide(ev, class).Export || r.imp == nil || r.imp.Check(&hop, class) != nil {
				continue
			}
			p.led.expect(r.peer, ev)
		}
	}
	return a, nil
}

func (p *producer) close() { p.nc.Close() }
