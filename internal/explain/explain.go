// Package explain answers, for one node's policy file, "which peers would
// receive this signal, and why not the others" (`anfed policy explain`). It
// runs the code the node runs — exportpolicy.Decide and Redact, the link
// subject, importpolicy.Check, the inspector, the origin verifier, and the
// NATS permissions natsconf derives — in the order the link sender and
// receiver apply them, and reports what each step said. What depends on
// the moment (rate limits, buffers, the condition table, the replay guard)
// is named, not guessed.
package explain

import (
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/inbound"
	"github.com/anfed/anfed/internal/inspect"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/outbound"
	"github.com/anfed/anfed/internal/outbound/exportpolicy"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/schemacheck"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// Explainer explains signals against one node's policy.
type Explainer struct {
	cfg   *config.Config
	insp  *inspect.Inspector
	ver   *origin.Verifier
	peers map[string]*config.Config // the peers' own policies, when known
	now   func() time.Time
	// intents are the peers' intents we accepted, for
	// export.intent_classes; nil: none known.
	intents exportpolicy.Intents
}

// WithIntents gives the intents we accepted (`anfed intents --json` of
// this node): a signal of an export.intent_classes class is then judged
// by them, and the verdict names the intent.
func WithIntents(v exportpolicy.Intents) Option {
	return func(e *Explainer) { e.intents = v }
}

// Option configures an Explainer.
type Option func(*Explainer)

// WithPeerConfig adds the policy file of one of the peers. With it, the
// NATS permissions that peer derives for our link are known too (on a
// link we dial, the peer issued our credentials and bounds what we may
// send), and the peer's import side is explained for what we send it.
func WithPeerConfig(c *config.Config) Option {
	return func(e *Explainer) { e.peers[c.Operator.ID] = c }
}

// WithNow sets the clock used for expiries (peerings, signals).
func WithNow(now func() time.Time) Option { return func(e *Explainer) { e.now = now } }

// New returns the explainer of the node that cfg, a checked policy,
// configures.
func New(cfg *config.Config, cat *schemacheck.Catalog, opts ...Option) (*Explainer, error) {
	e, err := newWith(cfg, inspect.New(cat, 0))
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(e)
	}
	return e, nil
}

func newWith(cfg *config.Config, insp *inspect.Inspector) (*Explainer, error) {
	pinned := map[string]string{}
	for _, o := range cfg.Origins {
		pinned[o.ID] = o.SigningKey
	}
	for _, p := range cfg.Peers {
		if p.SigningKey != "" {
			pinned[p.ID] = p.SigningKey
		}
	}
	ver, err := origin.NewVerifier(pinned)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.File, err)
	}
	return &Explainer{cfg: cfg, insp: insp, ver: ver, peers: map[string]*config.Config{}, now: time.Now}, nil
}

// Report is the explanation of one signal at one node.
type Report struct {
	Node   string   `json:"node"`
	Signal Signal   `json:"signal"`
	Notes  []string `json:"notes,omitempty"`
	// Import is the import side, when the signal comes from a peer
	// (--from). When it is refused, Peers is empty: the node never holds
	// the signal.
	Import *Import `json:"import,omitempty"`
	// Peers is the export side: one verdict per peer, in policy order.
	Peers []Verdict `json:"peers"`
}

// Signal is what the report says of the signal.
type Signal struct {
	ID       string   `json:"id"`
	Source   string   `json:"source"`
	Class    string   `json:"class"`
	Subject  string   `json:"subject"`
	Origin   string   `json:"origin"`
	State    string   `json:"state"`
	Severity int      `json:"severity,omitempty"`
	Path     []string `json:"path"`
	// Tags are the signal's tags as the node holds it (after
	// import.tags.add, with --from).
	Tags []string `json:"tags,omitempty"`
}

// Step is one check and what it said.
type Step struct {
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// NATS is what the NATS permissions derived from the policies say of the
// link subject. Allowed is nil when the permission is set by a peer whose
// policy is not known.
type NATS struct {
	Subject string   `json:"subject"`
	Allowed *bool    `json:"allowed,omitempty"`
	By      string   `json:"by"`
	Allow   []string `json:"allow,omitempty"`
	Detail  string   `json:"detail"`
}

// Import is the import side of a signal received from a peer.
type Import struct {
	From   string `json:"from"`
	Accept bool   `json:"accept"`
	// Reason is the refusal reason (internal/reject), "" when accepted.
	Reason string `json:"reason,omitempty"`
	// Rule is what decided: the refusing step's detail, or why it passes.
	Rule  string   `json:"rule"`
	NATS  NATS     `json:"nats"`
	Steps []Step   `json:"steps"`
	Notes []string `json:"notes,omitempty"`
}

// Verdict is the export side towards one peer.
type Verdict struct {
	Peer    string `json:"peer"`
	Receive bool   `json:"receive"`
	// Rule is the rule that decided (exportpolicy.Decide's, or the step
	// after it that stopped the signal).
	Rule     string   `json:"rule"`
	Delivery string   `json:"delivery,omitempty"`
	Subject  string   `json:"subject,omitempty"`
	Redacted []string `json:"redacted,omitempty"`
	// Tags are the tags of the copy the peer receives (export.tags).
	Tags   []string `json:"tags,omitempty"`
	Pacing string   `json:"pacing,omitempty"`
	NATS   *NATS    `json:"nats,omitempty"`
	Notes  []string `json:"notes,omitempty"`
	// PeerImport is the peer's import side for the copy we send, when its
	// policy is known (WithPeerConfig).
	PeerImport *Import `json:"peer_import,omitempty"`
}

// Delivered reports whether the peer ends up holding the signal, as far
// as the known policies tell: we send it, NATS lets it through and, when
// the peer's policy is known, the peer accepts it.
func (v *Verdict) Delivered() bool {
	return v.Receive && (v.PeerImport == nil || v.PeerImport.Accept)
}

// Decode reads a signal file: one structured-mode CloudEvent, as `anfed
// publish --file` takes, checked against the catalog.
func (e *Explainer) Decode(body []byte) (*signal.Event, string, error) {
	ev, class, err := e.insp.Full(nil, body)
	if err != nil {
		return nil, "", err
	}
	return ev, class, nil
}

// Explain explains ev, of class class, at this node. from is the peer it
// arrives from, "" for a signal the node already holds (a local one, or
// one it accepted earlier: its path then ends with the peer it came from).
// When from is set and ev's path does not end with from yet, ev is taken
// as from holds it: with from's policy (WithPeerConfig) the copy is the
// one from's sender makes (its export decision, redaction, tags, path);
// without it, from is appended to the path, as from's sender does.
func (e *Explainer) Explain(ev *signal.Event, class, from string) (*Report, error) {
	ev = clone(ev)
	r := &Report{Node: e.cfg.Operator.ID}
	if from != "" {
		p, ok := e.cfg.Peer(from)
		if !ok {
			return nil, fmt.Errorf("--from %s: not a peer of %s (peers: %v)", from, e.cfg.Operator.ID, e.peerIDs())
		}
		if n := len(ev.Path); n == 0 || ev.Path[n-1] != from {
			if out, stop := e.sentBy(r, ev, class, from); stop {
				return r, nil
			} else if out != nil {
				ev = out
			} else {
				ev.Path = append(ev.Path, from)
			}
		}
		r.Import = e.importSide(ev, class, p)
	} else if ev.Origin != e.cfg.Operator.ID && len(ev.Path) == 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("origin %s is not %s and the path is empty: a signal of another origin only reaches %s from a peer (use --from PEER)",
			ev.Origin, e.cfg.Operator.ID, e.cfg.Operator.ID))
	}
	r.Signal = signalOf(ev, class)
	r.Peers = []Verdict{}
	if r.Import != nil && !r.Import.Accept {
		return r, nil
	}
	for i := range e.cfg.Peers {
		v, _ := e.exportSide(ev, class, &e.cfg.Peers[i])
		r.Peers = append(r.Peers, v)
	}
	return r, nil
}

// sentBy makes the copy peer from's sender sends us, when from's policy
// is known: its export decision, redaction, tags and path hop. stop is
// true when from does not send it at all; the report then says why.
func (e *Explainer) sentBy(r *Report, ev *signal.Event, class, from string) (out *signal.Event, stop bool) {
	self := e.cfg.Operator.ID
	pc, ok := e.peers[from]
	if !ok {
		return nil, false
	}
	pp, ok := pc.Peer(self)
	if !ok {
		return nil, false
	}
	pe, err := newWith(pc, e.insp)
	if err != nil {
		return nil, false
	}
	pe.now = e.now
	v, out := pe.exportSide(ev, class, pp)
	if out == nil {
		r.Import = &Import{From: from, Rule: fmt.Sprintf("%s does not send it: %s", from, v.Rule), Steps: []Step{}}
		r.Signal = signalOf(ev, class)
		r.Peers = []Verdict{}
		return nil, true
	}
	r.Notes = append(r.Notes, fmt.Sprintf("the copy %s's sender makes for %s (%s's policy is given): %s", from, self, from, v.Rule))
	return out, false
}

func signalOf(ev *signal.Event, class string) Signal {
	s := Signal{ID: ev.ID, Source: ev.Source, Class: class, Subject: ev.Subject, Origin: ev.Origin,
		State: string(ev.State), Severity: ev.SeverityNumber, Path: slices.Clone(ev.Path), Tags: slices.Clone(ev.Tags)}
	if s.Path == nil {
		s.Path = []string{}
	}
	return s
}

func (e *Explainer) peerIDs() []string {
	var ids []string
	for _, p := range e.cfg.Peers {
		ids = append(ids, p.ID)
	}
	return ids
}

// exportSide follows the link sender (outbound.Sender.prepare, and
// outbound.LossySender for lossy delivery) for one peer.
func (e *Explainer) exportSide(ev *signal.Event, class string, p *config.Peer) (Verdict, *signal.Event) {
	self := e.cfg.Operator.ID
	v := Verdict{Peer: p.ID, Delivery: config.DeliveryDurable}
	if p.Export.Lossy() {
		v.Delivery = p.Export.Delivery // lossy or stream: the same sender for stored signals
	}
	pol := exportpolicy.ForConfig(e.cfg, p, exportpolicy.WithIntents(e.intents))
	out := clone(ev)
	c := &outbound.Copy{Ev: out, Key: subject.Key{Origin: ev.Origin, Class: class, Service: ev.Service(), Resource: ev.Resource()}, Now: e.now()}
	// The redacted copy is signed again by us; the explainer has no key
	// and says so instead.
	resign := func(*signal.Event) error { return nil }
	var maxAge time.Duration
	if !p.Export.Lossy() {
		maxAge = time.Duration(p.Export.Buffer.MaxAge) // nothing waits for a lossy peer
	}
	for _, st := range outbound.StagesFor(self, pol, p.ExpiredAt, p.Export.Lossy(), maxAge, resign) {
		if st.Moment {
			if n := st.Note(); n != "" {
				v.Notes = append(v.Notes, n)
			}
			continue
		}
		if err := st.Run(c); err != nil {
			switch st.Name {
			case outbound.StagePeering:
				v.Rule = fmt.Sprintf("peers[%s].expires %s has passed: nothing is sent to %s", p.ID, p.Expires.UTC().Format(time.RFC3339), p.ID)
			case outbound.StageExportPolicy:
				v.Rule = c.Rule
			default:
				v.Rule = err.Error() + ": not sent"
			}
			return v, nil
		}
		switch st.Name {
		case outbound.StageExportPolicy:
			v.Rule = c.Rule
		case outbound.StageRedact:
			e.redacted(&v, ev, out, p)
		case outbound.StageExportTags:
			v.Tags = slices.Clone(out.Tags)
		case outbound.StageLinkMessage:
			v.Subject = c.Out.Subject
		}
	}
	if pace := outbound.NewPace(p.Export); pace != nil && !p.Export.Lossy() {
		v.Pacing = fmt.Sprintf("export.max_rate %g/s, burst %d: it waits for its turn, never dropped", float64(pace.Limit()), pace.Burst())
	}
	n := e.sendPermission(p, v.Subject)
	v.NATS = &n
	v.Receive = n.Allowed == nil || *n.Allowed
	if !v.Receive {
		v.Rule = "NATS: " + n.Detail
		v.Notes = append(v.Notes, fmt.Sprintf("%s's sender sends it, the link drops it, and the sender gives up on it with an error in its log: align %s's export.transit with %s's import.transit",
			self, self, p.ID))
		return v, nil
	}
	if pc, ok := e.peers[p.ID]; ok {
		pe, err := newWith(pc, e.insp)
		switch pp, ok := pc.Peer(self); {
		case err != nil:
			v.Notes = append(v.Notes, fmt.Sprintf("%s's policy: %v", p.ID, err))
		case !ok:
			v.PeerImport = &Import{From: self, Rule: fmt.Sprintf("%s's policy has no peer %s", p.ID, self), Steps: []Step{}}
		default:
			pe.now = e.now
			pe.peers[self] = e.cfg
			v.PeerImport = pe.importSide(out, class, pp)
		}
	}
	return v, out
}

// redacted says which of the policy's export.redact fields this signal
// had: each pointer alone tells.
func (e *Explainer) redacted(v *Verdict, ev, out *signal.Event, p *config.Peer) {
	self := e.cfg.Operator.ID
	for _, ptr := range p.Export.Redact {
		one := exportpolicy.New(self, &config.Peer{ID: p.ID, Export: config.ExportPolicy{Redact: []string{ptr}}})
		if removed, err := one.Redact(clone(ev)); err == nil && len(removed) > 0 {
			v.Redacted = append(v.Redacted, ptr)
		}
	}
	if len(v.Redacted) > 0 {
		v.Notes = append(v.Notes, fmt.Sprintf("the redacted copy is signed again by %s", self))
		if _, err := e.insp.Check(out); err != nil {
			v.Notes = append(v.Notes, fmt.Sprintf("%s will refuse the redacted copy: %v (redact only fields the class schema does not require)", p.ID, err))
		}
	}
}

// sendPermission says whether NATS lets a message on subj, which we send,
// reach peer p: the subscribe permission of the leaf user we issue to a
// peer that dials us, or the publish permission of the leaf user the peer
// issued to us when we dial it.
func (e *Explainer) sendPermission(p *config.Peer, subj string) NATS {
	self := e.cfg.Operator.ID
	if p.Accept != nil {
		_, sub := natsconf.LeafPermissions(self, p)
		return permit(subj, sub, self, fmt.Sprintf("%s dials %s: the leaf user %s issues %s may receive", p.ID, self, self, p.ID))
	}
	pc, ok := e.peers[p.ID]
	if !ok {
		n := NATS{Subject: subj, By: p.ID,
			Detail: fmt.Sprintf("%s dials %s: the leaf user %s issued %s bounds what it may send (%s, or %s with %s's import.transit); %s's policy is not given (--peer-config)",
				self, p.ID, p.ID, self, subject.LinkPrefix+"."+self+"."+self+".>", subject.LinkFrom(self), p.ID, p.ID)}
		if own := subject.LinkPrefix + "." + self + "." + self + ".>"; server.SubjectMatchesFilter(subj, own) {
			n.Allowed = ptr(true)
			n.Allow = []string{own}
			n.Detail = fmt.Sprintf("%s dials %s: the leaf user %s issued %s may send %s's own signals in any case, %s", self, p.ID, p.ID, self, self, own)
		}
		return n
	}
	pp, ok := pc.Peer(self)
	if !ok {
		return NATS{Subject: subj, Allowed: ptr(false), By: p.ID, Detail: fmt.Sprintf("%s's policy has no peer %s: it issues %s no leaf user", p.ID, self, self)}
	}
	pub, _ := natsconf.LeafPermissions(p.ID, pp)
	return permit(subj, pub, p.ID, fmt.Sprintf("%s dials %s: the leaf user %s issued %s may send", self, p.ID, p.ID, self))
}

// receivePermission says whether NATS lets a message on subj, sent by
// peer p, reach us.
func (e *Explainer) receivePermission(p *config.Peer, subj string) NATS {
	self := e.cfg.Operator.ID
	if p.Accept != nil {
		pub, _ := natsconf.LeafPermissions(self, p)
		return permit(subj, pub, self, fmt.Sprintf("%s dials %s: the leaf user %s issues %s may send", p.ID, self, self, p.ID))
	}
	pc, ok := e.peers[p.ID]
	if !ok {
		n := NATS{Subject: subj, By: p.ID, Detail: fmt.Sprintf("%s dials %s: the leaf user %s issued %s may receive %s", self, p.ID, p.ID, self, subject.LinkFrom(p.ID))}
		if server.SubjectMatchesFilter(subj, subject.LinkFrom(p.ID)) {
			n.Allowed = ptr(true)
			n.Allow = []string{subject.LinkFrom(p.ID)}
		}
		return n
	}
	pp, ok := pc.Peer(self)
	if !ok {
		return NATS{Subject: subj, Allowed: ptr(false), By: p.ID, Detail: fmt.Sprintf("%s's policy has no peer %s", p.ID, self)}
	}
	_, sub := natsconf.LeafPermissions(p.ID, pp)
	return permit(subj, sub, p.ID, fmt.Sprintf("%s dials %s: the leaf user %s issued %s may receive", self, p.ID, p.ID, self))
}

func permit(subj string, allow []string, by, what string) NATS {
	n := NATS{Subject: subj, By: by, Allow: allow, Allowed: ptr(false)}
	for _, a := range allow {
		if server.SubjectMatchesFilter(subj, a) {
			n.Allowed = ptr(true)
			n.Allow = []string{a}
			n.Detail = fmt.Sprintf("%s %s", what, a)
			return n
		}
	}
	n.Detail = fmt.Sprintf("%s only %v: %s is not among them", what, allow, subj)
	return n
}

func ptr(b bool) *bool { return &b }

// importSide traces the receiver's stages (inbound.StagesFor) for a
// signal ev, whose path ends with p, as it arrives from p: it runs those
// that depend on the signal and the policy, and names those that depend
// on the moment.
func (e *Explainer) importSide(ev *signal.Event, class string, p *config.Peer) *Import {
	self := e.cfg.Operator.ID
	k := subject.Key{Origin: ev.Origin, Class: class, Service: ev.Service(), Resource: ev.Resource()}
	im := &Import{From: p.ID, Steps: []Step{}}
	subj, err := subject.Link(p.ID, k)
	if err != nil {
		err = reject.Wrap(reject.BadAttribute, err)
		im.Steps = append(im.Steps, Step{Check: "subject", Detail: err.Error()})
		im.Reason, im.Rule = string(reject.BadAttribute), err.Error()
		return im
	}
	im.NATS = e.receivePermission(p, subj)
	if im.NATS.Allowed != nil && !*im.NATS.Allowed {
		im.Rule = "NATS: " + im.NATS.Detail
		return im
	}
	a := &inbound.Arrival{Subject: subj, Ev: ev, Now: e.now()}
	for _, st := range inbound.StagesFor(self, p, e.insp, e.ver, e.cfg.MayOriginate()) {
		if st.Moment {
			if n := st.Note(); n != "" {
				im.Notes = append(im.Notes, n)
			}
			continue
		}
		err := st.Run(a)
		if err != nil && st.Name == inbound.StageSignature && reject.ReasonOf(err) != reject.UnknownOrigin && ev.DSSEMaterial == "" {
			im.Steps = append(im.Steps, Step{Check: st.Name, OK: true,
				Detail: fmt.Sprintf("a key is pinned for %s (the file is unsigned: %s's node signs at intake)", ev.Origin, ev.Origin)})
			continue
		}
		if err != nil {
			im.Steps = append(im.Steps, Step{Check: st.Name, Detail: err.Error()})
			im.Reason = string(reject.ReasonOf(err))
			im.Rule = err.Error()
			return im
		}
		if d := e.passed(st.Name, a, p); d != "" {
			im.Steps = append(im.Steps, Step{Check: st.Name, OK: true, Detail: d})
		}
	}
	im.Accept = true
	im.Rule = e.importRule(ev, class, p)
	return im
}

// passed says why a stage let a signal through ("": nothing worth
// saying; the link subject, say, which explain builds from the signal).
func (e *Explainer) passed(stage string, a *inbound.Arrival, p *config.Peer) string {
	ev := a.Ev
	switch stage {
	case inbound.StagePeering:
		if p.Expires != nil {
			return "peers[" + p.ID + "].expires " + p.Expires.UTC().Format(time.RFC3339) + " is ahead"
		}
	case inbound.StageAttributes:
		return "required attributes present"
	case inbound.StageSignature:
		return fmt.Sprintf("verifies against the key pinned for %s", ev.Origin)
	case inbound.StageSchema:
		return "data matches the " + a.Class + " schema"
	case inbound.StageImportPolicy:
		return e.importRule(ev, a.Class, p)
	case inbound.StageImportTags:
		if len(p.Import.Tags.Add) > 0 {
			return fmt.Sprintf("import.tags.add %v: stored with tags %v", p.Import.Tags.Add, ev.Tags)
		}
	case inbound.StageExpiry:
		if !ev.ExpiryTime.IsZero() {
			return "expirytime " + ev.ExpiryTime.UTC().Format(time.RFC3339) + " is ahead"
		}
	}
	return ""
}

// importRule says why the import policy lets ev through.
func (e *Explainer) importRule(ev *signal.Event, class string, p *config.Peer) string {
	rule := fmt.Sprintf("import.classes for %s allows %s", p.ID, class)
	if ev.Origin != p.ID {
		rule += fmt.Sprintf("; import.transit accepts %s's signal relayed by %s", ev.Origin, p.ID)
	}
	if e.cfg.MayOriginate()[ev.Origin] != nil {
		rule += fmt.Sprintf("; may_originate lets %s originate %s on %s", ev.Origin, class, ev.Service())
	}
	if e.cfg.MayOriginate()[ev.Origin] != nil {
		rule += fmt.Sprintf("; may_originate lets %s originate %s on %s", ev.Origin, class, ev.Service())
	}
	switch t := p.Import.Tags; {
	case ev.State == signal.Cleared && (len(t.Require) > 0 || len(t.Deny) > 0 || p.Import.Filter != ""):
		rule += "; a clear passes import.tags and import.filter"
	default:
		if len(t.Require) > 0 || len(t.Deny) > 0 {
			rule += "; import.tags let it through"
		}
		if p.Import.Filter != "" {
			rule += fmt.Sprintf("; import.filter %q is true", p.Import.Filter)
		}
	}
	return rule
}

func clone(ev *signal.Event) *signal.Event {
	c := *ev
	c.Path = slices.Clone(ev.Path)
	c.Tags = slices.Clone(ev.Tags)
	c.Data = slices.Clone(ev.Data)
	return &c
}
