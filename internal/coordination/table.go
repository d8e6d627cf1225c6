package coordination

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket, in the operations account, that holds a
// node's coordination state:
//
//	lease.<resource>          the leases this operator grants (it decides)
//	view.<grantor>.<resource> the leases other operators granted, as their decisions said
//	action.<actionId>         every action the node has seen, for people and closed loops
//
// Names are base64url (no padding), so any resource or action id is a
// valid key of one token.
const Bucket = "ANFED_COORD"

// LeaseRecord is one lease: held until Until unless Ended is set.
type LeaseRecord struct {
	Grantor  string    `json:"grantor"`
	Resource string    `json:"resource"`
	Holder   string    `json:"holder"`
	ActionID string    `json:"actionId"`
	Kind     string    `json:"kind,omitempty"`
	Granted  time.Time `json:"granted"`
	Until    time.Time `json:"until"`
	// Ended is when it was released or expired (zero: not ended).
	Ended     time.Time `json:"ended,omitzero"`
	EndReason Phase     `json:"endReason,omitempty"`
	// Revision is the grantor's revision of the record: its key-value
	// revision in the grantor's own table, the decision's lease.revision
	// in a view.
	Revision uint64 `json:"revision"`
}

// Held reports whether the lease holds at now.
func (l LeaseRecord) Held(now time.Time) bool { return l.Ended.IsZero() && now.Before(l.Until) }

// Table is a node's coordination bucket.
type Table struct {
	kv   jetstream.KeyValue
	self string
}

// OpenTable creates (or adopts) the bucket. maxAge bounds how long a
// record outlives its last write; maxBytes the bucket.
func OpenTable(ctx context.Context, js jetstream.JetStream, self string, maxAge time.Duration, maxBytes int64, replicas int) (*Table, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "anfed coordination: leases granted and seen, actions",
		History:     1,
		TTL:         maxAge,
		MaxBytes:    maxBytes,
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("coordination bucket %s: %w", Bucket, err)
	}
	return &Table{kv: kv, self: self}, nil
}

func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func leaseKey(resource string) string         { return "lease." + enc(resource) }
func viewKey(grantor, resource string) string { return "view." + grantor + "." + enc(resource) }
func actionKey(id string) string              { return "action." + enc(id) }

// get reads key into v; rev 0 means absent.
func (t *Table) get(ctx context.Context, key string, v any) (uint64, error) {
	e, err := t.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("coordination %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("coordination %s: unreadable record: %w", key, err)
	}
	return e.Revision(), nil
}

// put writes v at key if the key is still at rev (0: absent): the
// compare and swap every change of the table is. ok is false when
// another writer got there first.
func (t *Table) put(ctx context.Context, key string, rev uint64, v any) (newRev uint64, ok bool, err error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, false, err
	}
	if rev == 0 {
		newRev, err = t.kv.Create(ctx, key, b)
	} else {
		newRev, err = t.kv.Update(ctx, key, b, rev)
	}
	if err == nil {
		return newRev, true, nil
	}
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) || errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return 0, false, nil
	}
	return 0, false, fmt.Errorf("coordination %s: %w", key, err)
}

// swap changes the record at key with f, a compare and swap retried
// until it holds: f gets the record as it is (rev 0: none) and returns
// the record to write, or nil to leave it as it is. It returns the
// revision written (0: nothing written).
func swap[T any](ctx context.Context, t *Table, key string, f func(cur *T, rev uint64) (*T, error)) (uint64, error) {
	for {
		var cur T
		rev, err := t.get(ctx, key, &cur)
		if err != nil {
			return 0, err
		}
		next, err := f(&cur, rev)
		if err != nil || next == nil {
			return 0, err
		}
		newRev, ok, err := t.put(ctx, key, rev, next)
		if err != nil {
			return 0, err
		}
		if ok {
			return newRev, nil
		}
		// another writer got there first: look again
	}
}

// Grant is a request for a lease on resources.
type Grant struct {
	ActionID, Holder, Kind string
	Resources              []string
	Until                  time.Time
	// Reverses is the action this one undoes; HoldDown how long after
	// it ended such a proposal is refused.
	Reverses string
	HoldDown time.Duration
}

// Refusal says why a grant was refused: a live lease of another action
// (Conflict) or the hold-down of the action it reverses (Dampened).
type Refusal struct {
	Resource string
	Conflict *Conflict
	// Dampened: the reversed action ended (or began) at Since; the
	// hold-down lasts until Until.
	Dampened     bool
	Since, Until time.Time
}

// Grant takes the lease on every resource of g, in the order of their
// names (two grants over the same resources cannot each hold one the
// other needs), each a compare and swap on its key: of two grants racing
// for a resource, in this process or another with the same bucket,
// exactly one writes it. On a refusal the resources taken so far are
// put back as they were. It returns the lease records written, with
// their revisions.
func (t *Table) Grant(ctx context.Context, g Grant, now time.Time) ([]LeaseRecord, *Refusal, error) {
	resources := slices.Clone(g.Resources)
	sort.Strings(resources)
	resources = slices.Compact(resources)
	type taken struct {
		key  string
		rev  uint64
		prev *LeaseRecord
	}
	var done []taken
	var out []LeaseRecord
	undo := func() {
		for _, d := range slices.Backward(done) {
			if d.prev == nil {
				_ = t.kv.Delete(ctx, d.key, jetstream.LastRevision(d.rev))
			} else {
				_, _, _ = t.put(ctx, d.key, d.rev, d.prev)
			}
		}
	}
	for _, r := range resources {
		key := leaseKey(r)
		var refusal *Refusal
		var rec LeaseRecord
		var prev *LeaseRecord
		rev, err := swap(ctx, t, key, func(cur *LeaseRecord, rev uint64) (*LeaseRecord, error) {
			prev = nil
			if rev != 0 {
				prev = cur
				if cur.Held(now) && cur.ActionID != g.ActionID {
					refusal = &Refusal{Resource: r, Conflict: &Conflict{Holder: cur.Holder, ActionID: cur.ActionID, Until: cur.Until}}
					return nil, nil
				}
				if g.Reverses != "" && cur.ActionID == g.Reverses {
					since := cur.Granted
					if !cur.Ended.IsZero() {
						since = cur.Ended
					} else if cur.Until.Before(now) {
						since = cur.Until
					}
					if until := since.Add(g.HoldDown); now.Before(until) {
						refusal = &Refusal{Resource: r, Dampened: true, Since: since, Until: until}
						return nil, nil
					}
				}
			}
			rec = LeaseRecord{Grantor: t.self, Resource: r, Holder: g.Holder, ActionID: g.ActionID, Kind: g.Kind, Granted: now, Until: g.Until}
			if prev != nil && prev.ActionID == g.ActionID && prev.Held(now) {
				rec.Granted = prev.Granted // a renewal keeps when it began
			}
			return &rec, nil
		})
		if err != nil || refusal != nil {
			undo()
			return nil, refusal, err
		}
		rec.Revision = rev
		done = append(done, taken{key: key, rev: rev, prev: prev})
		out = append(out, rec)
	}
	return out, nil, nil
}

// End ends the leases action holds (released by its holder, or expired),
// each a compare and swap, and returns the records as ended. Resources
// the action does not hold are left alone.
func (t *Table) End(ctx context.Context, actionID string, resources []string, why Phase, now time.Time) ([]LeaseRecord, error) {
	var out []LeaseRecord
	for _, r := range resources {
		var ended LeaseRecord
		rev, err := swap(ctx, t, leaseKey(r), func(cur *LeaseRecord, rev uint64) (*LeaseRecord, error) {
			if rev == 0 || cur.ActionID != actionID || !cur.Ended.IsZero() {
				return nil, nil // not this action's, or ended already
			}
			cur.Ended, cur.EndReason = now, why
			if why == Expired {
				cur.Ended = cur.Until
			}
			ended = *cur
			return cur, nil
		})
		if err != nil {
			return out, err
		}
		if rev != 0 {
			ended.Revision = rev
			out = append(out, ended)
		}
	}
	return out, nil
}

// Leases lists the leases this operator granted (ours) and those its
// peers' decisions told of (views), held or not.
func (t *Table) Leases(ctx context.Context) (ours, views []LeaseRecord, err error) {
	keys, err := t.kv.ListKeysFiltered(ctx, "lease.>", "view.>")
	if err != nil {
		return nil, nil, fmt.Errorf("coordination leases: %w", err)
	}
	for k := range keys.Keys() {
		var l LeaseRecord
		rev, err := t.get(ctx, k, &l)
		if err != nil || rev == 0 {
			continue // deleted since it was listed, or unreadable
		}
		if k[:len("lease.")] == "lease." {
			l.Revision = rev
			ours = append(ours, l)
		} else {
			views = append(views, l)
		}
	}
	return ours, views, nil
}

// View applies a grantor's decision on its leases to our view of them:
// a record replaces the one we hold only when its revision is higher,
// so decisions applied in any order leave every node with the grantor's
// latest word.
func (t *Table) View(ctx context.Context, l LeaseRecord) (bool, error) {
	rev, err := swap(ctx, t, viewKey(l.Grantor, l.Resource), func(cur *LeaseRecord, rev uint64) (*LeaseRecord, error) {
		if rev != 0 && cur.Revision >= l.Revision {
			return nil, nil // we hold the grantor's later word
		}
		return &l, nil
	})
	return rev != 0, err
}

// Record is what a node knows of one action.
type Record struct {
	Data
	// Subject and ProposalID are the proposal's subject and event id.
	Subject    string `json:"subject,omitempty"`
	ProposalID string `json:"proposalId,omitempty"`
	// TraceParent and TraceState are the proposal's trace context: a
	// person's decision carries it on.
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
	// Decisions are the affected operators' latest, by operator.
	Decisions map[string]Decision `json:"decisions,omitempty"`
	// Pending: we are an affected operator and wait for a person or a
	// closed loop to decide.
	Pending bool `json:"pending,omitempty"`
	// PendingRule is the rule that asked for one.
	PendingRule string    `json:"pendingRule,omitempty"`
	Updated     time.Time `json:"updated"`
}

// Decision is one affected operator's latest step on an action.
type Decision struct {
	Phase     Phase     `json:"phase"`
	Rule      string    `json:"rule,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	DecidedBy string    `json:"decidedBy,omitempty"`
	Lease     *Lease    `json:"lease,omitempty"`
	Conflict  *Conflict `json:"conflict,omitempty"`
	Counter   *Counter  `json:"counter,omitempty"`
	At        time.Time `json:"at"`
}

// Action reads the record of action id (ok false: none).
func (t *Table) Action(ctx context.Context, id string) (Record, bool, error) {
	var r Record
	rev, err := t.get(ctx, actionKey(id), &r)
	return r, rev != 0, err
}

// UpdateAction changes action id's record with f, a compare and swap
// retried until it holds. f returns false to leave the record as it is.
func (t *Table) UpdateAction(ctx context.Context, id string, f func(r *Record) bool) (Record, error) {
	var out Record
	_, err := swap(ctx, t, actionKey(id), func(r *Record, _ uint64) (*Record, error) {
		if !f(r) {
			out = *r
			return nil, nil
		}
		out = *r
		return r, nil
	})
	return out, err
}

// Actions lists every action the table holds.
func (t *Table) Actions(ctx context.Context) ([]Record, error) {
	keys, err := t.kv.ListKeysFiltered(ctx, "action.>")
	if err != nil {
		return nil, fmt.Errorf("coordination actions: %w", err)
	}
	var out []Record
	for k := range keys.Keys() {
		var r Record
		if rev, err := t.get(ctx, k, &r); err == nil && rev != 0 {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ActionID < out[j].ActionID })
	return out, nil
}
