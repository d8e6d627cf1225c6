// Package lease lets one process at a time hold a named piece of work
// (a peer's link) among several processes of one operator, through a
// JetStream key-value bucket the NATS cluster keeps: no consensus of our
// own. The bucket's MaxAge is the lease's time to live; taking a lease is
// kv.Create (it succeeds only when no live record holds the key), renewing
// it is kv.Update with the revision the holder last wrote (a compare and
// swap: it fails once anyone else wrote the key), and a graceful release
// deletes the key at that revision so a standby takes it at once.
//
// Fencing: a holder counts its lease from the moment it sent the write
// that the cluster accepted, so its own deadline is never later than the
// moment the cluster forgets the record (the server stamps the record
// when it arrives, after it was sent). It takes TTL/6 off that for the
// servers' clocks, renews every TTL/3, and ends the work as soon as the
// deadline passes without a renewal: a process that was paused or cut off
// finds its lease gone before it does anything else (Term.Valid), and the
// work it runs checks Valid before each thing it sends.
package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultTTL is a lease's time to live: a holder that stops renewing
// (kill -9, a lost network) is replaced within about this long.
const DefaultTTL = 6 * time.Second

// MinTTL is the shortest TTL a bucket takes: below it a renewal's round
// trip to a cluster electing a leader eats the lease.
const MinTTL = 500 * time.Millisecond

// ErrNotHeld says nobody holds the key.
var ErrNotHeld = errors.New("not held")

// Record is what the bucket says of a key's holder.
type Record struct {
	Holder string    `json:"holder"`
	Since  time.Time `json:"since"`
	// Term is the revision at which this holder took the key: it grows
	// with every new holder of any key of the bucket.
	Term uint64 `json:"term"`
	// Revision is the record's revision: it grows with each renewal.
	Revision uint64 `json:"-"`
	// Renewed is when the holder wrote the record last.
	Renewed time.Time `json:"-"`
}

// Bucket is a lease bucket: one key per piece of work.
type Bucket struct {
	kv  jetstream.KeyValue
	ttl time.Duration
}

// Open creates the bucket name (or adopts it, setting its TTL and replicas).
func Open(ctx context.Context, js jetstream.JetStream, name string, ttl time.Duration, replicas int) (*Bucket, error) {
	if ttl < MinTTL {
		return nil, fmt.Errorf("lease TTL %s is below the minimum, %s", ttl, MinTTL)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: "anfed: which process holds which peer's link",
		TTL:         ttl,
		History:     1,
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", name, err)
	}
	return &Bucket{kv: kv, ttl: ttl}, nil
}

// TTL is the bucket's time to live.
func (b *Bucket) TTL() time.Duration { return b.ttl }

// Holder says who holds key now (ErrNotHeld: nobody).
func (b *Bucket) Holder(ctx context.Context, key string) (Record, error) {
	e, err := b.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Record{}, ErrNotHeld
	}
	if err != nil {
		return Record{}, fmt.Errorf("lease %s: %w", key, err)
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Record{}, fmt.Errorf("lease %s: unreadable record: %w", key, err)
	}
	r.Revision, r.Renewed = e.Revision(), e.Created()
	if r.Term == 0 {
		r.Term = r.Revision // not renewed yet: this is the taking write
	}
	return r, nil
}

// Term is one holder's tenure of a key, from taking it to losing or
// releasing it.
type Term struct {
	Key, Holder string
	// Term is the revision at which the key was taken (Record.Term).
	Term  uint64
	Since time.Time

	mu    sync.Mutex
	rev   uint64    // the revision we last wrote
	until time.Time // our deadline, monotonic
	lost  bool
}

// Valid reports whether the lease still holds: before its deadline and
// not found taken by another. Work checks it before each thing it sends.
func (t *Term) Valid() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.lost && time.Now().Before(t.until)
}

// Until is the term's deadline as it stands.
func (t *Term) Until() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.until
}

func (t *Term) renewed(rev uint64, sent time.Time, life time.Duration) {
	t.mu.Lock()
	t.rev, t.until = rev, sent.Add(life)
	t.mu.Unlock()
}

func (t *Term) revision() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rev
}

func (t *Term) lose() {
	t.mu.Lock()
	t.lost = true
	t.mu.Unlock()
}

// Event is a change of who holds a key, seen by the process holding it.
type Event struct {
	Key, Holder string
	Term        uint64
	Held        bool   // taken (true), or lost or released (false)
	Reason      string // why it ended: released, expired, taken, stopped
	At          time.Time
}

// Options tune Hold.
type Options struct {
	// Poll is how often a standby tries to take the key (default TTL/12).
	Poll time.Duration
	// OnEvent hears each take and each end, on Hold's goroutine.
	OnEvent func(Event)
}

// life is how long after a write the holder counts on it: TTL less a
// sixth for the servers' clocks.
func (b *Bucket) life() time.Duration { return b.ttl - b.ttl/6 }

// Hold runs work while this process holds key, as holder, until ctx ends:
// it tries to take the key every Poll, and once it has it runs work with a
// context that ends when the lease is lost (a renewal refused, or none
// accepted before the deadline) or ctx ends. When work returns it releases
// the key (if still its own) and, unless ctx ended, tries again. Work must
// return soon after its context ends and send nothing once
// Term.Valid is false.
func (b *Bucket) Hold(ctx context.Context, key, holder string, o Options, work func(ctx context.Context, t *Term)) {
	if o.Poll <= 0 {
		o.Poll = b.ttl / 12
	}
	tick := time.NewTicker(o.Poll)
	defer tick.Stop()
	for ctx.Err() == nil {
		if t := b.take(ctx, key, holder); t != nil {
			if o.OnEvent != nil {
				o.OnEvent(Event{Key: key, Holder: holder, Term: t.Term, Held: true, At: time.Now()})
			}
			reason := b.serve(ctx, t, work)
			if o.OnEvent != nil {
				o.OnEvent(Event{Key: key, Holder: holder, Term: t.Term, Reason: reason, At: time.Now()})
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// take tries once to take key; nil when another holds it or the cluster
// does not answer.
func (b *Bucket) take(ctx context.Context, key, holder string) *Term {
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, b.life())
	defer cancel()
	// The term is the revision of this write, not known before it: the
	// record carries it from the first renewal on.
	v, _ := json.Marshal(Record{Holder: holder, Since: sent.UTC()})
	rev, err := b.kv.Create(rctx, key, v)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			// A take of ours whose answer was lost may have landed: a
			// record in our name that nobody renews. Nobody works under
			// it; delete it so the key is free now, not at the TTL.
			if r, gerr := b.Holder(rctx, key); gerr == nil && r.Holder == holder && r.Term == r.Revision {
				_ = b.kv.Delete(rctx, key, jetstream.LastRevision(r.Revision))
			}
		}
		return nil
	}
	t := &Term{Key: key, Holder: holder, Term: rev, Since: sent}
	t.renewed(rev, sent, b.life())
	return t
}

// serve runs work under t, renewing every TTL/3, and says why it ended.
func (b *Bucket) serve(ctx context.Context, t *Term, work func(context.Context, *Term)) (reason string) {
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		work(wctx, t)
	}()
	defer func() {
		cancel()
		<-done
		t.lose() // nothing more is sent under this term
		if reason != "taken" && reason != "expired" {
			// Gone from the bucket at once: a standby takes it now, not
			// at the TTL. Only our own revision is deleted.
			dctx, dcancel := context.WithTimeout(context.Background(), b.life())
			_ = b.kv.Delete(dctx, t.Key, jetstream.LastRevision(t.revision()))
			dcancel()
		}
	}()
	record, _ := json.Marshal(Record{Holder: t.Holder, Since: t.Since.UTC(), Term: t.Term})
	every := b.ttl / 3
	next := time.NewTimer(every)
	defer next.Stop()
	// firstTry is when the first renewal since the last one known to have
	// landed was sent: a renewal whose answer was lost may have landed,
	// and the record then counts from no earlier than that.
	var firstTry time.Time
	for {
		deadline := time.NewTimer(time.Until(t.Until()))
		select {
		case <-ctx.Done():
			deadline.Stop()
			return "stopped"
		case <-done:
			deadline.Stop()
			return "released"
		case <-deadline.C:
			t.lose()
			return "expired"
		case <-next.C:
		}
		deadline.Stop()
		sent := time.Now()
		if firstTry.IsZero() {
			firstTry = sent
		}
		// One try waits at most a third of the TTL, so a lost answer
		// leaves time for another.
		rctx, rcancel := context.WithTimeout(ctx, max(min(time.Until(t.Until()), every), time.Millisecond))
		rev, err := b.kv.Update(rctx, t.Key, record, t.revision())
		rcancel()
		switch {
		case err == nil:
			t.renewed(rev, sent, b.life())
			firstTry = time.Time{}
			next.Reset(every)
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			// Someone wrote the key since our last known write — or we
			// did, with a renewal whose answer was lost. Only we write
			// our term.
			if r, gerr := b.Holder(ctx, t.Key); gerr == nil && r.Holder == t.Holder && r.Term == t.Term && r.Revision > t.revision() {
				t.renewed(r.Revision, firstTry, b.life())
				firstTry = time.Time{}
				next.Reset(0)
				continue
			}
			t.lose()
			return "taken"
		case errors.Is(err, jetstream.ErrKeyNotFound):
			t.lose()
			return "taken"
		default:
			// No answer (a server lost, a leader being elected, a slow
			// cluster): try again soon, until the deadline.
			next.Reset(b.ttl / 12)
		}
	}
}
