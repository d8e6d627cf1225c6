package session

import "testing"

// TestSessionUpdateKeepsItUp: a reload's new pins and import summary
// leave an established session up, and hold from then on: the peer's next
// OPEN (it restarted with a new key) is checked against the new pins.
func TestSessionUpdateKeepsItUp(t *testing.T) {
	a, b := New(local("op-a", "op-b"), t0), New(local("op-b", "op-a"), t0)
	wire(t, t0, a, b, a.LinkUp(t0), b.LinkUp(t0))
	la := local("op-a", "op-b")
	la.PeerKeys = []string{"Kop-b-new"}
	la.Import.Classes = []string{"fault", "congestion"}
	a.Update(la)
	if st := a.Status(); st.State != Established || st.Flaps != 0 {
		t.Fatalf("after Update: %+v, want established, no flap", st)
	}
	if got := a.open().Import.Classes; len(got) != 2 {
		t.Fatalf("the next OPEN states import %v, want the new summary", got)
	}
	// op-b restarts with its new key: op-a takes it.
	lb := local("op-b", "op-a")
	lb.Keys = []string{"Kop-b-new"}
	b2 := New(lb, t0)
	wire(t, t0, a, b2, nil, b2.LinkUp(t0))
	if st := a.Status(); st.State != Established {
		t.Fatalf("op-b's new key refused after Update: %+v", st)
	}
	// Without the Update the new key would have closed it.
	c := New(local("op-a", "op-b"), t0)
	c.LinkUp(t0)
	out, _ := c.Receive(t0, b2.open())
	if len(out) == 0 || out[0].Type != TypeNotification || out[0].Reason != ReasonUnknownKey {
		t.Fatalf("the old pins took the new key: %+v", out)
	}
}
