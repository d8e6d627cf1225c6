package node_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	cenats "github.com/cloudevents/sdk-go/protocol/nats/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/subject"
)

// The wire is the API: a producer at A and a closed loop at B use nothing
// of anfed's, only cloudevents/sdk-go's own NATS binding over TCP, and every
// attribute of the signal survives the crossing.
func TestSDKGoPublishesAndReceivesAcrossBoundary(t *testing.T) {
	user := func(c *config.Config) {
		c.NATS.Client = config.Listener{Listen: "127.0.0.1:0"}
		c.NATS.Users = []config.User{{Name: "loop", Password: "loop-pass-123"}}
	}
	na, nb := pairWith(t, []string{"congestion"}, []string{"congestion"}, user)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	auth := []nats.Option{nats.UserInfo("loop", "loop-pass-123")}

	// Closed loop at B.
	cons, err := cenats.NewConsumer(nb.ClientURL(), subject.Signals, auth)
	require.NoError(t, err)
	defer cons.Close(ctx)
	rx, err := cloudevents.NewClient(cons)
	require.NoError(t, err)
	got := make(chan event.Event, 1)
	rctx, stopRx := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = rx.StartReceiver(rctx, func(e event.Event) { got <- e })
	}()
	defer func() { stopRx(); <-done }()

	// Producer at A.
	snd, err := cenats.NewSender(na.ClientURL(), subject.IntakePrefix, auth)
	require.NoError(t, err)
	defer snd.Close(ctx)
	tx, err := cloudevents.NewClient(snd)
	require.NoError(t, err)

	src := congestion("op-a", "sdk-1")
	e := cloudevents.NewEvent()
	e.SetID(src.ID)
	e.SetSource(src.Source)
	e.SetType(src.Type)
	e.SetSubject(src.Subject)
	e.SetTime(src.Time)
	require.NoError(t, e.SetData(cloudevents.ApplicationJSON, json.RawMessage(src.Data)))
	for k, v := range map[string]any{
		"anfedorigin": "op-a", "anfedstate": "raised",
		"correlationid": src.CorrelationID, "causationid": src.CausationID,
		"expirytime": src.ExpiryTime, "severitytext": "WARN", "severitynumber": 13,
		"sequence": src.Sequence, "traceparent": src.TraceParent, "tracestate": src.TraceState,
		"vendorx": "kept",
	} {
		e.SetExtension(k, v)
	}
	require.NoError(t, e.Validate())

	var r event.Event
	for r.ID() == "" {
		res := tx.Send(ctx, e)
		require.True(t, cloudevents.IsACK(res), "send: %v", res)
		select {
		case r = <-got:
		case <-time.After(2 * time.Second):
			// The receiver may not have subscribed yet: send again, the
			// node drops the duplicate.
		case <-ctx.Done():
			t.Fatal("no event received at B")
		}
	}

	assert.Equal(t, "1.0", r.SpecVersion())
	assert.Equal(t, src.ID, r.ID())
	assert.Equal(t, src.Source, r.Source())
	assert.Equal(t, src.Type, r.Type())
	assert.Equal(t, src.Subject, r.Subject())
	assert.True(t, src.Time.Equal(r.Time()))
	assert.Equal(t, "application/json", r.DataContentType())
	assert.Equal(t, "https://anfed.net/schemas/v1/congestion.json", r.DataSchema())
	assert.JSONEq(t, string(src.Data), string(r.Data()))
	ext := r.Extensions()
	assert.Equal(t, "op-a", ext["anfedorigin"])
	assert.Equal(t, "raised", ext["anfedstate"])
	assert.Equal(t, "op-a", ext["anfedpath"], "the path records the border crossed")
	assert.Equal(t, src.CorrelationID, ext["correlationid"])
	assert.Equal(t, src.CausationID, ext["causationid"])
	exp, err := time.Parse(time.RFC3339Nano, ext["expirytime"].(string))
	require.NoError(t, err)
	assert.True(t, src.ExpiryTime.Equal(exp))
	assert.Equal(t, "WARN", ext["severitytext"])
	assert.EqualValues(t, 13, ext["severitynumber"])
	assert.Equal(t, src.Sequence, ext["sequence"])
	assert.Equal(t, src.TraceParent, ext["traceparent"])
	assert.Equal(t, src.TraceState, ext["tracestate"])
	assert.Equal(t, "kept", ext["vendorx"])
}
