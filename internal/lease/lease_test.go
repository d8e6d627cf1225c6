package lease_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/anfed/anfed/internal/lease"
	"github.com/anfed/anfed/internal/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tenure is one holder's time doing the work: from the work's start to its
// return, on this process's clock.
type tenure struct {
	holder     string
	term       uint64
	start, end time.Time
	validAtEnd bool // Term.Valid when the work saw its context end
}

type tenures struct {
	mu  sync.Mutex
	all []tenure
}

func (ts *tenures) work(holder string) func(ctx context.Context, t *lease.Term) {
	return func(ctx context.Context, t *lease.Term) {
		start := time.Now()
		<-ctx.Done()
		valid := t.Valid()
		ts.mu.Lock()
		ts.all = append(ts.all, tenure{holder: holder, term: t.Term, start: start, end: time.Now(), validAtEnd: valid})
		ts.mu.Unlock()
	}
}

func (ts *tenures) list() []tenure {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]tenure(nil), ts.all...)
}

// noOverlap fails when two tenures were ever at work at once.
func noOverlap(t *testing.T, all []tenure) {
	t.Helper()
	for i, a := range all {
		for _, b := range all[i+1:] {
			if a.start.Before(b.end) && b.start.Before(a.end) {
				t.Errorf("%s (term %d, %s–%s) and %s (term %d, %s–%s) held the lease at once",
					a.holder, a.term, a.start.Format("15:04:05.000"), a.end.Format("15:04:05.000"),
					b.holder, b.term, b.start.Format("15:04:05.000"), b.end.Format("15:04:05.000"))
			}
		}
	}
}

// process is one holder's own connection to the server, as a process of
// its own would have.
func process(t *testing.T, s *server.Server, ttl time.Duration) (*nats.Conn, *lease.Bucket) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	b, err := lease.Open(t.Context(), js, "LEASES", ttl, 1)
	require.NoError(t, err)
	return nc, b
}

// hold runs Hold on its own goroutine until the returned stop is called.
func hold(b *lease.Bucket, key, holder string, o lease.Options, work func(context.Context, *lease.Term)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Hold(ctx, key, holder, o, work)
	}()
	return func() { cancel(); <-done }
}

func TestHolderKeepsItAndStandbyWaits(t *testing.T) {
	s, _ := natstest.StartJetStream(t)
	// 3 s: a released key is taken within the standby's poll (TTL/12),
	// which took 1.18 s under -race on a busy CI machine: against a 1 s
	// TTL that could not tell a release from an expiry.
	const ttl = 3 * time.Second
	_, ba := process(t, s, ttl)
	_, bb := process(t, s, ttl)
	var ts tenures
	stopA := hold(ba, "link-op-b", "a", lease.Options{}, ts.work("a"))
	natstest.WaitFor(t, 5*time.Second, func() error {
		r, err := ba.Holder(t.Context(), "link-op-b")
		if err != nil || r.Holder != "a" {
			return fmt.Errorf("holder %+v, %v", r, err)
		}
		return nil
	})
	stopB := hold(bb, "link-op-b", "b", lease.Options{}, ts.work("b"))
	// Two TTLs: only renewals keep a's record alive.
	time.Sleep(2 * ttl)
	r, err := bb.Holder(t.Context(), "link-op-b")
	require.NoError(t, err)
	assert.Equal(t, "a", r.Holder, "the holder renews; the standby never takes it")
	assert.Greater(t, r.Revision, r.Term, "renewals write new revisions of the same term")
	assert.Empty(t, ts.list(), "no tenure ended")

	// A graceful stop releases the key: b takes it within its poll, not
	// at the TTL.
	stoppedA := time.Now()
	stopA()
	natstest.WaitFor(t, 5*time.Second, func() error {
		r, err := bb.Holder(t.Context(), "link-op-b")
		if err != nil || r.Holder != "b" {
			return fmt.Errorf("holder %+v, %v", r, err)
		}
		return nil
	})
	took := time.Since(stoppedA)
	assert.Less(t, took, ttl, "a released key is taken before the TTL")
	stopB()
	all := ts.list()
	require.Len(t, all, 2)
	assert.Less(t, all[0].term, all[1].term, "a new holder's term is higher")
	noOverlap(t, all)
	t.Logf("released lease taken in %s", took.Round(time.Millisecond))
}

// A holder that can no longer renew (its process is cut off from the
// cluster, or paused) ends its work before the cluster forgets its record,
// and so before anyone else can begin.
func TestHolderCutOffStopsBeforeTheOtherBegins(t *testing.T) {
	s, _ := natstest.StartJetStream(t)
	const ttl = 1200 * time.Millisecond
	nca, ba := process(t, s, ttl)
	_, bb := process(t, s, ttl)
	var ts tenures
	stopA := hold(ba, "k", "a", lease.Options{}, ts.work("a"))
	defer stopA()
	natstest.WaitFor(t, 5*time.Second, func() error {
		if r, err := ba.Holder(t.Context(), "k"); err != nil || r.Holder != "a" {
			return fmt.Errorf("holder %+v, %v", r, err)
		}
		return nil
	})
	stopB := hold(bb, "k", "b", lease.Options{}, ts.work("b"))
	defer stopB()
	// Cut the holder off: its connection closes, as a process's would at
	// kill -9 or a network cut.
	cut := time.Now()
	nca.Close()
	natstest.WaitFor(t, 10*time.Second, func() error {
		if r, err := bb.Holder(t.Context(), "k"); err != nil || r.Holder != "b" {
			return fmt.Errorf("holder %+v, %v", r, err)
		}
		return nil
	})
	took := time.Since(cut)
	t.Logf("cut-off holder replaced in %s (TTL %s)", took.Round(time.Millisecond), ttl)
	assert.Less(t, took, ttl+time.Second, "replaced within the TTL and a poll")
	stopB()
	stopA()
	all := ts.list()
	require.Len(t, all, 2)
	a := all[0]
	assert.Equal(t, "a", a.holder)
	assert.False(t, a.validAtEnd, "the cut-off holder's term was no longer valid when its work ended")
	noOverlap(t, all)
}

// A holder whose record someone else overwrote (it expired while the
// holder was paused, and was taken) learns it at its next renewal and ends
// its work, even before its own deadline.
func TestHolderWhoseRecordWasTakenStops(t *testing.T) {
	s, js := natstest.StartJetStream(t)
	const ttl = 3 * time.Second
	_, ba := process(t, s, ttl)
	ended := make(chan bool, 1)
	var events []lease.Event
	var mu sync.Mutex
	stop := hold(ba, "k", "a", lease.Options{OnEvent: func(e lease.Event) { mu.Lock(); events = append(events, e); mu.Unlock() }},
		func(ctx context.Context, t *lease.Term) {
			<-ctx.Done()
			ended <- t.Valid()
		})
	defer stop()
	natstest.WaitFor(t, 5*time.Second, func() error {
		if r, err := ba.Holder(t.Context(), "k"); err != nil || r.Holder != "a" {
			return fmt.Errorf("holder %+v, %v", r, err)
		}
		return nil
	})
	kv, err := js.KeyValue(t.Context(), "LEASES")
	require.NoError(t, err)
	_, err = kv.Put(t.Context(), "k", []byte(`{"holder":"intruder"}`))
	require.NoError(t, err)
	select {
	case valid := <-ended:
		assert.False(t, valid, "the term is void once the record was found taken")
	case <-time.After(ttl):
		t.Fatal("the holder kept working after its record was taken")
	}
	stop()
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, events, 2)
	assert.True(t, events[0].Held)
	assert.Equal(t, "taken", events[1].Reason)
	r, err := ba.Holder(t.Context(), "k")
	require.NoError(t, err)
	assert.Equal(t, "intruder", r.Holder, "a lost lease is not deleted by its former holder")
}

func TestOpenRefusesShortTTL(t *testing.T) {
	_, js := natstest.StartJetStream(t)
	_, err := lease.Open(t.Context(), js, "LEASES", 100*time.Millisecond, 1)
	require.ErrorContains(t, err, "below the minimum")
}
