package outbound

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/outbound/exportpolicy"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// Copy is one of our stored signals on its way to one peer, as the
// stages see it.
type Copy struct {
	Ev     *signal.Event
	Key    subject.Key // what its store subject says
	Stored time.Time   // when it was stored; zero: unknown
	Now    time.Time
	// Rule is the export policy's decision (exportpolicy.Decision.Rule).
	Rule string
	// Redacted: the export.redact fields the redact stage removed.
	Redacted []string
	// Out is the link message, from the link-message stage on.
	Out *nats.Msg
	// recorded: the audit trail has its record (Sender).
	recorded bool
	// lm is the link message's room (outgoing), made with the copy by
	// Sender.prepare; nil: the link-message stage makes it.
	lm *linkMsg
}

// sendCopy is a Copy and its link message's room, made at once.
type sendCopy struct {
	c  Copy
	lm linkMsg
}

// linkMsg is a link message and what goes with it, in one allocation.
type linkMsg struct {
	msg nats.Msg
	// vals are the link headers' values (Sender.prepare).
	vals [4]string
	// path is the signal's path when self is its one hop.
	path [1]string
}

// Stage is one step of a signal towards a peer, by name. A stage that
// stops the signal returns an error saying why (ErrNotSent for what the
// policy does not send); it has logged and counted what needs it.
type Stage struct {
	Name string
	Run  func(c *Copy) error
	// Moment: what the stage says depends on the moment (the link, how
	// long the signal waited), not on the signal and the policy alone;
	// `policy explain` names it (Note) instead of running it.
	Moment bool
	Note   func() string
}

// Stage names, in the order the senders run them.
const (
	StagePeering      = "peering"
	StageExportPolicy = "export-policy"
	StageBufferAge    = "buffer-age"
	StageLinkUp       = "link-up"
	StageRedact       = "redact"
	StageExportTags   = "export-tags"
	StageLinkMessage  = "link-message"
)

// errNoLinkSubject: a stored signal whose key is over the subject bounds
// (intake and the receivers refuse such signals) has no link subject.
var errNoLinkSubject = errors.New("no link subject")

// ErrNotSent is why a signal the export policy does not send to the peer
// stops: not a failure.
var ErrNotSent = errors.New("not for this peer")

// stager is what the stages of one peer's sender read.
type stager struct {
	self   string
	policy *exportpolicy.Policy
	log    zerolog.Logger
	// expired: the peering has ended. holdExpired: the durable sender
	// holds its signals at the link instead (they wait in the store for
	// a renewed peering), so the stage lets them on.
	expired     func(now time.Time) bool
	holdExpired bool
	maxAge      time.Duration
	dropOld     func(ev *signal.Event) // counts a drop at the age bound
	linkUp      func() bool
	dropDown    func() // counts a drop while the link is down
	resign      func(ev *signal.Event) error
	// stale: a signal we originate signed by a key we no longer sign
	// with (before our key rotation's switch); signed again on its way.
	stale func(ev *signal.Event) bool
}

// stages are the senders' steps, in order; the durable and the lossy
// sender run the same list (a stage a sender has no setting for lets
// every signal on).
func (st *stager) stages() []Stage {
	return []Stage{
		{Name: StagePeering, Run: func(c *Copy) error {
			if st.expired == nil || st.holdExpired || !st.expired(c.Now) {
				return nil
			}
			return errors.New("the peering has ended")
		}},
		{Name: StageExportPolicy, Run: func(c *Copy) error {
			d := st.policy.Decide(c.Ev, c.Key.Class)
			c.Rule = d.Rule
			if !d.Export {
				st.log.Trace().Str("type", c.Ev.Type).Str("subject", c.Ev.Subject).Str("rule", d.Rule).Msg("link: not exported")
				return ErrNotSent
			}
			return nil
		}},
		{Name: StageBufferAge, Moment: true, Run: func(c *Copy) error {
			if st.maxAge > 0 && !c.Stored.IsZero() && c.Now.Sub(c.Stored) > st.maxAge {
				st.dropOld(c.Ev)
				return fmt.Errorf("waited longer than export.buffer.max_age %s", st.maxAge)
			}
			return nil
		}, Note: func() string {
			if st.maxAge <= 0 {
				return ""
			}
			return fmt.Sprintf("export.buffer.max_age %s: dropped for this peer if it waited longer", st.maxAge)
		}},
		{Name: StageLinkUp, Moment: true, Run: func(*Copy) error {
			if st.linkUp == nil || st.linkUp() {
				return nil
			}
			st.dropDown()
			return errors.New("the link is down")
		}, Note: func() string {
			if st.linkUp == nil {
				return ""
			}
			return "lossy: sent once, fire and forget; lost if the link is down or the peer slow"
		}},
		{Name: StageRedact, Run: st.redact},
		{Name: StageExportTags, Run: func(c *Copy) error {
			if !st.policy.Retags() {
				return nil
			}
			// export.tags: hop-by-hop claims towards this peer, not signed.
			if err := st.policy.Retag(c.Ev); err != nil {
				st.log.Error().Err(err).Str("type", c.Ev.Type).Str("subject", c.Ev.Subject).Str("id", c.Ev.ID).
					Msg("link: signal not exported: its tags could not be set (export.tags)")
				return err
			}
			return nil
		}},
		{Name: StageLinkMessage, Run: func(c *Copy) (err error) {
			if c.lm == nil {
				c.lm = &linkMsg{}
			}
			if c.Out, err = c.lm.fill(st.self, c.Key, c.Ev); err != nil {
				st.log.Error().Err(err).Msg("link: stored signal has no link subject; skipped")
				return fmt.Errorf("%w: %w", errNoLinkSubject, err)
			}
			return nil
		}},
	}
}

// redact is export.redact: the peer gets our signal without the fields,
// signed again by us, its origin. Never the full signal instead. A signal
// of ours signed before our key rotation's switch is signed again with
// the key in force, so the peer needs the old key only for what was on
// the wire at the switch (a backlog, a refresh's re-statements of old
// conditions, resends: all carry the new key).
func (st *stager) redact(c *Copy) error {
	var err error
	resign := false
	if st.policy.Redacts() {
		c.Redacted, err = st.policy.Redact(c.Ev)
		resign = len(c.Redacted) > 0
		if err != nil {
			err = fmt.Errorf("export.redact: %w", err)
		}
	}
	if err == nil && !resign && st.stale != nil && c.Ev.Origin == st.self && st.stale(c.Ev) {
		resign = true
	}
	if err == nil && resign {
		if st.resign == nil {
			err = errors.New("export.redact: no signing key to sign the redacted copy")
		} else if err = st.resign(c.Ev); err != nil {
			err = fmt.Errorf("sign our signal again: %w", err)
		}
	}
	if err != nil {
		st.log.Error().Err(err).Str("type", c.Ev.Type).Str("subject", c.Ev.Subject).Str("id", c.Ev.ID).
			Msg("link: signal not exported: it could not be redacted (export.redact) or signed again")
		return err
	}
	return nil
}

// run runs stages on c in order until one stops it.
func run(stages []Stage, c *Copy) error {
	for i := range stages {
		if err := stages[i].Run(c); err != nil {
			return err
		}
	}
	return nil
}

// StagesFor returns the steps our sender to peer p runs on a signal, for
// `policy explain` and `anfed bench`: policy is the export policy towards
// p, resign signs a redacted copy again. Its Moment stages have no link
// or store to look at and let every signal on.
func StagesFor(self string, policy *exportpolicy.Policy, expired func(time.Time) bool, lossy bool, maxAge time.Duration, resign func(*signal.Event) error) []Stage {
	st := &stager{self: self, policy: policy, log: zerolog.Nop(), expired: expired, resign: resign, maxAge: maxAge, dropOld: func(*signal.Event) {}, dropDown: func() {}}
	if lossy {
		st.linkUp = func() bool { return true }
	}
	return st.stages()
}

// outgoing is the link message that carries ev, one of self's signals
// (its own or relayed) whose subject says k and that the export policy
// lets through, to a peer: self added to its path, on self's link
// subject. It fails only for a key over the subject bounds.
func outgoing(self string, k subject.Key, ev *signal.Event) (*nats.Msg, error) {
	return new(linkMsg).fill(self, k, ev)
}

// fill makes lm outgoing's link message and returns it.
func (lm *linkMsg) fill(self string, k subject.Key, ev *signal.Event) (*nats.Msg, error) {
	subj, err := subject.Link(self, k)
	if err != nil {
		return nil, err
	}
	if len(ev.Path) == 0 {
		lm.path[0] = self
		ev.Path = lm.path[:1:1]
	} else {
		ev.Path = append(ev.Path, self)
	}
	// Room for the link's headers (Sender.prepare), set without growing.
	lm.msg = nats.Msg{Subject: subj, Header: make(nats.Header, 8), Data: ev.Encode()}
	return &lm.msg, nil
}
