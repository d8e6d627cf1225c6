package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// Timing of the condition feed's look at the stream.
const (
	// feedGapWait is how long the feed holds a signal whose predecessor
	// in the stream has not been reported before it reads the missing
	// ones from the stream.
	feedGapWait = 500 * time.Millisecond
	// feedCheckEvery is how often the feed, with nothing held, asks the
	// stream for its last sequence: a write whose answer was lost and
	// that nothing followed is read from there.
	feedCheckEvery = time.Second
)

// condFeed feeds the condition table, in process (the embedded server),
// from the node's own writes to the signal stream: each writer reports
// the sequence JetStream gave its signal, with the event it holds
// decoded (store.Feed), and the feed applies them strictly in stream
// order. A sequence not reported within feedGapWait (a write whose
// answer was lost to a timeout or a reconnect, a write made some other
// way) is read from the stream by sequence and applied from there; the
// stream holds only signals (an.store.> kept as an.sig.>), so its
// sequences leave no hole but those the store's bounds or a purge made.
// With nats.external several processes write the stream: an ordered
// consumer of the stream feeds each one's table instead (startConditions).
type condFeed struct {
	n *Node

	mu sync.Mutex
	// next is the next sequence to apply; 0 until start (the table is
	// rebuilt from the stream meanwhile, and what is reported is held).
	next uint64
	held map[uint64]fed
	// gapSince is when the first signal was held behind next (zero:
	// none is).
	gapSince time.Time
	// seen is the stream's last sequence at the last look, and when.
	seen   uint64
	seenAt time.Time
	st     jetstream.Stream
}

// fed is a reported signal waiting for its turn.
type fed struct {
	subj string
	ev   *signal.Event
}

func newCondFeed(n *Node) *condFeed {
	return &condFeed{n: n, held: map[uint64]fed{}}
}

// Stored takes a write's report (store.Feed): applied now when its turn
// has come, held otherwise; what was applied already is dropped.
func (f *condFeed) Stored(seq uint64, subj string, ev *signal.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.next != 0 && seq < f.next:
		return // read from the stream already
	case seq == f.next:
		f.n.applyStored(subj, ev, seq)
		f.next++
		f.drain()
		return
	}
	if len(f.held) == 0 && f.next != 0 {
		f.gapSince = time.Now()
	}
	f.held[seq] = fed{subj: subj, ev: ev}
}

// drain applies what is held from next on, in order; f.mu held.
func (f *condFeed) drain() {
	for len(f.held) > 0 {
		h, ok := f.held[f.next]
		if !ok {
			f.gapSince = time.Now() // a gap again: its wait starts
			return
		}
		delete(f.held, f.next)
		f.n.applyStored(h.subj, h.ev, f.next)
		f.next++
	}
	f.gapSince = time.Time{}
}

// start rebuilds the table from the stream up to its last sequence at
// this moment, then applies what writers reported from the next one on.
// Writers report from before it (Start gives the store the feed before
// intake and the links start): what they stored after the rebuild's last
// sequence is held until then, what the rebuild read is dropped.
func (f *condFeed) start(ctx context.Context, js jetstream.JetStream) error {
	st, err := js.Stream(ctx, store.SignalStream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", store.SignalStream, err)
	}
	state := st.CachedInfo().State
	if state.Msgs > 0 {
		if err := f.rebuild(ctx, js, state.LastSeq); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
	f.next = state.LastSeq + 1
	for seq := range f.held {
		if seq < f.next {
			delete(f.held, seq)
		}
	}
	f.drain()
	return nil
}

// rebuild applies the stream's signals up to last, read by an ordered
// consumer.
func (f *condFeed) rebuild(ctx context.Context, js jetstream.JetStream, last uint64) error {
	cons, err := js.OrderedConsumer(ctx, store.SignalStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject.Signals}})
	if err != nil {
		return err
	}
	defer func() {
		if name := cons.CachedInfo(); name != nil {
			_ = js.DeleteConsumer(context.WithoutCancel(ctx), store.SignalStream, name.Name)
		}
	}()
	for done := false; !done; {
		// What is there now, up to a batch: every message of the batch
		// is taken, so that its fetch ends with it.
		batch, err := cons.FetchNoWait(512)
		if err != nil {
			return fmt.Errorf("read the stream: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if done || err != nil {
				continue
			}
			seq := meta.Sequence.Stream
			if seq <= last {
				f.n.applySignal(m)
			}
			done = seq >= last || meta.NumPending == 0
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("read the stream: %w", err)
		}
		if got == 0 && !done {
			// Nothing more: the last sequence went at the store's
			// bounds while the rebuild read, or the stream was purged.
			st, err := js.Stream(ctx, store.SignalStream)
			if err != nil {
				return fmt.Errorf("stream %s: %w", store.SignalStream, err)
			}
			if s := st.CachedInfo().State; s.Msgs == 0 || s.FirstSeq > last {
				return nil
			}
			select { // the consumer may not have caught up: again, soon
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// run reads from the stream what was not reported in time, until ctx is
// done.
func (f *condFeed) run(ctx context.Context) {
	t := time.NewTicker(feedGapWait / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := f.check(ctx, now); err != nil && ctx.Err() == nil {
				f.n.log.Debug().Err(err).Msg("conditions: the stream could not be read; tried again")
			}
		}
	}
}

// check fills the gap before what is held when it is older than
// feedGapWait; with nothing held, it looks at the stream's last sequence
// every feedCheckEvery, and reads up to one seen there a feedGapWait ago
// and still not reported.
func (f *condFeed) check(ctx context.Context, now time.Time) error {
	f.mu.Lock()
	next, gap, seen, seenAt, st := f.next, f.gapSince, f.seen, f.seenAt, f.st
	var upTo uint64
	if !gap.IsZero() && now.Sub(gap) >= feedGapWait {
		upTo = next
		for seq := range f.held {
			if upTo == next || seq < upTo {
				upTo = seq
			}
		}
		upTo-- // up to the first held
	}
	f.mu.Unlock()
	if st == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if upTo == 0 {
		switch {
		case seen >= next && now.Sub(seenAt) >= feedGapWait:
			upTo = seen
		case now.Sub(seenAt) >= feedCheckEvery:
			info, err := st.Info(ctx)
			if err != nil {
				return err
			}
			f.mu.Lock()
			f.seen, f.seenAt = info.State.LastSeq, now
			f.mu.Unlock()
			return nil
		default:
			return nil
		}
	}
	return f.fill(ctx, st, upTo)
}

// fill reads the stream's signals from next up to upTo (which the stream
// has reached) and applies them; one the stream no longer has (dropped
// at its bounds, purged) is passed over.
func (f *condFeed) fill(ctx context.Context, st jetstream.Stream, upTo uint64) error {
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	f.mu.Lock()
	if first := info.State.FirstSeq; f.next < first {
		// Gone from the stream (its bounds, a purge): nothing to apply.
		for seq := range f.held {
			if seq < first {
				delete(f.held, seq)
			}
		}
		f.next = first
		f.drain()
	}
	f.mu.Unlock()
	for {
		f.mu.Lock()
		seq := f.next
		f.mu.Unlock()
		if seq > upTo {
			return nil
		}
		m, err := st.GetMsg(ctx, seq)
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return err
		}
		f.mu.Lock()
		if f.next == seq { // not reported meanwhile
			if m != nil {
				f.n.applyRaw(m.Subject, m.Data, seq)
			}
			f.next++
			f.drain()
		}
		f.mu.Unlock()
	}
}
