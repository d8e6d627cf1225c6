// Package store keeps accepted signals in JetStream, in the operations
// account. A signal is accepted when it is stored: the producer's ack and the
// peer's link ack are sent only after JetStream has acknowledged the write.
// The stream's dedup window removes duplicates by CloudEvent source+id.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/subject"
)

// Stream names.
const (
	SignalStream = "ANFED_SIGNALS"
	DLQStream    = "ANFED_DLQ"
)

// StallWait is how long PutAsync waits for room when 4,096 writes are
// unacknowledged, before it fails.
const StallWait = 5 * time.Second

// Limits bound the signal stream. At a bound the oldest signals are
// discarded (JetStream DiscardOld): the node keeps accepting new signals.
type Limits struct {
	MaxAge          time.Duration
	MaxBytes        int64
	DuplicateWindow time.Duration
	// Replicas is how many servers keep each stream (0: 1).
	Replicas int
}

// Store writes accepted signals and dead letters.
type Store struct {
	js   jetstream.JetStream
	held jetstream.Stream
}

// Open creates or updates the streams and returns a Store writing through nc
// (a connection to the operations account).
func Open(ctx context.Context, nc *nats.Conn, lim Limits) (*Store, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        SignalStream,
		Description: "accepted anfed signals, local and imported",
		// The node writes to an.store.>; the stream keeps signals as
		// an.sig.> and republishes each one it stored, once, to
		// an.sig.> for live subscribers. A duplicate is not stored, so
		// it is not republished: core subscribers never see it twice.
		Subjects:         []string{subject.Store},
		SubjectTransform: &jetstream.SubjectTransformConfig{Source: subject.Store, Destination: subject.Signals},
		RePublish:        &jetstream.RePublish{Source: subject.Signals, Destination: subject.Signals},
		Storage:          jetstream.FileStorage,
		Retention:        jetstream.LimitsPolicy,
		Discard:          jetstream.DiscardOld,
		MaxAge:           lim.MaxAge,
		MaxBytes:         lim.MaxBytes,
		Duplicates:       lim.DuplicateWindow,
		Replicas:         lim.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("create stream %s: %w", SignalStream, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DLQStream,
		Description: "refused anfed signals with the reason in headers",
		Subjects:    []string{subject.DLQPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      7 * 24 * time.Hour,
		MaxBytes:    64 << 20,
		Replicas:    lim.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("create stream %s: %w", DLQStream, err)
	}
	held, err := openHeld(ctx, js)
	if err != nil {
		return nil, err
	}
	return &Store{js: js, held: held}, nil
}

// JetStream returns the JetStream context the store writes through.
func (s *Store) JetStream() jetstream.JetStream { return s.js }

// Put stores a signal under subj with dedup key key. dup reports that the
// signal was already stored (an earlier copy was accepted).
func (s *Store) Put(ctx context.Context, subj, key string, body []byte) (dup bool, err error) {
	msg, err := input(subj, body)
	if err != nil {
		return false, err
	}
	ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(key), jetstream.WithExpectStream(SignalStream))
	if err != nil {
		return false, fmt.Errorf("store %s: %w", subj, err)
	}
	return ack.Duplicate, nil
}

// PutAsync is Put without waiting: the future completes when JetStream
// stored the signal (PubAck.Duplicate set for a duplicate) or failed to.
func (s *Store) PutAsync(subj, key string, body []byte) (jetstream.PubAckFuture, error) {
	msg, err := input(subj, body)
	if err != nil {
		return nil, err
	}
	// At the bound on unacknowledged writes, wait for room (up to
	// StallWait) rather than fail at once: intake slows producers down
	// before it answers "unavailable".
	return s.js.PublishMsgAsync(msg, jetstream.WithMsgID(key), jetstream.WithExpectStream(SignalStream), jetstream.WithStallWait(StallWait))
}

// input is the message that stores a signal to be kept as subj: the
// stream takes an.store.<...> and keeps it as an.sig.<...>.
func input(subj string, body []byte) (*nats.Msg, error) {
	rest, ok := strings.CutPrefix(subj, subject.SignalPrefix+".")
	if !ok {
		return nil, fmt.Errorf("store %s: not a signal subject", subj)
	}
	return &nats.Msg{Subject: subject.StorePrefix + "." + rest, Data: body}, nil
}

// Epoch names this store: the signal stream's creation time. A new store
// (data lost or wiped) has a new epoch.
func (s *Store) Epoch(ctx context.Context) (string, error) {
	st, err := s.js.Stream(ctx, SignalStream)
	if err != nil {
		return "", fmt.Errorf("stream %s: %w", SignalStream, err)
	}
	return strconv.FormatInt(st.CachedInfo().Created.UnixNano(), 36), nil
}

// Header names on dead letters.
const (
	HeaderReason = "Anfed-Reason"
	HeaderError  = "Anfed-Error"
	HeaderFrom   = "Anfed-From"
)

// DeadLetter stores a refused message with the reason attached.
func (s *Store) DeadLetter(ctx context.Context, from, reason, detail string, hdr nats.Header, body []byte) error {
	h := nats.Header{}
	for k, v := range hdr {
		if strings.HasPrefix(k, "Nats-") {
			continue // JetStream directives of the refused message must not apply here
		}
		h[k] = v
	}
	h.Set(HeaderReason, reason)
	h.Set(HeaderError, detail)
	h.Set(HeaderFrom, from)
	_, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: subject.DLQ(from, reason), Header: h, Data: body})
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("dead letter: %w", err)
	}
	return err
}

// MeanSize is the mean size in bytes of a stored signal (0 when empty):
// what a per-peer byte bound counts each waiting signal as.
func (s *Store) MeanSize(ctx context.Context) (float64, error) {
	st, err := s.js.Stream(ctx, SignalStream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", SignalStream, err)
	}
	state := st.CachedInfo().State
	if state.Msgs == 0 {
		return 0, nil
	}
	return float64(state.Bytes) / float64(state.Msgs), nil
}

// FirstSeq is the signal stream's first sequence: every signal stored
// before it was discarded at the store's bounds.
func (s *Store) FirstSeq(ctx context.Context) (uint64, error) {
	st, err := s.js.Stream(ctx, SignalStream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", SignalStream, err)
	}
	return st.CachedInfo().State.FirstSeq, nil
}
