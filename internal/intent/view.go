package intent

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// View is, for the senders (export.intent_classes), the intents peers
// own that we accepted and that are in force, by owner and service. The
// node reads it (node.WithIntents); the intents' Service keeps it.
type View struct {
	mu sync.RWMutex
	m  map[viewKey]viewEntry
}

type viewKey struct{ owner, service string }

type viewEntry struct {
	id    string
	from  *time.Time // validFor's start; nil: none
	until *time.Time // validFor's end; nil: none
}

// NewView returns an empty view.
func NewView() *View { return &View{m: map[viewKey]viewEntry{}} }

// inForce are the lifecycle states of an accepted intent not ended.
var inForce = []string{InProgress, Compliant, Degraded, NotCompliant}

// Accepted is the id of an intent owner owns for service that we
// accepted and that is in force (exportpolicy.Intents).
func (v *View) Accepted(owner, service string) (string, bool) {
	if v == nil {
		return "", false
	}
	v.mu.RLock()
	e, ok := v.m[viewKey{owner, service}]
	v.mu.RUnlock()
	now := time.Now()
	if !ok || (e.from != nil && now.Before(*e.from)) || (e.until != nil && !now.Before(*e.until)) {
		return "", false
	}
	return e.id, true
}

// set records where a handled intent stands and reports whether the view
// changed for its owner and service.
func (v *View) set(in Intent) bool {
	if v == nil || in.Role != RoleHandler || in.Expression.ExpressionValue == nil {
		return false
	}
	k := viewKey{in.Owner, in.Expression.ExpressionValue.Service}
	v.mu.Lock()
	defer v.mu.Unlock()
	old, had := v.m[k]
	if !slices.Contains(inForce, in.LifecycleStatus) {
		if had && old.id == in.ID {
			delete(v.m, k)
			return true
		}
		return false
	}
	e := viewEntry{id: in.ID}
	if in.ValidFor != nil {
		e.from, e.until = in.ValidFor.StartDateTime, in.ValidFor.EndDateTime
	}
	v.m[k] = e
	return !had || old.id != in.ID
}

// ViewOf is the view of a list of intents as the API shows them (`anfed
// intents --json`): the handled ones, whose API id is <owner>.<id>.
func ViewOf(ins []Intent) *View {
	v := NewView()
	for _, in := range ins {
		in.ID = strings.TrimPrefix(in.ID, in.Owner+".")
		v.set(in)
	}
	return v
}
