package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/subject"
)

// Stream keeps the records, in the operations account, on
// an.audit.<chain>.<kind>.<peer>.
const Stream = "ANFED_AUDIT"

// DefaultMaxAge is how long records are kept without audit.max_age.
const DefaultMaxAge = 90 * 24 * time.Hour

// Subject is where a record is kept: its chain, kind and peer as tokens,
// so that one wildcard picks a peer's records.
func Subject(chain, kind, peer string) string {
	return subject.AuditPrefix + "." + subject.Token(chain) + "." + subject.Token(kind) + "." + subject.Token(peer)
}

// Open creates or updates the stream: records older than maxAge expire,
// and at maxBytes (its share of storage.max_bytes, store.Split) the
// oldest go first, so the trail always holds the latest.
func Open(ctx context.Context, js jetstream.JetStream, maxAge time.Duration, maxBytes int64, replicas int) error {
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        Stream,
		Description: "anfed audit trail: what was sent to which peer, and who decided on actions (hash chained)",
		Subjects:    []string{subject.Audit},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      maxAge,
		MaxBytes:    maxBytes,
		// A record is written again after a write that failed or went
		// unanswered, with the same id (chain.n): stored once.
		Duplicates: 2 * time.Minute,
		Replicas:   replicas,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", Stream, err)
	}
	return nil
}

// Filter picks records: by peer (our peer, or the operator whose action
// step it is), kind, and time.
type Filter struct {
	Peer  string
	Kind  string
	Since time.Time
}

func (f Filter) subject() string {
	kind, peer := "*", "*"
	if f.Kind != "" {
		kind = subject.Token(f.Kind)
	}
	if f.Peer != "" {
		peer = subject.Token(f.Peer)
	}
	if kind == "*" && peer == "*" {
		return subject.Audit
	}
	return subject.AuditPrefix + ".*." + kind + "." + peer
}

// Read returns the records f picks, in the order they were stored, each
// with the sequence of the message that holds it.
func Read(ctx context.Context, js jetstream.JetStream, f Filter) ([]Stored, error) {
	out := []Stored{}
	err := Each(ctx, js, f, func(r Stored) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Each calls fn with each record f picks, in the order they were stored,
// reading the stream a batch at a time, so that an export of any size
// streams out; an error from fn ends it.
func Each(ctx context.Context, js jetstream.JetStream, f Filter, fn func(Stored) error) error {
	st, err := js.Stream(ctx, Stream)
	if err != nil {
		return fmt.Errorf("audit: stream %s: %w", Stream, err)
	}
	if st.CachedInfo().State.Msgs == 0 {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{f.subject()}}
	if !f.Since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &f.Since
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("audit: read %s: %w", Stream, err)
	}
	// The consumer counts what the filter picks when it is made: read
	// that many (records stored meanwhile wait for the next read).
	want, read := cons.CachedInfo().NumPending, uint64(0)
	var recs []Stored
	for read < want && ctx.Err() == nil {
		batch, err := cons.Fetch(int(min(want-read, 512)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("audit: read %s: %w", Stream, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			read++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			recs = appendRecords(recs[:0], m.Data(), meta.Sequence.Stream)
			for _, r := range recs {
				// A message holds records of a few moments before it
				// was stored.
				if !f.Since.IsZero() && r.Time.Before(f.Since) {
					continue
				}
				if err := fn(r); err != nil {
					return err
				}
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("audit: read %s: %w", Stream, err)
		}
		if n == 0 {
			break // expired meanwhile
		}
	}
	return ctx.Err()
}

// appendRecords appends the records of one stored message (JSON Lines:
// the writer stores what waited together in one message per subject).
// A line that is not a record (written by hand) is kept with an empty
// chain, so that Verify names it.
func appendRecords(out []Stored, body []byte, seq uint64) []Stored {
	for _, line := range bytes.Split(body, []byte{'\n'}) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r := Stored{Seq: seq}
		if err := json.Unmarshal(line, &r.Record); err != nil || r.Chain == "" {
			r.Record = Record{Chain: "(not a record)", N: 1, Hash: "-"}
		}
		out = append(out, r)
	}
	return out
}

// ParseSince reads a query's since: a time in RFC 3339, or a duration
// back from now ("24h"). "" is no bound.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("since %q: want a time in RFC 3339 (2026-12-07T08:00:00Z) or a duration back from now (24h)", s)
}
