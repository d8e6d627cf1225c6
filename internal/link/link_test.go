package link_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/reject"
)

// Only refusals about now make a sender keep a signal and send it again:
// one about the signal itself would hold the ordered link up for good.
func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		reason reject.Reason
		want   bool
	}{
		{reject.Unavailable, true},
		{reject.RateLimited, true},
		{reject.OutOfOrder, true},
		{reject.TooManyConditions, false},
		{reject.Revoked, false},
		{reject.BadSignature, false},
		{reject.Duplicate, false},
		{"", false},
	} {
		t.Run(string(tc.reason), func(t *testing.T) {
			assert.Equal(t, tc.want, link.Retryable(string(tc.reason)))
		})
	}
}
