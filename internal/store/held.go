package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/subject"
)

// HeldStream keeps, for each condition that flap dampening suppressed, the
// latest signal of it that a peer sent (import.dampening): one message per
// condition, replaced by each later signal and removed when the signal is
// released into the signal stream. It is what lets a restart during a
// suppression lose nothing.
const HeldStream = "ANFED_HELD"

// HeldMaxBytes caps the held share (an eighth of storage.max_bytes up to
// this, see Split; three quarters of it for this stream, a quarter for
// KeyHeldStream). At its bound, a signal that would be held
// cannot be, and the receiver stores it as if its condition were not
// suppressed: dampening gives way, nothing is lost.
const HeldMaxBytes = 128 << 20

// Held is a signal held by flap dampening, with what the damper needs to
// take the suppression up again after a restart.
type Held struct {
	Peer    string `json:"peer"`
	Origin  string `json:"origin"`
	Class   string `json:"class"`
	Subject string `json:"subject"` // the condition's CloudEvent subject
	// StoreSubject is where the signal is stored when it is released.
	StoreSubject string `json:"store_subject"`
	// Signal is the signal as the peer sent it (structured mode), its
	// origin signature intact.
	Signal       json.RawMessage `json:"signal"`
	Penalty      float64         `json:"penalty"`
	PenaltyAt    time.Time       `json:"penalty_at"`
	SuppressedAt time.Time       `json:"suppressed_at"`
}

// HeldSubject is the subject of one condition's held signal: its peer and
// a hash of origin, class and subject (any of which may hold characters a
// subject token cannot).
func HeldSubject(peer, origin, class, subj string) string {
	h := sha256.Sum256([]byte(origin + "\x00" + class + "\x00" + subj))
	return subject.HeldPrefix + "." + peer + "." + hex.EncodeToString(h[:16])
}

func openHeld(ctx context.Context, js jetstream.JetStream, maxBytes int64) (jetstream.Stream, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              HeldStream,
		Description:       "the latest signal of each condition suppressed by flap dampening",
		Subjects:          []string{subject.Held},
		Storage:           jetstream.FileStorage,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardNew,
		MaxBytes:          maxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", HeldStream, err)
	}
	return st, nil
}

// Hold keeps h, replacing the condition's earlier held signal.
func (s *Store) Hold(ctx context.Context, h *Held) error {
	if err := s.Fault(); err != nil {
		return fmt.Errorf("hold %s %s: %w", h.Class, h.Subject, err)
	}
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if _, err := s.js.Publish(ctx, HeldSubject(h.Peer, h.Origin, h.Class, h.Subject), b, jetstream.WithExpectStream(HeldStream)); err != nil {
		return fmt.Errorf("hold %s %s: %w", h.Class, h.Subject, err)
	}
	return nil
}

// HeldSignal returns the condition's held signal; ok is false when none
// is held.
func (s *Store) HeldSignal(ctx context.Context, peer, origin, class, subj string) (h *Held, ok bool, err error) {
	m, err := s.held.GetLastMsgForSubject(ctx, HeldSubject(peer, origin, class, subj))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	h = &Held{}
	if err := json.Unmarshal(m.Data, h); err != nil {
		return nil, false, fmt.Errorf("held signal %s: %w", m.Subject, err)
	}
	return h, true, nil
}

// Unhold removes the condition's held signal.
func (s *Store) Unhold(ctx context.Context, peer, origin, class, subj string) error {
	return s.held.Purge(ctx, jetstream.WithPurgeSubject(HeldSubject(peer, origin, class, subj)))
}

// HeldBy returns every signal held for peer. The stream keeps one
// message per subject, so its last per subject is all of it.
func (s *Store) HeldBy(ctx context.Context, peer string) ([]*Held, error) {
	var out []*Held
	var bad error
	_, err := LastPerSubject(ctx, s.js, HeldStream, subject.HeldPrefix+"."+peer+".>", func(m jetstream.Msg) {
		h := &Held{}
		if err := json.Unmarshal(m.Data(), h); err != nil {
			bad = cmp.Or(bad, fmt.Errorf("held signal %s: %w", m.Subject(), err))
			return
		}
		out = append(out, h)
	})
	if err = cmp.Or(err, bad); err != nil {
		return nil, err
	}
	return out, nil
}

// HeldCount is how many signals are held, all peers.
func (s *Store) HeldCount(ctx context.Context) (uint64, error) {
	st, err := s.js.Stream(ctx, HeldStream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}
