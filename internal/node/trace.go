package node

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/trace"
)

// Trace is the causation chain of the signal (or correlation) id, from
// the last trace.DefaultScan signals the node stored.
func (n *Node) Trace(ctx context.Context, id string) (trace.Trace, error) {
	return trace.Build(ctx, n.store.JetStream(), store.SignalStream, id, 0)
}

func (n *Node) serveTrace(m *nats.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out any
	if len(m.Data) == 0 || len(m.Data) > 1024 {
		out = map[string]string{"error": "send the signal's id (or a correlation id) as the request's body"}
	} else if tr, err := n.Trace(ctx, string(m.Data)); err != nil {
		out = map[string]string{"error": err.Error()}
	} else {
		out = tr
	}
	b, _ := json.Marshal(out)
	_ = m.Respond(b)
}
