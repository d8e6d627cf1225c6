package link

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestGaps(t *testing.T) {
	type msg struct {
		epoch string
		seq   string // "": no stream header
		after time.Duration
	}
	n := func(e string, seqs ...uint64) []msg {
		var ms []msg
		for _, s := range seqs {
			ms = append(ms, msg{epoch: e, seq: strconv.FormatUint(s, 10)})
		}
		return ms
	}
	cat := func(parts ...[]msg) []msg {
		var ms []msg
		for _, p := range parts {
			ms = append(ms, p...)
		}
		return ms
	}
	churn := func(seq uint64, k int) []msg {
		var ms []msg
		for i := range k {
			ms = append(ms, msg{epoch: "e" + strconv.Itoa(i), seq: strconv.FormatUint(seq, 10)})
		}
		return ms
	}
	for _, tc := range []struct {
		name                              string
		msgs                              []msg
		received, lost, anomalies, epochs uint64
		lastAnomaly                       Anomaly
	}{
		{"in order", n("e", 1, 2, 3), 3, 0, 0, 0, ""},
		{"a gap", n("e", 1, 2, 6, 7), 4, 3, 0, 0, ""},
		{"the first seen is the baseline", n("e", 5, 6), 2, 0, 0, 0, ""},
		{"a new epoch from its start", cat(n("e", 5), n("f", 3)), 2, 2, 0, 1, ""},
		{"late arrival taken back", n("e", 1, 3, 2), 3, 0, 0, 0, ""},
		{"a new epoch restarts", cat(n("e", 1, 2), n("f", 1, 3)), 4, 1, 0, 1, ""},
		{"not a stream message", cat(n("e", 1), []msg{{}}, n("e", 2)), 2, 0, 0, 0, ""},
		// What a hostile peer sends.
		{"a jump to 2^63, then back", n("e", 1, 1<<63, 2), 3, 0, 1, 0, ""},
		{"a wrap near the top", n("e", math.MaxUint64-1, math.MaxUint64, 1), 3, 0, 1, 0, AnomalyBackwards},
		{"a jump to the top", n("e", 1, math.MaxUint64, 3), 3, 1, 1, 0, ""},
		{"a duplicate", n("e", 1, 2, 2), 3, 0, 1, 0, AnomalyBackwards},
		{"a late one replayed", n("e", 1, 5, 3, 3), 4, 2, 1, 0, AnomalyBackwards},
		{"older than the reorder window", n("e", 1, 100, 2), 3, 98, 1, 0, AnomalyBackwards},
		{"before the baseline", n("e", 10, 11, 9), 3, 0, 1, 0, AnomalyBackwards},
		{"not a number", cat(n("e", 1), []msg{{epoch: "e", seq: "abc"}}), 2, 0, 1, 0, AnomalyBadNumber},
		{"negative", cat(n("e", 1), []msg{{epoch: "e", seq: "-1"}}), 2, 0, 1, 0, AnomalyBadNumber},
		{"zero", cat(n("e", 1), []msg{{epoch: "e", seq: "0"}}), 2, 0, 1, 0, AnomalyBadNumber},
		{"past 2^64", cat(n("e", 1), []msg{{epoch: "e", seq: "18446744073709551616"}}), 2, 0, 1, 0, AnomalyBadNumber},
		{"a huge string", cat(n("e", 1), []msg{{epoch: "e", seq: strings.Repeat("9", 100000)}}), 2, 0, 1, 0, AnomalyBadNumber},
		{"a huge epoch", cat(n("e", 1), []msg{{epoch: strings.Repeat("x", 100000), seq: "1"}}), 2, 0, 1, 0, AnomalyBadEpoch},
		{"epoch churn from 1: no loss claimed", churn(1, 1000), 1000, 0, 0, 999, ""},
		{"epoch churn from 2^40: not believed", churn(1<<40, 1000), 1000, 0, 999, 0, AnomalyJump},
		{"epoch churn just under the credit", churn(StreamSlack/10, 20), 20, 10 * (StreamSlack/10 - 1), 9, 10, AnomalyJump},
		{"the credit grows with time", []msg{{epoch: "e", seq: "1"}, {epoch: "e", seq: strconv.Itoa(2 + StreamSlack + StreamMaxRate), after: time.Second}},
			2, StreamSlack + StreamMaxRate, 0, 0, ""},
		{"but not past the credit", []msg{{epoch: "e", seq: "1"}, {epoch: "e", seq: strconv.Itoa(3 + StreamSlack + StreamMaxRate), after: time.Second}},
			2, 0, 1, 0, AnomalyJump},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g Gaps
			now := time.Unix(1_800_000_000, 0)
			var last Anomaly
			for _, m := range tc.msgs {
				now = now.Add(m.after)
				h := map[string]string{HeaderStreamEpoch: m.epoch, HeaderStreamSeq: m.seq}
				ok, a := g.See(now, func(k string) string { return h[k] })
				assert.Equal(t, m.seq != "", ok)
				last = a
			}
			assert.Equal(t, tc.received, g.Received, "received")
			assert.Equal(t, tc.lost, g.Lost, "lost")
			assert.Equal(t, tc.anomalies, g.Anomalies, "anomalies")
			assert.Equal(t, tc.epochs, g.Epochs, "epochs")
			assert.Equal(t, tc.lastAnomaly, last, "the last message's anomaly")
			assert.LessOrEqual(t, len(g.epoch), MaxStreamEpoch)
		})
	}
}

// Whatever a peer sends, Lost stays under the credit: StreamSlack plus
// StreamMaxRate a second since the first numbered message.
func TestGapsBoundedWhateverThePeerSends(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for run := range 50 {
		var g Gaps
		start := time.Unix(1_800_000_000, 0)
		now := start
		for range 10000 {
			now = now.Add(time.Duration(r.IntN(20)) * time.Microsecond)
			var seq uint64
			switch r.IntN(4) {
			case 0:
				seq = r.Uint64()
			case 1:
				seq = g.last + uint64(r.IntN(100))
			case 2:
				seq = g.last - uint64(r.IntN(100))
			default:
				seq = uint64(r.IntN(1 << 20))
			}
			h := map[string]string{HeaderStreamEpoch: strconv.Itoa(r.IntN(3)), HeaderStreamSeq: strconv.FormatUint(seq, 10)}
			g.See(now, func(k string) string { return h[k] })
		}
		bound := StreamSlack + now.Sub(start).Seconds()*StreamMaxRate
		assert.LessOrEqual(t, float64(g.Lost), bound, "run %d: lost %d, received %d, anomalies %d", run, g.Lost, g.Received, g.Anomalies)
	}
}
