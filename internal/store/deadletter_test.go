package store_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"

	"github.com/anfed/anfed/internal/store"
)

// TestDeadLetterMsgBounds: a dead letter keeps a body up to the excerpt
// whole, and of a longer one the excerpt, its size and its SHA-256; the
// refused message's headers up to DeadLetterHeaders bytes (JetStream
// directives never), a detail cut to DeadLetterDetail on one line.
func TestDeadLetterMsgBounds(t *testing.T) {
	small := []byte(`{"specversion":"1.0"}`)
	m := store.DeadLetterMsg("op-b", "malformed", "why", nil, small)
	assert.Equal(t, "an.dlq.op-b.malformed", m.Subject)
	assert.Equal(t, small, m.Data)
	assert.Empty(t, m.Header.Get(store.HeaderBodySize))

	body := []byte(strings.Repeat("é", 600<<10)) // 1.2 MB
	hdr := nats.Header{"Nats-Msg-Id": {"x"}, "A-Small": {"kept"}}
	for i := range 100 {
		hdr.Add("Z-Pad", strings.Repeat("p", 100)+string(rune('a'+i%26)))
	}
	detail := strings.Repeat("d", 5000) + "\r\nInjected: header"
	m = store.DeadLetterMsg("op-b", "oversized", detail, hdr, body)
	sum := sha256.Sum256(body)
	assert.Len(t, m.Data, store.DeadLetterExcerpt)
	assert.Equal(t, "1228800", m.Header.Get(store.HeaderBodySize))
	assert.Equal(t, hex.EncodeToString(sum[:]), m.Header.Get(store.HeaderBodySHA256))
	assert.Empty(t, m.Header.Get("Nats-Msg-Id"), "JetStream directives of the refused message never apply")
	assert.Equal(t, "kept", m.Header.Get("A-Small"))
	kept := len(m.Header.Values("Z-Pad"))
	dropped, err := strconv.Atoi(m.Header.Get(store.HeaderHeadersDropped))
	assert.NoError(t, err)
	assert.Equal(t, 100-kept, dropped)
	assert.Greater(t, kept, 10)
	assert.LessOrEqual(t, kept*(len("Z-Pad")+101+4), store.DeadLetterHeaders)
	e := m.Header.Get(store.HeaderError)
	assert.LessOrEqual(t, len(e), store.DeadLetterDetail)
	assert.True(t, strings.HasSuffix(e, "..."), e[len(e)-10:])
	assert.NotContains(t, e, "\n")

	size := len(m.Subject)
	for k, vs := range m.Header {
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
	}
	assert.LessOrEqual(t, size+len(m.Data), store.MaxDeadLetter)
}
