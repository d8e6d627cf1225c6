package store

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LastPerSubject calls fn with the last message of every subject of stream
// that matches filter, in stream order, and returns how many it read.
//
// It uses a plain ephemeral consumer, not nats.go's ordered consumer: an
// ordered consumer re-creates itself from the next stream sequence at each
// Fetch or Next after the first, which silently turns DeliverLastPerSubject
// into "everything from here on" — superseded messages come back and a
// caller counting NumPending stops before the last subjects
// (TestLastPerSubjectReadsEveryKeyOnce shows both).
func LastPerSubject(ctx context.Context, js jetstream.JetStream, stream, filter string, fn func(jetstream.Msg)) (int, error) {
	cons, err := js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		FilterSubjects:    []string{filter},
		DeliverPolicy:     jetstream.DeliverLastPerSubjectPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return 0, fmt.Errorf("last per subject of %s %s: %w", stream, filter, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(dctx, stream, cons.CachedInfo().Name)
	}()
	// NumPending at creation counts the subjects' last messages: what
	// was stored before this call.
	left := cons.CachedInfo().NumPending
	read := 0
	for left > 0 {
		if err := ctx.Err(); err != nil {
			return read, err
		}
		batch, err := cons.Fetch(int(min(left, 1000)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return read, fmt.Errorf("last per subject of %s %s: %w", stream, filter, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			fn(m)
		}
		if err := batch.Error(); err != nil {
			return read, fmt.Errorf("last per subject of %s %s: %w", stream, filter, err)
		}
		if got == 0 {
			return read, fmt.Errorf("last per subject of %s %s: %d subjects not read", stream, filter, left)
		}
		read += got
		left -= uint64(min(uint64(got), left))
	}
	return read, nil
}
