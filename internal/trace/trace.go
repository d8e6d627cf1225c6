// Package trace answers, from what one node has stored (its own signals
// and its peers'), "what led to this signal, and what did it lead to":
// the causation chain across operators, linked by the CloudEvents
// correlation extension (causationid), with where each signal came from
// and when the node stored it — a fault, the deviation and the SLA risk
// it caused, the action proposed to answer them and the decisions on it.
package trace

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/schemas"
)

// DefaultScan is how many of the most recent stored signals a trace
// reads: a trace is an operator's question, not a hot path, and this
// bounds what one question costs (about a second per 100,000).
const DefaultScan = 100_000

// maxDepth bounds how far a chain is followed each way.
const maxDepth = 64

// Hop is one signal of a trace.
type Hop struct {
	ID      string    `json:"id"`
	Source  string    `json:"source"`
	Origin  string    `json:"origin"`
	Class   string    `json:"class"`
	Subject string    `json:"subject"`
	State   string    `json:"state"`
	Time    time.Time `json:"time"`
	// Stored is when this node stored it; Seq its place in the store.
	Stored time.Time `json:"stored"`
	Seq    uint64    `json:"seq"`
	// Path is the operators it crossed to reach this node (empty: ours).
	Path          []string `json:"path,omitempty"`
	CausationID   string   `json:"causationid,omitempty"`
	CorrelationID string   `json:"correlationid,omitempty"`
	// Depth is its place in the chain: the traced signal 0, its causes
	// -1, -2, ..., what it caused 1, 2, ...
	Depth int `json:"depth"`
}

// Trace is the causation chain around one signal.
type Trace struct {
	ID   string `json:"id"`
	Hops []Hop  `json:"hops"`
	// Scanned is how many stored signals were read; Partial says older
	// ones were not (the chain may go on before them).
	Scanned int  `json:"scanned"`
	Partial bool `json:"partial"`
}

// ErrNotFound: no stored signal has that id (or correlation id).
var ErrNotFound = errors.New("no stored signal has that id or correlation id")

// Build traces id through the last scan signals of stream (DefaultScan
// when 0). id is a signal's id, or a correlation id (an action's id, an
// incident's): then every signal that carries it is the start.
func Build(ctx context.Context, js jetstream.JetStream, stream, id string, scan int) (Trace, error) {
	if scan <= 0 {
		scan = DefaultScan
	}
	tr := Trace{ID: id, Hops: []Hop{}}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return tr, fmt.Errorf("trace: stream %s: %w", stream, err)
	}
	info := st.CachedInfo().State
	if info.Msgs == 0 {
		return tr, fmt.Errorf("trace %q: %w", id, ErrNotFound)
	}
	start := info.FirstSeq
	if info.LastSeq >= uint64(scan) && info.LastSeq-uint64(scan)+1 > start {
		start, tr.Partial = info.LastSeq-uint64(scan)+1, true
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start})
	if err != nil {
		return tr, fmt.Errorf("trace: read %s: %w", stream, err)
	}
	var all []*Hop
	for {
		batch, err := cons.FetchNoWait(512)
		if err != nil {
			return tr, fmt.Errorf("trace: read %s: %w", stream, err)
		}
		n, last := 0, uint64(0)
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			last = meta.Sequence.Stream
			if h, ok := hopOf(m.Data(), meta); ok {
				all = append(all, h)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return tr, fmt.Errorf("trace: read %s: %w", stream, err)
		}
		tr.Scanned += n
		if n == 0 || last >= info.LastSeq || ctx.Err() != nil {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return tr, err
	}
	tr.Hops = chain(all, id)
	if len(tr.Hops) == 0 {
		return tr, fmt.Errorf("trace %q: %w (%d stored signals read)", id, ErrNotFound, tr.Scanned)
	}
	return tr, nil
}

func hopOf(body []byte, meta *jetstream.MsgMetadata) (*Hop, bool) {
	ev, err := signal.DecodeStructured(body)
	if err != nil {
		return nil, false
	}
	class, _, _ := schemas.ClassOf(ev.Type)
	return &Hop{ID: ev.ID, Source: ev.Source, Origin: ev.Origin, Class: class, Subject: ev.Subject, State: string(ev.State),
		Time: ev.Time, Stored: meta.Timestamp, Seq: meta.Sequence.Stream, Path: ev.Path,
		CausationID: ev.CausationID, CorrelationID: ev.CorrelationID}, true
}

// chain picks, from the stored signals, those with id (or, if none, with
// correlation id id), their causes up the causationid links, and what
// they caused down them, each stored signal once, ordered by
// depth, then by when it was stored.
func chain(all []*Hop, id string) []Hop {
	byID := map[string][]*Hop{}
	caused := map[string][]*Hop{}
	for _, h := range all {
		byID[h.ID] = append(byID[h.ID], h)
		if h.CausationID != "" {
			caused[h.CausationID] = append(caused[h.CausationID], h)
		}
	}
	seen := map[*Hop]bool{}
	var out []Hop
	take := func(h *Hop, depth int) bool {
		if seen[h] {
			return false
		}
		seen[h] = true
		c := *h
		c.Depth = depth
		out = append(out, c)
		return true
	}
	front := byID[id]
	if len(front) == 0 {
		for _, h := range all {
			if h.CorrelationID == id {
				front = append(front, h)
			}
		}
	}
	for _, h := range front {
		take(h, 0)
	}
	// up: the causes of the start, and theirs
	up := front
	for d := -1; d >= -maxDepth && len(up) > 0; d-- {
		var next []*Hop
		for _, h := range up {
			for _, c := range byID[h.CausationID] {
				if take(c, d) {
					next = append(next, c)
				}
			}
		}
		up = next
	}
	// down: what the start caused, and what that caused
	down := front
	for d := 1; d <= maxDepth && len(down) > 0; d++ {
		var next []*Hop
		for _, h := range down {
			for _, c := range caused[h.ID] {
				if take(c, d) {
					next = append(next, c)
				}
			}
		}
		down = next
	}
	slices.SortStableFunc(out, func(a, b Hop) int {
		if a.Depth != b.Depth {
			return a.Depth - b.Depth
		}
		return a.Stored.Compare(b.Stored)
	})
	return out
}
