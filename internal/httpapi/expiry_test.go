package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/expiry"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
)

// TestExpiryWarnings: op-a's leaf listener certificate expires in 5
// days, its CA in 60; op-b's peering ends in 20 days; the client
// certificate op-a dials op-c with expires in 12 hours; op-d's peering
// ends a day and 2 s from the start. The log says each threshold once
// (7 days, 30 days, 1 day; op-d's 7 days at start, then its 1 day as it
// crosses it while the node runs), nothing for the CA; the metrics give
// seconds to expiry per certificate and per peering; /v1/peers gives
// each peer what its link depends on.
func TestExpiryWarnings(t *testing.T) {
	now := time.Now()
	ca := natstest.NewCAUntil(t, now.Add(60*expiry.Day))
	lCert, lKey := ca.IssueUntil(t, "leaf.op-a", now.Add(5*expiry.Day), net.ParseIP("127.0.0.1"))
	cCert, cKey := ca.IssueUntil(t, "op-a", now.Add(12*time.Hour))
	endB, endD := now.Add(20*expiry.Day), now.Add(expiry.Day+2*time.Second)

	cfg := baseConfig(t, "op-a")
	cfg.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0", TLS: &config.TLS{Cert: lCert, Key: lKey, CA: ca.File}}
	cfg.Peers = []config.Peer{
		{ID: "op-b", Accept: &config.Accept{User: "op-b", Password: "secret-b-123"}, SigningKey: pub(t, "op-b"), Expires: &endB,
			Import: config.ImportPolicy{Classes: []string{"*"}}},
		{ID: "op-c", Dial: &config.Dial{URL: "tls://" + natstest.FreeAddr(t), User: "op-a", Password: "secret-a-123",
			TLS: &config.TLS{Cert: cCert, Key: cKey, CA: ca.File}}, SigningKey: pub(t, "op-c"),
			Import: config.ImportPolicy{Classes: []string{"*"}}},
		{ID: "op-d", Accept: &config.Accept{User: "op-d", Password: "secret-d-123"}, SigningKey: pub(t, "op-d"), Expires: &endD,
			Import: config.ImportPolicy{Classes: []string{"*"}}},
	}
	var out nodetest.Output
	a := serveLog(t, cfg, "", zerolog.New(&out).Level(zerolog.WarnLevel))

	warned := func() map[string]int {
		m := map[string]int{}
		for _, l := range out.Lines() {
			var e map[string]any
			if json.Unmarshal([]byte(l), &e) != nil || !strings.HasPrefix(fmt.Sprint(e["message"]), "expiry:") {
				continue
			}
			m[fmt.Sprintf("%v/%v/%v/%v/%v", e["level"], e["kind"], e["name"], e["peer"], e["warning"])]++
		}
		return m
	}
	want := map[string]int{
		"warn/certificate/listener/<nil>/7d": 1,
		"error/certificate/client/op-c/1d":   1,
		"warn/peering/peering/op-b/30d":      1,
		"warn/peering/peering/op-d/7d":       1,
		"error/peering/peering/op-d/1d":      1,
	}
	natstest.WaitFor(t, 15*time.Second, func() error {
		if got := warned(); got["error/peering/peering/op-d/1d"] == 0 {
			return fmt.Errorf("op-d's peering has not crossed a day yet: %v", got)
		}
		return nil
	})
	time.Sleep(time.Second) // four more ticks of the link watcher: nothing is said again
	assert.Equal(t, want, warned(), "each threshold once: %s", out.String())
	assert.Contains(t, out.String(), "certificate listener ("+lCert+", CN=leaf.op-a) expires within 7 days: renew it")

	m := nodetest.Scrape(t, a.url)
	near := func(series string, want time.Duration) {
		t.Helper()
		v, ok := m[series]
		require.True(t, ok, "%s not exported", series)
		assert.InDelta(t, want.Seconds(), v, 60, series)
	}
	near(`anfed_certificate_expiry_seconds{cert="listener",peer=""}`, time.Until(now.Add(5*expiry.Day)))
	near(`anfed_certificate_expiry_seconds{cert="listener-ca",peer=""}`, time.Until(now.Add(60*expiry.Day)))
	near(`anfed_certificate_expiry_seconds{cert="client",peer="op-c"}`, time.Until(now.Add(12*time.Hour)))
	near(`anfed_certificate_expiry_seconds{cert="peer-ca",peer="op-c"}`, time.Until(now.Add(60*expiry.Day)))
	near(`anfed_peer_expiry_seconds{peer="op-b"}`, time.Until(endB))
	near(`anfed_peer_expiry_seconds{peer="op-d"}`, time.Until(endD))
	_, ok := m[`anfed_peer_expiry_seconds{peer="op-c"}`]
	assert.False(t, ok, "op-c's peering has no end")

	resp, err := http.Get(a.url + "/v1/peers")
	require.NoError(t, err)
	defer resp.Body.Close()
	var peers []struct {
		ID     string          `json:"id"`
		Expiry []expiry.Status `json:"expiry"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&peers))
	got := map[string][]string{}
	for _, p := range peers {
		for _, e := range p.Expiry {
			got[p.ID] = append(got[p.ID], e.Name+":"+e.Warning)
			assert.InDelta(t, time.Until(e.NotAfter).Seconds(), float64(e.SecondsLeft), 60)
		}
	}
	assert.Equal(t, map[string][]string{
		"op-b": {"listener:7d", "listener-ca:", "peering:30d"},
		"op-c": {"client:1d", "peer-ca:"},
		"op-d": {"listener:7d", "listener-ca:", "peering:1d"},
	}, got)
}
