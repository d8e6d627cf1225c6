package inbound

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/inspect"
	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// Phase is where in the receiver a stage runs.
type Phase int

const (
	// Admit stages run in link order before the signal is decoded; their
	// refusals are answered and not dead-lettered: the sender keeps the
	// signal.
	Admit Phase = iota
	// Check stages depend on the signal and the policy alone; they run on
	// the receiver's workers, one per core, in parallel.
	Check
	// Settle stages depend on the signals before (the replay guard,
	// dampening, import.max_conditions); they run in link order after
	// the checks, just before the store write.
	Settle
)

// Arrival is a peer's signal as the stages see it.
type Arrival struct {
	Subject string // the link subject
	Header  nats.Header
	Data    []byte
	Now     time.Time

	Ev    *signal.Event // from the decode stage on
	Class string        // from the schema stage on
	Key   subject.Key   // from the schema stage on: what its store subject says

	stored string // its store subject, from the settle phase on

	// mayHold: a signal refused only for want of its origin's key is
	// held (store.KeyHeldStream) rather than refused; unpinned is that
	// refusal, the other checks passed.
	mayHold  bool
	unpinned error
	refresh  bool // a refresh's re-statement (link.HeaderRefresh): past the replay guard
	again    bool // admitted from the Adj-RIB-In (Reimport): past the replay guard
	// refusedAt names the stage that refused it.
	refusedAt string

	// Decided by a settle stage without a refusal: a replay, answered
	// duplicate; a signal dampening holds.
	duplicate bool
	hold      *holdJob
	idles     bool // its refusal made the link idle (import.max_conditions.idle)
}

// decided reports whether a settle stage took the signal out of the
// pipeline without refusing it.
func (a *Arrival) decided() bool { return a.duplicate || a.hold != nil }

// Stage is one of the receiver's checks of a peer's signal, by name.
type Stage struct {
	Name  string
	Phase Phase
	Run   func(a *Arrival) error
	// Moment: what the stage says depends on the moment (the rate, the
	// signals before, the condition table), not on the signal and the
	// policy alone; `policy explain` names it (Note) instead of running it.
	Moment bool
	// Note says what a Moment stage does under this policy ("" when the
	// policy leaves it out).
	Note func() string
}

// Stage names, in the order the receiver runs them.
const (
	StagePeering       = "peering"
	StageRateLimit     = "rate-limit"
	StageDecode        = "decode"
	StageAttributes    = "attributes"
	StageSignature     = "signature"
	StageSchema        = "schema"
	StageLinkSubject   = "link-subject"
	StageImportPolicy  = "import-policy"
	StageImportTags    = "import-tags"
	StageExpiry        = "expiry"
	StageReplay        = "replay"
	StageDampening     = "dampening"
	StageMaxConditions = "max-conditions"
)

// Stages are the receiver's checks of the signals of one peer, in the
// order it runs them. `anfed policy explain` traces them and `anfed
// bench` times them; the receiver runs nothing else.
func (r *Receiver) Stages() []Stage { return r.stages }

func (r *Receiver) newStages() []Stage {
	return []Stage{
		{Name: StagePeering, Phase: Admit, Run: r.checkPeering},
		{Name: StageRateLimit, Phase: Admit, Run: r.checkRate, Moment: true, Note: func() string {
			return fmt.Sprintf("import.max_rate %g/s, burst %d: over it, refused rate-limited and resent by the sender", float64(r.limiter.Limit()), r.limiter.Burst())
		}},
		{Name: StageDecode, Phase: Check, Run: r.decode},
		{Name: StageAttributes, Phase: Check, Run: func(a *Arrival) error { return a.Ev.Check() }},
		// Before anything costly: is it really from its origin?
		{Name: StageSignature, Phase: Check, Run: func(a *Arrival) error { return r.Verifier.Verify(a.Ev) }},
		{Name: StageSchema, Phase: Check, Run: r.checkSchema},
		{Name: StageLinkSubject, Phase: Check, Run: func(a *Arrival) error { return checkSubject(r.peer, a.Subject, a.Ev, a.Class) }},
		{Name: StageImportPolicy, Phase: Check, Run: func(a *Arrival) error { return r.policy.Load().Check(a.Ev, a.Class) }},
		// import.tags.add: stored, and seen by our consumers.
		{Name: StageImportTags, Phase: Check, Run: func(a *Arrival) error { return r.policy.Load().Tag(a.Ev) }},
		{Name: StageExpiry, Phase: Check, Run: func(a *Arrival) error { return inspect.LiveAt(a.Ev, a.Now) }},
		{Name: StageReplay, Phase: Settle, Run: r.checkReplay, Moment: true, Note: func() string { return "" }},
		// A held signal neither reaches the table nor counts against
		// import.max_conditions until it is released.
		{Name: StageDampening, Phase: Settle, Run: r.checkDampening, Moment: true, Note: func() string {
			d := r.cfg.Import.Dampening
			if d == nil {
				return ""
			}
			dd := d.WithDefaults()
			return fmt.Sprintf("import.dampening: a condition's penalty grows %g a state change, half-life %s; "+
				"over %g it is held until under %g (at most %s), then its last state is delivered",
				dd.Penalty, dd.HalfLife, dd.Suppress, dd.Reuse, dd.MaxSuppress)
		}},
		{Name: StageMaxConditions, Phase: Settle, Run: r.checkMaxConditionsStage, Moment: true, Note: func() string {
			if r.maxConds == nil {
				return ""
			}
			return fmt.Sprintf("import.max_conditions.limit %d: past it a new condition is refused too-many-conditions, and %s told with an advisory", r.maxConds.limit, r.peer)
		}},
	}
}

// run runs the stages of phase on a, in order, until one refuses or
// decides.
func (r *Receiver) run(phase Phase, a *Arrival) error {
	for i := range r.stages {
		st := &r.stages[i]
		if st.Phase != phase {
			continue
		}
		if err := st.Run(a); err != nil {
			if st.Name == StageSignature && a.mayHold && r.Verifier.Unpinned(a.Ev) {
				a.unpinned = err // the other checks still run: held only if they pass
				continue
			}
			if a.unpinned != nil {
				a.refusedAt = StageSignature
				return a.unpinned // refused for its signature first, as without the hold
			}
			a.refusedAt = st.Name
			return err
		}
		if a.decided() {
			return nil
		}
	}
	return nil
}

// checkPeering refuses a signal once the peering has expired.
func (r *Receiver) checkPeering(a *Arrival) error {
	if !r.cfg.ExpiredAt(a.Now) {
		return nil
	}
	err := reject.Errorf(reject.Revoked, "the peering with %s expired at %s: ask for a new peering bundle", r.peer, r.cfg.Expires.UTC().Format(time.RFC3339))
	r.Observer.Rejected(observe.Rejection{Node: r.self, From: r.peer, Reason: reject.Revoked, Detail: "the peering expired"})
	r.log.Warn().Str("reason", string(reject.Revoked)).Time("expired", *r.cfg.Expires).Msg("link: signal from a peer whose peering expired refused")
	return err
}

// checkRate refuses a signal over the import rate limit. Telemetry
// (stream delivery) takes a token only while more than half the burst is
// left: the rest is kept for the peer's durable signals, which its sender
// resends until they are taken. Without it a peer's telemetry over the
// rate took every token as it came, and its durable signals were refused
// at each resend for as long as the telemetry lasted
// (TestAttackTelemetryFloodKeepsOwnDurable).
func (r *Receiver) checkRate(a *Arrival) error {
	telemetry := a.Header.Get(link.HeaderTelemetry) != ""
	if (!telemetry || r.limiter.Tokens() >= float64(r.limiter.Burst()/2)+1) && r.limiter.Allow() {
		return nil
	}
	// Not a dead letter: an anfed sender keeps the signal and resends
	// it. Counted, so a flood shows per peer, and logged at most once
	// a second with the count, so a flood does not flood the log.
	r.Observer.Rejected(observe.Rejection{Node: r.self, From: r.peer, Reason: reject.RateLimited, Detail: "over the import rate limit"})
	r.limited++
	if now := time.Now(); now.Sub(r.limitedLogged) >= time.Second {
		r.log.Warn().Str("reason", string(reject.RateLimited)).Int("count", r.limited).Float64("max_rate", float64(r.limiter.Limit())).
			Msg("link: signals over the import rate limit refused")
		r.limited, r.limitedLogged = 0, now
	}
	return reject.Errorf(reject.RateLimited, "over the import rate limit of %g signals/s from %s: retry later", float64(r.limiter.Limit()), r.peer)
}

// decode reads the link message; a signal handed over decoded already
// (`policy explain` holds one) is taken as it is.
func (r *Receiver) decode(a *Arrival) (err error) {
	if a.Ev == nil {
		a.Ev, err = r.Inspector.Decode(a.Header, a.Data)
	}
	return err
}

func (r *Receiver) checkSchema(a *Arrival) (err error) {
	if a.Class, err = r.Inspector.Check(a.Ev); err == nil {
		a.Key = subject.Key{Origin: a.Ev.Origin, Class: a.Class, Service: a.Ev.Service(), Resource: a.Ev.Resource()}
	}
	return err
}

// checkReplay answers a signal accepted before duplicate.
func (r *Receiver) checkReplay(a *Arrival) error {
	ev := a.Ev
	if a.refresh || a.again || !r.Replay.Seen(ev.Source, ev.ID) {
		return nil
	}
	r.log.Info().Str("reason", string(reject.Duplicate)).Str("type", ev.Type).Str("subject", ev.Subject).Str("id", ev.ID).
		Msg("link: signal already accepted (a resend or a replay): not stored again")
	r.Observer.Rejected(observe.Rejection{Node: r.self, From: r.peer, Reason: reject.Duplicate, Detail: "already accepted: " + ev.Key(), Event: ev})
	a.duplicate = true
	return nil
}

func (r *Receiver) checkDampening(a *Arrival) error {
	if r.damp != nil {
		a.hold = r.dampen(a.Ev, a.Class, a.stored)
	}
	return nil
}

func (r *Receiver) checkMaxConditionsStage(a *Arrival) error {
	err := r.checkMaxConditions(a.Ev, a.Class)
	if err != nil {
		a.idles = r.maxConds.idleUntil.Load() != 0
	}
	return err
}
