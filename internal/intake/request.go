package intake

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

// RequestAll hands msgs to intake on nc, in order, all before the first
// answer is awaited (intake stores them in arrival order), and returns
// their answers in the same order. Each message needs its Subject (an.pub
// or an.pub.<from>) and Data; RequestAll sets the Reply. A nil message is
// skipped and its answer left zero. A message not answered within timeout,
// or that could not be sent, is answered Unavailable.
func RequestAll(nc *nats.Conn, msgs []*nats.Msg, timeout time.Duration) []signal.Answer {
	out := make([]signal.Answer, len(msgs))
	inbox := nc.NewRespInbox()
	replies := make(chan *nats.Msg, len(msgs)+1)
	sub, err := nc.ChanSubscribe(inbox+".*", replies)
	if err != nil {
		for i, m := range msgs {
			if m != nil {
				out[i] = Unavailable(err)
			}
		}
		return out
	}
	defer func() { _ = sub.Unsubscribe() }()
	waiting := map[int]bool{}
	for i, m := range msgs {
		if m == nil {
			continue
		}
		m.Reply = inbox + "." + strconv.Itoa(i)
		if err := nc.PublishMsg(m); err != nil {
			out[i] = Unavailable(err)
			continue
		}
		waiting[i] = true
	}
	deadline := time.After(timeout)
	for len(waiting) > 0 {
		select {
		case m := <-replies:
			i, err := strconv.Atoi(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:])
			if err != nil || !waiting[i] {
				continue
			}
			ans, err := signal.ParseAnswer(m.Data)
			if err != nil {
				ans = Unavailable(err)
			}
			out[i] = ans
			delete(waiting, i)
		case <-deadline:
			for i := range waiting {
				out[i] = Unavailable(errors.New("timeout"))
			}
			return out
		}
	}
	return out
}

// Unavailable is the answer for a signal the node did not answer.
func Unavailable(err error) signal.Answer {
	return signal.Answer{Status: signal.StatusRejected, Reason: string(reject.Unavailable),
		Error: fmt.Sprintf("the node did not answer (%v): retry with the same id, a signal stored twice is kept once", err)}
}
