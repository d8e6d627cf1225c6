package inbound

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/subject"
)

// An advisory tells a peer something about the link that is not a signal:
// that we reached the maximum of active conditions we take from it (its
// import.max_conditions at our end), say. It travels on the link inside the
// narrowest permission a peer has there, as a probe does, and is a
// CloudEvent (structured mode) that nobody answers and nothing stores.

// Advisory kinds.
const (
	AdvisoryMaxConditionsWarning = "max-conditions-warning"
	AdvisoryMaxConditionsLimit   = "max-conditions-limit"
	AdvisoryMaxConditionsOK      = "max-conditions-ok"
)

// AdvisoryType is the CloudEvents type of an advisory.
const AdvisoryType = "net.anfed.advisory.v1"

// advisoryEvery is how often one advisory of a kind is sent while the
// state it reports lasts; a change of state is told at once.
const advisoryEvery = time.Minute

// maxAdvisoryBytes bounds what the receiving side reads of an advisory.
const maxAdvisoryBytes = 4096

// Advisory is what a peer told us, as we report it.
type Advisory struct {
	From   string    `json:"from"`
	Kind   string    `json:"kind"`
	Text   string    `json:"text"`
	At     time.Time `json:"at"`
	Limit  int       `json:"limit,omitempty"`
	Active int       `json:"active,omitempty"`
}

// String is the advisory as `anfed peers` prints it.
func (a Advisory) String() string {
	return fmt.Sprintf("%s says: %s (at %s)", a.From, a.Text, a.At.UTC().Format("15:04:05"))
}

// advisoryEvent is an advisory on the wire.
type advisoryEvent struct {
	SpecVersion     string       `json:"specversion"`
	Type            string       `json:"type"`
	Source          string       `json:"source"`
	ID              string       `json:"id"`
	Time            time.Time    `json:"time"`
	Subject         string       `json:"subject"`
	DataContentType string       `json:"datacontenttype"`
	Data            advisoryData `json:"data"`
}

type advisoryData struct {
	Text   string `json:"text"`
	Limit  int    `json:"limit,omitempty"`
	Active int    `json:"active,omitempty"`
}

// advisories is a receiver's side of advisories: those it sends, rate
// limited, and the last it got.
type advisories struct {
	// Publish sends on the link's connection; nil: advisories are not sent.
	publish func(subj string, data []byte) error
	seq     atomic.Uint64

	// Sent: only the pipeline's end (checkMaxConditions) touches them.
	lastKind string
	lastAt   time.Time
	sent     atomic.Uint64

	got        atomic.Uint64
	junkLog    logSampler // only the subscription's goroutine touches it
	mu         sync.Mutex
	last       *Advisory
	loggedKind string
	loggedAt   time.Time
}

// advise sends the peer an advisory of kind, unless one of the same kind
// went less than a minute ago.
func (r *Receiver) advise(kind, text string, limit, active int) {
	a := &r.adv
	now := time.Now()
	if a.publish == nil || kind == a.lastKind && now.Sub(a.lastAt) < advisoryEvery {
		return
	}
	a.lastKind, a.lastAt = kind, now
	b, _ := json.Marshal(advisoryEvent{
		SpecVersion: "1.0", Type: AdvisoryType, Source: "anfed://" + r.self + "/node",
		ID: r.self + "-" + strconv.FormatInt(now.UnixNano(), 36) + "-" + strconv.FormatUint(a.seq.Add(1), 10), Time: now.UTC(),
		Subject: kind, DataContentType: "application/json",
		Data: advisoryData{Text: text, Limit: limit, Active: active},
	})
	if err := a.publish(subject.Advisory(r.self), b); err != nil {
		r.log.Warn().Err(err).Str("kind", kind).Msg("link: advisory to the peer not sent")
		return
	}
	a.sent.Add(1)
	r.log.Info().Str("kind", kind).Str("text", text).Msg("link: advisory sent to the peer")
}

// advised takes an advisory the peer sent: counted, kept as the peer's
// last word, logged (once a minute per kind at most).
func (r *Receiver) advised(m *nats.Msg) {
	a := &r.adv
	a.got.Add(1)
	var ev advisoryEvent
	if len(m.Data) > maxAdvisoryBytes || json.Unmarshal(m.Data, &ev) != nil || ev.Type != AdvisoryType || ev.Subject == "" {
		a.junkLog.log(time.Now(), func(n int) {
			r.log.Warn().Int("bytes", len(m.Data)).Int("count", n).Msg("link: unreadable advisory from the peer ignored")
		})
		return
	}
	adv := &Advisory{From: r.peer, Kind: clean(ev.Subject, 64), Text: clean(ev.Data.Text, 512), At: ev.Time,
		Limit: ev.Data.Limit, Active: ev.Data.Active}
	if adv.At.IsZero() || adv.At.After(time.Now().Add(time.Minute)) {
		adv.At = time.Now().UTC()
	}
	a.mu.Lock()
	a.last = adv
	log := adv.Kind != a.loggedKind || time.Since(a.loggedAt) >= advisoryEvery
	if log {
		a.loggedKind, a.loggedAt = adv.Kind, time.Now()
	}
	a.mu.Unlock()
	if log {
		r.log.Warn().Str("kind", adv.Kind).Str("text", adv.Text).Time("at", adv.At).Msg("link: advisory from the peer: " + adv.String())
	}
}

// clean makes a peer's text safe to log and show: printable, bounded.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return s
}

// Advisories reports the advisories the peer sent us (their count and the
// last) and how many we sent it.
func (r *Receiver) Advisories() (got uint64, last *Advisory, sent uint64) {
	a := &r.adv
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.last != nil {
		c := *a.last
		last = &c
	}
	return a.got.Load(), last, a.sent.Load()
}
