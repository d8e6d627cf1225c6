package node_test

// Hostile input that reaches a node by every door: a local producer on
// NATS, the CloudEvents HTTP ingest, and a peer with its own real
// credentials (op-b's leaf user and password, its client certificate from
// A's CA and its signing key) speaking raw leaf protocol on A's real
// mutual-TLS leaf listener. Each attack must be refused with its reason,
// counted, dead-lettered, and leave the node alive: a normal signal
// afterwards is still accepted and crosses to op-c.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/explain"
	"github.com/anfed/anfed/internal/httpapi"
	"github.com/anfed/anfed/internal/inspect"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/schemacheck"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// hostile is A (op-a) with its HTTP ingest, op-c linked to it, and op-b's
// credentials in the attacker's hands as a raw leaf connection.
type hostile struct {
	*atkEnv
	ingest   string // the ingest's URL
	token    string
	raw      *atkRawLeaf
	dlqLocal *atkArrivals // A's local dead letters, by reason
	atC      *atkArrivals // A's signals as op-c's consumers see them
	n        atomic.Int64
}

func newHostile(t *testing.T, edit func(*config.Config)) *hostile {
	t.Helper()
	h := &hostile{atkEnv: newAtkEnv(t, edit), token: "ingest-token-123", dlqLocal: newAtkArrivals(), atC: newAtkArrivals()}
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(h.token), 0o600))
	hs := httpapi.New(httpapi.Options{Listen: "127.0.0.1:0", TokenFile: tokenFile, Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	require.NoError(t, hs.Start(h.a))
	t.Cleanup(hs.Stop)
	h.ingest = "http://" + hs.Addr() + "/v1/events"
	_, err := h.local.Subscribe("an.dlq.local.>", h.dlqLocal.addDLQ)
	require.NoError(t, err)
	require.NoError(t, h.local.Flush())
	_, err = h.pubC.Subscribe("an.sig.op-a.>", h.atC.add)
	require.NoError(t, err)
	require.NoError(t, h.pubC.Flush())

	h.raw = dialRawLeaf(t, h.addrA, h.ca.ClientTLS(t, h.bCert, h.bKey), "op-b", atkPassB, "raw-op-b", false)
	h.raw.write(t, "LS+ an.ack.op-b.>")
	h.raw.sync(t)
	return h
}

// postEvent posts ev's structured-mode body to the ingest and returns the
// HTTP status and the answer.
func (h *hostile) postEvent(t *testing.T, body []byte) (int, signal.Answer) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.ingest, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/cloudevents+json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var ans signal.Answer
	require.NoError(t, json.Unmarshal(b, &ans), "%s", b)
	return resp.StatusCode, ans
}

// sendLink sends body as op-b on link subject subj over the raw leaf and
// returns A's answer.
func (h *hostile) sendLink(t *testing.T, subj string, body []byte) signal.Answer {
	t.Helper()
	reply := fmt.Sprintf("an.ack.op-b.raw.%d", h.n.Add(1))
	h.raw.lmsg(t, subj, reply, body)
	var ans signal.Answer
	waitFor(t, 10*time.Second, func() error {
		lines := h.raw.snapshot()
		for i, l := range lines {
			f := strings.Fields(l)
			if len(f) < 2 || f[1] != reply {
				continue
			}
			for _, p := range lines[i+1:] {
				if strings.HasPrefix(p, "{") {
					return json.Unmarshal([]byte(p), &ans)
				}
			}
		}
		return fmt.Errorf("no answer from A's receiver on %s", reply)
	})
	return ans
}

// bSigned is op-b's signal id on subject subj (service/resource), signed
// by op-b, and its link subject (built by hand: subject.Link refuses
// names over the bounds).
func (h *hostile) bSigned(t *testing.T, id, subj string) (string, []byte) {
	t.Helper()
	ev := congestion("op-b", id)
	ev.Subject = subj
	ev.Path = []string{"op-b"}
	require.NoError(t, h.signerB.Sign(ev))
	return "an.link.op-b.op-b.congestion." + subject.Token(ev.Service()) + "." + subject.Token(ev.Resource()), ev.Encode()
}

// refused sends a signal from "from" ("local" or op-b) with send, and
// checks that A refused it for reason with want in the detail, counted it
// once and dead-lettered it once. It returns A's answer.
func (h *hostile) refused(t *testing.T, from string, reason reject.Reason, want string, send func() signal.Answer) signal.Answer {
	t.Helper()
	dlq := h.dlq
	if from == "local" {
		dlq = h.dlqLocal
	}
	counted, dead := h.obs.rejections(from, reason), dlq.count(string(reason))
	ans := send()
	assert.Equal(t, signal.StatusRejected, ans.Status, "%+v", ans)
	assert.Equal(t, string(reason), ans.Reason, "%+v", ans)
	assert.Contains(t, ans.Error, want)
	waitFor(t, 5*time.Second, func() error {
		if c := h.obs.rejections(from, reason); c != counted+1 {
			return fmt.Errorf("%s/%s counted %d times, want %d", from, reason, c, counted+1)
		}
		if c := dlq.count(string(reason)); c != dead+1 {
			return fmt.Errorf("%d %s dead letters from %s, want %d", c, reason, from, dead+1)
		}
		return nil
	})
	return ans
}

// alive: A still accepts a local signal and it crosses to op-c, op-c's
// signals still reach A's consumers, and op-b's normal signal is accepted
// and reaches A's consumers.
func (h *hostile) alive(t *testing.T) {
	t.Helper()
	id := fmt.Sprintf("a-alive-%d", h.n.Add(1))
	ans := publish(t, h.local, congestion("op-a", id))
	require.True(t, ans.OK(), "A's intake after the attack: %+v", ans)
	waitFor(t, 10*time.Second, func() error {
		if h.atC.count(id) == 0 {
			return fmt.Errorf("A's signal %s has not crossed to op-c", id)
		}
		return nil
	})
	h.opCFlows(t)
	bid := fmt.Sprintf("b-alive-%d", h.n.Add(1))
	subj, body := h.bSigned(t, bid, "vpn-acme/ic-paris-1")
	ans = h.sendLink(t, subj, body)
	require.True(t, ans.OK(), "A's receiver after the attack: %+v", ans)
	waitFor(t, 10*time.Second, func() error {
		if h.fromB.count(bid) == 0 {
			return fmt.Errorf("op-b's signal %s has not reached A's consumers", bid)
		}
		return nil
	})
}

// TestAttackLongNames: one signal whose service or resource name makes a
// subject pass nats-server's 4,096-byte control line used to close A's own
// store connection for good. Sent by a local producer, over the HTTP
// ingest and by op-b over its leaf link, in ASCII and in non-ASCII (which
// percent-encoding triples), it is refused as bad-attribute with the bound
// and the length, counted, dead-lettered, and A stays alive.
func TestAttackLongNames(t *testing.T) {
	h := newHostile(t, nil)
	names := []struct {
		name, subj, want string
	}{
		{"4,000 ASCII bytes", "vpn-acme/" + strings.Repeat("r", 4000), "the resource is 4000 bytes, 4000 once percent-encoded"},
		{"700 non-ASCII characters", strings.Repeat("é", 700) + "/ic-1", "the service is 1400 bytes, 4200 once percent-encoded"},
		{"one byte over", "vpn-acme/" + strings.Repeat("r", inspect.MaxNameToken+1), "1025 once percent-encoded for its subject token: at most 1024"},
	}
	doors := []struct {
		name, from string
		send       func(t *testing.T, id, subj string) signal.Answer
	}{
		{"local producer", "local", func(t *testing.T, id, subj string) signal.Answer {
			ev := congestion("op-a", id)
			ev.Subject = subj
			return publish(t, h.local, ev)
		}},
		{"HTTP ingest", "local", func(t *testing.T, id, subj string) signal.Answer {
			ev := congestion("op-a", id)
			ev.Subject = subj
			code, ans := h.postEvent(t, ev.Encode())
			assert.Equal(t, http.StatusBadRequest, code)
			return ans
		}},
		{"peer over its leaf link", "op-b", func(t *testing.T, id, subj string) signal.Answer {
			lsubj, body := h.bSigned(t, id, subj)
			t.Logf("link subject %d bytes", len(lsubj))
			return h.sendLink(t, lsubj, body)
		}},
	}
	for _, d := range doors {
		for _, n := range names {
			t.Run(d.name+"/"+n.name, func(t *testing.T) {
				ans := h.refused(t, d.from, reject.BadAttribute, n.want, func() signal.Answer {
					return d.send(t, fmt.Sprintf("long-%d", h.n.Add(1)), n.subj)
				})
				assert.Less(t, len(ans.Error), 400, "the refusal states the bound and the length, not the name")
				h.alive(t)
			})
		}
	}
}

// TestAttackInvalidUnicode: invalid UTF-8 and lone surrogate escapes in id,
// in an extension and in data — which encoding/json repairs to U+FFFD, so
// that the signal was accepted, stored and forwarded with other bytes than
// it came with — are refused as malformed with the attribute and the byte
// offset, from a local producer, the HTTP ingest and op-b over its link,
// counted, dead-lettered, and A stays alive.
func TestAttackInvalidUnicode(t *testing.T) {
	h := newHostile(t, nil)
	// Each mutation makes the body of ev, signed (for the peer) over what
	// a lenient reader would decode, so that only strictness refuses it.
	mutations := []struct {
		name, want string
		edit       func(ev *signal.Event)        // before signing
		body       func(ev *signal.Event) []byte // after signing
	}{
		{"invalid byte in id", `attribute "id": at byte`,
			func(ev *signal.Event) { ev.ID += "\uFFFD" },
			func(ev *signal.Event) []byte { return bytes.Replace(ev.Encode(), []byte("\uFFFD"), []byte{0xff}, 1) }},
		{"lone surrogate in an extension", `attribute "vendorx": at byte`,
			func(ev *signal.Event) {},
			func(ev *signal.Event) []byte {
				return bytes.Replace(ev.Encode(), []byte(`"vendorx":"kept"`), []byte(`"vendorx":"\ud800"`), 1)
			}},
		{"invalid byte in data", `attribute "data": at byte`,
			func(ev *signal.Event) {
				ev.Data = bytes.Replace(ev.Data, []byte(`"ic-paris-1"`), []byte("\"ic-paris-1\xff\""), 1)
			},
			func(ev *signal.Event) []byte { return ev.Encode() }},
		{"lone surrogate in data", `\udbff is a lone surrogate`,
			func(ev *signal.Event) {
				ev.Data = bytes.Replace(ev.Data, []byte(`"ic-paris-1"`), []byte(`"ic-paris-1\udbff"`), 1)
			},
			func(ev *signal.Event) []byte { return ev.Encode() }},
	}
	doors := []struct {
		name, from string
		send       func(t *testing.T, ev *signal.Event, body func(*signal.Event) []byte) signal.Answer
	}{
		{"local producer", "local", func(t *testing.T, ev *signal.Event, body func(*signal.Event) []byte) signal.Answer {
			m, err := h.local.Request(subject.IntakePrefix, body(ev), 5*time.Second)
			require.NoError(t, err)
			ans, err := signal.ParseAnswer(m.Data)
			require.NoError(t, err)
			return ans
		}},
		{"HTTP ingest", "local", func(t *testing.T, ev *signal.Event, body func(*signal.Event) []byte) signal.Answer {
			code, ans := h.postEvent(t, body(ev))
			assert.Equal(t, http.StatusBadRequest, code)
			return ans
		}},
		{"peer over its leaf link", "op-b", func(t *testing.T, ev *signal.Event, body func(*signal.Event) []byte) signal.Answer {
			ev.Path = []string{"op-b"}
			require.NoError(t, h.signerB.Sign(ev))
			return h.sendLink(t, atkLinkSubject("op-b", ev, "congestion"), body(ev))
		}},
	}
	for _, d := range doors {
		for _, mu := range mutations {
			t.Run(d.name+"/"+mu.name, func(t *testing.T) {
				origin := "op-a"
				if d.from != "local" {
					origin = d.from
				}
				ev := congestion(origin, fmt.Sprintf("utf8-%d", h.n.Add(1)))
				mu.edit(ev)
				h.refused(t, d.from, reject.Malformed, mu.want, func() signal.Answer { return d.send(t, ev, mu.body) })
				h.alive(t)
			})
		}
	}
}

// TestAttackDeadLetterFlood: op-b floods A with 600 oversized signals
// (120 KiB each, under its 128 KiB max_payload) and 600 malformed ones.
// Each is refused and dead-lettered, but a dead letter keeps only the first
// 4 KiB of a body, with its size and SHA-256, and each sender and reason
// keeps its latest 100: the local dead letter and op-c's from before the
// flood are still in ANFED_DLQ afterwards, op-b holds 200, and the stream
// stays under 210 dead letters' worth of bytes. Before, every body was
// stored whole and the flood flushed the 64 MiB stream, the earlier dead
// letters with it.
func TestAttackDeadLetterFlood(t *testing.T) {
	h := newHostile(t, func(c *config.Config) {
		c.Peers[1].Import.Classes = []string{"congestion"} // op-c's faults are refused: not-imported
	})
	ctx := context.Background()
	js, err := jetstream.New(h.local)
	require.NoError(t, err)
	dlq, err := js.Stream(ctx, store.DLQStream)
	require.NoError(t, err)
	has := func(subj string) error {
		_, err := dlq.GetLastMsgForSubject(ctx, subj)
		return err
	}

	// The dead letters that must survive: a local producer's, op-c's.
	ans := publish(t, h.local, &signal.Event{ID: "x", Source: "anfed://op-a/p"})
	require.Equal(t, string(reject.MissingAttribute), ans.Reason, "%+v", ans)
	require.True(t, publish(t, h.pubC, faultEvent("op-c", "c-fault-1")).OK())
	waitFor(t, 10*time.Second, func() error {
		if err := has("an.dlq.local.missing-attribute"); err != nil {
			return fmt.Errorf("local dead letter: %w", err)
		}
		if err := has("an.dlq.op-c.not-imported"); err != nil {
			return fmt.Errorf("op-c's dead letter: %w", err)
		}
		return nil
	})

	const n = 600
	big := []byte(`{"specversion":"1.0","pad":"` + strings.Repeat("x", 120<<10) + `"}`)
	bad := []byte(`{"specversion":"1.0","id":`)
	lsubj, _ := h.bSigned(t, "flood", "vpn-acme/ic-paris-1")
	for i := range n {
		h.raw.lmsg(t, lsubj, "", big)
		h.raw.lmsg(t, lsubj, "", bad)
		if i%50 == 0 {
			h.raw.sync(t)
		}
	}
	waitFor(t, 60*time.Second, func() error {
		o, m := h.dlq.count(string(reject.Oversized)), h.dlq.count(string(reject.Malformed))
		if o < n || m < n {
			return fmt.Errorf("%d oversized and %d malformed dead letters from op-b so far, want %d each", o, m, n)
		}
		return nil
	})
	assert.Equal(t, n, h.obs.rejections("op-b", reject.Oversized), "counted")

	require.NoError(t, has("an.dlq.local.missing-attribute"), "the local dead letter from before the flood")
	require.NoError(t, has("an.dlq.op-c.not-imported"), "op-c's dead letter from before the flood")
	info, err := dlq.Info(ctx, jetstream.WithSubjectFilter("an.dlq.op-b.>"))
	require.NoError(t, err)
	per := store.DefaultDeadLettersPerReason
	assert.Equal(t, map[string]uint64{"an.dlq.op-b.oversized": uint64(per), "an.dlq.op-b.malformed": uint64(per)}, info.State.Subjects)
	bound := uint64((2*per + 10) * store.MaxDeadLetter)
	assert.LessOrEqual(t, info.State.Bytes, bound, "ANFED_DLQ's bytes")
	t.Logf("ANFED_DLQ after the flood: %d dead letters, %d bytes (bound %d)", info.State.Msgs, info.State.Bytes, bound)

	m, err := dlq.GetLastMsgForSubject(ctx, "an.dlq.op-b.oversized")
	require.NoError(t, err)
	assert.Equal(t, big[:store.DeadLetterExcerpt], m.Data, "an excerpt, never the body")
	sum := sha256.Sum256(big)
	assert.Equal(t, strconv.Itoa(len(big)), m.Header.Get(store.HeaderBodySize))
	assert.Equal(t, hex.EncodeToString(sum[:]), m.Header.Get(store.HeaderBodySHA256))
	assert.Contains(t, m.Header.Get(store.HeaderError), "over the 65536-byte limit")
	h.alive(t)
}

// TestAttackNotAuthorized: op-b may originate only congestion on vpn-*
// (peers[op-b].may_originate). With its real credentials and key it raises
// a fault on vpn-acme and a congestion on core, validly signed: both are
// refused not-authorized, counted and dead-lettered; its congestion on
// vpn-acme passes and reaches A's consumers. anfed policy explain, run on
// A's config, gives the same verdicts with the same reason.
func TestAttackNotAuthorized(t *testing.T) {
	h := newHostile(t, func(c *config.Config) {
		c.Peers[0].MayOriginate = &config.MayOriginate{Classes: []string{"congestion"}, Services: []string{"vpn-*"}}
	})
	cat, err := schemacheck.Load()
	require.NoError(t, err)
	ex, err := explain.New(h.cfgA, cat)
	require.NoError(t, err)
	tests := []struct {
		name, class, subj string
		ok                bool
	}{
		{"a fault, a class op-b may not originate", "fault", "vpn-acme/ic-paris-1", false},
		{"a congestion on core, a service op-b may not originate", "congestion", "core/pe-1", false},
		{"a congestion on vpn-acme: allowed", "congestion", "vpn-acme/ic-paris-2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("auth-%d", h.n.Add(1))
			ev := congestion("op-b", id)
			if tt.class == "fault" {
				ev = faultEvent("op-b", id)
			}
			ev.Subject = tt.subj
			ev.Path = []string{"op-b"}
			require.NoError(t, h.signerB.Sign(ev))

			r, err := ex.Explain(ev, tt.class, "op-b")
			require.NoError(t, err)
			require.NotNil(t, r.Import)
			assert.Equal(t, tt.ok, r.Import.Accept, "explain: %+v", r.Import)
			send := func() signal.Answer { return h.sendLink(t, atkLinkSubject("op-b", ev, tt.class), ev.Encode()) }
			if tt.ok {
				ans := send()
				assert.True(t, ans.OK(), "%+v", ans)
				waitFor(t, 10*time.Second, func() error {
					if h.fromB.count(id) == 0 {
						return fmt.Errorf("op-b's allowed signal %s has not reached A's consumers", id)
					}
					return nil
				})
				assert.Contains(t, r.Import.Rule, "may_originate lets op-b originate congestion on vpn-acme")
				return
			}
			ans := h.refused(t, "op-b", reject.NotAuthorized, "op-b may not originate "+tt.class, send)
			assert.Equal(t, string(reject.NotAuthorized), r.Import.Reason, "explain agrees with the node")
			assert.Equal(t, ans.Error, r.Import.Rule, "explain runs the same check")
			assert.Zero(t, h.fromB.count(id), "nothing reached A's consumers")
		})
	}
}
