package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/signal"
)

// TestDampeningColumn: `anfed conditions` says when flap dampening holds
// a condition's signals, with its penalty and when it is released.
func TestDampeningColumn(t *testing.T) {
	assert.Equal(t, "-", dampening(conditions.Condition{Status: conditions.StatusActive}))
	c := conditions.Condition{Status: conditions.StatusSuppressed, Suppressed: true, Penalty: 2851.4,
		ReuseAt: time.Date(2026, 11, 26, 12, 3, 10, 0, time.UTC), Held: signal.Cleared}
	assert.Equal(t, "suppressed: penalty 2851, reuse 2026-11-26T12:03:10Z, holding cleared", dampening(c))
	assert.Equal(t, "-", stamp(time.Time{}))
}
