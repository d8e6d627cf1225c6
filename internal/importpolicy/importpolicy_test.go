package importpolicy_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/importpolicy"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

// Operator op-a imports from peer op-b.
const (
	self = "op-a"
	peer = "op-b"
)

func event(origin string, path ...string) *signal.Event {
	return &signal.Event{
		ID: "1", Source: "anfed://" + origin + "/assurance", Type: "net.anfed.fault.v1",
		Subject: "vpn/r", Origin: origin, State: signal.Raised, Path: path,
	}
}

func TestCheck(t *testing.T) {
	all := config.ImportPolicy{Classes: []string{"*"}}
	transit := config.ImportPolicy{Classes: []string{"*"}, Transit: true}
	tests := []struct {
		name   string
		imp    config.ImportPolicy
		ev     *signal.Event
		class  string
		reason reject.Reason // "" means accepted
		text   string
	}{
		// Accepted.
		{"peer's own signal", all, event(peer, peer), "fault", "", ""},
		{"relayed signal, transit on", transit, event("op-c", "op-c", peer), "fault", "", ""},
		{"relayed over two hops, transit on", transit, event("op-d", "op-d", "op-c", peer), "fault", "", ""},
		{"class listed", config.ImportPolicy{Classes: []string{"congestion", "fault"}}, event(peer, peer), "fault", "", ""},

		// Loops.
		{"self on path", transit, event("op-c", "op-c", self, peer), "fault", reject.Loop, "op-a is already on the path"},
		{"self first on path", transit, event("op-c", self, peer), "fault", reject.Loop, "op-a is already on the path"},
		{"own signal comes back", transit, event(self, peer), "fault", reject.Loop, "op-a is already on the path"},
		{"loop wins over every other rule", config.ImportPolicy{}, event(self), "fault", reject.Loop, "op-a"},
		{"path with duplicates", transit, event("op-c", "op-c", "op-d", "op-c", peer), "fault", reject.Loop, "holds op-c twice"},
		{"path with the peer twice", transit, event("op-c", "op-c", peer, "op-d", peer), "fault", reject.Loop, "holds op-b twice"},

		// Path must end with the sender.
		{"empty path", all, event(peer), "fault", reject.BadAttribute, signal.AttrPath},
		{"path ends with another operator", transit, event("op-c", peer, "op-c"), "fault", reject.BadAttribute, "must end with the sending peer op-b"},
		{"path of one other operator", transit, event("op-c", "op-c"), "fault", reject.BadAttribute, "must end with the sending peer op-b"},
		{"peer's own signal with extra hops", transit, event(peer, "op-c", peer), "fault", reject.BadAttribute, "must have path [op-b]"},
		{"peer's own signal with itself twice", transit, event(peer, peer, peer), "fault", reject.BadAttribute, "must have path [op-b]"},

		// Origin.
		{"other origin, transit off", all, event("op-c", "op-c", peer), "fault", reject.WrongOrigin, "import.transit is false for op-b"},
		{"origin not first hop", transit, event("op-c", "op-d", peer), "fault", reject.WrongOrigin, "origin op-c is not the first hop"},
		{"origin not first hop, but on path", transit, event("op-c", "op-d", "op-c", peer), "fault", reject.WrongOrigin, "not the first hop"},
		{"origin check before duplicates", transit, event("op-c", "op-d", "op-d", peer), "fault", reject.WrongOrigin, "not the first hop"},

		// Classes.
		{"class not listed", config.ImportPolicy{Classes: []string{"congestion"}}, event(peer, peer), "fault", reject.NotImported, "import.classes for op-b does not list fault"},
		{"no classes: default deny", config.ImportPolicy{}, event(peer, peer), "fault", reject.NotImported, "does not list fault"},
		{"class is not a glob", config.ImportPolicy{Classes: []string{"fa*"}}, event(peer, peer), "fault", reject.NotImported, "fault"},
		{"class not listed, transit", config.ImportPolicy{Classes: []string{"congestion"}, Transit: true}, event("op-c", "op-c", peer), "fault", reject.NotImported, "fault"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := importpolicy.New(self, &config.Peer{ID: peer, Import: tt.imp})
			err := p.Check(tt.ev, tt.class)
			if tt.reason == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			var rerr *reject.Error
			require.ErrorAs(t, err, &rerr)
			assert.Equal(t, tt.reason, reject.ReasonOf(err), "%v", err)
			assert.Contains(t, err.Error(), tt.text)
		})
	}
}
