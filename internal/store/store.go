// Package store keeps accepted signals in JetStream, in the operations
// account. A signal is accepted when it is stored: the producer's ack and the
// peer's link ack are sent only after JetStream has acknowledged the write.
// The stream's dedup window removes duplicates by CloudEvent source+id.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// Stream names.
const (
	SignalStream = "ANFED_SIGNALS"
	DLQStream    = "ANFED_DLQ"
	// ProbeStream keeps the one message the node's readiness probe last
	// wrote (to ProbeSubject): a real write to the store, kept apart from
	// the signals.
	ProbeStream  = "ANFED_PROBE"
	ProbeSubject = subject.StoreProbe
)

// StallWait is how long PutAsync waits for room when 4,096 writes are
// unacknowledged, before it fails.
const StallWait = 5 * time.Second

// AckTimeout bounds the wait for JetStream's answer to a write. Without
// it, a write whose answer never comes (its connection closed, JetStream
// shut down under it) would hold intake's answers behind it for ever.
const AckTimeout = 10 * time.Second

// Limits bound the signal stream. At a bound the oldest signals are
// discarded (JetStream DiscardOld): the node keeps accepting new signals.
type Limits struct {
	MaxAge time.Duration
	// MaxBytes is the whole store's budget (storage.max_bytes), split
	// between the streams by Split.
	MaxBytes        int64
	DuplicateWindow time.Duration
	// Replicas is how many servers keep each stream (0: 1).
	Replicas int
	// DeadLettersPerReason is how many dead letters the dead-letter
	// stream keeps per sender and reason (0: DefaultDeadLettersPerReason).
	DeadLettersPerReason int
}

// Bounds of the dead-letter stream. Each sender (a peer, "local", a closed
// loop) and reason has its own subject, an.dlq.<from>.<reason>, and keeps
// its latest DeadLettersPerReason dead letters (JetStream's per-subject
// limit): a flood from one sender rolls over its own dead letters only.
// Each dead letter is bounded (DeadLetterMsg), and the stream as a whole
// refuses a new dead letter rather than discard another sender's
// (DiscardNew at its share of storage.max_bytes, at most DLQMaxBytes:
// Split), so no sender can flush another's.
const (
	DefaultDeadLettersPerReason = 100
	DLQMaxBytes                 = 64 << 20
	DLQMaxAge                   = 7 * 24 * time.Hour
	// DeadLetterExcerpt: a refused body longer than this is kept as its
	// first DeadLetterExcerpt bytes, with its size (HeaderBodySize) and
	// SHA-256 (HeaderBodySHA256); never whole.
	DeadLetterExcerpt = 4 << 10
	// DeadLetterHeaders bounds the refused message's own headers a dead
	// letter keeps (the rest are counted in HeaderHeadersDropped), and
	// DeadLetterDetail the refusal's text (HeaderError).
	DeadLetterHeaders = 2 << 10
	DeadLetterDetail  = 1 << 10
	// MaxDeadLetter bounds one dead letter as the stream stores it: the
	// excerpt, the kept headers, the detail, anfed's headers (a closed
	// loop's include the signal's subject, at most 2,145 bytes) and the
	// subject.
	MaxDeadLetter = 10 << 10
)

// Store writes accepted signals and dead letters.
type Store struct {
	js    jetstream.JetStream
	held  jetstream.Stream
	keys  jetstream.KeyValue
	fault atomic.Pointer[error]
	// stall is PutAsync's publish option, made once.
	stall jetstream.PublishOpt
	// feed hears of each signal written (SetFeed); nil: none does.
	feed Feed
}

// Feed hears of each signal the store wrote, with its sequence in the
// signal stream, its subject (an.sig.<...>) and the event the writer
// holds: what the node's condition table is fed from in process. A
// write whose answer never came (a timeout, the connection lost) is not
// heard of; the feed finds it in the stream.
type Feed interface {
	Stored(seq uint64, subj string, ev *signal.Event)
}

// SetFeed sets the store's feed, before the first write.
func (s *Store) SetFeed(f Feed) { s.feed = f }

// Written tells the store's feed of a write of ev to subj that JetStream
// acknowledged with ack (a duplicate is not a new message: not told).
// Put calls it; a writer that waits for PutAsync's or PutOrdered's
// answer itself calls it with the answer.
func (s *Store) Written(subj string, ev *signal.Event, ack *jetstream.PubAck) {
	if s.feed != nil && ack != nil && !ack.Duplicate {
		s.feed.Stored(ack.Sequence, subj, ev)
	}
}

// ErrFull is what writes fail with while the store is full (Fault).
var ErrFull = errors.New("store full")

// VolumeFull tells the store that its volume is full (err says how it
// was found): from then on every write fails at once with err (wrapping
// ErrFull), until VolumeFreed, instead of each write timing out. An
// event the node reports while the store runs, not a setting.
func (s *Store) VolumeFull(err error) {
	err = fmt.Errorf("%w: %w", ErrFull, err)
	s.fault.Store(&err)
}

// VolumeFreed tells the store that its volume has room again: writes are
// tried again.
func (s *Store) VolumeFreed() { s.fault.Store(nil) }

// Fault is why the store refuses writes now (nil: it takes them).
func (s *Store) Fault() error {
	if p := s.fault.Load(); p != nil {
		return *p
	}
	return nil
}

// JetStream's codes for "no room" (nats-server's JSInsufficientResourcesErr
// and JSStorageResourcesExceededErr; nats.go names neither).
const (
	errCodeInsufficientResources jetstream.ErrorCode = 10023
	errCodeStorageExceeded       jetstream.ErrorCode = 10047
)

// Classify says "store full" of a write's error that says JetStream had no
// room (its resources, a stream's bytes, the disk), and returns any other
// error as it is.
func Classify(err error) error {
	if err == nil || errors.Is(err, ErrFull) {
		return err
	}
	var api *jetstream.APIError
	if errors.As(err, &api) && (api.ErrorCode == errCodeInsufficientResources || api.ErrorCode == errCodeStorageExceeded) {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	msg := err.Error()
	for _, s := range []string{"insufficient resources", "insufficient storage", "maximum bytes exceeded", "no space left"} {
		if strings.Contains(msg, s) {
			return fmt.Errorf("%w: %w", ErrFull, err)
		}
	}
	return err
}

// Open creates or updates the streams and returns a Store writing through nc
// (a connection to the operations account).
func Open(ctx context.Context, nc *nats.Conn, lim Limits) (*Store, error) {
	budget, err := Split(lim.MaxBytes)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(AckTimeout))
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
		MaxBytes:         budget.Signals,
		Duplicates:       lim.DuplicateWindow,
		Replicas:         lim.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("create stream %s: %w", SignalStream, err)
	}
	perReason := lim.DeadLettersPerReason
	if perReason <= 0 {
		perReason = DefaultDeadLettersPerReason
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DLQStream,
		Description: "refused anfed signals with the reason in headers",
		Subjects:    []string{subject.DLQPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		// DiscardNew: at the byte bound a new dead letter is refused
		// (and logged) rather than one of another sender discarded; the
		// per-subject limit still rolls each sender's and reason's over.
		Discard:           jetstream.DiscardNew,
		MaxMsgsPerSubject: int64(perReason),
		MaxAge:            DLQMaxAge,
		MaxBytes:          budget.DLQ,
		Replicas:          lim.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("create stream %s: %w", DLQStream, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        ProbeStream,
		Description: "the readiness probe's last write",
		Subjects:    []string{ProbeSubject},
		Storage:     jetstream.FileStorage,
		MaxMsgs:     1,
		MaxBytes:    budget.Probe,
		Replicas:    lim.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("create stream %s: %w", ProbeStream, err)
	}
	held, err := openHeld(ctx, js, budget.Held)
	if err != nil {
		return nil, err
	}
	if err := openKeyHeld(ctx, js, budget.KeyHeld); err != nil {
		return nil, err
	}
	if err := openRibIn(ctx, js, budget.RibIn); err != nil {
		return nil, err
	}
	keys, err := openKeys(ctx, js, budget.Keys, lim.Replicas)
	if err != nil {
		return nil, err
	}
	return &Store{js: js, held: held, stall: jetstream.WithStallWait(StallWait), keys: keys}, nil
}

// JetStream returns the JetStream context the store writes through.
func (s *Store) JetStream() jetstream.JetStream { return s.js }

// Put stores ev, encoded as body, under subj with dedup key ev.Key(),
// and tells the feed (Written). dup reports that the signal was already
// stored (an earlier copy was accepted).
func (s *Store) Put(ctx context.Context, subj string, ev *signal.Event, body []byte) (dup bool, err error) {
	if err := s.Fault(); err != nil {
		return false, err
	}
	in, ok := inputs.Get().(*inputMsg)
	if !ok {
		in = newInput()
	}
	// Back to the pool once written: PublishMsg encodes the message
	// before it returns, and nothing of it is kept.
	defer inputs.Put(in)
	msg, err := in.set(subj, ev.Key(), body)
	if err != nil {
		return false, err
	}
	ack, err := s.js.PublishMsg(ctx, msg)
	in.msg.Data = nil // not kept in the pool
	if err != nil {
		return false, fmt.Errorf("store %s: %w", subj, Classify(err))
	}
	s.Written(subj, ev, ack)
	return ack.Duplicate, nil
}

// PutAsync is Put without waiting: the future completes when JetStream
// stored the signal (PubAck.Duplicate set for a duplicate) or failed to.
func (s *Store) PutAsync(subj, key string, body []byte) (jetstream.PubAckFuture, error) {
	if err := s.Fault(); err != nil {
		return nil, err
	}
	// Its own: the write's future keeps it (to resend it).
	msg, err := newInput().set(subj, key, body)
	if err != nil {
		return nil, err
	}
	// At the bound on unacknowledged writes, wait for room (up to
	// StallWait) rather than fail at once: intake slows producers down
	// before it answers "unavailable".
	return s.js.PublishMsgAsync(msg, s.stall)
}

// ErrNotConnected is what PutOrdered fails with while the store's
// connection is away.
var ErrNotConnected = errors.New("store connection away (reconnecting)")

// PutOrdered is PutAsync for a writer whose writes must land in the
// order it issues them (a peer's link, internal/inbound): while the
// store's connection is away it fails at once with ErrNotConnected. Left
// to PutAsync, such a write would wait in the client's reconnect buffer
// and land after the reconnect, behind writes lost with the connection
// that the writer then issues again.
func (s *Store) PutOrdered(subj, key string, body []byte) (jetstream.PubAckFuture, error) {
	if !s.js.Conn().IsConnected() {
		return nil, fmt.Errorf("store %s: %w", subj, ErrNotConnected)
	}
	return s.PutAsync(subj, key, body)
}

// Reconnects counts the store connection's reconnections (PutOrdered's
// writes in flight on it before one may be lost).
func (s *Store) Reconnects() uint64 { return s.js.Conn().Stats().Reconnects }

// inputMsg is the message that stores a signal, with its header values
// in the same allocation.
type inputMsg struct {
	msg  nats.Msg
	vals [2]string
}

// inputs are Put's messages, reused: a write waits for its answer, so
// its message is free once Put returns.
var inputs sync.Pool

// newInput makes an inputMsg with its headers: what jetstream.WithMsgID
// and WithExpectStream would set, set here in one go (no option values,
// no map growth).
func newInput() *inputMsg {
	in := &inputMsg{vals: [2]string{1: SignalStream}}
	in.msg.Header = make(nats.Header, 2)
	in.msg.Header[jetstream.MsgIDHeader] = in.vals[0:1:1]
	in.msg.Header[jetstream.ExpectedStreamHeader] = in.vals[1:2:2]
	return in
}

// set makes in the message that stores a signal to be kept as subj with
// dedup key key: the stream takes an.store.<...> and keeps it as
// an.sig.<...>.
func (in *inputMsg) set(subj, key string, body []byte) (*nats.Msg, error) {
	rest, ok := strings.CutPrefix(subj, subject.SignalPrefix+".")
	if !ok {
		return nil, fmt.Errorf("store %s: not a signal subject", subj)
	}
	in.vals[0] = key
	in.msg.Subject, in.msg.Data = subject.StorePrefix+"."+rest, body
	return &in.msg, nil
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
	// HeaderBodySize and HeaderBodySHA256 (hex) describe the refused body
	// when the dead letter keeps only its first DeadLetterExcerpt bytes.
	HeaderBodySize   = "Anfed-Body-Size"
	HeaderBodySHA256 = "Anfed-Body-Sha256"
	// HeaderHeadersDropped counts the refused message's headers left out
	// past DeadLetterHeaders.
	HeaderHeadersDropped = "Anfed-Headers-Dropped"
)

// DeadLetterMsg is the dead letter of a refused message from "from" for
// reason: on an.dlq.<from>.<reason>, with the refused message's headers
// (JetStream directives left out; at most DeadLetterHeaders bytes of
// them), the reason, the detail (at most DeadLetterDetail bytes) and the
// body, or its first DeadLetterExcerpt bytes and its size and SHA-256.
func DeadLetterMsg(from, reason, detail string, hdr nats.Header, body []byte) *nats.Msg {
	h := nats.Header{}
	keys := make([]string, 0, len(hdr))
	for k := range hdr {
		if !strings.HasPrefix(k, "Nats-") { // JetStream directives of the refused message must not apply here
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	room, dropped := DeadLetterHeaders, 0
	for _, k := range keys {
		for _, v := range hdr[k] {
			if n := len(k) + len(v) + 4; n <= room { // "k: v\r\n"
				h.Add(k, v)
				room -= n
			} else {
				dropped++
			}
		}
	}
	if dropped > 0 {
		h.Set(HeaderHeadersDropped, strconv.Itoa(dropped))
	}
	h.Set(HeaderReason, reason)
	h.Set(HeaderError, headerText(detail, DeadLetterDetail))
	h.Set(HeaderFrom, from)
	if len(body) > DeadLetterExcerpt {
		sum := sha256.Sum256(body)
		h.Set(HeaderBodySize, strconv.Itoa(len(body)))
		h.Set(HeaderBodySHA256, hex.EncodeToString(sum[:]))
		body = body[:DeadLetterExcerpt]
	}
	return &nats.Msg{Subject: subject.DLQ(from, reason), Header: h, Data: body}
}

// headerText is s fit for a header value: no line breaks, and cut to
// max bytes on a UTF-8 boundary, marked "...".
func headerText(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) <= max {
		return s
	}
	cut := max - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// DeadLetter stores a refused message with the reason attached
// (DeadLetterMsg).
func (s *Store) DeadLetter(ctx context.Context, from, reason, detail string, hdr nats.Header, body []byte) error {
	if err := s.Fault(); err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	_, err := s.js.PublishMsg(ctx, DeadLetterMsg(from, reason, detail, hdr, body))
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

// LastSeq is the signal stream's last sequence: every signal stored so
// far has it or a lower one.
func (s *Store) LastSeq(ctx context.Context) (uint64, error) {
	st, err := s.js.Stream(ctx, SignalStream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", SignalStream, err)
	}
	return st.CachedInfo().State.LastSeq, nil
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
