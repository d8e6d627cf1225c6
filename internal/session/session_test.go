package session

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)

func local(self, peer string) Local {
	return Local{Self: self, Peer: peer, Version: "test", Hold: 9 * time.Second, Restart: 30 * time.Second,
		Keys: []string{"K" + self}, PeerKeys: []string{"K" + peer},
		Catalog: []string{"net.anfed.fault.v1", "net.anfed.congestion.v1"},
		Import:  Import{Classes: []string{"fault"}}, Export: []string{"fault", "congestion"}}
}

// wire delivers each side's messages to the other until both are quiet,
// through Encode and Decode, and returns the events each side saw.
func wire(t *testing.T, now time.Time, a, b *Machine, toB, toA []Message) (evA, evB []Event) {
	t.Helper()
	for range 20 {
		if len(toA) == 0 && len(toB) == 0 {
			return evA, evB
		}
		var nextA, nextB []Message
		for _, m := range toB {
			d, err := Decode(m.Encode(), a.l.Self, b.l.Self)
			if err != nil {
				t.Fatalf("decode at b: %v", err)
			}
			out, ev := b.Receive(now, d)
			nextA = append(nextA, out...)
			if ev != None {
				evB = append(evB, ev)
			}
		}
		for _, m := range toA {
			d, err := Decode(m.Encode(), b.l.Self, a.l.Self)
			if err != nil {
				t.Fatalf("decode at a: %v", err)
			}
			out, ev := a.Receive(now, d)
			nextB = append(nextB, out...)
			if ev != None {
				evA = append(evA, ev)
			}
		}
		toA, toB = nextA, nextB
	}
	t.Fatal("the session never went quiet")
	return nil, nil
}

func TestSessionEstablishes(t *testing.T) {
	a, b := New(local("op-a", "op-b"), t0), New(local("op-b", "op-a"), t0)
	evA, evB := wire(t, t0, a, b, a.LinkUp(t0), b.LinkUp(t0))
	if a.Status().State != Established || b.Status().State != Established {
		t.Fatalf("states %s/%s, want established at both", a.Status().State, b.Status().State)
	}
	if len(evA) != 1 || evA[0] != Up || len(evB) != 1 || evB[0] != Up {
		t.Fatalf("events a=%v b=%v, want one Up each", evA, evB)
	}
	n := a.Status().Negotiated
	if n.Hold != 9*time.Second || n.Version != "test" || len(n.Catalog) != 2 || strings.Join(n.Sendable, ",") != "fault" {
		t.Fatalf("negotiated %+v", n)
	}
}

func TestSessionEstablishesWhenTheFirstOpenIsLost(t *testing.T) {
	a, b := New(local("op-a", "op-b"), t0), New(local("op-b", "op-a"), t0)
	a.LinkUp(t0) // lost: b was not listening yet
	evA, evB := wire(t, t0, a, b, nil, b.LinkUp(t0))
	if a.Status().State != Established || b.Status().State != Established || len(evA) != 1 || len(evB) != 1 {
		t.Fatalf("states %s/%s events %v %v", a.Status().State, b.Status().State, evA, evB)
	}
}

func TestSessionOpenRetried(t *testing.T) {
	a, b := New(local("op-a", "op-b"), t0), New(local("op-b", "op-a"), t0)
	a.LinkUp(t0)
	b.LinkUp(t0) // both lost
	out, _ := a.Tick(t0.Add(Retry))
	if len(out) != 1 || out[0].Type != TypeOpen {
		t.Fatalf("tick in open-sent sent %v, want an OPEN", out)
	}
	wire(t, t0.Add(Retry), a, b, out, nil)
	if a.Status().State != Established || b.Status().State != Established {
		t.Fatalf("states %s/%s", a.Status().State, b.Status().State)
	}
}

func TestSessionMismatchCloses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(l *Local)
		reason string
	}{
		{"wrong peer id", func(l *Local) { l.Peer = "op-c" }, ReasonWrongPeer},
		{"no class in common", func(l *Local) { l.Catalog = []string{"net.anfed.fault.v2"} }, ReasonNoCommonClass},
		{"unknown key", func(l *Local) { l.Keys = []string{"Knew"} }, ReasonUnknownKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			la := local("op-a", "op-b")
			tc.edit(&la)
			a, b := New(la, t0), New(local("op-b", "op-a"), t0)
			open := a.LinkUp(t0)[0]
			b.LinkUp(t0)
			out, ev := b.Receive(t0, open)
			if ev != None || b.Status().State != Idle || !strings.HasPrefix(b.Status().LastDown, tc.reason) {
				t.Fatalf("b: event %v state %s last down %q, want idle with %s", ev, b.Status().State, b.Status().LastDown, tc.reason)
			}
			if len(out) != 1 || out[0].Type != TypeNotification || out[0].Reason != tc.reason {
				t.Fatalf("b sent %+v, want a NOTIFICATION %s", out, tc.reason)
			}
			a.Receive(t0, out[0])
			if a.Status().State != Idle || !strings.Contains(a.Status().LastDown, tc.reason) {
				t.Fatalf("a: state %s last down %q, want idle naming %s", a.Status().State, a.Status().LastDown, tc.reason)
			}
		})
	}
}

func TestSessionHoldTimer(t *testing.T) {
	a, b := New(local("op-a", "op-b"), t0), New(local("op-b", "op-a"), t0)
	wire(t, t0, a, b, a.LinkUp(t0), b.LinkUp(t0))
	// Keepalives every third of the hold time keep it up.
	now := t0
	for range 10 {
		now = now.Add(3 * time.Second)
		outA, _ := a.Tick(now)
		outB, _ := b.Tick(now)
		wire(t, now, a, b, outA, outB)
	}
	if a.Status().State != Established {
		t.Fatalf("a went %s with keepalives flowing: %s", a.Status().State, a.Status().LastDown)
	}
	// b falls silent: a closes at the hold time, and counts a flap.
	for range 3 {
		now = now.Add(3 * time.Second)
		out, ev := a.Tick(now)
		if ev == Down {
			if out[0].Type != TypeNotification || out[0].Reason != ReasonHoldExpired {
				t.Fatalf("sent %+v, want a hold-timer NOTIFICATION", out)
			}
			if s := a.Status(); s.Flaps != 1 || s.State != Idle || !strings.HasPrefix(s.LastDown, ReasonHoldExpired) {
				t.Fatalf("status %+v", s)
			}
			// And opens again a moment later.
			out, _ = a.Tick(now.Add(Retry))
			if len(out) != 1 || out[0].Type != TypeOpen || a.Status().State != OpenSent {
				t.Fatalf("after the close, sent %+v in %s", out, a.Status().State)
			}
			return
		}
	}
	t.Fatal("the hold timer never expired")
}

func TestSessionPeerRestartIsAFlapThenUpAgain(t *testing.T) {
	a, b := New(local("op-a", "op-b"), t0), New(local("op-b", "op-a"), t0)
	wire(t, t0, a, b, a.LinkUp(t0), b.LinkUp(t0))
	b2 := New(local("op-b", "op-a"), t0) // b restarted, link still seen up at a
	evA, evB := wire(t, t0, a, b2, nil, b2.LinkUp(t0))
	if a.Status().Flaps != 1 || a.Status().State != Established || b2.Status().State != Established {
		t.Fatalf("a %+v b2 %+v", a.Status(), b2.Status())
	}
	if len(evA) != 2 || evA[0] != Down || evA[1] != Up || len(evB) != 1 || evB[0] != Up {
		t.Fatalf("events %v %v: a goes down then up, both must refresh", evA, evB)
	}
}

func TestSessionLinkDownAndRefresh(t *testing.T) {
	a, b := New(local("op-a", "op-b"), t0), New(local("op-b", "op-a"), t0)
	if a.Refresh() != nil {
		t.Fatal("refresh asked before the session is up")
	}
	wire(t, t0, a, b, a.LinkUp(t0), b.LinkUp(t0))
	r := a.Refresh()
	if len(r) != 1 {
		t.Fatalf("refresh sent %v", r)
	}
	if _, ev := b.Receive(t0, r[0]); ev != RefreshAsked {
		t.Fatalf("event %v, want RefreshAsked", ev)
	}
	if ev := a.LinkDown(t0.Add(time.Second)); ev != Down {
		t.Fatalf("event %v", ev)
	}
	if s := a.Status(); s.State != Idle || s.LastDown != ReasonLinkDown || s.Flaps != 1 {
		t.Fatalf("status %+v", s)
	}
	if out, _ := a.Tick(t0.Add(time.Minute)); out != nil {
		t.Fatalf("sent %v with the link down", out)
	}
}

func TestSessionDecodeRefuses(t *testing.T) {
	for name, b := range map[string][]byte{
		"junk":         []byte("{"),
		"unknown type": Message{Type: "hello", From: "op-b", To: "op-a"}.Encode(),
		"other sender": Message{Type: TypeKeepalive, From: "op-c", To: "op-a"}.Encode(),
		"other target": Message{Type: TypeKeepalive, From: "op-b", To: "op-c"}.Encode(),
		"oversized":    make([]byte, MaxBytes+1),
	} {
		if _, err := Decode(b, "op-b", "op-a"); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}
