package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"
)

// Queue is how many records wait for the writer at most; QueueWait how
// long Add waits for room when they are that many, before it gives the
// record up (counted in Stats.Dropped and logged).
const (
	Queue     = 16384
	QueueWait = 2 * time.Second
)

// Writer appends records to one chain of its own (one per process and
// start: see docs/coordination.md#audit-trail). Add hands a record over
// and returns: the writer numbers, chains and hashes it, and writes it
// asynchronously, so the link never waits for the audit's store; a write
// that fails is tried again (the same id: stored once), and one that
// fails for good is counted and logged, never lost silently.
type Writer struct {
	js    jetstream.JetStream
	self  string
	chain string
	log   zerolog.Logger

	in     chan pending
	acks   chan ack
	room   chan struct{} // batches in flight; run's, read by confirm
	stop   chan struct{}
	wg     sync.WaitGroup
	closed atomic.Bool

	head                              atomic.Uint64 // the last number given
	written, failed, dropped, retried atomic.Uint64
}

// pending is a record and, for a sent copy, the bytes whose digest it
// carries (hashed by the writer, off the link's path).
type pending struct {
	r    Record
	body []byte
}

// ack is a batch's write: its first record's number and how many.
type ack struct {
	f       jetstream.PubAckFuture
	err     error // the write failed before it went out
	msg     *nats.Msg
	n       uint64
	records uint64
}

// NewWriter returns a writer of a new chain of self's records through js
// (a connection of its own, to the operations account); Close ends it.
func NewWriter(js jetstream.JetStream, self string, log zerolog.Logger) *Writer {
	w := &Writer{js: js, self: self, chain: nuid.Next(), log: log.With().Str("component", "audit").Logger(),
		in: make(chan pending, Queue), acks: make(chan ack, inFlight), stop: make(chan struct{}), room: make(chan struct{}, inFlight)}
	w.wg.Add(2)
	go func() { defer w.wg.Done(); w.run() }()
	go func() { defer w.wg.Done(); w.confirm() }()
	w.log.Info().Str("chain", w.chain).Msg("audit: a new chain of records begins")
	return w
}

// Chain is the writer's chain.
func (w *Writer) Chain() string { return w.chain }

// Head is the number of the last record the writer took.
func (w *Writer) Head() uint64 { return w.head.Load() }

// Stats are the writer's counts.
type Stats struct {
	// Written: stored; Failed: given up after the retries; Dropped:
	// never written, the queue was full (or the writer closed); Retried:
	// writes tried again; Queued: waiting now.
	Written, Failed, Dropped, Retried uint64
	Queued                            int
}

// Stats reports the writer's counts.
func (w *Writer) Stats() Stats {
	return Stats{Written: w.written.Load(), Failed: w.failed.Load(), Dropped: w.dropped.Load(), Retried: w.retried.Load(), Queued: len(w.in)}
}

// Sent records a copy put on peer's link: body is the link message's
// body as sent (the writer hashes it; the caller must not change it).
func (w *Writer) Sent(peer, id, source, typ, subj, rule string, redacted []string, body []byte) {
	w.add(pending{r: Record{Kind: KindSent, Peer: peer, Signal: id, Source: source, Type: typ, Subject: subj, Rule: rule, Redacted: redacted}, body: body})
}

// Action records an action step by operator by.
func (w *Writer) Action(r Record) {
	r.Kind = KindAction
	w.add(pending{r: r})
}

func (w *Writer) add(p pending) {
	if w.closed.Load() {
		w.drop("the writer is closed")
		return
	}
	p.r.Time = time.Now().UTC()
	select {
	case w.in <- p:
		return
	default:
	}
	t := time.NewTimer(QueueWait)
	defer t.Stop()
	select {
	case w.in <- p:
	case <-t.C:
		w.drop(fmt.Sprintf("%d records wait for the store already", Queue))
	case <-w.stop:
		w.drop("the writer is closed")
	}
}

func (w *Writer) drop(why string) {
	w.dropped.Add(1)
	w.log.Error().Str("why", why).Uint64("dropped", w.dropped.Load()).Msg("audit: a record was not written (anfed_audit_dropped_total)")
}

// Batching: what waits when a write goes out is written together, one
// message per subject (kind and peer) holding its records as JSON Lines,
// with at most inFlight batches unanswered. At a low rate each record is
// written at once; under load a stored message (a flushed write with
// storage.sync always) carries many records.
const (
	maxBatch      = 256
	maxBatchBytes = 256 << 10
	inFlight      = 2
)

// run numbers, chains and writes the records in the order they came.
func (w *Writer) run() {
	defer close(w.acks)
	var prev string
	var n uint64
	room := w.room
	type group struct {
		subj  string
		first uint64
		body  []byte
	}
	// Per batch, made once: the groups by kind and peer, and each
	// kind and peer's subject.
	type kp struct{ kind, peer string }
	bySubj := map[kp]*group{}
	subjects := map[kp]string{}
	var groups []*group
	write := func(batch []pending) {
		clear(bySubj)
		groups = groups[:0]
		for _, p := range batch {
			n++
			r := p.r
			r.Chain, r.N, r.Prev, r.Node = w.chain, n, prev, w.self
			if p.body != nil {
				r.Digest, r.Size = Digest(p.body), len(p.body)
			}
			k := kp{r.Kind, r.Peer}
			g := bySubj[k]
			if g == nil {
				subj, ok := subjects[k]
				if !ok {
					subj = Subject(r.Chain, r.Kind, r.Peer)
					if len(subjects) < maxSubjects {
						subjects[k] = subj
					}
				}
				g = &group{subj: subj, first: n, body: make([]byte, 0, lineRoom)}
				bySubj[k] = g
				groups = append(groups, g)
			}
			g.body = appendLine(g.body, &r)
			prev = r.Hash
		}
		w.head.Store(n)
		for _, g := range groups {
			m := newBatchMsg(g.subj, w.chain, g.first, g.body)
			records := uint64(bytes.Count(g.body, []byte{'\n'}))
			room <- struct{}{} // released by confirm
			f, err := w.js.PublishMsgAsync(m)
			if err != nil {
				w.acks <- ack{msg: m, n: g.first, records: records, err: err}
				continue
			}
			w.acks <- ack{f: f, msg: m, n: g.first, records: records}
		}
	}
	batch := make([]pending, 0, maxBatch)
	take := func() {
		size := 0
		for len(batch) < maxBatch && size < maxBatchBytes {
			select {
			case p := <-w.in:
				batch = append(batch, p)
				size += 512 + len(p.r.Reason)
				continue
			default:
			}
			break
		}
	}
	for {
		select {
		case p := <-w.in:
			batch = append(batch[:0], p)
			take()
			write(batch)
		case <-w.stop:
			for len(w.in) > 0 {
				batch = batch[:0]
				take()
				write(batch)
			}
			return
		}
	}
}

// batchMsg is a batch's message with its header values, in one
// allocation.
type batchMsg struct {
	msg  nats.Msg
	vals [2]string
}

// newBatchMsg is the message that writes body, chain's records from
// number first on, to subj: its id (Nats-Msg-Id) makes a write tried
// again count once, and it must land in the audit stream.
func newBatchMsg(subj, chain string, first uint64, body []byte) *nats.Msg {
	var nb [20]byte
	bm := &batchMsg{vals: [2]string{chain + "." + string(strconv.AppendUint(nb[:0], first, 10)), Stream}}
	bm.msg = nats.Msg{Subject: subj, Data: body, Header: make(nats.Header, 2)}
	bm.msg.Header[jetstream.MsgIDHeader] = bm.vals[0:1:1]
	bm.msg.Header[jetstream.ExpectedStreamHeader] = bm.vals[1:2:2]
	return &bm.msg
}

// lineRoom is about a record's line (a sent copy's: 450-600 bytes): a
// group's body starts with room for one, and grows by doubling.
const lineRoom = 1024

// maxSubjects bounds the writer's subjects kept by kind and peer.
const maxSubjects = 4096

// appendLine hashes r (Record.Sum: the SHA-256 of its JSON with Hash
// empty), sets its Hash, and appends its JSON and a newline to b. The
// JSON is written once: with Hash empty it ends in "hash":""}, hashed
// in place, and the hash goes between those quotes.
func appendLine(b []byte, r *Record) []byte {
	r.Hash = ""
	start := len(b)
	out, ok := appendJSON(b, r)
	if !ok {
		r.Hash = r.Sum()
		j, _ := json.Marshal(*r) // the reference, as before (a copy: r stays on the caller's stack)
		return append(append(b, j...), '\n')
	}
	sum := sha256.Sum256(out[start:])
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], sum[:])
	r.Hash = string(hx[:])
	out = append(out[:len(out)-len(`"}`)], hx[:]...)
	return append(out, '"', '}', '\n')
}

// confirm waits for each write's answer, in order, and writes again
// what failed.
func (w *Writer) confirm() {
	for a := range w.acks {
		err := a.err
		if a.f != nil {
			select {
			case <-a.f.Ok():
			case err = <-a.f.Err():
			}
		}
		if err == nil {
			w.written.Add(a.records)
		} else {
			w.retry(a.msg, a.n, a.records, err)
		}
		<-w.room
	}
}

// retry writes m again, waiting for the answer, a few times; its id
// makes a write that was stored after all count once.
func (w *Writer) retry(m *nats.Msg, n, records uint64, err error) {
	for i := 0; i < 3; i++ {
		w.retried.Add(1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = w.js.PublishMsg(ctx, m)
		cancel()
		if err == nil {
			w.written.Add(records)
			return
		}
		time.Sleep(time.Duration(i+1) * 100 * time.Millisecond)
	}
	w.failed.Add(records)
	w.log.Error().Err(err).Str("chain", w.chain).Uint64("n", n).Uint64("records", records).Uint64("failed", w.failed.Load()).
		Msg("audit: records could not be stored (anfed_audit_records_total{result=\"failed\"}): the chain shows the gap")
}

// Close writes what was handed over, waits for the answers, and ends the
// writer. Records handed over later are counted as dropped.
func (w *Writer) Close() {
	if w.closed.Swap(true) {
		return
	}
	close(w.stop)
	w.wg.Wait()
	for len(w.in) > 0 { // handed over as the writer closed
		<-w.in
		w.drop("the writer closed")
	}
}
