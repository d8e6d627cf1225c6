package conditions

// subscriber is one consumer of changes. Sends never block the table: a
// subscriber whose buffer is full is dropped and its channel closed.
type subscriber struct {
	ch     chan Change
	f      Filter
	closed bool
}

// Subscribe returns the changes made after the call, and a cancel func
// that closes the channel. buf is the channel's buffer (at least 1). A
// subscriber that falls buf changes behind is dropped: its channel is
// closed and Dropped counts it; it resyncs with SnapshotAndSubscribe.
func (t *Table) Subscribe(buf int) (<-chan Change, func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.subscribe(Filter{}, buf)
	return s.ch, t.cancelFunc(s)
}

// SnapshotAndSubscribe returns the conditions f selects and the changes
// made after that snapshot to the keys f selects, taken under one lock: a
// late consumer applies the snapshot, then the stream, and misses nothing
// and sees nothing twice. Changes are filtered by key only, never by
// status: a consumer without IncludeStale is still told when a condition
// goes stale or comes back fresh.
func (t *Table) SnapshotAndSubscribe(f Filter, buf int) ([]Condition, <-chan Change, func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	snap := t.snapshot(f)
	s := t.subscribe(f, buf)
	return snap, s.ch, t.cancelFunc(s)
}

// Dropped returns how many subscribers were dropped for falling behind.
func (t *Table) Dropped() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

func (t *Table) subscribe(f Filter, buf int) *subscriber {
	s := &subscriber{ch: make(chan Change, max(buf, 1)), f: f}
	t.subs = append(t.subs, s)
	return s
}

func (t *Table) cancelFunc(s *subscriber) func() {
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if s.closed {
			return
		}
		s.closed = true
		close(s.ch)
		t.subs = deleteSub(t.subs, s)
	}
}

// broadcast sends c to every subscriber whose filter selects it. Called
// with t.mu held.
func (t *Table) broadcast(c Change) {
	var full []*subscriber
	for _, s := range t.subs {
		if !s.f.match(c.Condition.Key) {
			continue
		}
		select {
		case s.ch <- c:
		default:
			s.closed = true
			close(s.ch)
			t.dropped++
			full = append(full, s)
		}
	}
	for _, s := range full {
		t.subs = deleteSub(t.subs, s)
	}
}

func deleteSub(subs []*subscriber, s *subscriber) []*subscriber {
	for i, x := range subs {
		if x == s {
			last := len(subs) - 1
			subs[i] = subs[last]
			subs[last] = nil
			return subs[:last]
		}
	}
	return subs
}
