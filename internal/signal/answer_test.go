package signal_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/signal"
)

func TestAnswerRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		a    signal.Answer
		ok   bool
	}{
		{"accepted", signal.Answer{Status: signal.StatusAccepted, Subject: "an.sig.op-a.fault.vpn.r%2E1"}, true},
		{"duplicate", signal.Answer{Status: signal.StatusDuplicate, Subject: "an.sig.op-a.fault.vpn.r"}, true},
		{"rejected", signal.Answer{Status: signal.StatusRejected, Reason: "bad-attribute", Error: `subject "x": want <service>/<resource>`}, false},
		{"rejected, odd characters", signal.Answer{Status: signal.StatusRejected, Reason: "schema-invalid", Error: "quote\" nl\n é \x00"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := signal.ParseAnswer(tt.a.Encode())
			require.NoError(t, err)
			assert.Equal(t, tt.a, got)
			assert.Equal(t, tt.ok, got.OK())
			if tt.ok {
				assert.NoError(t, got.Err())
			} else {
				require.Error(t, got.Err())
				assert.Contains(t, got.Err().Error(), tt.a.Reason)
				assert.Contains(t, got.Err().Error(), tt.a.Error)
			}
		})
	}

	t.Run("empty fields are omitted", func(t *testing.T) {
		assert.JSONEq(t, `{"status":"accepted"}`, string(signal.Answer{Status: signal.StatusAccepted}.Encode()))
	})
}

func TestParseAnswerRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"unknown status", `{"status":"maybe"}`, `unknown status "maybe"`},
		{"status in capitals", `{"status":"ACCEPTED"}`, "unknown status"},
		{"no status", `{"subject":"an.sig.x"}`, `unknown status ""`},
		{"not JSON", `accepted`, "answer"},
		{"status not a string", `{"status":1}`, "answer"},
		{"empty", ``, "answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := signal.ParseAnswer([]byte(tt.in))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
