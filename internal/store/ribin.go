package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/subject"
)

// RibInStream keeps, per peer and condition, the latest signal the peer
// sent that our import policy refused, as it came (its origin signature
// intact): the part of the peer's Adj-RIB-In that is not in the signal
// stream. When the import policy widens, what it now passes is admitted
// from here without asking the peer (BGP's soft reconfiguration
// inbound). One message per condition, replaced by the next refused
// signal of it and removed when one is admitted or cleared; the receiver
// bounds the conditions per peer (import.adj_rib_in.limit). A sibling of
// HeldStream, within its share of storage.max_bytes.
const RibInStream = "ANFED_RIBIN"

// RibInSubject is the subject of one condition's refused signal: its peer
// and a hash of origin, class and subject, as HeldSubject.
func RibInSubject(peer, origin, class, subj string) string {
	h := sha256.Sum256([]byte(origin + "\x00" + class + "\x00" + subj))
	return subject.RibInPrefix + "." + peer + "." + hex.EncodeToString(h[:16])
}

func openRibIn(ctx context.Context, js jetstream.JetStream, maxBytes int64) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              RibInStream,
		Description:       "the latest signal of each condition a peer sent that import policy refused (Adj-RIB-In)",
		Subjects:          []string{subject.RibIn},
		Storage:           jetstream.FileStorage,
		MaxMsgsPerSubject: 1,
		// At the byte bound a new one is refused (and counted by the
		// receiver), not another condition's discarded.
		Discard:  jetstream.DiscardNew,
		MaxBytes: maxBytes,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", RibInStream, err)
	}
	return nil
}

// RibIn is a signal a peer sent that import policy refused: the link
// message as it came.
type RibIn struct {
	Key     string // its RibInSubject
	Subject string // the link subject it came on
	Header  nats.Header
	Data    []byte
}

// RibInPut keeps a refused signal of the peer's under key (RibInSubject),
// replacing the condition's earlier one.
func (s *Store) RibInPut(ctx context.Context, key, linkSubj string, hdr nats.Header, body []byte) error {
	if err := s.Fault(); err != nil {
		return fmt.Errorf("adj-rib-in %s: %w", key, err)
	}
	m := nats.NewMsg(key)
	for k, v := range hdr {
		m.Header[k] = v
	}
	m.Header.Set(HeaderLinkSubject, linkSubj)
	m.Data = body
	if _, err := s.js.PublishMsg(ctx, m, jetstream.WithExpectStream(RibInStream)); err != nil {
		return fmt.Errorf("adj-rib-in %s: %w", key, Classify(err))
	}
	return nil
}

// RibInDrop removes the condition's refused signal (key: RibInSubject).
func (s *Store) RibInDrop(ctx context.Context, key string) error {
	st, err := s.js.Stream(ctx, RibInStream)
	if err != nil {
		return fmt.Errorf("adj-rib-in drop %s: %w", key, err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(key)); err != nil {
		return fmt.Errorf("adj-rib-in drop %s: %w", key, err)
	}
	return nil
}

// RibInBy returns the refused signals kept for peer, one per condition.
func (s *Store) RibInBy(ctx context.Context, peer string) ([]RibIn, error) {
	var out []RibIn
	_, err := LastPerSubject(ctx, s.js, RibInStream, subject.RibInPrefix+"."+peer+".>", func(m jetstream.Msg) {
		h := nats.Header{}
		for k, v := range m.Headers() {
			h[k] = v
		}
		r := RibIn{Key: m.Subject(), Subject: h.Get(HeaderLinkSubject), Header: h, Data: m.Data()}
		h.Del(HeaderLinkSubject)
		out = append(out, r)
	})
	if err != nil {
		return nil, fmt.Errorf("adj-rib-in of %s: %w", peer, err)
	}
	return out, nil
}

// RibInKeys returns the keys (RibInSubject) of the conditions kept for
// peer.
func (s *Store) RibInKeys(ctx context.Context, peer string) ([]string, error) {
	st, err := s.js.Stream(ctx, RibInStream)
	if err != nil {
		return nil, fmt.Errorf("adj-rib-in of %s: %w", peer, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject.RibInPrefix+"."+peer+".>"))
	if err != nil {
		return nil, fmt.Errorf("adj-rib-in of %s: %w", peer, err)
	}
	return slices.Sorted(maps.Keys(info.State.Subjects)), nil
}

// StoredSignal returns the body of the stored signal at seq in the signal
// stream, or, for seq 0, the latest stored as subj.
func (s *Store) StoredSignal(ctx context.Context, seq uint64, subj string) ([]byte, error) {
	st, err := s.js.Stream(ctx, SignalStream)
	if err != nil {
		return nil, fmt.Errorf("stored signal %s: %w", subj, err)
	}
	var m *jetstream.RawStreamMsg
	if seq > 0 {
		m, err = st.GetMsg(ctx, seq)
	} else {
		m, err = st.GetLastMsgForSubject(ctx, subj)
	}
	if err != nil {
		return nil, fmt.Errorf("stored signal %s (%d): %w", subj, seq, err)
	}
	return m.Data, nil
}
