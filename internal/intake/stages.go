package intake

import (
	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/inspect"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/schemas"
)

// Local is a local producer's message as intake's stages see it.
type Local struct {
	Header nats.Header
	Data   []byte
	Ev     *signal.Event // from the schema stage on, when it decoded
	Class  string
}

// Stage is one of intake's steps, by name.
type Stage struct {
	Name string
	Run  func(l *Local) error
}

// Stage names, in the order intake runs them.
const (
	StageSchema = "schema"
	StageLocal  = "local"
	StageExpiry = "expiry"
	StageSign   = "sign"
)

// StagesFor returns intake's steps for a node of operator self, before
// the store: decoded and valid against the catalog (insp), a signal of
// self's own, not signed and with no path yet, not expired (its class's
// dataschema filled in when the producer left it out), and signed with
// signer (nil: stored unsigned, a node without peers). `anfed bench`
// times them; intake runs nothing else before the store.
func StagesFor(insp *inspect.Inspector, self string, signer *origin.Signer) []Stage {
	return []Stage{
		{Name: StageSchema, Run: func(l *Local) (err error) {
			l.Ev, l.Class, err = insp.Full(l.Header, l.Data)
			return err
		}},
		{Name: StageLocal, Run: func(l *Local) error { return checkLocal(self, l.Ev) }},
		{Name: StageExpiry, Run: func(l *Local) error {
			if err := insp.Live(l.Ev); err != nil {
				return err
			}
			if l.Ev.DataSchema == "" {
				l.Ev.DataSchema = schemas.SchemaURI(l.Class)
			}
			return nil
		}},
		{Name: StageSign, Run: func(l *Local) error {
			if signer == nil {
				return nil
			}
			if err := signer.Sign(l.Ev); err != nil {
				return reject.Wrap(reject.Unavailable, err)
			}
			return nil
		}},
	}
}
