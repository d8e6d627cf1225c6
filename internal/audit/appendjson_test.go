package audit

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// records are the shapes appendJSON must write as encoding/json does.
func records() []Record {
	at := time.Date(2026, 12, 7, 8, 0, 1, 123456789, time.UTC)
	sent := Record{Chain: "C1", N: 42, Prev: strings.Repeat("ab", 32), Time: at, Node: "op-a", Kind: KindSent, Peer: "op-b",
		Signal: "b0000000042-1765094401", Source: "anfed://op-a/bench", Type: "net.anfed.congestion.v1", Subject: "vpn-acme/ic-paris-1",
		Digest: Digest([]byte("body")), Size: 1024, Redacted: []string{"/data/customer", "/data/site"}, Rule: "export.classes[0]"}
	action := Record{Chain: "C1", N: 1, Time: at, Node: "op-a", Kind: KindAction, Peer: "op-c", Signal: "p-1",
		Action: "reroute", Phase: "decided", DecidedBy: "Jane <noc@op-a> & co", Reason: "quote\" backslash\\ nl\n é \u2028 \xff"}
	paris := sent
	paris.Time = time.Date(2026, 12, 7, 9, 0, 1, 0, time.FixedZone("CET", 3600))
	empty := Record{}
	oddZone := sent
	oddZone.Time = time.Date(2026, 12, 7, 9, 0, 1, 0, time.FixedZone("LMT", 561))
	farYear := sent
	farYear.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	hashed := sent
	hashed.Hash = sent.Sum()
	emptyList := sent
	emptyList.Redacted = []string{}
	return []Record{sent, action, paris, empty, oddZone, farYear, hashed, emptyList}
}

// appendJSON writes json.Marshal's bytes, or leaves the record to it
// (an odd zone offset, a year json.Marshal refuses); never a record the
// writer makes (UTC).
func TestAppendJSONIsJSONMarshal(t *testing.T) {
	for i, r := range records() {
		want, err := json.Marshal(r)
		got, ok := appendJSON([]byte("x"), &r)
		if !ok {
			assert.True(t, err != nil || r.Time.Location() != time.UTC, "record %d: a UTC time left to encoding/json", i)
			continue
		}
		require.NoError(t, err, "record %d", i)
		assert.Equal(t, string(want), string(got[1:]), "record %d", i)
	}
}

// The writer's line is the record's JSON with its Hash set to Sum, as
// json.Marshal writes it, and a newline.
func TestAppendLine(t *testing.T) {
	for i, r := range records()[:3] {
		want := r
		want.Hash = want.Sum()
		j, err := json.Marshal(want)
		require.NoError(t, err)
		got := r
		assert.Equal(t, string(j)+"\n", string(appendLine([]byte("x"), &got)[1:]), "record %d", i)
		assert.Equal(t, want.Hash, got.Hash, "record %d", i)
	}
	r := records()[0]
	assert.Equal(t, 1.0, testing.AllocsPerRun(100, func() { _ = appendLine(make([]byte, 0, 2048)[:0:2048], &r) }), "the hash string only")
}

func FuzzAppendJSON(f *testing.F) {
	for _, r := range records() {
		f.Add(r.Chain, r.Prev, r.Peer, r.Signal, r.Subject, r.Reason, r.Time.UnixNano(), r.Size, strings.Join(r.Redacted, "\x00"))
	}
	f.Fuzz(func(t *testing.T, chain, prev, peer, sig, subj, reason string, at int64, size int, redacted string) {
		r := Record{Chain: chain, N: uint64(len(chain)), Prev: prev, Time: time.Unix(0, at).UTC(), Node: "op-a", Kind: KindSent,
			Peer: peer, Signal: sig, Subject: subj, Size: size, Reason: reason}
		if redacted != "" {
			r.Redacted = strings.Split(redacted, "\x00")
		}
		want, err := json.Marshal(r)
		got, ok := appendJSON(nil, &r)
		if !ok {
			return // left to encoding/json
		}
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	})
}
