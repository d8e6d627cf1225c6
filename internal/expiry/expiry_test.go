package expiry_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/expiry"
	"github.com/anfed/anfed/internal/natstest"
)

// TestWatchWarnsOncePerThreshold: an item warns when it crosses 30, 7
// and 1 days and when it expires, once each, whatever the looks between;
// at the first look, once for the tightest threshold it is past.
func TestWatchWarnsOncePerThreshold(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	far := expiry.Item{Kind: expiry.KindPeering, Name: "peering", Peer: "op-b", NotAfter: t0.Add(40 * expiry.Day)}
	near := expiry.Item{Kind: expiry.KindCertificate, Name: expiry.CertListener, NotAfter: t0.Add(5 * expiry.Day)}
	w := expiry.NewWatch([]expiry.Item{far, near})
	assert.Equal(t, []string{"listener@7d"}, said(w.Tick(t0)), "near, 5 days left: once, for 7 days, not for 30 too")
	assert.Empty(t, said(w.Tick(t0.Add(time.Minute))), "nothing new")
	assert.Equal(t, []string{"listener@expired"}, said(w.Tick(t0.Add(9*expiry.Day))), "near ended; far has 31 days")
	assert.Equal(t, []string{"peering@30d"}, said(w.Tick(t0.Add(10*expiry.Day))), "far crosses 30 days")
	assert.Empty(t, said(w.Tick(t0.Add(10*expiry.Day+time.Hour))))

	w2 := expiry.NewWatch([]expiry.Item{near})
	assert.Equal(t, []string{"listener@30d"}, said(w2.Tick(t0.Add(-3*expiry.Day))))
	assert.Equal(t, []string{"listener@1d"}, said(w2.Tick(t0.Add(4*expiry.Day+time.Hour))), "7 days crossed unseen: the tightest only")
	assert.Empty(t, w2.Tick(t0.Add(4*expiry.Day+2*time.Hour)))
	assert.Equal(t, []string{"listener@expired"}, said(w2.Tick(t0.Add(5*expiry.Day))))
	assert.Empty(t, w2.Tick(t0.Add(6*expiry.Day)))

	st := w.Status(t0.Add(10 * expiry.Day))
	require.Len(t, st, 2)
	assert.Equal(t, "30d", st[0].Warning)
	assert.Equal(t, int64(30*24*3600), st[0].SecondsLeft)
	assert.Equal(t, "expired", st[1].Warning)
	assert.Equal(t, int64(-5*24*3600), st[1].SecondsLeft)
}

// TestRenewKeepsWhatWasSaid: a reload watches its policy anew; what did
// not change is not said again, a renewed certificate is watched afresh.
func TestRenewKeepsWhatWasSaid(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	a := expiry.Item{Kind: expiry.KindCertificate, Name: expiry.CertListener, File: "a.pem", NotAfter: t0.Add(5 * expiry.Day)}
	b := expiry.Item{Kind: expiry.KindPeering, Name: "peering", Peer: "op-b", NotAfter: t0.Add(20 * expiry.Day)}
	w := expiry.NewWatch([]expiry.Item{a, b})
	assert.Equal(t, []string{"listener@7d", "peering@30d"}, said(w.Tick(t0)))
	renewed := a
	renewed.NotAfter = t0.Add(3 * expiry.Day) // a certificate put in place that ends sooner
	w = w.Renew(expiry.NewWatch([]expiry.Item{renewed, b}))
	assert.Equal(t, []string{"listener@7d"}, said(w.Tick(t0)), "the renewed one afresh, the peering not again")
	assert.Empty(t, w.Tick(t0.Add(time.Hour)))
}

func said(ws []expiry.Warning) []string {
	var out []string
	for _, x := range ws {
		s := x.Item.Name + "@"
		if x.Expired() {
			s += "expired"
		} else {
			s += fmt.Sprintf("%dd", x.Threshold/expiry.Day)
		}
		out = append(out, s)
	}
	return out
}

// TestCertificate reads a PEM file's certificates and takes the one that
// expires first; a file without one is an error.
func TestCertificate(t *testing.T) {
	ca := natstest.NewCAUntil(t, time.Now().Add(90*expiry.Day))
	until := time.Now().Add(6 * expiry.Day).Truncate(time.Second)
	cert, _ := ca.IssueUntil(t, "leaf.op-a", until)
	it, err := expiry.Certificate(expiry.CertListener, "", cert)
	require.NoError(t, err)
	assert.Equal(t, until.UTC(), it.NotAfter)
	assert.Equal(t, "CN=leaf.op-a", it.Subject)
	// A chain: the weakest link.
	chain := filepath.Join(t.TempDir(), "chain.pem")
	b1, err := os.ReadFile(cert)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(chain, append(ca.PEM(t), b1...), 0o600))
	it, err = expiry.Certificate(expiry.CertListener, "", chain)
	require.NoError(t, err)
	assert.Equal(t, until.UTC(), it.NotAfter)

	empty := filepath.Join(t.TempDir(), "empty.pem")
	require.NoError(t, os.WriteFile(empty, []byte("nothing"), 0o600))
	_, err = expiry.Certificate(expiry.CertPeerCA, "op-b", empty)
	assert.ErrorContains(t, err, "holds no PEM certificate")
}
