package nodetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
)

// Side is what one node of a pair exports to the other (every service)
// and imports from it.
type Side struct{ Export, Import []string }

// Pair starts ca's operator, which accepts cb's operator's leaf link on a
// listener at 127.0.0.1:0, then cb's, which dials it. Each config gets its
// peer entry from its Side (the other's signing key pinned), then its
// edit (nil: none); start starts a node from a config, with whatever the
// test runs beside it, and nodeOf gives its node. Pair returns once both
// hold the link up.
func Pair[S any](t testing.TB, keys *Keys, ca, cb *config.Config, a, b Side, editA, editB func(*config.Config),
	start func(*config.Config) S, nodeOf func(S) *node.Node) (S, S) {
	t.Helper()
	idA, idB := ca.Operator.ID, cb.Operator.ID
	password := "secret-" + strings.TrimPrefix(idB, "op-") + "-123"
	ca.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	ca.Peers = []config.Peer{{
		ID: idB, Accept: &config.Accept{User: idB, Password: password},
		Export:     config.ExportPolicy{Classes: a.Export, Services: []string{"*"}},
		Import:     config.ImportPolicy{Classes: a.Import},
		SigningKey: keys.Public(t, idB),
	}}
	if editA != nil {
		editA(ca)
	}
	sa := start(ca)
	na := nodeOf(sa)
	cb.Peers = []config.Peer{{
		ID: idA, Dial: &config.Dial{URL: na.LeafURL(), User: idB, Password: password},
		Export:     config.ExportPolicy{Classes: b.Export, Services: []string{"*"}},
		Import:     config.ImportPolicy{Classes: b.Import},
		SigningKey: keys.Public(t, idA),
	}}
	if editB != nil {
		editB(cb)
	}
	sb := start(cb)
	nb := nodeOf(sb)
	natstest.WaitFor(t, 20*time.Second, func() error {
		if !na.LinkUp(idB) || !nb.LinkUp(idA) {
			return fmt.Errorf("link between %s and %s not up", idA, idB)
		}
		return nil
	})
	return sa, sb
}
