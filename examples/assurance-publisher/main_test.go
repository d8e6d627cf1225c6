package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const user, password = "assurance", "assurance-pass-123"

// startNode starts a real anfed node for op-a with a TCP client listener
// and a local user; its intake checks every signal against the catalog.
func startNode(t *testing.T) *node.Node {
	t.Helper()
	cfg := nodetest.WithClient(nodetest.BaseConfig(t, "op-a"), user, password)
	cfg.Storage.DuplicateWindow = config.Duration(10 * time.Minute)
	return nodetest.Start(t, new(nodetest.Keys), cfg, node.WithLogger(zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)))
}

// stored reads every signal the node stored, in order.
func stored(t *testing.T, url string) []*signal.Event {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserInfo(user, password))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "ANFED_SIGNALS")
	require.NoError(t, err)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"an.sig.op-a.>"}})
	require.NoError(t, err)
	var out []*signal.Event
	pending := cons.CachedInfo().NumPending
	for pending > 0 {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		require.NoError(t, err)
		meta, err := m.Metadata()
		require.NoError(t, err)
		pending = meta.NumPending
		ev, err := signal.DecodeStructured(m.Data())
		require.NoError(t, err)
		out = append(out, ev)
	}
	return out
}

// The publisher's signals, against a real node: every one accepted (the
// node's intake checks each against its class schema), each condition's
// lifecycle well formed in the stored stream, both classes and every state
// present; run again with the same seed and start, every signal is
// answered duplicate: a retry never stores a signal twice.
func TestPublisherSignalsAreAcceptedAndWellFormed(t *testing.T) {
	n := startNode(t)
	o := options{URL: n.ClientURL(), User: user, Password: password, Operator: "op-a",
		Services: []string{"vpn-acme", "transit-c"}, Seed: 7, Steps: 240, Step: time.Minute,
		Start: time.Now().UTC().Truncate(time.Second), Confirm: 2, Window: 12, Horizon: 30}
	var out bytes.Buffer
	st, err := run(context.Background(), o, &out)
	require.NoError(t, err)
	t.Logf("%d signals; last lines:\n%s", st.Published, tail(out.String(), 12))
	assert.Zero(t, st.Rejected, "refused: %v", st.Reasons)
	assert.Equal(t, st.Published, st.Accepted)
	for _, k := range []string{"performance-deviation raised", "performance-deviation updated", "performance-deviation cleared", "sla-risk raised", "sla-risk cleared"} {
		assert.Positive(t, st.ByKind[k], "no %s in 240 samples of 6 KPIs with seed 7", k)
	}
	assert.Contains(t, out.String(), st.String())

	evs := stored(t, n.ClientURL())
	require.Len(t, evs, st.Accepted, "every accepted signal is stored, once")
	on := map[string]bool{}
	for _, ev := range evs {
		key := ev.Type + " " + ev.Subject
		switch ev.State {
		case signal.Raised:
			assert.False(t, on[key], "%s raised twice without a clear (%s)", key, ev.ID)
			on[key] = true
		case signal.Updated, signal.Cleared:
			assert.True(t, on[key], "%s %s while not raised (%s)", key, ev.State, ev.ID)
			on[key] = ev.State == signal.Updated
		}
		var d map[string]any
		require.NoError(t, json.Unmarshal(ev.Data, &d))
		if strings.Contains(ev.Type, "sla-risk") {
			assert.InDelta(t, 0.5, d["probability"], 0.5)
			assert.InDelta(t, 0.5, d["confidence"], 0.5)
		}
	}

	// The same seed and start again: the same signals, each answered
	// duplicate.
	var out2 bytes.Buffer
	st2, err := run(context.Background(), o, &out2)
	require.NoError(t, err)
	assert.Equal(t, st.Published, st2.Published, "the same seed gives the same signals")
	assert.Equal(t, st.Published, st2.Duplicate)
	assert.Zero(t, st2.Accepted)
	assert.Len(t, stored(t, n.ClientURL()), st.Accepted)
}

// The check above can fail: a signal that breaks its schema is refused by
// the node, counted and printed with the reason.
func TestPublisherCountsRefusals(t *testing.T) {
	n := startNode(t)
	nc, err := nats.Connect(n.ClientURL(), nats.UserInfo(user, password))
	require.NoError(t, err)
	defer nc.Close()
	var out bytes.Buffer
	p := &publisher{o: options{Operator: "op-a", Step: time.Minute, Horizon: 30, Window: 12}, nc: nc, out: &out,
		source: "anfed://op-a/assurance-publisher", runID: 1, st: stats{ByKind: map[string]int{}}}
	k := kpis[0]
	s := p.risk("vpn-acme", k, raised, prediction{Value: 45, Probability: 1.5, Confidence: 0.9}, time.Now().UTC())
	require.NoError(t, p.send(context.Background(), s))
	s = p.deviation("vpn-acme", k, raised, 33, time.Now().UTC())
	require.NoError(t, p.send(context.Background(), s))
	assert.Equal(t, 2, p.st.Published)
	assert.Equal(t, 1, p.st.Rejected)
	assert.Equal(t, 1, p.st.Accepted)
	require.Len(t, p.st.Reasons, 1)
	assert.Contains(t, p.st.Reasons[0], "schema-invalid")
	assert.Contains(t, p.st.Reasons[0], "/probability")
	assert.Contains(t, out.String(), "refused: schema-invalid")
}

func TestDeviationHysteresis(t *testing.T) {
	k := kpis[0] // latency: raise beyond 30, clear within 26
	d := &deviationDetector{k: k, confirm: 2, updateStep: 10}
	steps := []struct {
		v    float64
		want transition
	}{
		{20, none},
		{31, none},   // one sample beyond: not yet
		{25, none},   // back: the streak restarts
		{31, none},   //
		{32, raised}, // two in a row
		{33, none},   // moved 3.3 points of deviation: under the update step
		{36, updated},
		{28, updated}, // between clear and raise: still on; 40 points better
		{29, none},
		{25, none},    // one sample within clear
		{27, none},    // and out again: the streak restarts
		{25.5, none},  //
		{26, cleared}, // two in a row within 26
		{29, none},    // between the bounds: stays off
		{29.9, none},
	}
	for i, s := range steps {
		assert.Equal(t, s.want, d.observe(s.v), "step %d: %g", i, s.v)
	}

	// Throughput deviates below: raise under 800, clear at 850 and over.
	tp := &deviationDetector{k: kpis[2], confirm: 1, updateStep: 10}
	assert.Equal(t, none, tp.observe(810))
	assert.Equal(t, raised, tp.observe(790))
	assert.Equal(t, none, tp.observe(840))
	assert.Equal(t, cleared, tp.observe(850))
}

func TestRiskPredictorFollowsTheTrend(t *testing.T) {
	k := kpis[0] // latency, SLA <= 40 ms
	r := &riskPredictor{k: k, window: 5, horizon: 10}
	var got []transition
	var last prediction
	feed := func(vs ...float64) {
		for _, v := range vs {
			tr, p := r.observe(v)
			if tr != none {
				got = append(got, tr)
				last = p
			}
		}
	}
	feed(20, 20, 20, 20, 20) // flat at the baseline
	assert.Empty(t, got)
	feed(21, 22, 23, 24, 25) // +1 ms a sample: 35 in 10 samples, inside
	assert.Empty(t, got)
	feed(27, 29) // the trend steepens: 43.8 in 10 samples
	require.Equal(t, []transition{raised}, got)
	assert.Greater(t, last.Value, 40.0)
	assert.Greater(t, last.Probability, 0.5)
	assert.Greater(t, last.Confidence, 0.9, "nearly a straight line")
	p0 := last.Probability
	feed(31) // steeper still: the probability moved by 0.1 or more
	require.Equal(t, []transition{raised, updated}, got)
	assert.InDelta(t, 48.8, last.Value, 0.2)
	assert.GreaterOrEqual(t, last.Probability-p0, 0.1)
	feed(31, 31, 31, 31, 31) // flat at 31: predicted 31, inside by more than the margin
	assert.Equal(t, cleared, got[len(got)-1])
	assert.NotContains(t, got[1:], raised)
	assert.Less(t, last.Probability, 0.5)

	// Past the bound but moving away from it: no new risk.
	r2 := &riskPredictor{k: k, window: 3, horizon: 1}
	tr, _ := r2.observe(60)
	assert.Equal(t, none, tr)
	r2.observe(55)
	tr, _ = r2.observe(50)
	assert.Equal(t, none, tr)
}

func TestSeriesIsSeeded(t *testing.T) {
	take := func(seed uint64, svc string) []float64 {
		s := newSeries(seed, svc, kpis[0])
		var v []float64
		for range 200 {
			v = append(v, s.next())
		}
		return v
	}
	assert.Equal(t, take(3, "vpn-acme"), take(3, "vpn-acme"))
	assert.NotEqual(t, take(3, "vpn-acme"), take(4, "vpn-acme"))
	assert.NotEqual(t, take(3, "vpn-acme"), take(3, "transit-c"))
	for _, v := range take(3, "vpn-acme") {
		assert.GreaterOrEqual(t, v, 0.0)
	}
}

func TestRefusesBadOptions(t *testing.T) {
	_, err := run(context.Background(), options{Confirm: 0, Window: 12, Horizon: 30, Step: time.Minute, Services: []string{"s"}}, &bytes.Buffer{})
	assert.ErrorContains(t, err, "--confirm >= 1")
	assert.Equal(t, "PT1M", isoDuration(time.Minute))
	assert.Equal(t, "PT30S", isoDuration(30*time.Second))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprint(strings.Join(lines, "\n"))
}
