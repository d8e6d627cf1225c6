// Command closed-loop-coordination proposes one coordinated action to the
// operators it affects, with nothing of anfed's code: only nats.go and the
// CloudEvents Go SDK. The wire is the API (docs/coordination.md).
//
// It publishes an action signal (phase "proposed") on the node's an.pub,
// waits on an.sig.*.action.<service>.<resource> for every affected
// operator's decision (matched by correlationid), and, once all accepted,
// reports the action active, does its work (here: waits --work), reports
// it completed and waits until every lease is released.
//
//	go run ./examples/closed-loop-coordination --server nats://127.0.0.1:4223 \
//	    --user closed-loop --self op-b --affected op-a \
//	    --service vpn-acme --resource ic-paris-1 --kind reroute --duration PT15M
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
)

type options struct {
	URL, User, Password     string
	Self, Service, Resource string
	Affected                []string
	Kind, Duration, Effect  string
	CauseSource, CauseID    string
	Work, Timeout           time.Duration
}

func main() {
	var c options
	affected := ""
	flag.StringVar(&c.URL, "server", "nats://127.0.0.1:4223", "the node's client URL (nats.client.listen in its policy file)")
	flag.StringVar(&c.User, "user", "closed-loop", "a local user of the node (nats.users)")
	flag.StringVar(&c.Password, "password", os.Getenv("ANFED_PASSWORD"), "its password (default: $ANFED_PASSWORD)")
	flag.StringVar(&c.Self, "self", "op-b", "our operator id")
	flag.StringVar(&affected, "affected", "op-a", "the operators the action affects, comma separated: each must accept")
	flag.StringVar(&c.Service, "service", "vpn-acme", "the service the action touches")
	flag.StringVar(&c.Resource, "resource", "ic-paris-1", "the resource (an interconnect) the action touches")
	flag.StringVar(&c.Kind, "kind", "reroute", "the kind of action")
	flag.StringVar(&c.Duration, "duration", "PT15M", "the lease asked, ISO 8601")
	flag.StringVar(&c.Effect, "effect", "utilisation below 80% within 5 minutes", "the expected effect")
	flag.StringVar(&c.CauseSource, "cause-source", "anfed://op-a/assurance", "the CloudEvent source of the signal that caused the action")
	flag.StringVar(&c.CauseID, "cause-id", "manual", "and its id")
	flag.DurationVar(&c.Work, "work", 2*time.Second, "how long the action runs before it is reported completed")
	flag.DurationVar(&c.Timeout, "timeout", 30*time.Second, "how long to wait for each answer")
	flag.Parse()
	c.Affected = strings.Split(affected, ",")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "closed-loop-coordination:", err)
		os.Exit(1)
	}
}

// step is what the example reads of an action signal's data.
type step struct {
	ActionID string `json:"actionId"`
	Phase    string `json:"phase"`
	Reason   string `json:"reason"`
	Rule     string `json:"rule"`
	Lease    *struct {
		Holder string    `json:"holder"`
		Until  time.Time `json:"until"`
	} `json:"lease"`
	Conflict *struct {
		Holder string    `json:"holder"`
		Until  time.Time `json:"until"`
	} `json:"conflict"`
}

func run(ctx context.Context, c options, out io.Writer) error {
	nc, err := nats.Connect(c.URL, nats.UserInfo(c.User, c.Password), nats.Name("closed-loop-coordination"))
	if err != nil {
		return fmt.Errorf("connect %s: %w", c.URL, err)
	}
	defer nc.Close()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	id := c.Self + "-" + c.Kind + "-" + hex.EncodeToString(b)

	// Every affected operator's steps on this action, as they are stored.
	steps := make(chan struct {
		origin string
		step
	}, 64)
	sub, err := nc.Subscribe("an.sig.*.action."+token(c.Service)+"."+token(c.Resource), func(m *nats.Msg) {
		var e event.Event
		if json.Unmarshal(m.Data, &e) != nil || fmt.Sprint(e.Extensions()["correlationid"]) != id {
			return
		}
		origin := fmt.Sprint(e.Extensions()["anfedorigin"])
		var s step
		if e.DataAs(&s) != nil || !slices.Contains(c.Affected, origin) {
			return
		}
		steps <- struct {
			origin string
			step
		}{origin, s}
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()

	publish := func(phase, state string, data map[string]any) error {
		e := event.New()
		_, _ = rand.Read(b)
		e.SetID(id + "-" + phase + "-" + hex.EncodeToString(b))
		e.SetSource("anfed://" + c.Self + "/closed-loop-coordination")
		e.SetType("net.anfed.action.v1")
		e.SetSubject(c.Service + "/" + c.Resource)
		e.SetTime(time.Now())
		e.SetExtension("anfedorigin", c.Self)
		e.SetExtension("anfedstate", state)
		e.SetExtension("correlationid", id)
		e.SetExtension("causationid", c.CauseID)
		data["actionId"], data["phase"], data["proposer"] = id, phase, c.Self
		if err := e.SetData(event.ApplicationJSON, data); err != nil {
			return err
		}
		body, err := json.Marshal(e)
		if err != nil {
			return err
		}
		m, err := nc.RequestWithContext(ctx, "an.pub", body)
		if err != nil {
			return fmt.Errorf("publish %s: %w", phase, err)
		}
		var ans struct{ Status, Reason, Error string }
		if err := json.Unmarshal(m.Data, &ans); err != nil || ans.Status != "accepted" {
			return fmt.Errorf("publish %s: the node answered %s", phase, m.Data)
		}
		return nil
	}
	// wait collects one step of each affected operator that done accepts.
	wait := func(done func(step) bool) (map[string]step, error) {
		got := map[string]step{}
		timeout := time.After(c.Timeout)
		for len(got) < len(c.Affected) {
			select {
			case s := <-steps:
				if done(s.step) {
					got[s.origin] = s.step
				}
			case <-timeout:
				return got, fmt.Errorf("%d of %d affected operators answered in %s", len(got), len(c.Affected), c.Timeout)
			case <-ctx.Done():
				return got, ctx.Err()
			}
		}
		return got, nil
	}

	err = publish("proposed", "raised", map[string]any{
		"kind": c.Kind, "resources": []map[string]string{{"id": c.Resource, "type": "interconnect"}},
		"services": []string{c.Service}, "affectedOperators": c.Affected,
		"causes":         []map[string]string{{"source": c.CauseSource, "id": c.CauseID}},
		"expectedEffect": c.Effect, "duration": c.Duration,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "proposed %s: %s of %s/%s for %s, affecting %s\n", id, c.Kind, c.Service, c.Resource, c.Duration, strings.Join(c.Affected, ","))
	decisions, err := wait(func(s step) bool { return s.Phase == "accepted" || s.Phase == "declined" || s.Phase == "countered" })
	if err != nil {
		return err
	}
	refused := false
	for _, op := range c.Affected {
		d := decisions[op]
		switch {
		case d.Phase == "accepted" && d.Lease != nil:
			fmt.Fprintf(out, "%s accepted (%s): lease until %s\n", op, d.Rule, d.Lease.Until.UTC().Format(time.RFC3339))
		case d.Conflict != nil:
			refused = true
			fmt.Fprintf(out, "%s declined (%s): held by %s until %s\n", op, d.Rule, d.Conflict.Holder, d.Conflict.Until.UTC().Format(time.RFC3339))
		default:
			refused = true
			fmt.Fprintf(out, "%s %s (%s): %s\n", op, d.Phase, d.Rule, d.Reason)
		}
	}
	if refused {
		return errors.New("not every affected operator accepted: nothing done")
	}
	if err := publish("active", "updated", map[string]any{}); err != nil {
		return err
	}
	fmt.Fprintf(out, "active: doing the %s\n", c.Kind)
	select {
	case <-time.After(c.Work):
	case <-ctx.Done():
		// Stopped while acting: report a rollback, so the leases are released.
		if err := publish("rolled-back", "cleared", map[string]any{"reason": "stopped"}); err != nil {
			return err
		}
		return ctx.Err()
	}
	if err := publish("completed", "cleared", map[string]any{"reason": "done"}); err != nil {
		return err
	}
	if _, err := wait(func(s step) bool { return s.Phase == "released" || s.Phase == "expired" }); err != nil {
		return err
	}
	fmt.Fprintf(out, "completed: every lease released\n")
	return nil
}

// token writes a name as one subject token the way the node does: ASCII
// letters, digits and -_~:@+=,/#!&()[]' as they are, any other byte as %XX.
func token(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte("-_~:@+=,/#!&()[]'", ch) >= 0 {
			b.WriteByte(ch)
		} else {
			fmt.Fprintf(&b, "%%%02X", ch)
		}
	}
	return b.String()
}
