package link

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestGaps(t *testing.T) {
	type msg struct {
		epoch string
		seq   uint64 // 0: no stream header
	}
	for _, tc := range []struct {
		name           string
		msgs           []msg
		received, lost uint64
	}{
		{"in order", []msg{{"e", 1}, {"e", 2}, {"e", 3}}, 3, 0},
		{"a gap", []msg{{"e", 1}, {"e", 2}, {"e", 6}, {"e", 7}}, 4, 3},
		{"the first seen is the baseline", []msg{{"e", 5}, {"e", 6}}, 2, 0},
		{"a new epoch from its start", []msg{{"e", 5}, {"f", 3}}, 2, 2},
		{"late arrival taken back", []msg{{"e", 1}, {"e", 3}, {"e", 2}}, 3, 0},
		{"a new epoch restarts", []msg{{"e", 1}, {"e", 2}, {"f", 1}, {"f", 3}}, 4, 1},
		{"not a stream message", []msg{{"e", 1}, {"", 0}, {"e", 2}}, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g Gaps
			for _, m := range tc.msgs {
				h := map[string]string{HeaderStreamEpoch: m.epoch}
				if m.seq != 0 {
					h[HeaderStreamSeq] = strconv.FormatUint(m.seq, 10)
				}
				assert.Equal(t, m.seq != 0, g.See(func(k string) string { return h[k] }))
			}
			assert.Equal(t, tc.received, g.Received)
			assert.Equal(t, tc.lost, g.Lost)
		})
	}
}
