// Command closed-loop-controller is a closed loop across an operator
// boundary: it reads the congestion a peer reports on a shared interconnect
// and, when the interconnect is congested beyond a threshold, decides to
// reroute the service away from it and tells the peer with a `mitigation`
// signal; when the congestion clears (or falls under a lower bound, so that
// a congestion hovering around the threshold does not flap), it withdraws
// the reroute and clears the mitigation.
//
// Like examples/closed-loop-go it uses nothing of anfed's code — only
// nats.go (with its jetstream package) and the CloudEvents Go SDK — so it
// can be copied out of this repository as it is.
//
//	go run ./examples/closed-loop-controller --server nats://127.0.0.1:4223 \
//	    --user closed-loop --password change-me-closed-loop-b --operator op-b
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The node's wire contract (README, docs/signals.md).
const (
	stream      = "ANFED_SIGNALS" // every accepted signal, local and imported
	intake      = "an.pub"        // publish a signal as a request; the answer says accepted or why not
	congestionT = "net.anfed.congestion.v1"
	mitigationT = "net.anfed.mitigation.v1"
	mitigationS = "https://anfed.net/schemas/v1/mitigation.json"
)

type options struct {
	URL      string
	User     string
	Password string
	Operator string  // this operator's id: the origin of the mitigations
	Durable  string  // the consumer's name
	Raise    float64 // reroute when a peer's interconnect is at or above this utilisation, %
	Clear    float64 // withdraw the reroute when it falls below this, %
}

func main() {
	var o options
	flag.StringVar(&o.URL, "server", "nats://127.0.0.1:4223", "the node's client URL (nats.client.listen in its policy file)")
	flag.StringVar(&o.User, "user", "closed-loop", "a local user of the node (nats.users)")
	flag.StringVar(&o.Password, "password", os.Getenv("ANFED_PASSWORD"), "its password (default: $ANFED_PASSWORD)")
	flag.StringVar(&o.Operator, "operator", "op-b", "this operator's id (operator.id of the node)")
	flag.StringVar(&o.Durable, "durable", "closed-loop-controller", "durable consumer name: a restarted controller resumes where it stopped")
	flag.Float64Var(&o.Raise, "raise", 85, "reroute when a peer's interconnect utilisation is at or above this, %")
	flag.Float64Var(&o.Clear, "clear", 70, "withdraw the reroute when the utilisation falls below this, %")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "closed-loop-controller:", err)
		os.Exit(1)
	}
}

// congestion is the part of a congestion signal's data the controller
// reads (docs/signals.md, class congestion).
type congestion struct {
	Link struct {
		ID   string `json:"id"`
		Kind string `json:"kind"`
		Peer string `json:"peer"`
	} `json:"link"`
	Utilisation    float64  `json:"utilisationPercent"`
	TrafficClasses []string `json:"trafficClasses"`
}

// reroute is one active mitigation: which congestion it answers.
type reroute struct {
	Source, ID string // the congestion signal that caused it
	MitID      string // the mitigation signal that announced it
}

// decision is what the controller does with one congestion signal.
type decision int

const (
	keep    decision = iota // nothing to do
	raise                   // reroute and raise a mitigation
	clearIt                 // withdraw the reroute and clear the mitigation
)

// controller holds the active reroutes by condition key; mu guards it:
// the signals and the condition table's changes arrive on two goroutines
// (origin/service/resource). It is used by one goroutine.
type controller struct {
	o      options
	active map[string]reroute
	mu     sync.Mutex
}

// decide is the control law, with hysteresis: raise at o.Raise, clear under
// o.Clear or when the peer clears the congestion; in between, keep.
func (c *controller) decide(key, state string, d congestion) decision {
	_, on := c.active[key]
	switch {
	case d.Link.Kind != "interconnect":
		return keep // inside the peer's network: its own loops handle it
	case on && (state == "cleared" || d.Utilisation < c.o.Clear):
		return clearIt
	case !on && state != "cleared" && d.Utilisation >= c.o.Raise:
		return raise
	}
	return keep
}

// run consumes until ctx is done.
func run(ctx context.Context, o options, out io.Writer) error {
	if o.Clear > o.Raise {
		return fmt.Errorf("--clear %.1f is above --raise %.1f: the reroute would flap; use a lower --clear", o.Clear, o.Raise)
	}
	nc, err := nats.Connect(o.URL, nats.UserInfo(o.User, o.Password), nats.Name("closed-loop-controller"))
	if err != nil {
		return fmt.Errorf("connect %s: %w", o.URL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	c := &controller{o: o, active: map[string]reroute{}}
	// The controller's state is on the bus, not in this process: the
	// current state of its own mitigations says which reroutes are active.
	if err := c.load(ctx, js, out); err != nil {
		return err
	}

	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       o.Durable,
		Description:   "closed-loop-controller: reroute on a peer's interconnect congestion",
		FilterSubject: "an.sig.*.congestion.>",
		// The current state of every congestion first, then every new one.
		DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		MaxAckPending: 1, // one at a time: a key's signals are handled in order
		AckWait:       30 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("consumer %s: %w", o.Durable, err)
	}
	// The node's condition table tells when a peer's congestion is
	// withdrawn (its link stayed down past its grace time, or its
	// End-of-RIB no longer states it) or expires: the reroute it caused
	// is undone as if the congestion had cleared.
	gone := func(m *nats.Msg) {
		if err := c.gone(ctx, nc, js, m, out); err != nil && ctx.Err() == nil {
			fmt.Fprintf(out, "error   %v\n", err)
		}
	}
	for _, kind := range []string{"withdraw", "expire"} {
		sub, err := nc.Subscribe("an.cond."+kind+".*.congestion.>", gone)
		if err != nil {
			return fmt.Errorf("subscribe to the condition table's changes: %w", err)
		}
		defer sub.Unsubscribe()
	}
	// Consume calls back from one goroutine, one signal at a time.
	cc, err := cons.Consume(func(m jetstream.Msg) {
		err := c.handle(ctx, nc, m.Data(), out)
		var rej *rejectedError
		switch {
		case errors.As(err, &rej):
			// A refusal does not change on a retry; the node keeps the
			// refused mitigation on an.dlq with the reason. Say it, move on.
			fmt.Fprintf(out, "refused %v\n", err)
			_ = m.Term()
			return
		case err != nil:
			if ctx.Err() == nil {
				fmt.Fprintf(out, "error   %v (again in 2s)\n", err)
			}
			_ = m.NakWithDelay(2 * time.Second)
			return
		}
		_ = m.Ack()
	})
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	<-ctx.Done()
	cc.Drain()
	select {
	case <-cc.Closed():
	case <-time.After(5 * time.Second):
		cc.Stop()
	}
	return nil
}

// load reads the current state of this operator's own mitigations and
// marks the raised ones active, with the congestion each answers.
func (c *controller) load(ctx context.Context, js jetstream.JetStream, out io.Writer) error {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"an.sig." + c.o.Operator + ".mitigation.>"},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return fmt.Errorf("read own mitigations: %w", err)
	}
	// Read in stream order until caught up; a later signal of a key
	// overrides an earlier one.
	pending := cons.CachedInfo().NumPending
	for pending > 0 {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			return fmt.Errorf("read own mitigations: %w", err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("read own mitigations: %w", err)
		}
		pending = meta.NumPending
		var e event.Event
		if err := json.Unmarshal(m.Data(), &e); err != nil {
			continue
		}
		var d struct {
			Action     string                        `json:"action"`
			RespondsTo []struct{ Source, ID string } `json:"respondsTo"`
		}
		if e.DataAs(&d) != nil || d.Action != "reroute" || len(d.RespondsTo) == 0 {
			continue
		}
		key := originOf(d.RespondsTo[0].Source) + "/" + e.Subject()
		if ext(e, "anfedstate") == "cleared" {
			delete(c.active, key)
			continue
		}
		c.active[key] = reroute{Source: d.RespondsTo[0].Source, ID: d.RespondsTo[0].ID, MitID: e.ID()}
	}
	for key, r := range c.active {
		fmt.Fprintf(out, "active  reroute %s (mitigation %s)\n", key, r.MitID)
	}
	fmt.Fprintf(out, "# %s: %d active reroutes; raise at %.1f%%, clear under %.1f%%\n", c.o.Operator, len(c.active), c.o.Raise, c.o.Clear)
	return nil
}

// handle decides on one congestion signal and publishes the mitigation it
// calls for. An error asks for the signal again.
// gone undoes the reroute of a peer's congestion the node's condition
// table withdrew or expired (an.cond.withdraw|expire.<origin>.congestion.
// <service>.<resource>): its mitigation is cleared, answering the last
// congestion stored for the condition.
func (c *controller) gone(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, m *nats.Msg, out io.Writer) error {
	var ch struct {
		Kind      string `json:"kind"`
		Condition struct {
			Origin  string `json:"origin"`
			Subject string `json:"subject"`
		} `json:"condition"`
	}
	if json.Unmarshal(m.Data, &ch) != nil {
		return nil
	}
	key := ch.Condition.Origin + "/" + ch.Condition.Subject
	c.mu.Lock()
	defer c.mu.Unlock()
	_, on := c.active[key]
	if !on {
		return nil
	}
	// The change's subject has the signal's tokens, escaped alike.
	_, rest, _ := strings.Cut(strings.TrimPrefix(m.Subject, "an.cond."), ".")
	str, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	last, err := str.GetLastMsgForSubject(ctx, "an.sig."+rest)
	if err != nil {
		return fmt.Errorf("last congestion of %s: %w", key, err)
	}
	var e event.Event
	var d congestion
	if err := json.Unmarshal(last.Data, &e); err != nil {
		return nil
	}
	if err := e.DataAs(&d); err != nil {
		return nil
	}
	why := map[string]string{"withdraw": "the peer's congestion was withdrawn", "expire": "the peer's congestion expired"}[ch.Kind]
	return c.clear(ctx, nc, key, e, d, why, out)
}

func (c *controller) handle(ctx context.Context, nc *nats.Conn, body []byte, out io.Writer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var e event.Event
	if err := json.Unmarshal(body, &e); err != nil || e.Type() != congestionT {
		return nil // not ours to judge: the node only stores valid signals
	}
	origin, state := ext(e, "anfedorigin"), ext(e, "anfedstate")
	if origin == c.o.Operator {
		return nil // our own congestion: not a peer's
	}
	var d congestion
	if err := e.DataAs(&d); err != nil {
		return nil
	}
	key := origin + "/" + e.Subject()
	switch c.decide(key, state, d) {
	case raise:
		mit := reroute{Source: e.Source(), ID: e.ID(), MitID: "reroute-" + e.ID()}
		ev, err := c.mitigation(e, d, mit, "raised")
		if err != nil {
			return err
		}
		if err := publish(ctx, nc, ev); err != nil {
			return err
		}
		c.active[key] = mit
		fmt.Fprintf(out, "raise   reroute %s: utilisation %.1f%% >= %.1f%% (answers %s, mitigation %s)\n", key, d.Utilisation, c.o.Raise, e.ID(), mit.MitID)
	case clearIt:
		why := fmt.Sprintf("utilisation %.1f%% < %.1f%%", d.Utilisation, c.o.Clear)
		if state == "cleared" {
			why = "congestion cleared"
		}
		return c.clear(ctx, nc, key, e, d, why, out)
	}
	return nil
}

// clear withdraws the reroute of key, answering the congestion e: the
// clear names the congestion that caused the reroute and e; its id is
// derived, so that a redelivery after a crash is answered "duplicate"
// instead of clearing twice.
func (c *controller) clear(ctx context.Context, nc *nats.Conn, key string, e event.Event, d congestion, why string, out io.Writer) error {
	ev, err := c.mitigation(e, d, c.active[key], "cleared")
	if err != nil {
		return err
	}
	if err := publish(ctx, nc, ev); err != nil {
		return err
	}
	delete(c.active, key)
	fmt.Fprintf(out, "clear   reroute %s: %s (answers %s)\n", key, why, e.ID())
	return nil
}

// mitigation builds the mitigation signal for the congestion e.
func (c *controller) mitigation(e event.Event, d congestion, mit reroute, state string) ([]byte, error) {
	svc, _, _ := strings.Cut(e.Subject(), "/")
	classes := strings.Join(d.TrafficClasses, ", ")
	data := map[string]any{
		"action":         "reroute",
		"detail":         fmt.Sprintf("shift %s traffic (%s) of %s away from %s", svc, classes, c.o.Operator, d.Link.ID),
		"status":         "in-progress",
		"respondsTo":     []map[string]string{{"source": mit.Source, "id": mit.ID}},
		"target":         map[string]string{"id": d.Link.ID, "type": "interconnect"},
		"expectedEffect": fmt.Sprintf("utilisation of %s below %.0f%%", d.Link.ID, c.o.Clear),
		"rollbackPlan":   "restore the original path weights once the congestion clears",
	}
	id := mit.MitID
	if state == "cleared" {
		data["status"] = "completed"
		data["detail"] = fmt.Sprintf("reroute of %s withdrawn: %s traffic back on %s", svc, classes, d.Link.ID)
		data["respondsTo"] = []map[string]string{{"source": mit.Source, "id": mit.ID}, {"source": e.Source(), "id": e.ID()}}
		if mit.ID == e.ID() {
			data["respondsTo"] = data["respondsTo"].([]map[string]string)[:1]
		}
		id = mit.MitID + "-cleared-" + e.ID()
	}
	ev := event.New()
	ev.SetID(id)
	ev.SetSource("anfed://" + c.o.Operator + "/closed-loop-controller")
	ev.SetType(mitigationT)
	ev.SetSubject(e.Subject())
	ev.SetTime(time.Now().UTC())
	ev.SetDataSchema(mitigationS)
	ev.SetExtension("anfedorigin", c.o.Operator)
	ev.SetExtension("anfedstate", state)
	ev.SetExtension("severitytext", "INFO")
	ev.SetExtension("severitynumber", 9)
	ev.SetExtension("causationid", e.ID())
	if err := ev.SetData(event.ApplicationJSON, data); err != nil {
		return nil, err
	}
	return json.Marshal(ev)
}

// publish sends a signal to the node's intake and reads the answer:
// accepted (stored) or duplicate (stored before) are success.
func publish(ctx context.Context, nc *nats.Conn, body []byte) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := nc.RequestWithContext(rctx, intake, body)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	var a struct{ Status, Reason, Error string }
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return fmt.Errorf("publish: unreadable answer %q", m.Data)
	}
	switch a.Status {
	case "accepted", "duplicate":
		return nil
	case "rejected":
		return &rejectedError{reason: a.Reason, msg: a.Error}
	}
	return errors.New("publish: answer " + a.Status + " " + a.Error)
}

// rejectedError is the node's refusal of a signal, with its reason.
type rejectedError struct{ reason, msg string }

func (e *rejectedError) Error() string { return "mitigation rejected: " + e.reason + ": " + e.msg }

func ext(e event.Event, name string) string {
	v, ok := e.Extensions()[name]
	if !ok {
		return ""
	}
	return fmt.Sprint(v)
}

// originOf reads the operator id from a source anfed://<operator>/<producer>.
func originOf(source string) string {
	s := strings.TrimPrefix(source, "anfed://")
	op, _, _ := strings.Cut(s, "/")
	return op
}
