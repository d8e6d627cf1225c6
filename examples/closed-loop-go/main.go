// Command closed-loop-go is a closed loop for an anfed node that uses
// nothing of anfed's code: only nats.go (with its jetstream package) and
// the CloudEvents Go SDK. The wire is the API.
//
// It connects to the node's client URL as a local user, creates a durable
// JetStream consumer on the node's signal stream with DeliverPolicy
// "last per subject", and prints one line per signal: first the current
// state — the last signal of every condition key that matches the filter —
// then every new signal as it is stored, acknowledging each one.
//
//	go run ./examples/closed-loop-go --server nats://127.0.0.1:4223 \
//	    --user closed-loop --password change-me-closed-loop-b --filter 'an.sig.*.congestion.>'
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
	"syscall"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// stream is the JetStream stream where an anfed node keeps every accepted
// signal, under an.sig.<origin>.<class>.<service>.<resource>.
const stream = "ANFED_SIGNALS"

type options struct {
	URL      string
	User     string
	Password string
	Filter   string
	Durable  string
}

func main() {
	var c options
	flag.StringVar(&c.URL, "server", "nats://127.0.0.1:4223", "the node's client URL (nats.client.listen in its policy file)")
	flag.StringVar(&c.User, "user", "closed-loop", "a local user of the node (nats.users)")
	flag.StringVar(&c.Password, "password", os.Getenv("ANFED_PASSWORD"), "its password (default: $ANFED_PASSWORD)")
	flag.StringVar(&c.Filter, "filter", "an.sig.>", "which signals: an.sig.<origin>.<class>.<service>.<resource>, with * and > wildcards")
	flag.StringVar(&c.Durable, "durable", "closed-loop-go", "durable consumer name: a restarted loop resumes where it stopped")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "closed-loop-go:", err)
		os.Exit(1)
	}
}

// run consumes until ctx is done.
func run(ctx context.Context, c options, out io.Writer) error {
	nc, err := nats.Connect(c.URL, nats.UserInfo(c.User, c.Password), nats.Name("closed-loop-go"))
	if err != nil {
		return fmt.Errorf("connect %s: %w", c.URL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	// Signals stored up to the stream's last sequence before the consumer
	// exists are the current state; everything after is live.
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	currentUntil := st.CachedInfo().State.LastSeq

	cons, err := js.Consumer(ctx, stream, c.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		cons, err = js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable:       c.Durable,
			Description:   "closed-loop-go example",
			FilterSubject: c.Filter,
			// The last signal of every condition key, then every new one.
			DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			MaxAckPending: 64,
			// A signal not acknowledged (the loop crashed) is redelivered
			// after 5 s, then 30 s, then every 2 min, at most 10 times.
			BackOff:    []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute},
			MaxDeliver: 10,
		})
		if err != nil {
			return fmt.Errorf("create consumer %s: %w", c.Durable, err)
		}
		fmt.Fprintf(out, "# %s: current state of %s: %d condition keys, then live\n", c.Durable, c.Filter, cons.CachedInfo().NumPending)
	case err != nil:
		return fmt.Errorf("consumer %s: %w", c.Durable, err)
	default:
		// A durable consumer keeps its place: what it delivers now was
		// stored while the loop was away, or is new.
		currentUntil = 0
		fmt.Fprintf(out, "# %s: resuming on %s, %d signals waiting\n", c.Durable, cons.CachedInfo().Config.FilterSubject, cons.CachedInfo().NumPending)
	}

	// What no signal says: the node's condition table tells when a
	// condition goes stale (its peer's link is down past its grace time),
	// is withdrawn (the link stayed down, or the peer's End-of-RIB no
	// longer states it), expires, or is fresh again once re-stated.
	// Core NATS, on an.cond.<kind>.<origin>.<class>.<service>.<resource>,
	// the same tokens as the signal's subject.
	rest := strings.TrimPrefix(c.Filter, "an.sig.")
	for _, kind := range []string{"stale", "withdraw", "expire", "fresh"} {
		sub, err := nc.Subscribe("an.cond."+kind+"."+rest, func(m *nats.Msg) {
			var ch struct {
				Kind      string `json:"kind"`
				Condition struct {
					Peer, Origin, Class, Subject, ID string
				} `json:"condition"`
			}
			if json.Unmarshal(m.Data, &ch) != nil {
				return
			}
			cd := ch.Condition
			fmt.Fprintf(out, "%-7s from=%-6s %-6s %-21s %-20s %-28s id=%s\n", "table", cd.Peer, cd.Origin, cd.Class, ch.Kind, cd.Subject, cd.ID)
		})
		if err != nil {
			return fmt.Errorf("subscribe to the condition table's changes: %w", err)
		}
		defer sub.Unsubscribe()
	}

	cc, err := cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			return
		}
		var e event.Event
		if err := json.Unmarshal(m.Data(), &e); err != nil {
			fmt.Fprintf(os.Stderr, "closed-loop-go: seq %d is not a CloudEvent: %v\n", meta.Sequence.Stream, err)
			_ = m.TermWithReason("not a CloudEvent")
			return
		}
		kind := "live"
		if meta.Sequence.Stream <= currentUntil {
			kind = "current"
		}
		fmt.Fprintln(out, line(kind, meta.Sequence.Stream, e))
		// A real loop acts here, then acknowledges; Nak (or NakWithDelay)
		// asks for the signal again.
		_ = m.Ack()
	},
		// A pull request lives 10 s, not nats.go's default 30 s: a server
		// can drop a pull request (seen after a node's restart under load,
		// closedloop's TestKill9), and nats.go notices only when the
		// request's heartbeats stop, within the request's life.
		jetstream.PullExpiry(10*time.Second))
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
	return nc.FlushTimeout(time.Second)
}

// line describes a signal in one line: kind, stream sequence, origin, class,
// lifecycle state, condition key (service/resource), id and time.
func line(kind string, seq uint64, e event.Event) string {
	ext := e.Extensions()
	class := strings.TrimPrefix(e.Type(), "net.anfed.")
	if i := strings.LastIndex(class, ".v"); i > 0 {
		class = class[:i]
	}
	state := fmt.Sprint(ext["anfedstate"])
	if state == "cleared" {
		state = "cleared (not active)"
	}
	return fmt.Sprintf("%-7s seq=%-5d %-6s %-21s %-20s %-28s id=%s time=%s",
		kind, seq, fmt.Sprint(ext["anfedorigin"]), class, state, e.Subject(), e.ID(), e.Time().UTC().Format(time.RFC3339Nano))
}
