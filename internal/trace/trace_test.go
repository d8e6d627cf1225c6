package trace

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestChain(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 7, 0, 0, 0, time.UTC)
	h := func(id, cause, corr string, s int) *Hop {
		return &Hop{ID: id, CausationID: cause, CorrelationID: corr, Stored: t0.Add(time.Duration(s) * time.Second)}
	}
	all := []*Hop{
		h("fault-1", "", "", 1),
		h("dev-1", "fault-1", "", 2),
		h("risk-1", "dev-1", "", 3),
		h("prop-1", "risk-1", "act-1", 4),
		h("acc-1", "prop-1", "act-1", 5),
		h("active-1", "prop-1", "act-1", 6),
		h("other", "", "", 7),
		h("loop-a", "loop-b", "", 8), // a cycle must end
		h("loop-b", "loop-a", "", 9),
	}
	ids := func(hs []Hop) []string {
		var out []string
		for _, x := range hs {
			out = append(out, x.ID+"@"+strconv.Itoa(x.Depth))
		}
		return out
	}
	assert.Equal(t, []string{"fault-1@-2", "dev-1@-1", "risk-1@0", "prop-1@1", "acc-1@2", "active-1@2"}, ids(chain(all, "risk-1")))
	assert.Equal(t, []string{"fault-1@-3", "dev-1@-2", "risk-1@-1", "prop-1@0", "acc-1@0", "active-1@0"}, ids(chain(all, "act-1")), "a correlation id starts from every step")
	assert.Equal(t, []string{"other@0"}, ids(chain(all, "other")))
	assert.Equal(t, []string{"loop-b@-1", "loop-a@0"}, ids(chain(all, "loop-a")))
	assert.Empty(t, chain(all, "nope"))
}
