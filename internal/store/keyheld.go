package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/subject"
)

// KeyHeldStream keeps the signals a peer sent that were refused only
// because their origin's signing key is not pinned (yet): in the order
// they came, per peer, until the pins change and they are checked again
// (inbound.Receiver). A sibling of HeldStream, within its share of
// storage.max_bytes.
const KeyHeldStream = "ANFED_KEYHELD"

// KeyHeldPrefix is the subject prefix of the key-held signals: one
// subject per peer, an.keyheld.PEER.
const KeyHeldPrefix = subject.KeyHeldPrefix

// KeyHeldPerPeer bounds the signals held for one peer under an unpinned
// key: past it a signal is refused as before (unknown-origin or
// bad-signature), dead-lettered and counted. Each is at most the link's
// message size, so a peer holds at most KeyHeldPerPeer times that.
const KeyHeldPerPeer = 256

// HeaderPinned is the header of a key-held signal that names the key its
// origin had pinned when it was held ("" for none): it is checked again
// only once that changed.
const HeaderPinned = "Anfed-Pinned"

// HeaderLinkSubject is the header of a key-held signal that keeps the link
// subject it came on: the link-subject check runs again at its release.
const HeaderLinkSubject = "Anfed-Link-Subject"

// ErrKeyHeldFull: the peer holds KeyHeldPerPeer signals under unpinned
// keys already, or the stream is at its share of storage.max_bytes.
var ErrKeyHeldFull = errors.New("key-held signals at their bound")

func openKeyHeld(ctx context.Context, js jetstream.JetStream, maxBytes int64) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:                 KeyHeldStream,
		Description:          "signals held until their origin's signing key is pinned",
		Subjects:             []string{KeyHeldPrefix + ".>"},
		Storage:              jetstream.FileStorage,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxMsgsPerSubject:    KeyHeldPerPeer,
		MaxBytes:             maxBytes,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", KeyHeldStream, err)
	}
	return nil
}

// KeyHeld is a signal held under an unpinned key.
type KeyHeld struct {
	Seq     uint64
	Pinned  string // the key its origin had pinned when it was held
	Subject string // the link subject it came on
	Header  nats.Header
	Data    []byte
}

// KeyHold keeps a peer's signal (the link message as it came) until the
// pins change. At the bound it fails with ErrKeyHeldFull.
func (s *Store) KeyHold(ctx context.Context, peer, pinned, linkSubj string, hdr nats.Header, body []byte) error {
	if err := s.Fault(); err != nil {
		return fmt.Errorf("key hold: %w", err)
	}
	m := nats.NewMsg(KeyHeldPrefix + "." + peer)
	for k, v := range hdr {
		m.Header[k] = v
	}
	m.Header.Set(HeaderPinned, pinned)
	m.Header.Set(HeaderLinkSubject, linkSubj)
	m.Data = body
	if _, err := s.js.PublishMsg(ctx, m, jetstream.WithExpectStream(KeyHeldStream)); err != nil {
		// DiscardNew at the per-peer or the byte bound: the stream
		// refuses the write; so does a store that cannot write. Either
		// way the signal is refused as before the hold.
		return fmt.Errorf("key hold for %s: %w: %w", peer, ErrKeyHeldFull, err)
	}
	return nil
}

// KeyHeldBy returns the signals held for peer under unpinned keys, in the
// order they came.
func (s *Store) KeyHeldBy(ctx context.Context, peer string) ([]KeyHeld, error) {
	cons, err := s.js.OrderedConsumer(ctx, KeyHeldStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{KeyHeldPrefix + "." + peer},
	})
	if err != nil {
		return nil, fmt.Errorf("key-held signals of %s: %w", peer, err)
	}
	left := cons.CachedInfo().NumPending
	var out []KeyHeld
	for left > 0 {
		batch, err := cons.Fetch(int(min(left, 256)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("key-held signals of %s: %w", peer, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("key-held signal of %s: %w", peer, err)
			}
			h := nats.Header{}
			for k, v := range m.Headers() {
				h[k] = v
			}
			kh := KeyHeld{Seq: md.Sequence.Stream, Pinned: h.Get(HeaderPinned), Subject: h.Get(HeaderLinkSubject), Header: h, Data: m.Data()}
			h.Del(HeaderPinned)
			h.Del(HeaderLinkSubject)
			out = append(out, kh)
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("key-held signals of %s: %w", peer, err)
		}
		if got == 0 {
			return nil, fmt.Errorf("key-held signals of %s: %d not read", peer, left)
		}
		left -= min(uint64(got), left)
	}
	return out, nil
}

// KeyUnhold removes a key-held signal once it is stored or dead-lettered.
func (s *Store) KeyUnhold(ctx context.Context, seq uint64) error {
	st, err := s.js.Stream(ctx, KeyHeldStream)
	if err != nil {
		return fmt.Errorf("key unhold %d: %w", seq, err)
	}
	if err := st.DeleteMsg(ctx, seq); err != nil {
		return fmt.Errorf("key unhold %d: %w", seq, err)
	}
	return nil
}
