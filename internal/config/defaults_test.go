package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestDefaults(t *testing.T) {
	t.Run("import rate", func(t *testing.T) {
		for _, tc := range []struct {
			in    ImportPolicy
			rate  float64
			burst int
		}{
			{ImportPolicy{}, 1000, 2000},
			{ImportPolicy{MaxRate: 10}, 10, 20},
			{ImportPolicy{MaxRate: 0.2}, 0.2, 1},
			{ImportPolicy{MaxRate: 10, MaxBurst: 3}, 10, 3},
		} {
			r, b := tc.in.RateLimit()
			assert.Equal(t, tc.rate, r)
			assert.Equal(t, tc.burst, b)
		}
	})
	t.Run("timers", func(t *testing.T) {
		g, w := ImportPolicy{}.Timers()
		assert.Equal(t, 30*time.Second, g)
		assert.Equal(t, 5*time.Minute, w)
		g, w = ImportPolicy{Grace: Duration(time.Second), WithdrawAfter: Duration(time.Minute)}.Timers()
		assert.Equal(t, time.Second, g)
		assert.Equal(t, time.Minute, w)
	})
	t.Run("pacing", func(t *testing.T) {
		r, b := ExportPolicy{}.Pacing()
		assert.Zero(t, r, "not paced")
		assert.Zero(t, b)
		r, b = ExportPolicy{MaxRate: 50}.Pacing()
		assert.Equal(t, 50.0, r)
		assert.Equal(t, 50, b, "one second's worth")
		_, b = ExportPolicy{MaxRate: 0.5}.Pacing()
		assert.Equal(t, 1, b)
		_, b = ExportPolicy{MaxRate: 50, MaxBurst: 5}.Pacing()
		assert.Equal(t, 5, b)
	})
}
