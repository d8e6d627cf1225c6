package link_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/anfed/anfed/internal/link"
)

// fx records what a window asks of its sender, one line each.
type fx struct {
	got     []string
	expired bool            // the peering ended: nothing is sent
	tooOld  map[uint64]bool // held signals past the age bound
}

func (f *fx) Send(seq, prev uint64, front bool, _ time.Time) bool {
	if f.expired {
		return false
	}
	l := fmt.Sprintf("send %d prev %d", seq, prev)
	if front {
		l += " front"
	}
	f.got = append(f.got, l)
	return true
}

func (f *fx) Probe(time.Time) bool {
	if f.expired {
		return false
	}
	f.got = append(f.got, "probe")
	return true
}

func (f *fx) Ack(seq uint64) { f.got = append(f.got, fmt.Sprintf("ack %d", seq)) }

func (f *fx) Drop(seq uint64, age bool) {
	why := "bytes"
	if age {
		why = "age"
	}
	f.got = append(f.got, fmt.Sprintf("drop %d %s", seq, why))
}

func (f *fx) TooOld(seq uint64, _ time.Time) bool { return f.tooOld[seq] }

func (f *fx) GiveUp(seq uint64) { f.got = append(f.got, fmt.Sprintf("give-up %d", seq)) }

func (f *fx) Note(n link.Note, count int) {
	name := map[link.Note]string{link.NoteNoRoute: "no-route", link.NoteSilent: "silent", link.NoteBack: "back", link.NoteResent: "resent"}[n]
	f.got = append(f.got, fmt.Sprintf("note %s %d", name, count))
}

// step is one event of a timeline at offset at, and what the window asks
// for in answer.
type step struct {
	at   time.Duration
	do   func(w *link.Window[uint64], now time.Time)
	want []string
}

func add(seqs ...uint64) func(*link.Window[uint64], time.Time) {
	return func(w *link.Window[uint64], now time.Time) {
		for _, s := range seqs {
			w.Add(now, s, s)
		}
	}
}

func answer(seq uint64, a link.Answer) func(*link.Window[uint64], time.Time) {
	return func(w *link.Window[uint64], now time.Time) { w.Answer(now, seq, a) }
}

func alive(last uint64) func(*link.Window[uint64], time.Time) {
	return func(w *link.Window[uint64], now time.Time) { w.ProbeAnswer(now, false, true, last) }
}

func tick(w *link.Window[uint64], now time.Time) { w.Tick(now) }

const ms = time.Millisecond

// The sending end's window on a timeline: Timeout 500 ms, backoff 25 to
// 100 ms, three signals in flight at most (the sender's are 500 ms, 25 to
// 100 ms and 512).
func TestWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	cfg := link.WindowConfig{Size: 3, Timeout: 500 * ms, MinBackoff: 25 * ms, MaxBackoff: 100 * ms}
	for _, tc := range []struct {
		name    string
		fx      fx
		steps   []step
		room    bool // Room after the last step
		busy    bool // Busy after the last step
		wantLen int
	}{
		{name: "sent in order, each with its predecessor; the window fills",
			steps: []step{{0, add(1, 2, 3), []string{"send 1 prev 0 front", "send 2 prev 1", "send 3 prev 2"}}},
			room:  false, busy: true, wantLen: 3},
		{name: "answers out of order are acknowledged in order",
			steps: []step{
				{0, add(1, 2), []string{"send 1 prev 0 front", "send 2 prev 1"}},
				{1 * ms, answer(2, link.AnswerDone), nil},
				{2 * ms, answer(1, link.AnswerDone), []string{"ack 1", "ack 2"}},
				{3 * ms, answer(1, link.AnswerDone), nil}, // a resend's answer
				{4 * ms, add(3), []string{"send 3 prev 2 front"}},
			}, room: true, busy: true, wantLen: 1},
		{name: "silence: a probe after the timeout; what it proves lost is resent in order",
			steps: []step{
				{0, add(1, 2, 3), []string{"send 1 prev 0 front", "send 2 prev 1", "send 3 prev 2"}},
				{10 * ms, answer(1, link.AnswerDone), []string{"ack 1"}},
				{400 * ms, tick, nil},
				{511 * ms, tick, []string{"probe"}},
				{520 * ms, alive(1), []string{"send 2 prev 1 front", "send 3 prev 2", "note resent 2"}},
			}, room: true, busy: true, wantLen: 2},
		{name: "a probe proves lost only what was sent before it",
			steps: []step{
				{0, add(1), []string{"send 1 prev 0 front"}},
				{501 * ms, tick, []string{"probe"}},
				{502 * ms, add(2), []string{"send 2 prev 1"}},
				{503 * ms, alive(0), []string{"send 1 prev 0 front", "note resent 1"}},
			}, room: true, busy: true, wantLen: 2},
		{name: "decided with its answer lost: the probe's last says so",
			steps: []step{
				{0, add(1, 2), []string{"send 1 prev 0 front", "send 2 prev 1"}},
				{501 * ms, tick, []string{"probe"}},
				{502 * ms, alive(2), []string{"ack 1", "ack 2"}},
			}, room: true, busy: false, wantLen: 0},
		{name: "no route: new signals held; probes back off; the lost resent before the held",
			steps: []step{
				{0, add(1), []string{"send 1 prev 0 front"}},
				{1 * ms, answer(1, link.AnswerNoRoute), []string{"note no-route 1"}},
				{2 * ms, add(2), nil},
				{20 * ms, tick, nil},
				{26 * ms, tick, []string{"probe"}},
				{27 * ms, func(w *link.Window[uint64], now time.Time) { w.ProbeAnswer(now, true, false, 0) }, nil},
				{51 * ms, tick, nil},
				{52 * ms, tick, []string{"probe"}},
				{53 * ms, alive(0), []string{"note back 2", "send 1 prev 0 front", "note resent 1", "send 2 prev 1"}},
			}, room: true, busy: true, wantLen: 2},
		{name: "not now: a probe after the backoff, then the resend; the probe's answer resets the backoff",
			steps: []step{
				{0, add(1), []string{"send 1 prev 0 front"}},
				{5 * ms, answer(1, link.AnswerNotNow), nil},
				{29 * ms, tick, nil},
				{30 * ms, tick, []string{"probe"}},
				{31 * ms, alive(0), []string{"send 1 prev 0 front", "note resent 1"}},
				{32 * ms, answer(1, link.AnswerNotNow), nil},
				{56 * ms, tick, nil},
				{57 * ms, tick, []string{"probe"}},
			}, room: true, busy: true, wantLen: 1},
		{name: "an unreadable answer: a probe after the backoff, which the peer's last settles",
			steps: []step{
				{0, add(1, 2), []string{"send 1 prev 0 front", "send 2 prev 1"}},
				{5 * ms, answer(1, link.AnswerUnreadable), nil},
				{6 * ms, answer(2, link.AnswerDone), nil},
				{29 * ms, tick, nil},
				{30 * ms, tick, []string{"probe"}},
				{31 * ms, alive(1), []string{"ack 1", "ack 2"}},
				{32 * ms, func(w *link.Window[uint64], now time.Time) {
					assert.False(t, w.Answer(now, 1, link.AnswerDone), "an answer to a signal no longer in the window changes nothing")
				}, nil},
			}, room: true, busy: false, wantLen: 0},
		{name: "not now twice: the backoff doubles",
			steps: []step{
				{0, add(1, 2), []string{"send 1 prev 0 front", "send 2 prev 1"}},
				{5 * ms, answer(1, link.AnswerNotNow), nil},
				{6 * ms, answer(2, link.AnswerNotNow), nil},
				{30 * ms, tick, []string{"probe"}},
				{531 * ms, tick, []string{"note silent 2"}},
				{630 * ms, tick, nil},
				{631 * ms, tick, []string{"probe"}},
			}, room: true, busy: true, wantLen: 2},
		{name: "a probe unanswered: the link is down, new signals held",
			steps: []step{
				{0, add(1), []string{"send 1 prev 0 front"}},
				{501 * ms, tick, []string{"probe"}},
				{1002 * ms, tick, []string{"note silent 1"}},
				{1003 * ms, add(2), nil},
				{1026 * ms, tick, nil},
				{1027 * ms, tick, []string{"probe"}},
			}, room: true, busy: true, wantLen: 2},
		{name: "lost twice with no route: given up, and no predecessor of the next",
			steps: []step{
				{0, add(1), []string{"send 1 prev 0 front"}},
				{1 * ms, answer(1, link.AnswerNoRoute), []string{"note no-route 1"}},
				{26 * ms, tick, []string{"probe"}},
				{27 * ms, alive(0), []string{"note back 1", "send 1 prev 0 front", "note resent 1"}},
				{28 * ms, answer(1, link.AnswerNoRoute), []string{"note no-route 1"}},
				{53 * ms, tick, []string{"probe"}},
				{54 * ms, alive(0), []string{"note back 1", "give-up 1", "ack 1"}},
				{55 * ms, add(2), []string{"send 2 prev 0 front"}},
			}, room: true, busy: true, wantLen: 1},
		{name: "lost five times while heard: given up",
			steps: func() []step {
				s := []step{{0, add(1), []string{"send 1 prev 0 front"}}}
				at := time.Duration(0)
				for i := 1; i <= 5; i++ {
					at += 502 * ms
					s = append(s, step{at, tick, []string{"probe"}})
					want := []string{"send 1 prev 0 front", "note resent 1"}
					if i == 5 {
						want = []string{"give-up 1", "ack 1"}
					}
					s = append(s, step{at + ms, alive(0), want})
				}
				return s
			}(), room: true, busy: false, wantLen: 0},
		{name: "the byte bound drops the oldest unsent; the rest are left to the store",
			steps: []step{
				{0, add(1), []string{"send 1 prev 0 front"}},
				{1 * ms, answer(1, link.AnswerNoRoute), []string{"note no-route 1"}},
				{2 * ms, add(2, 3), nil},
				{3 * ms, func(w *link.Window[uint64], now time.Time) {
					assert.Equal(t, uint64(1), w.DropUnsent(3), "one more to drop from the store")
				}, []string{"drop 2 bytes", "drop 3 bytes"}},
				{26 * ms, tick, []string{"probe"}},
				{27 * ms, alive(1), []string{"note back 3", "ack 1"}},
				{28 * ms, add(4), []string{"send 4 prev 1 front"}},
			}, room: true, busy: true, wantLen: 1},
		{name: "held past the age bound: dropped when the link is back",
			fx: fx{tooOld: map[uint64]bool{2: true}},
			steps: []step{
				{0, add(1), []string{"send 1 prev 0 front"}},
				{1 * ms, answer(1, link.AnswerNoRoute), []string{"note no-route 1"}},
				{2 * ms, add(2, 3), nil},
				{26 * ms, tick, []string{"probe"}},
				{27 * ms, alive(1), []string{"note back 3", "ack 1", "drop 2 age", "send 3 prev 1 front"}},
			}, room: true, busy: true, wantLen: 1},
		{name: "the peering ended: nothing sent, no probe",
			fx: fx{expired: true},
			steps: []step{
				{0, add(1), nil},
				{501 * ms, tick, nil},
				{1002 * ms, tick, nil},
			}, room: true, busy: true, wantLen: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.fx
			w := link.NewWindow[uint64](cfg, &f, t0)
			for _, s := range tc.steps {
				f.got = nil
				s.do(w, t0.Add(s.at))
				assert.Equal(t, s.want, f.got, "at %s", s.at)
			}
			assert.Equal(t, tc.room, w.Room(), "room")
			assert.Equal(t, tc.busy, w.Busy(), "busy")
			assert.Equal(t, tc.wantLen, w.Len(), "len")
		})
	}
}
