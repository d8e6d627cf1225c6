package httpapi

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/reject"
)

// A drop at our end shows in /v1/rejects with the peer it was going to
// and its typed reason, not as a local producer's refusal.
func TestRejectRingKeepsDropsOnTheWayOut(t *testing.T) {
	r := newRejectRing(4)
	r.Rejected(observe.Rejection{From: "op-a", Reason: reject.Loop, Detail: "a"})
	r.Rejected(observe.Rejection{Reason: reject.SchemaInvalid, Detail: "b"})
	r.Rejected(observe.Rejection{To: "op-c", Reason: reject.Undeliverable, Detail: "c"})
	got := r.recent(3)
	assert.Equal(t, Reject{Time: got[0].Time, To: "op-c", Reason: "undeliverable", Detail: "c"}, got[0])
	assert.Equal(t, observe.Local, got[1].From)
	assert.Empty(t, got[1].To)
	assert.Equal(t, "op-a", got[2].From)

	r.Rejected(observe.Rejection{To: "op-c", Reason: reject.DeliveryChanged, Count: 12, Detail: "d"})
	assert.Equal(t, Reject{Time: r.recent(1)[0].Time, To: "op-c", Reason: "delivery-changed", Detail: "d", Count: 12}, r.recent(1)[0],
		"a drop of several at once shows how many")
}
