package intent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/store"
)

// Bucket is the JetStream KV bucket (operations account) that holds the
// intents this node owns and those it handles for peers.
const Bucket = "ANFED_INTENTS"

// MaxIntents bounds the intents one node keeps, owned and handled.
const MaxIntents = 1024

// maxReports bounds the reports kept per intent (the latest).
const maxReports = 32

// Record is an intent as stored: the resource and its reports.
type Record struct {
	Intent Intent `json:"intent"`
	// Revision counts the owner's changes of what the partner takes on:
	// an answer counts only for the revision it names.
	Revision int `json:"revision"`
	// Breaches and Observed are, for an intent we handle, the
	// expectations our measurements do not meet and the last value
	// measured of each, by expectation id.
	Breaches map[string]Breach  `json:"breaches,omitempty"`
	Observed map[string]float64 `json:"observed,omitempty"`
	// Risks are, for an intent we handle, the expectations at risk of a
	// breach, by expectation id.
	Risks map[string]Risk `json:"risks,omitempty"`
	// Held are our congestions and faults on the intent's service, by
	// class and resource, while they last.
	Held map[string]Held `json:"held,omitempty"`
	// Proposal is the action an intent we handle opened when it was at
	// risk (intents.propose), until it is compliant and out of risk.
	Proposal *Proposal `json:"proposal,omitempty"`
	Reports  []Report  `json:"reports,omitempty"`
}

// Report is a TMF921 v5 IntentReport: what this node learnt of the
// intent's state at one moment (a partner's decision, a compliance
// report).
type Report struct {
	ID           string           `json:"id"`
	Href         string           `json:"href,omitempty"`
	Name         string           `json:"name"`
	CreationDate time.Time        `json:"creationDate"`
	Expression   ReportExpression `json:"expression"`
	Intent       EntityRef        `json:"intent"`
	Type         string           `json:"@type"`
}

// ReportExpression is a report's JsonLdExpression.
type ReportExpression struct {
	Type            string       `json:"@type"`
	ExpressionValue ReportValues `json:"expressionValue"`
}

// ReportValues are what a report says.
type ReportValues struct {
	LifecycleStatus string    `json:"lifecycleStatus"`
	Reason          string    `json:"reason,omitempty"`
	From            string    `json:"from"` // the operator whose signal it came from
	Decision        *Decision `json:"decision,omitempty"`
	// Expectations are a compliance report's, as the partner sent them
	// (intent-report's expectations: target and result).
	Expectations json.RawMessage `json:"expectations,omitempty"`
}

// keyOf is the KV key of the intent owner made with id: the owner's id
// and the intent's, so that peers' intents never collide with ours.
func keyOf(owner, id string) string { return owner + "." + id }

// kvStore is the intents' bucket.
type kvStore struct {
	kv jetstream.KeyValue
}

func openStore(ctx context.Context, js jetstream.JetStream) (*kvStore, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: Bucket, Description: "anfed TMF921 intents, owned and handled",
		Storage: jetstream.FileStorage, MaxBytes: store.IntentsMaxBytes, History: 1})
	if err != nil {
		return nil, fmt.Errorf("intents: key-value bucket %s: %w", Bucket, err)
	}
	return &kvStore{kv: kv}, nil
}

var errExists = errors.New("exists")
var errNotFound = errors.New("not found")

// create stores a new record; errExists if its key is taken.
func (s *kvStore) create(ctx context.Context, r *Record) error {
	keys, err := s.keys(ctx)
	if err != nil {
		return err
	}
	if len(keys) >= MaxIntents {
		return fmt.Errorf("the node holds %d intents, its limit: delete terminated ones first", len(keys))
	}
	b, _ := json.Marshal(r)
	if _, err := s.kv.Create(ctx, keyOf(r.Intent.Owner, r.Intent.ID), b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return errExists
		}
		return fmt.Errorf("storing intent %s: %w", r.Intent.ID, err)
	}
	return nil
}

// get reads the record at key.
func (s *kvStore) get(ctx context.Context, key string) (*Record, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, errNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reading intent %s: %w", key, err)
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, 0, fmt.Errorf("intent %s does not decode: %w", key, err)
	}
	return &r, e.Revision(), nil
}

// update applies f to the record at key and writes it back at the
// revision it read, retrying when another writer came first. f returns
// false to leave the record as it is.
func (s *kvStore) update(ctx context.Context, key string, f func(r *Record) (bool, error)) (*Record, error) {
	for range 10 {
		r, rev, err := s.get(ctx, key)
		if err != nil {
			return nil, err
		}
		ok, err := f(r)
		if err != nil || !ok {
			return r, err
		}
		if len(r.Reports) > maxReports {
			r.Reports = r.Reports[len(r.Reports)-maxReports:]
		}
		b, _ := json.Marshal(r)
		if _, err := s.kv.Update(ctx, key, b, rev); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) || strings.Contains(err.Error(), "wrong last sequence") {
				continue
			}
			return nil, fmt.Errorf("storing intent %s: %w", key, err)
		}
		return r, nil
	}
	return nil, fmt.Errorf("storing intent %s: changed by others ten times in a row", key)
}

// put writes r whatever is stored (a handled intent a peer re-proposed).
func (s *kvStore) put(ctx context.Context, r *Record) error {
	b, _ := json.Marshal(r)
	if _, err := s.kv.Put(ctx, keyOf(r.Intent.Owner, r.Intent.ID), b); err != nil {
		return fmt.Errorf("storing intent %s: %w", r.Intent.ID, err)
	}
	return nil
}

func (s *kvStore) keys(ctx context.Context) ([]string, error) {
	l, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing intents: %w", err)
	}
	var out []string
	for k := range l.Keys() {
		if !strings.HasPrefix(k, hubPrefix) { // the hub's registrations
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out, nil
}

// all reads every record, sorted by creation.
func (s *kvStore) all(ctx context.Context) ([]*Record, error) {
	keys, err := s.keys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Record, 0, len(keys))
	for _, k := range keys {
		r, _, err := s.get(ctx, k)
		if errors.Is(err, errNotFound) {
			continue // deleted since listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *Record) int { return a.Intent.CreationDate.Compare(b.Intent.CreationDate) })
	return out, nil
}
