package demo

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDemoCrossesAndLosesNothing(t *testing.T) {
	var out bytes.Buffer
	s, err := Run(context.Background(), Options{
		Duration: 3 * time.Second,
		Interval: 50 * time.Millisecond,
		Dir:      t.TempDir(),
		Out:      &out,
		Log:      zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel),
	})
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	assert.Regexp(t, regexp.MustCompile(`^summary: crossed=\d+ mitigations=\d+ rejected=\d+ lost=\d+ proposals=\d+ accepted=\d+ conflicts=\d+ intents=\d+ reports=\d+$`), last)
	assert.Equal(t, s.String(), last)
	assert.Equal(t, 1, strings.Count(out.String(), "summary:"), "exactly one summary line")
	assert.Zero(t, s.Lost, out.String())
	assert.Positive(t, s.Mitigations)
	assert.Positive(t, s.Rejected, "the buggy probe's signals are refused")
	// Crossings: A->B signals, B->A mitigations, B->C SLA risks.
	for _, want := range []string{"op-a -> op-b  congestion", "op-b -> op-a  mitigation", "op-b -> op-c  sla-risk"} {
		assert.Contains(t, out.String(), want)
	}
	assert.NotContains(t, out.String(), "core-backbone", "a private service never crosses")
	assert.GreaterOrEqual(t, s.Crossed, s.Mitigations)
	// The coordinated action: op-b's reroute accepted and leased, op-c's
	// conflicting one declined naming op-b's lease, the same every run.
	assert.Equal(t, [3]int{2, 1, 1}, [3]int{s.Proposals, s.Accepted, s.Conflicts}, out.String())
	assert.Regexp(t, `coordination: op-b proposed a reroute of ic-\S+; op-a accepted \(coordination.auto_accept\[0\]\)`, out.String())
	assert.Regexp(t, `coordination: op-c proposed a conflicting reroute of (ic-\S+); op-a declined it: (ic-\S+) is leased to op-b \(action op-b-reroute-ic-\S+\) until`, out.String())
	assert.Contains(t, out.String(), "coordination: op-b completed its reroute; op-a released the lease")
	// The intent: op-a's crosses to op-b, op-b accepts it, and its reports
	// of each change of compliance cross back.
	assert.Equal(t, 1, s.Intents, out.String())
	assert.GreaterOrEqual(t, s.Reports, 3, "compliant, degraded, compliant")
	for _, want := range []string{"op-a -> op-b  intent", "op-b -> op-a  intent-report", "intents: op-b accepted acme-vpn (intents.accept[0])",
		"its report reached op-a: acme-vpn is degraded", "its report reached op-a: acme-vpn is compliant"} {
		assert.Contains(t, out.String(), want)
	}
	for _, want := range []string{"op-b -> op-a  action", "op-a -> op-b  action", "op-c -> op-a  action", "op-a -> op-c  action"} {
		assert.Contains(t, out.String(), want)
	}
}
