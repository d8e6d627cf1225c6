package link

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Gaps is the receiving end's count of a stream link (HeaderStreamSeq):
// what arrived and what the numbers say never did. A message that
// arrives after a later one is taken back from the lost. The first
// message a Gaps sees is its baseline (a receiver that starts knows
// nothing of what was sent before); a new epoch after it is a sender
// that started again, whose numbers before the first one seen were lost.
//
// The numbers are the peer's word, so a Gaps believes only a loss a
// sender could have made: it holds a credit of numbers, StreamSlack at
// the first message and StreamMaxRate more every second after it (at
// most StreamMaxCredit), and a gap (a jump forward, or a new epoch's
// first number) larger than the credit is not a loss but an anomaly; a
// believed gap spends its size. A number seen already in its epoch, or
// older than the last StreamReorder, one that does not parse, and an
// epoch longer than MaxStreamEpoch are anomalies too. An anomaly counts
// the message received and changes nothing else. So Lost never exceeds
// StreamSlack + StreamMaxRate × the seconds since the first numbered
// message, whatever the peer sends and however many epochs it makes
// up, and the state is a few words.
type Gaps struct {
	seen   bool
	epoch  string
	last   uint64 // the highest number believed in epoch
	credit float64
	at     time.Time // when credit was last topped up
	// window: bit i set when number last-1-i arrived (or was never
	// counted lost: before the baseline).
	window uint64

	Received uint64
	Lost     uint64
	// Anomalies: numbered messages whose number or epoch was not
	// believed (see Anomaly); Epochs: new epochs after the first.
	Anomalies uint64
	Epochs    uint64
}

// Anomaly names why a stream number was not believed.
type Anomaly string

const (
	// AnomalyBadNumber: Anfed-Stream-Seq is not a number from 1 to 2^64-1.
	AnomalyBadNumber Anomaly = "bad-number"
	// AnomalyBadEpoch: Anfed-Stream-Epoch is longer than MaxStreamEpoch.
	AnomalyBadEpoch Anomaly = "bad-epoch"
	// AnomalyJump: the gap before the number is larger than the loss
	// credit (StreamMaxRate).
	AnomalyJump Anomaly = "jump"
	// AnomalyBackwards: the number was seen already in this epoch, or is
	// more than StreamReorder behind the highest.
	AnomalyBackwards Anomaly = "backwards"
)

const (
	// StreamMaxRate is the fastest a stream sender is believed to number
	// its messages, a second: 200 times the 5,000/s the stream mode is
	// built for.
	StreamMaxRate = 1_000_000
	// StreamSlack is the loss credit at the first message: what arrival
	// jitter may squeeze into less time than the rate allows.
	StreamSlack = 65536
	// StreamMaxCredit bounds the credit a quiet link saves: an hour at
	// StreamMaxRate.
	StreamMaxCredit = StreamMaxRate * 3600
	// StreamReorder is how far behind the highest number a late message
	// is still taken back from the lost.
	StreamReorder = 64
	// MaxStreamEpoch is the longest epoch believed (a sender's is 13
	// characters).
	MaxStreamEpoch = 64
)

// See counts a message whose hop headers get reads (nats.Header.Get),
// arrived at now; it reports false for a message that carries no stream
// number, and the anomaly ("" for none) of one whose number or epoch it
// does not believe.
func (g *Gaps) See(now time.Time, get func(string) string) (bool, Anomaly) {
	raw := get(HeaderStreamSeq)
	if raw == "" {
		return false, ""
	}
	g.Received++
	seq, err := strconv.ParseUint(raw, 10, 64)
	if err != nil || seq == 0 {
		return true, g.anomaly(AnomalyBadNumber)
	}
	e := get(HeaderStreamEpoch)
	if len(e) > MaxStreamEpoch {
		return true, g.anomaly(AnomalyBadEpoch)
	}
	if !g.seen {
		g.seen, g.credit, g.at = true, StreamSlack, now
		g.start(e, seq)
		g.window = math.MaxUint64 // before the baseline: never counted lost
		return true, ""
	}
	if el := now.Sub(g.at); el > 0 {
		g.credit = min(g.credit+el.Seconds()*StreamMaxRate, StreamMaxCredit)
		g.at = now
	}
	switch {
	case e != g.epoch:
		// A new sender run: its numbers 1..seq-1 were lost; what the old
		// one sent after its last is unknown, and not counted.
		if !g.spend(seq - 1) {
			return true, g.anomaly(AnomalyJump)
		}
		g.Epochs++
		g.Lost += seq - 1
		g.start(e, seq)
		g.window = math.MaxUint64 << (seq - 1) // 1..seq-1 lost; 0 and before: never
	case seq > g.last:
		d := seq - g.last
		if !g.spend(d - 1) {
			return true, g.anomaly(AnomalyJump)
		}
		g.Lost += d - 1
		g.window = g.window<<d | 1<<(d-1) // a shift of 64 or more leaves 0
		g.last = seq
	default:
		k := g.last - seq
		if k == 0 || k > StreamReorder || g.window&(1<<(k-1)) != 0 {
			return true, g.anomaly(AnomalyBackwards)
		}
		g.window |= 1 << (k - 1)
		if g.Lost > 0 {
			g.Lost-- // late, counted lost when a later one came
		}
	}
	return true, ""
}

func (g *Gaps) start(epoch string, last uint64) {
	g.epoch = strings.Clone(epoch) // not the message's header
	g.last = last
}

// spend takes a gap of n numbers from the credit, if it holds them.
func (g *Gaps) spend(n uint64) bool {
	if float64(n) > g.credit {
		return false
	}
	g.credit -= float64(n)
	return true
}

func (g *Gaps) anomaly(a Anomaly) Anomaly {
	g.Anomalies++
	return a
}
