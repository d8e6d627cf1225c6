package demo

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/schemas"
)

// ledger observes all three nodes: it prints each crossing and refusal and
// keeps what must arrive where, so the summary can count losses.
type ledger struct {
	out io.Writer

	mu          sync.Mutex
	expected    map[string]bool // "<dest> <source> <id>"
	received    map[string]bool
	crossed     int
	mitigations int
	rejected    int
	intents     int
	reports     int
}

func newLedger(out io.Writer) *ledger {
	return &ledger{out: out, expected: map[string]bool{}, received: map[string]bool{}}
}

// expect records that ev, accepted at its origin, must reach dest.
func (l *ledger) expect(dest string, ev *signal.Event) {
	l.mu.Lock()
	l.expected[dest+" "+ev.Key()] = true
	l.mu.Unlock()
}

func (l *ledger) Accepted(observe.Acceptance) {}

func (l *ledger) Crossed(c observe.Crossing) {
	if c.Duplicate {
		return
	}
	class, _, _ := schemas.ClassOf(c.Event.Type)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.received[c.To+" "+c.Event.Key()] = true
	l.crossed++
	switch {
	case class == "mitigation" && c.To == opA:
		l.mitigations++
	case class == "intent" && c.To == opB:
		l.intents++
	case class == "intent-report" && c.To == opA:
		l.reports++
	}
	note := ""
	if c.Event.CausationID != "" {
		note = "  answers " + c.Event.CausationID
	}
	fmt.Fprintf(l.out, "%s  %s -> %s  %-13s %-8s %-22s %7.2f ms%s\n",
		time.Now().Format("15:04:05.000"), c.From, c.To, class, c.Event.State, c.Event.Subject,
		float64(c.Latency.Microseconds())/1000, note)
}

func (l *ledger) Rejected(r observe.Rejection) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rejected += int(r.Signals())
	fmt.Fprintf(l.out, "%s  %s rejected a signal from %s: %s\n", time.Now().Format("15:04:05.000"), r.Node, r.From, r.Detail)
}

// say prints a line of its own among the crossings.
func (l *ledger) say(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.out, format, args...)
}

// missing counts expected deliveries that have not happened.
func (l *ledger) missing() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for k := range l.expected {
		if !l.received[k] {
			n++
		}
	}
	return n
}

// drain waits up to d for every expected delivery and for idle to hold.
func (l *ledger) drain(d time.Duration, idle func() bool) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if l.missing() == 0 && idle() {
			// Answers produced by the last deliveries are expected
			// only once produced: check twice, a moment apart.
			time.Sleep(50 * time.Millisecond)
			if l.missing() == 0 && idle() {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *ledger) summary() Summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	lost := 0
	for k := range l.expected {
		if !l.received[k] {
			lost++
		}
	}
	return Summary{Crossed: l.crossed, Mitigations: l.mitigations, Rejected: l.rejected, Lost: lost, Intents: l.intents, Reports: l.reports}
}
